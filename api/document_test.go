package api_test

import (
	"strings"
	"testing"

	"github.com/wasmq/wasmq/abi"
)

// contractFields are the fields of the job document (docs/semantics.md §1,
// docs/api.md "The job document"): present in every answer that holds a
// job, null when empty.
var contractFields = []string{"uuid", "tenant", "func", "args", "kwargs", "context", "user_id", "model_name",
	"func_string", "description", "channel", "priority", "eta", "expected_at", "max_retries", "retry", "attempt",
	"identity_key", "graph_uuid", "depends_on", "state", "result", "exc_name", "exc_message", "exc_info",
	"date_created", "date_enqueued", "date_started", "date_done", "date_cancelled", "exec_time", "worker_id",
	"plugin_sha256"}

// checkDocument fails unless every contract field is in j, and those of
// nulls are null (not "", not absent).
func checkDocument(t *testing.T, where string, j map[string]any, nulls ...string) {
	t.Helper()
	for _, k := range contractFields {
		if _, ok := j[k]; !ok {
			t.Errorf("%s: field %q is absent", where, k)
		}
	}
	for _, k := range nulls {
		if v, ok := j[k]; !ok || v != nil {
			t.Errorf("%s: %s = %#v, want null", where, k, v)
		}
	}
}

func TestEveryContractFieldIsPresentAndNullWhenEmpty(t *testing.T) {
	s := start(t)

	// A bare job: only func.
	created := s.do("POST", "/v1/jobs", tokA, map[string]any{"func": "testkit.echo"})
	if created.status != 201 {
		t.Fatalf("create: %d %s", created.status, created.body)
	}
	j := created.json(t)
	checkDocument(t, "POST /v1/jobs", j, "user_id", "model_name", "identity_key", "graph_uuid", "result",
		"exc_name", "exc_message", "exc_info", "eta", "expected_at", "date_started", "date_done", "date_cancelled",
		"exec_time", "worker_id", "plugin_sha256")
	if j["deduplicated"] != false {
		t.Errorf("deduplicated = %v, want false", j["deduplicated"])
	}
	id := j["uuid"].(string)

	// Done: ran, so the run's fields are set and the failure's are null.
	done := s.waitState(tokA, id, abi.StateDone)
	checkDocument(t, "GET done job", done, "user_id", "model_name", "identity_key", "graph_uuid", "exc_name",
		"exc_message", "exc_info", "eta", "expected_at", "date_cancelled")
	for _, k := range []string{"worker_id", "plugin_sha256", "date_started", "date_done", "exec_time", "result"} {
		if done[k] == nil {
			t.Errorf("done job: %s is null", k)
		}
	}

	// A postponed job in every list, action and batch answer.
	later := s.do("POST", "/v1/jobs", tokA, map[string]any{"func": "testkit.echo", "eta": 3600}).json(t)["uuid"].(string)
	list := s.do("GET", "/v1/jobs?limit=10", tokA, nil).json(t)["jobs"].([]any)
	for _, x := range list {
		if m := x.(map[string]any); m["uuid"] == later {
			checkDocument(t, "GET /v1/jobs", m, "user_id", "exc_info", "worker_id", "date_started")
		}
	}
	checkDocument(t, "PATCH", s.do("PATCH", "/v1/jobs/"+later, tokA, map[string]any{"priority": 3}).json(t), "exc_info", "worker_id")
	checkDocument(t, "cancel", s.do("POST", "/v1/jobs/"+later+"/cancel", tokA, nil).json(t), "exc_info", "worker_id", "date_started")
	batch := s.do("POST", "/v1/jobs:batch", tokA, map[string]any{"jobs": []any{map[string]any{"func": "testkit.echo", "eta": 3600}}})
	for _, x := range batch.json(t)["jobs"].([]any) {
		checkDocument(t, "batch", x.(map[string]any), "exc_info", "worker_id", "graph_uuid")
	}
}

func TestAFailedJobsExcInfoSaysWhatToActOn(t *testing.T) {
	s := start(t)
	id := s.do("POST", "/v1/jobs", tokA, map[string]any{"func": "testkit.fail", "max_retries": 1,
		"kwargs": map[string]any{"message": "the ledger is closed"}}).json(t)["uuid"].(string)
	j := s.waitState(tokA, id, abi.StateFailed)
	checkDocument(t, "failed job", j, "identity_key", "graph_uuid", "date_cancelled")
	info, _ := j["exc_info"].(string)
	if j["exc_name"] != abi.ExcError || j["exc_message"] != "the ledger is closed" ||
		!strings.Contains(info, "wasmq.Error in testkit.fail: the ledger is closed") {
		t.Fatalf("exc_name %v, exc_message %v, exc_info %q", j["exc_name"], j["exc_message"], info)
	}
}
