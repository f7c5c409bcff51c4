package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

func testRecord(wasm []byte, complete bool) *abi.Record {
	sum := sha256.Sum256(wasm)
	return &abi.Record{
		Tenant: "t", Func: "flaky.quote", Input: []byte(`{"args":["x"],"kwargs":{},"context":{}}`),
		PluginSHA256: hex.EncodeToString(sum[:]), Function: abi.FunctionConfig{AllowedHosts: []string{"example.com"}},
		Config: map[string]string{"k": "v"},
		Tape: []abi.TapeEntry{{Fn: abi.TapeWalltime, Result: make([]byte, 12)},
			{Fn: abi.TapeHTTP, Args: "GET http://example.com/ 0011", Result: []byte(`{"status":200}`)}},
		Complete: complete, Outcome: abi.Outcome{Kind: abi.OutcomeFailed, ExcName: abi.ExcFailed, ExcMessage: "outage"},
		Size: 80, Wasm: wasm,
	}
}

// recordsAreKeptWithTheirAttemptAndLeaveWithTheirJob: a record is written
// with the attempt that kept it, read by its job's tenant only, its
// module kept once per digest while a record refers to it, and both go
// when the job is vacuumed.
func recordsAreKeptWithTheirAttemptAndLeaveWithTheirJob(t *testing.T, s store.Store) {
	ctx := context.Background()
	wasm := []byte("\x00asm\x01\x00\x00\x00 the module")
	a, b := nj("t"), nj("t")
	insert(t, s, a, b)
	started := start(t, s, "w", time.Minute)
	var cs []store.Completion
	for i, j := range started {
		c := store.Completion{UUID: j.UUID, WorkerID: j.WorkerID, Attempt: j.Attempt, To: abi.StateFailed, Cause: abi.CauseFail,
			ExcName: abi.ExcFailed, ExcMessage: "outage", Record: testRecord(wasm, i == 0)}
		if j.UUID == b.UUID {
			c.To, c.Cause, c.ExcName, c.ExcMessage = abi.StateDone, abi.CauseDone, "", ""
		}
		cs = append(cs, c)
	}
	if ap := must(s.Complete(ctx, cs)); len(ap) != 2 {
		t.Fatalf("%d of 2 applied", len(ap))
	}
	for _, id := range []string{a.UUID, b.UUID} {
		r, err := s.Record(ctx, "t", id, 1)
		if err != nil {
			t.Fatalf("record of %s: %v", id, err)
		}
		want := testRecord(wasm, true)
		if r.JobUUID != id || r.Attempt != 1 || !bytes.Equal(r.Input, want.Input) || r.PluginSHA256 != want.PluginSHA256 ||
			len(r.Tape) != 2 || r.Tape[1].Args != want.Tape[1].Args || !bytes.Equal(r.Tape[1].Result, want.Tape[1].Result) ||
			r.Config["k"] != "v" || r.Outcome.ExcMessage != "outage" || len(r.Wasm) != 0 {
			t.Fatalf("record read back: %+v", r)
		}
		if m := must(s.RecordModule(ctx, "", id, 1)); !bytes.Equal(m, wasm) {
			t.Fatalf("module read back: %q", m)
		}
	}
	for _, k := range []struct {
		tenant, uuid string
		attempt      int
	}{{"other", a.UUID, 1}, {"t", a.UUID, 2}, {"t", a.UUID, 0}, {"t", "nope", 1}, {"t", "a\x00b", 1}} {
		if _, err := s.Record(ctx, k.tenant, k.uuid, k.attempt); !errors.Is(err, abi.ErrNotFound) {
			t.Errorf("record %+v: %v, want not found", k, err)
		}
		if _, err := s.RecordModule(ctx, k.tenant, k.uuid, k.attempt); !errors.Is(err, abi.ErrNotFound) {
			t.Errorf("module %+v: %v, want not found", k, err)
		}
	}

	// The done job goes; the failed one keeps its record and the module.
	if n := must(s.Vacuum(ctx, "root", time.Now().Add(time.Hour))); n != 1 {
		t.Fatalf("vacuumed %d", n)
	}
	if _, err := s.Record(ctx, "", b.UUID, 1); !errors.Is(err, abi.ErrNotFound) {
		t.Fatalf("record of a vacuumed job: %v", err)
	}
	if _, err := s.RecordModule(ctx, "t", a.UUID, 1); err != nil {
		t.Fatalf("module of the record left: %v", err)
	}
	// Once no record refers to it, the module goes too.
	if _, err := s.SetDone(ctx, "t", a.UUID, nil); err != nil {
		t.Fatal(err)
	}
	if n := must(s.Vacuum(ctx, "root", time.Now().Add(time.Hour))); n != 1 {
		t.Fatalf("vacuumed %d", n)
	}
	c := nj("t")
	insert(t, s, c)
	j := start(t, s, "w", time.Minute)[0]
	rec := testRecord([]byte("another module"), true)
	must(s.Complete(ctx, []store.Completion{{UUID: j.UUID, WorkerID: j.WorkerID, Attempt: j.Attempt, To: abi.StateFailed,
		Cause: abi.CauseFail, Record: rec}}))
	if _, err := s.RecordModule(ctx, "t", c.UUID, 1); err != nil {
		t.Fatalf("module of a new record: %v", err)
	}
	// A record naming the first module again must bring its bytes back.
	d := nj("t")
	insert(t, s, d)
	j = start(t, s, "w", time.Minute)[0]
	must(s.Complete(ctx, []store.Completion{{UUID: j.UUID, WorkerID: j.WorkerID, Attempt: j.Attempt, To: abi.StateFailed,
		Cause: abi.CauseFail, Record: testRecord(wasm, true)}}))
	if m := must(s.RecordModule(ctx, "t", d.UUID, 1)); !bytes.Equal(m, wasm) {
		t.Fatalf("module written again after its removal: %q", m)
	}
}

// aRecordOfAnAttemptTakenBackIsNotKept: a completion that is not applied
// (the job is no longer the worker's) writes no record either.
func aRecordOfAnAttemptTakenBackIsNotKept(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := nj("t")
	insert(t, s, a)
	j := start(t, s, "w", time.Minute)[0]
	ap := must(s.Complete(ctx, []store.Completion{{UUID: j.UUID, WorkerID: "someone-else", Attempt: j.Attempt,
		To: abi.StateFailed, Cause: abi.CauseFail, Record: testRecord([]byte("m"), true)}}))
	if len(ap) != 0 {
		t.Fatalf("applied %v", ap)
	}
	if _, err := s.Record(ctx, "", a.UUID, j.Attempt); !errors.Is(err, abi.ErrNotFound) {
		t.Fatalf("record of an attempt not applied: %v", err)
	}
}
