package runner_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/runner"
	"github.com/wasmq/wasmq/store"
)

// chattyExec reports progress as fast as it can for a while, as a plugin
// calling wasmq_progress_v1 in a tight loop would.
type chattyExec struct {
	runner.Executor
	reports atomic.Int64
}

func (e *chattyExec) Run(ctx context.Context, job *abi.Job) abi.Outcome {
	report := abi.ProgressOf(ctx)
	for end, i := time.Now().Add(2500*time.Millisecond), 0; time.Now().Before(end); i++ {
		report(abi.Progress{Percent: min(i/100, 99), Message: "working", Updated: time.Now().UTC()})
		e.reports.Add(1)
		time.Sleep(100 * time.Microsecond)
	}
	report(abi.Progress{Percent: 100, Message: "last", Updated: time.Now().UTC()})
	return abi.Outcome{Kind: abi.OutcomeDone, Result: []byte(`1`)}
}

// countingStore counts the progress writes per job.
type countingStore struct {
	store.Store
	mu     sync.Mutex
	writes map[string][]abi.Progress
}

func (c *countingStore) SetProgress(ctx context.Context, id, w string, attempt int, p abi.Progress) error {
	c.mu.Lock()
	c.writes[id] = append(c.writes[id], abi.Progress{Updated: time.Now()}) // when written
	c.mu.Unlock()
	return c.Store.SetProgress(ctx, id, w, attempt, p)
}

// Thousands of reports cost the store at most one write per job per
// second, and the latest one is what the job shows.
func TestProgressIsCoalescedToOneWriteASecond(t *testing.T) {
	onEachStore(t, func(t *testing.T) {
		st := &countingStore{Store: newStore(t), writes: map[string][]abi.Progress{}}
		exec := &chattyExec{Executor: newHost(t)}
		r, err := runner.New(runner.Config{Channels: "root:2", NodeID: "node-" + uuid.NewString()[:8], Lease: abi.Duration(3 * time.Second),
			SafetyPoll: abi.Duration(time.Second)}, st, exec, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		ids := add(t, st, spec{name: "a"}, spec{name: "b"})
		r.Start(context.Background())
		t.Cleanup(func() { r.Stop(context.Background()) })
		waitState(t, st, 20*time.Second, abi.StateDone, ids["a"], ids["b"])
		if exec.reports.Load() < 1000 {
			t.Fatalf("only %d reports: the test proves nothing", exec.reports.Load())
		}
		st.mu.Lock()
		defer st.mu.Unlock()
		for name, id := range ids {
			w := st.writes[id]
			if len(w) < 2 || len(w) > 5 {
				t.Errorf("%s: %d progress writes over ~2.5 s, want one a second and the last", name, len(w))
			}
			for i := 1; i < len(w)-1; i++ { // the last one, at the end, may come sooner
				if gap := w[i].Updated.Sub(w[i-1].Updated); gap < 950*time.Millisecond {
					t.Errorf("%s: two writes %s apart", name, gap)
				}
			}
			if p := get(t, st, id).Progress; p == nil || p.Percent != 100 || p.Message != "last" {
				t.Errorf("%s shows progress %+v, want the last report", name, p)
			}
		}
	})
}

// The testkit plugin's progress reaches the job while it runs, and its
// last report stays on the job; a report out of range is refused.
func TestAPluginsProgressIsShownOnTheJob(t *testing.T) {
	st := newStore(t)
	start(t, "root:1", st)
	ids := add(t, st, spec{name: "p", fn: "progress", kwargs: `{"steps":20,"ms":100}`})
	var seen []int
	deadline := time.Now().Add(15 * time.Second)
	for {
		j := get(t, st, ids["p"])
		if j.Progress != nil && (len(seen) == 0 || seen[len(seen)-1] != j.Progress.Percent) {
			seen = append(seen, j.Progress.Percent)
		}
		if j.State == abi.StateDone {
			if j.Progress == nil || j.Progress.Percent != 100 || j.Progress.Message != "step 20/20" {
				t.Errorf("the done job shows %+v, want its last report", j.Progress)
			}
			if string(j.Result) != `{"steps":20,"refused_101":true}` {
				t.Errorf("result %s", j.Result)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s", j.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// About 2 s of work: a value each second, rising, seen while it ran.
	if len(seen) < 2 {
		t.Errorf("progress seen while running: %v, want it to rise", seen)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] < seen[i-1] {
			t.Errorf("progress went back: %v", seen)
		}
	}
}
