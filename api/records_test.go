package api_test

import (
	"encoding/json"
	"testing"

	"github.com/wasmq/wasmq/abi"
)

func TestAFailedAttemptsRecordIsServedToItsTenant(t *testing.T) {
	s := start(t)
	r := s.do("POST", "/v1/jobs", tokA, map[string]any{"func": "testkit.fail_final", "kwargs": map[string]any{"message": "boom"}, "max_retries": 0})
	if r.status != 201 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	id := r.json(t)["uuid"].(string)
	s.waitState(tokA, id, abi.StateFailed)
	r = s.do("GET", "/v1/jobs/"+id+"/attempts/1/record", tokA, nil)
	var rec abi.Record
	if r.status != 200 || json.Unmarshal(r.body, &rec) != nil {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if rec.JobUUID != id || rec.Attempt != 1 || rec.Func != "testkit.fail_final" || rec.Outcome.ExcMessage != "boom" ||
		rec.Outcome.ExcName != abi.ExcFailed || !rec.Complete || len(rec.Input) == 0 {
		t.Fatalf("record: %+v", rec)
	}
	if m := s.do("GET", "/v1/jobs/"+id+"/attempts/1/record/module", tokA, nil); m.status != 200 || string(m.body[:4]) != "\x00asm" {
		t.Fatalf("module: %d %q", m.status, m.body[:min(len(m.body), 16)])
	}
	// No record for an attempt that did not happen.
	if r := s.do("GET", "/v1/jobs/"+id+"/attempts/2/record", tokA, nil); r.status != 404 {
		t.Fatalf("attempt 2: %d %s", r.status, r.body)
	}
}

func TestARecordsAttemptNumberIsCheckedNamingTheField(t *testing.T) {
	s := start(t)
	for _, n := range []string{"0", "-1", "one", "1.5", "99999999999999999999"} {
		r := s.do("GET", "/v1/jobs/"+noSuchJob+"/attempts/"+n+"/record", tokA, nil)
		if _, _, field := r.errOf(t); r.status != 422 || field != "attempt" {
			t.Errorf("attempt %q: %d %s", n, r.status, r.body)
		}
	}
}
