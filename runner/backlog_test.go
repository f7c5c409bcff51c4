package runner_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/runner"
	"github.com/wasmq/wasmq/store"
)

// addFuture stores n jobs due a day from now, in batches of 1,000.
func addFuture(t *testing.T, st store.Store, n int) {
	t.Helper()
	eta := time.Now().Add(24 * time.Hour)
	for i := 0; i < n; i += 1000 {
		batch := make([]store.NewJob, 0, 1000)
		for k := i; k < min(i+1000, n); k++ {
			batch = append(batch, store.NewJob{UUID: uuid.NewString(), Tenant: "default", Func: "testkit.script",
				Args: json.RawMessage(`["ok"]`), Kwargs: json.RawMessage(`{}`), Context: json.RawMessage(`{}`),
				Description: "future", Channel: "root", Priority: 10, ETA: &eta})
		}
		if _, err := st.Insert(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
}

// backlogSize: the future jobs waiting in the store in the backlog tests
// (fewer with -short or -race, whose inserts take minutes at 100,000).
func backlogSize() int {
	if testing.Short() || raceOn {
		return 20000
	}
	return 100000
}

// TestAJobComingDueStartsOnTimeBehindABacklogOfFutureJobs: with a
// backlog of jobs due tomorrow in the store, the scheduler holds only
// what is due within its horizon, and a job whose eta lies beyond the
// horizon when it is stored (read by eta as it comes within it) starts
// within its due time plus the bound an empty store gives.
func TestAJobComingDueStartsOnTimeBehindABacklogOfFutureJobs(t *testing.T) {
	onEachStore(t, func(t *testing.T) {
		st := newStore(t)
		addFuture(t, st, backlogSize())
		n := start(t, "root:4", st, func(c *runner.Config) { c.DueHorizon = abi.Duration(time.Second) })
		warm := add(t, st, spec{name: "warm"})
		waitState(t, st, 10*time.Second, abi.StateDone, warm["warm"])
		if held := n.r.Held(); held > 10 {
			t.Fatalf("the scheduler holds %d jobs with %d due tomorrow and none due: want the backlog left in the store", held, backlogSize())
		}

		eta := time.Now().Add(2500 * time.Millisecond) // beyond the 1s horizon
		ids := add(t, st, spec{name: "due", eta: &eta})
		waitState(t, st, 10*time.Second, abi.StateDone, ids["due"])
		s := spans(t, st, ids)[0]
		if s.start.Before(eta) {
			t.Fatalf("started %v before its eta", eta.Sub(s.start))
		}
		// Not a speed target: a scheduler that missed the job would find
		// it at the safety poll (5 s) at the earliest; a second is that,
		// with room for a loaded machine.
		if late := s.start.Sub(eta); late > time.Second {
			t.Fatalf("started %v after its eta behind %d future jobs, want well before the safety poll", late, backlogSize())
		}
		if held := n.r.Held(); held > 10 {
			t.Fatalf("the scheduler holds %d jobs after the due one ran, want the backlog left in the store", held)
		}
	})
}

// TestAnETAChangedAcrossTheHorizonIsFollowed: a job of the backlog
// brought forward starts at its new eta; a job due soon postponed past
// the horizon does not start at its old one.
func TestAnETAChangedAcrossTheHorizonIsFollowed(t *testing.T) {
	onEachStore(t, func(t *testing.T) {
		st := newStore(t)
		addFuture(t, st, 5000)
		tomorrow, soon := time.Now().Add(24*time.Hour), time.Now().Add(700*time.Millisecond)
		ids := add(t, st, spec{name: "forward", eta: &tomorrow}, spec{name: "postponed", eta: &soon})
		n := start(t, "root:4", st, func(c *runner.Config) { c.DueHorizon = abi.Duration(time.Second) })
		ctx := context.Background()
		later := time.Now().Add(time.Hour)
		if _, err := st.Update(ctx, "", ids["postponed"], store.Patch{ETA: ptr(&later)}); err != nil {
			t.Fatal(err)
		}
		newETA := time.Now().Add(1500 * time.Millisecond)
		if _, err := st.Update(ctx, "", ids["forward"], store.Patch{ETA: ptr(&newETA)}); err != nil {
			t.Fatal(err)
		}
		waitState(t, st, 10*time.Second, abi.StateDone, ids["forward"])
		if s := spans(t, st, map[string]string{"forward": ids["forward"]})[0]; s.start.Before(newETA) || s.start.Sub(newETA) > 500*time.Millisecond {
			t.Fatalf("the job brought forward started at %v, want at its new eta %v (within 500ms)", s.start, newETA)
		}
		if j := get(t, st, ids["postponed"]); j.State != abi.StatePending {
			t.Fatalf("the postponed job is %s, want pending until its new eta", j.State)
		}
		if held := n.r.Held(); held > 10 {
			t.Fatalf("the scheduler holds %d jobs, want only those due within its horizon", held)
		}
	})
}

// TestAFutureHeadBeyondTheHorizonBlocksItsSequentialChannel: a
// sequential channel's jobs are all held whatever their eta: its head,
// due after the horizon, still keeps the next job waiting.
func TestAFutureHeadBeyondTheHorizonBlocksItsSequentialChannel(t *testing.T) {
	onEachStore(t, func(t *testing.T) {
		st := newStore(t)
		eta := time.Now().Add(2 * time.Second)
		ids := add(t, st, spec{name: "head", channel: "S", eta: &eta}, spec{name: "next", channel: "S"})
		start(t, "root:4,S:1:sequential", st, func(c *runner.Config) { c.DueHorizon = abi.Duration(500 * time.Millisecond) })
		waitState(t, st, 10*time.Second, abi.StateDone, ids["head"], ids["next"])
		ss := spans(t, st, ids)
		if ss[0].name != "head" || ss[0].start.Before(eta) || ss[1].start.Before(ss[0].end) {
			t.Fatalf("ran %v (head from %v, next from %v), want the head at its eta %v, then next", names(ss), ss[0].start, ss[1].start, eta)
		}
	})
}
