package runner_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/runner"
	"github.com/wasmq/wasmq/store"
)

// timedExec notes when each attempt's code returned, and how.
type timedExec struct {
	runner.Executor
	mu    sync.Mutex
	ended map[string]abi.Outcome
	at    map[string]time.Time
}

func (e *timedExec) Run(ctx context.Context, job *abi.Job) abi.Outcome {
	o := e.Executor.Run(ctx, job)
	e.mu.Lock()
	e.ended[job.UUID], e.at[job.UUID] = o, time.Now()
	e.mu.Unlock()
	return o
}

func (e *timedExec) endedAt(id string) (time.Time, abi.Outcome, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t, ok := e.at[id]
	return t, e.ended[id], ok
}

// startTimed starts a runner on st whose attempts are timed.
func startTimed(t *testing.T, channels string, st store.Store, lease time.Duration) *timedExec {
	t.Helper()
	exec := &timedExec{Executor: newHost(t), ended: map[string]abi.Outcome{}, at: map[string]time.Time{}}
	cfg := runner.Config{Channels: channels, NodeID: "node-" + uuid.NewString()[:8], Lease: abi.Duration(lease),
		SafetyPoll: abi.Duration(time.Second), ShutdownTimeout: abi.Duration(2 * time.Second)}
	r, err := runner.New(cfg, st, exec, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Stop(context.Background()) })
	return exec
}

// waitEnded waits for the attempt of id to return, and says when it did.
func waitEnded(t *testing.T, exec *timedExec, id string, timeout time.Duration) (time.Time, abi.Outcome) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if at, o, ok := exec.endedAt(id); ok {
			return at, o
		}
		if time.Now().After(deadline) {
			t.Fatalf("the attempt of %s still runs after %s", id, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Cancelling a started job interrupts its sandbox at once: the attempt
// is recorded as cancelled, its dependents are cancelled, and its slot
// goes to the next job.
func TestCancelInterruptsARunningJob(t *testing.T) {
	onEachStore(t, func(t *testing.T) {
		st := newStore(t)
		exec := startTimed(t, "root:1", st, 3*time.Second)
		// The module compiled and an instance made: what is measured
		// below is the interruption, not a first compilation.
		warm := add(t, st, spec{name: "warm"})
		waitState(t, st, 10*time.Second, abi.StateDone, warm["warm"])
		ids := add(t, st, spec{name: "hang", args: `["hang"]`, retries: 3}, spec{name: "child", deps: []string{"hang"}},
			spec{name: "next"})
		waitState(t, st, 5*time.Second, abi.StateStarted, ids["hang"])
		time.Sleep(50 * time.Millisecond) // well inside the sandbox
		asked := time.Now()
		j, err := st.Cancel(context.Background(), "default", ids["hang"])
		if err != nil || j.State != abi.StateCancelled {
			t.Fatalf("cancel of a started job: %v %v", j.State, err)
		}
		ended, o := waitEnded(t, exec, ids["hang"], 2*time.Second)
		if took := ended.Sub(asked); took > cancelBound {
			t.Errorf("the sandbox ran on %s after the cancel, want under %s", took, cancelBound)
		}
		if o.Kind != abi.OutcomeInterrupted {
			t.Errorf("the attempt ended %s, want interrupted", o.Kind)
		}
		waitState(t, st, 5*time.Second, abi.StateDone, ids["next"])
		if j := get(t, st, ids["hang"]); j.State != abi.StateCancelled || j.WorkerID != "" {
			t.Errorf("after its worker reported: %s worker %q", j.State, j.WorkerID)
		}
		if j := get(t, st, ids["child"]); j.State != abi.StateCancelled {
			t.Errorf("the dependent is %s, want cancelled", j.State)
		}
		at, err := st.Attempts(context.Background(), "default", ids["hang"])
		if err != nil || len(at) != 1 || at[0].Outcome != "cancelled" || at[0].ExcName != abi.ExcCancelled || at[0].Ended == nil {
			t.Errorf("attempts %+v %v, want one, cancelled", at, err)
		}
	})
}

// lossyEvents drops every finished event: the cancel must still reach
// the node running the job, through the check each lease renewal makes.
type lossyEvents struct{ store.Store }

func (l lossyEvents) Subscribe(ctx context.Context) (<-chan store.Event, error) {
	in, err := l.Store.Subscribe(ctx)
	if err != nil {
		return nil, err
	}
	out := make(chan store.Event, 64)
	go func() {
		defer close(out)
		for e := range in {
			if e.Kind != store.EventFinished {
				out <- e
			}
		}
	}()
	return out, nil
}

func TestCancelReachesTheWorkerWithinALeaseWithoutItsEvent(t *testing.T) {
	onEachStore(t, func(t *testing.T) {
		st := newStore(t)
		ids := add(t, st, spec{name: "hang", args: `["hang"]`})
		const lease = time.Second
		exec := startTimed(t, "root:1", lossyEvents{st}, lease)
		waitState(t, st, 5*time.Second, abi.StateStarted, ids["hang"])
		asked := time.Now()
		if _, err := st.Cancel(context.Background(), "default", ids["hang"]); err != nil {
			t.Fatal(err)
		}
		ended, _ := waitEnded(t, exec, ids["hang"], 5*time.Second)
		if took := ended.Sub(asked); took > lease+100*time.Millisecond {
			t.Errorf("interrupted %s after the cancel, want within a lease (%s)", took, lease)
		}
	})
}
