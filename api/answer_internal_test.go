package api

import (
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// The answer to POST /v1/jobs is what writeJSON makes of the job and its
// deduplicated flag, byte for byte, headers included.
func TestTheCreatedJobAnswerIsTheJobOutDocument(t *testing.T) {
	for _, ins := range created() {
		want, got := httptest.NewRecorder(), httptest.NewRecorder()
		if err := writeJSON(want, 201, jobOut{ins.Job.Doc(), ins.Deduplicated}); err != nil {
			t.Fatal(err)
		}
		if err := writeJob(got, 201, ins); err != nil {
			t.Fatal(err)
		}
		same(t, got, want)
	}
}

// The answer to a batch is what writeJSON makes of {"jobs": [jobOut...]},
// byte for byte, whatever the number of jobs.
func TestTheCreatedBatchAnswerIsTheJobsDocument(t *testing.T) {
	all := created()
	for _, ins := range [][]store.Inserted{nil, all[:1], all, append(all, all...)} {
		outs := make([]jobOut, len(ins))
		for i, x := range ins {
			outs[i] = jobOut{x.Job.Doc(), x.Deduplicated}
		}
		want, got := httptest.NewRecorder(), httptest.NewRecorder()
		if err := writeJSON(want, 201, map[string]any{"jobs": outs}); err != nil {
			t.Fatal(err)
		}
		if err := writeJobs(got, 201, ins); err != nil {
			t.Fatal(err)
		}
		same(t, got, want)
	}
}

func same(t *testing.T, got, want *httptest.ResponseRecorder) {
	t.Helper()
	if got.Body.String() != want.Body.String() || got.Code != want.Code || got.Header().Get("Content-Type") != want.Header().Get("Content-Type") {
		t.Fatalf("got %d %v %s\nwant %d %v %s", got.Code, got.Header(), got.Body, want.Code, want.Header(), want.Body)
	}
}

func created() []store.Inserted {
	now := time.Date(2026, 11, 30, 20, 0, 0, 123456000, time.UTC)
	return []store.Inserted{
		{Job: abi.Job{UUID: "0b9f0000-0000-4000-8000-000000000001", Tenant: "acme", Func: "m.f", Args: json.RawMessage(`[1,"<x>"]`),
			Kwargs: json.RawMessage(`{}`), Context: json.RawMessage(`{}`), Channel: "root", State: abi.StatePending,
			FuncString: `m.f(1, "<x>")`, Description: "m.f", Priority: 10, MaxRetries: 5, DateCreated: now, Seq: 7, DependsOn: []string{}}},
		{Job: abi.Job{UUID: "u2", Tenant: "acme", Func: "m.f", Args: json.RawMessage(`[]`), State: abi.StateWaitDependencies,
			IdentityKey: "k", DependsOn: []string{"u1"}, ETA: &now, DateCreated: now}, Deduplicated: true},
	}
}
