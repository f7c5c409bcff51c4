package abi

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Every field of Job is in the job document, in the same order, and no
// contract field hides when empty: a field added to Job and not to JobDoc
// fails here, unless its tag says it is not part of the document (`json:"-"`).
func TestJobDocumentHasEveryFieldOfTheJob(t *testing.T) {
	names := func(typ reflect.Type) []string {
		var out []string
		for i := 0; i < typ.NumField(); i++ {
			tag := typ.Field(i).Tag.Get("json")
			if tag == "-" {
				continue
			}
			if strings.Contains(tag, "omitempty") {
				t.Errorf("%s.%s is omitempty", typ.Name(), typ.Field(i).Name)
			}
			out = append(out, strings.Split(tag, ",")[0])
		}
		return out
	}
	if a, b := names(reflect.TypeOf(Job{})), names(reflect.TypeOf(JobDoc{})); !reflect.DeepEqual(a, b) {
		t.Fatalf("Job fields %v\nJobDoc fields %v", a, b)
	}
	var doc map[string]any
	b, _ := json.Marshal(Job{})
	json.Unmarshal(b, &doc)
	for _, k := range names(reflect.TypeOf(Job{})) {
		v, ok := doc[k]
		if !ok {
			t.Errorf("%s is absent", k)
		}
		// These are set on every job there is (a description defaults
		// to the function); any other text is null when empty.
		always := map[string]bool{"uuid": true, "tenant": true, "func": true, "func_string": true, "description": true, "channel": true, "state": true}
		if s, isText := v.(string); isText && s == "" && !always[k] {
			t.Errorf("%s is \"\", want null", k)
		}
	}
	// And back: null reads as empty.
	var j Job
	if err := json.Unmarshal(b, &j); err != nil || j.UserID != "" || j.ExcInfo != "" {
		t.Fatalf("round trip: %v %+v", err, j)
	}
}

func BenchmarkJobDocument(b *testing.B) {
	now := time.Now()
	j := Job{UUID: "0b9f0000-0000-4000-8000-000000000001", Tenant: "acme", Func: "m.f", Args: json.RawMessage(`[1,"x"]`),
		Kwargs: json.RawMessage(`{}`), Context: json.RawMessage(`{}`), Channel: "root", State: StateDone,
		Result: json.RawMessage(`{"ok":true}`), DateCreated: now, DateStarted: &now, DateDone: &now, WorkerID: "n1/x"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(j); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJobDocumentDirect is the document encoded without going
// through Job.MarshalJSON, whose output encoding/json scans again.
func BenchmarkJobDocumentDirect(b *testing.B) {
	now := time.Now()
	j := Job{UUID: "0b9f0000-0000-4000-8000-000000000001", Tenant: "acme", Func: "m.f", Args: json.RawMessage(`[1,"x"]`),
		Kwargs: json.RawMessage(`{}`), Context: json.RawMessage(`{}`), Channel: "root", State: StateDone,
		Result: json.RawMessage(`{"ok":true}`), DateCreated: now, DateStarted: &now, DateDone: &now, WorkerID: "n1/x"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(j.Doc()); err != nil {
			b.Fatal(err)
		}
	}
}
