package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// A started job may be cancelled: the attempt that ran is recorded as
// cancelled, a finished event names the job (every node's runner
// interrupts it on that), the worker's late report applies to nothing,
// and waiting dependents are cancelled.
func cancelStartedJob(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := nj("t")
	kid := nj("t")
	kid.DependsOn = []string{p.UUID}
	insert(t, s, p, kid)
	started := start(t, s, "w", time.Minute)
	if len(started) != 1 || started[0].UUID != p.UUID {
		t.Fatalf("started %v", started)
	}
	ch, err := s.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // let a LISTEN settle
	j, err := s.Cancel(ctx, "t", p.UUID)
	if err != nil || j.State != abi.StateCancelled || j.WorkerID != "" || j.DateCancelled == nil {
		t.Fatalf("cancel of a started job: %+v %v", j, err)
	}
	for named := false; !named; {
		select {
		case e := <-ch:
			if e.Kind == store.EventFinished && (e.UUIDs == nil || contains(e.UUIDs, p.UUID)) {
				named = true
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no finished event names the cancelled job")
		}
	}
	late := store.Completion{UUID: p.UUID, WorkerID: "w", Attempt: started[0].Attempt, To: abi.StatePending,
		Cause: abi.CauseShutdown, UncountRetry: true}
	if ap := must(s.Complete(ctx, []store.Completion{late})); len(ap) != 0 {
		t.Fatalf("the worker's report after the cancel applied: %v", ap)
	}
	if got := get(t, s, p.UUID); got.State != abi.StateCancelled {
		t.Fatalf("after the worker's report: %s", got.State)
	}
	if got := get(t, s, kid.UUID); got.State != abi.StateCancelled {
		t.Fatalf("dependent %s, want cancelled", got.State)
	}
	at := must(s.Attempts(ctx, "t", p.UUID))
	if len(at) != 1 || at[0].Outcome != "cancelled" || at[0].ExcName != abi.ExcCancelled || at[0].Ended == nil || at[0].WorkerID != "w" {
		t.Fatalf("attempts %+v", at)
	}
	// Another tenant cannot cancel it, running or not.
	other := insert(t, s, nj("t"))[0]
	start(t, s, "w", time.Minute)
	if _, err := s.Cancel(ctx, "u", other.UUID); err == nil {
		t.Fatal("another tenant cancelled a running job")
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
