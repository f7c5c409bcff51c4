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
	now := time.Date(2026, 11, 30, 20, 0, 0, 123456000, time.UTC)
	for _, ins := range []store.Inserted{
		{Job: abi.Job{UUID: "0b9f0000-0000-4000-8000-000000000001", Tenant: "acme", Func: "m.f", Args: json.RawMessage(`[1,"<x>"]`),
			Kwargs: json.RawMessage(`{}`), Context: json.RawMessage(`{}`), Channel: "root", State: abi.StatePending,
			FuncString: `m.f(1, "<x>")`, Description: "m.f", Priority: 10, MaxRetries: 5, DateCreated: now, Seq: 7, DependsOn: []string{}}},
		{Job: abi.Job{UUID: "u2", Tenant: "acme", Func: "m.f", Args: json.RawMessage(`[]`), State: abi.StateWaitDependencies,
			IdentityKey: "k", DependsOn: []string{"u1"}, ETA: &now, DateCreated: now}, Deduplicated: true},
	} {
		want, got := httptest.NewRecorder(), httptest.NewRecorder()
		if err := writeJSON(want, 201, jobOut{ins.Job.Doc(), ins.Deduplicated}); err != nil {
			t.Fatal(err)
		}
		if err := writeJob(got, 201, ins); err != nil {
			t.Fatal(err)
		}
		if got.Body.String() != want.Body.String() || got.Code != want.Code || got.Header().Get("Content-Type") != want.Header().Get("Content-Type") {
			t.Fatalf("got %d %v %s\nwant %d %v %s", got.Code, got.Header(), got.Body, want.Code, want.Header(), want.Body)
		}
	}
}
