package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// A list of one state holds every job in that state and no other,
// however the job came there: started from pending or claimed once
// handed out, failed then requeued, cancelled while running. A store may
// read such a list through what else it knows of those jobs (PostgreSQL:
// the failed and handed flags, the batches' job_runs rows), so each way
// in and out of a state is taken here.
func aListOfOneStateFindsEveryJobInIt(t *testing.T, s store.Store) {
	ctx := context.Background()
	lease := time.Now().Add(time.Minute)
	var all []string
	for _, j := range insert(t, s, nj("t"), nj("t"), nj("t"), nj("t"), nj("t"), nj("t"), nj("t"), nj("t"), nj("u"), nj("u")) {
		all = append(all, j.UUID)
	}
	// Two started straight from pending, by the scheduler's start.
	pending := must(s.PendingSince(ctx, 0, 100))
	started := must(s.Start(ctx, pending[:2], "w1", lease))
	// Four handed out, two of them claimed.
	if moved := must(s.Enqueue(ctx, must(s.Pending(ctx, []string{all[2], all[3], all[4], all[5]})), lease)); len(moved) != 4 {
		t.Fatalf("handed out %d jobs, want 4", len(moved))
	}
	claimed := must(s.Claim(ctx, "w2", 2, lease))
	if len(started) != 2 || len(claimed) != 2 {
		t.Fatalf("started %d and claimed %d, want 2 and 2", len(started), len(claimed))
	}
	// One started job fails, one claimed job fails and is requeued, one
	// is cancelled while it runs; the last one started ends done.
	complete(t, s, started[0], abi.StateFailed, abi.CauseFail)
	complete(t, s, claimed[0], abi.StateFailed, abi.CauseFail)
	must(s.Requeue(ctx, claimed[0].Tenant, claimed[0].UUID))
	must(s.Cancel(ctx, claimed[1].Tenant, claimed[1].UUID))
	again := must(s.Start(ctx, must(s.Pending(ctx, []string{claimed[0].UUID})), "w3", lease))
	if len(again) != 1 {
		t.Fatalf("the requeued job started %d times, want once", len(again))
	}
	complete(t, s, started[1], abi.StateDone, abi.CauseDone)

	want := map[abi.State][]string{}
	for _, id := range all {
		j := must(s.Get(ctx, "", id))
		want[j.State] = append(want[j.State], id)
	}
	if len(want) < 6 {
		t.Fatalf("the jobs are in %d states, want six: %v", len(want), want)
	}
	for _, st := range []abi.State{abi.StatePending, abi.StateEnqueued, abi.StateStarted, abi.StateFailed, abi.StateDone, abi.StateCancelled} {
		for _, tenant := range []string{"", "t"} {
			page := must(s.List(ctx, store.Filter{Tenant: tenant, States: []abi.State{st}, Limit: 100}))
			var got, exp []string
			for _, j := range page.Jobs {
				got = append(got, j.UUID)
			}
			for _, id := range want[st] {
				if j := must(s.Get(ctx, "", id)); tenant == "" || j.Tenant == tenant {
					exp = append(exp, id)
				}
			}
			slices.Sort(got)
			slices.Sort(exp)
			if !slices.Equal(got, exp) {
				t.Errorf("tenant %q, state %s: listed %v, want %v", tenant, st, got, exp)
			}
		}
	}
}
