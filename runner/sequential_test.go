package runner_test

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/runner"
	"github.com/wasmq/wasmq/store"
	"github.com/wasmq/wasmq/store/pgtest"
)

// onEachStore runs test on SQLite, then on PostgreSQL (skipped without
// one, as TestOnPostgreSQL is).
func onEachStore(t *testing.T, test func(t *testing.T)) {
	t.Helper()
	t.Run("sqlite", test)
	t.Run("postgres", func(t *testing.T) {
		pgtest.DSN(t) // skip (or fail under CI) before switching
		backend = "postgres"
		defer func() { backend = "sqlite" }()
		test(t)
	})
}

// sequentialRuns is how many times TestSequentialChannelWaitsForItsHeadsRetry
// plays its scenario on each store.
var sequentialRuns = flag.Int("sequential.runs", 200,
	"how many times TestSequentialChannelWaitsForItsHeadsRetry plays its scenario on each store (-short: at most 20)")

// TestSequentialChannelWaitsForItsHeadsRetry: in a sequential channel, a
// job whose attempt ends with a retry stays the channel's head while it
// waits for its eta, and the jobs behind it, those queued already and
// those added meanwhile, start only once it is done. The scenario plays
// again and again on several sequential channels at once while another
// goroutine keeps adding jobs elsewhere, so the store's events arrive in
// every order that load brings.
func TestSequentialChannelWaitsForItsHeadsRetry(t *testing.T) {
	onEachStore(t, func(t *testing.T) {
		runs := *sequentialRuns
		if testing.Short() {
			runs = min(runs, 20)
		}
		const lanes = 8 // sequential channels playing at once
		channels := "root:16,noise:4"
		for l := range lanes {
			channels += fmt.Sprintf(",S%d:1:sequential", l)
		}
		st := newStore(t)
		start(t, channels, st, func(c *runner.Config) { c.DefaultRetryInterval = abi.Duration(200 * time.Millisecond) })

		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		errs := make(chan error, lanes+1)
		var noise sync.WaitGroup
		noise.Add(1)
		go func() { defer noise.Done(); errs <- addNoise(ctx, st) }()
		next := make(chan int, runs)
		for i := range runs {
			next <- i
		}
		close(next)
		var played sync.WaitGroup
		for l := range lanes {
			played.Add(1)
			go func() {
				defer played.Done()
				channel := fmt.Sprintf("S%d", l)
				for i := range next {
					if err := playRetryingHead(ctx, st, channel); err != nil {
						if ctx.Err() == nil { // else another lane failed first
							errs <- fmt.Errorf("run %d, channel %s: %w", i+1, channel, err)
							cancel()
						}
						return
					}
				}
			}()
		}
		played.Wait()
		cancel()
		noise.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
	})
}

// playRetryingHead adds to a sequential channel a job that retries once
// and a job behind it, adds a third job while the first waits for its
// retry, and checks from the store that the three ran in order.
func playRetryingHead(ctx context.Context, st store.Store, channel string) error {
	head, second, third := newJob(channel, `["retry","ok"]`, 3), newJob(channel, `["ok"]`, 0), newJob(channel, `["ok"]`, 0)
	if _, err := st.Insert(ctx, []store.NewJob{head, second}); err != nil {
		return err
	}
	err := poll(ctx, 10*time.Second, func() (bool, error) {
		j, err := st.Get(ctx, "", head.UUID)
		return j.Attempt >= 1 && j.State != abi.StateStarted, err
	})
	if err != nil {
		return fmt.Errorf("the first job's first attempt did not end: %w", err)
	}
	if _, err := st.Insert(ctx, []store.NewJob{third}); err != nil {
		return err
	}
	err = poll(ctx, 20*time.Second, func() (bool, error) {
		j, err := st.Get(ctx, "", third.UUID)
		return j.State == abi.StateDone, err
	})
	if err != nil {
		return fmt.Errorf("the third job is not done: %w", err)
	}
	return checkSequence(ctx, st, head.UUID, second.UUID, third.UUID)
}

// addNoise keeps adding jobs to a channel of its own until ctx ends, a
// few at a time, as fast as they run.
func addNoise(ctx context.Context, st store.Store) error {
	for ctx.Err() == nil {
		batch := make([]store.NewJob, 8)
		for i := range batch {
			batch[i] = newJob("noise", `["ok"]`, 0)
		}
		for _, j := range batch { // one insert each: more events, more rounds
			if _, err := st.Insert(ctx, []store.NewJob{j}); err != nil {
				return noiseErr(ctx, err)
			}
		}
		last := batch[len(batch)-1].UUID
		err := poll(ctx, 10*time.Second, func() (bool, error) {
			j, err := st.Get(ctx, "", last)
			return j.State == abi.StateDone, err
		})
		if err != nil {
			return noiseErr(ctx, err)
		}
	}
	return nil
}

func noiseErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("adding noise: %w", err)
}

// poll checks cond every 5 ms until it holds, failing after timeout.
func poll(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not after %v", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// TestSequentialChannelWaitsWhenFinishedIsHeardBeforePending: the
// commit that sends a retried job back to pending tells subscribers
// "finished" and "pending" in two events, and nothing orders their
// delivery: PostgreSQL sends them as two NOTIFYs, which may reach the
// scheduler in two deliveries, and a notification may arrive before the
// worker hears its commit succeed. Here the finished event is taken by
// every subscriber before the worker's Complete returns, and the pending
// event of a retried job never comes (the safety poll is off): the
// channel's next job must still wait for the retry.
func TestSequentialChannelWaitsWhenFinishedIsHeardBeforePending(t *testing.T) {
	onEachStore(t, func(t *testing.T) {
		st := newFinishedFirst(newStore(t))
		ids := add(t, st, spec{name: "S1", args: `["retry","ok"]`, channel: "S", retries: 3}, spec{name: "S2", channel: "S"})
		start(t, "root:4,S:1:sequential", st, func(c *runner.Config) {
			c.DefaultRetryInterval = abi.Duration(250 * time.Millisecond)
			c.SafetyPoll = abi.Duration(time.Hour)
		})
		waitState(t, st, 5*time.Second, abi.StateDone, ids["S2"])
		if err := checkSequence(context.Background(), st, ids["S1"], ids["S2"]); err != nil {
			t.Fatal(err)
		}
	})
}

// finishedFirst is a store whose subscribers hear a job's finished event
// before the worker hears its commit succeed (Complete returns only once
// every subscriber has taken the event), and never hear that a job that
// ran is pending again.
type finishedFirst struct {
	store.Store
	mu      sync.Mutex
	subs    map[*subscriber]bool
	ran     map[string]bool // jobs completed once: their pending events are dropped
	changed chan struct{}   // closed and replaced when a subscriber takes a finished event
}

type subscriber struct {
	finished map[string]int // finished events taken, by job
}

func newFinishedFirst(st store.Store) *finishedFirst {
	return &finishedFirst{Store: st, subs: map[*subscriber]bool{}, ran: map[string]bool{}, changed: make(chan struct{})}
}

func (f *finishedFirst) Subscribe(ctx context.Context) (<-chan store.Event, error) {
	in, err := f.Store.Subscribe(ctx)
	if err != nil {
		return nil, err
	}
	sub := &subscriber{finished: map[string]int{}}
	f.mu.Lock()
	f.subs[sub] = true
	f.mu.Unlock()
	out := make(chan store.Event) // unbuffered: a send returns once the subscriber took the event
	go func() {
		defer close(out)
		defer func() {
			f.mu.Lock()
			delete(f.subs, sub)
			f.mu.Unlock()
		}()
		for e := range in {
			if e.Kind == store.EventPending {
				if e.UUIDs = f.notRan(e.UUIDs); len(e.UUIDs) == 0 {
					continue
				}
			}
			select {
			case out <- e:
			case <-ctx.Done():
				return
			}
			if e.Kind == store.EventFinished {
				f.mu.Lock()
				for _, id := range e.UUIDs {
					sub.finished[id]++
				}
				close(f.changed)
				f.changed = make(chan struct{})
				f.mu.Unlock()
			}
		}
	}()
	return out, nil
}

func (f *finishedFirst) notRan(ids []string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string // not in place: subscribers may share the event's slice
	for _, id := range ids {
		if !f.ran[id] {
			out = append(out, id)
		}
	}
	return out
}

// Complete returns once every subscriber has taken the finished event of
// each job it applied (or after a few seconds, so that a lost event shows
// as a failure of the test rather than a hang).
func (f *finishedFirst) Complete(ctx context.Context, cs []store.Completion) ([]string, error) {
	f.mu.Lock()
	before := map[*subscriber]map[string]int{}
	for sub := range f.subs {
		before[sub] = maps.Clone(sub.finished)
	}
	for _, c := range cs {
		f.ran[c.UUID] = true // before the commit: its events may come at once
	}
	f.mu.Unlock()
	applied, err := f.Store.Complete(ctx, cs)
	if err != nil {
		return applied, err
	}
	deadline := time.After(5 * time.Second)
	for {
		f.mu.Lock()
		all, changed := true, f.changed
		for sub, was := range before {
			for _, id := range applied {
				all = all && (!f.subs[sub] || sub.finished[id] > was[id])
			}
		}
		f.mu.Unlock()
		if all {
			return applied, nil
		}
		select {
		case <-changed:
		case <-deadline:
			return applied, nil
		}
	}
}

// TestSequentialChannelWaitsWhenItsHeadRetriesDuringAFullRead: the
// scheduler re-reads everything (the safety poll, a changed job) while
// the channel's head is running, and the head's attempt ends with a retry
// in the middle of that read. The scheduler must not see the head
// neither running nor pending: the channel's next job waits for the retry.
func TestSequentialChannelWaitsWhenItsHeadRetriesDuringAFullRead(t *testing.T) {
	onEachStore(t, func(t *testing.T) {
		st := &retryMidRead{Store: newStore(t)}
		ids := add(t, st, spec{name: "S1", args: `["retry","ok"]`, channel: "S", retries: 3}, spec{name: "S2", channel: "S"})
		start(t, "root:4,S:1:sequential", st, func(c *runner.Config) {
			c.DefaultRetryInterval = abi.Duration(250 * time.Millisecond)
			c.SafetyPoll = abi.Duration(20 * time.Millisecond) // a full read every 20 ms
		})
		waitState(t, st, 5*time.Second, abi.StateDone, ids["S2"])
		if !st.met.Load() {
			t.Fatal("the retry was not written during a full read")
		}
		if err := checkSequence(context.Background(), st, ids["S1"], ids["S2"]); err != nil {
			t.Fatal(err)
		}
	})
}

// retryMidRead is a store that writes the first retry it is given during
// the scheduler's next full read of the pending jobs: after the read has
// returned its rows, before it returns to the scheduler.
type retryMidRead struct {
	store.Store
	mu        sync.Mutex
	armed     bool
	read      chan struct{} // closed by the full read once it has its rows
	committed chan struct{} // closed once the retry is written
	met       atomic.Bool   // the retry was written during a full read
}

func (r *retryMidRead) Complete(ctx context.Context, cs []store.Completion) ([]string, error) {
	r.mu.Lock()
	first := !r.armed && slices.ContainsFunc(cs, func(c store.Completion) bool { return c.To == abi.StatePending })
	read, committed := make(chan struct{}), make(chan struct{})
	if first {
		r.armed, r.read, r.committed = true, read, committed
	}
	r.mu.Unlock()
	if !first {
		return r.Store.Complete(ctx, cs)
	}
	defer close(committed)
	select {
	case <-read:
		r.met.Store(true)
	case <-time.After(5 * time.Second): // no full read came: the test fails on met
	}
	return r.Store.Complete(ctx, cs)
}

// PendingByETA from the start is the scheduler's full read (of what is
// due within its horizon).
func (r *retryMidRead) PendingByETA(ctx context.Context, after store.ETACursor, until time.Time, limit int) ([]store.Candidate, error) {
	cs, err := r.Store.PendingByETA(ctx, after, until, limit)
	if after != (store.ETACursor{}) {
		return cs, err
	}
	r.mu.Lock()
	read, committed := r.read, r.committed
	r.read = nil
	r.mu.Unlock()
	if read != nil {
		close(read)
		select {
		case <-committed:
		case <-time.After(5 * time.Second):
		}
	}
	return cs, err
}

// TestSequentialChannelWaitsWhenAFinishedEventComesAfterTheRetryStarted:
// a job's retry is due at once, so the scheduler, told by its worker that
// the attempt is written, starts the job again before the store's
// finished event of the first attempt arrives. That late event names the
// job but says nothing of which attempt ended: it must not free the
// channel while the second attempt runs.
func TestSequentialChannelWaitsWhenAFinishedEventComesAfterTheRetryStarted(t *testing.T) {
	onEachStore(t, func(t *testing.T) {
		st := newFinishedLate(newStore(t))
		ids := add(t, st, spec{name: "S1", args: `["retry","ok:300"]`, channel: "S", retries: 3}, spec{name: "S2", channel: "S"})
		st.hold(ids["S1"])
		start(t, "root:4,S:1:sequential", st, func(c *runner.Config) {
			c.DefaultRetryInterval = abi.Duration(time.Millisecond) // due at once
			c.SafetyPoll = abi.Duration(time.Hour)
		})
		waitState(t, st, 5*time.Second, abi.StateDone, ids["S2"])
		if !st.delivered.Load() {
			t.Fatal("the finished event of the first attempt was not delivered after the second attempt started")
		}
		if err := checkSequence(context.Background(), st, ids["S1"], ids["S2"]); err != nil {
			t.Fatal(err)
		}
	})
}

// finishedLate is a store that holds back the finished event of a job's
// first attempt until the job has started again.
type finishedLate struct {
	store.Store
	mu   sync.Mutex
	job  string // the job whose first finished event is held
	held string // the job, until its second attempt starts
	// restarted is closed when the job starts its second attempt; a
	// finished event that comes only after it (a loaded machine delivers
	// it late by itself) goes out at once, and counts as delivered late.
	restarted chan struct{}
	delivered atomic.Bool // the held event went out after the restart
}

func newFinishedLate(st store.Store) *finishedLate {
	return &finishedLate{Store: st, restarted: make(chan struct{})}
}

func (f *finishedLate) hold(id string) {
	f.mu.Lock()
	f.job, f.held = id, id
	f.mu.Unlock()
}

func (f *finishedLate) Subscribe(ctx context.Context) (<-chan store.Event, error) {
	in, err := f.Store.Subscribe(ctx)
	if err != nil {
		return nil, err
	}
	out := make(chan store.Event, 1024)
	go func() {
		defer close(out)
		late := make(chan store.Event, 1)
		first := true
		for {
			select {
			case e, ok := <-in:
				if !ok {
					return
				}
				f.mu.Lock()
				job := f.job
				f.mu.Unlock()
				if first && e.Kind == store.EventFinished && slices.Contains(e.UUIDs, job) {
					first = false
					go func() {
						select {
						case <-f.restarted:
							f.delivered.Store(true)
						case <-time.After(5 * time.Second):
						}
						late <- e
					}()
					continue
				}
				out <- e
			case e := <-late:
				out <- e
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// started notes the held job's second attempt.
func (f *finishedLate) started(jobs []store.Claimed) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, j := range jobs {
		if j.UUID == f.held && j.Attempt == 2 {
			close(f.restarted)
			f.held = ""
		}
	}
}

func (f *finishedLate) Start(ctx context.Context, jobs []store.Candidate, workerID string, leaseUntil time.Time) ([]store.Claimed, error) {
	out, err := f.Store.Start(ctx, jobs, workerID, leaseUntil)
	f.started(out)
	return out, err
}

func (f *finishedLate) Claim(ctx context.Context, workerID string, limit int, leaseUntil time.Time) ([]store.Claimed, error) {
	out, err := f.Store.Claim(ctx, workerID, limit, leaseUntil)
	f.started(out)
	return out, err
}

// checkSequence checks, from the store, that the jobs of a sequential
// channel ran one after the other in the given order, each handed over
// (enqueued or started) only once the previous one was done, and that the
// first ran twice (one retry). Call it once the last job is done.
func checkSequence(ctx context.Context, st store.Store, ids ...string) error {
	var prev abi.Job
	for k, id := range ids {
		j, err := st.Get(ctx, "", id)
		if err != nil {
			return err
		}
		at, err := st.Attempts(ctx, "", id)
		if err != nil {
			return err
		}
		if len(at) == 0 {
			return fmt.Errorf("job %d never started", k+1)
		}
		handed := at[0].Started
		if j.DateEnqueued != nil && len(at) == 1 && j.DateEnqueued.Before(handed) {
			handed = *j.DateEnqueued
		}
		if k > 0 && (prev.State != abi.StateDone || handed.Before(*prev.DateDone)) {
			done := "is " + string(prev.State)
			if prev.DateDone != nil {
				done = "was done at " + prev.DateDone.Format("15:04:05.000000")
			}
			return fmt.Errorf("job %d was handed over at %s, and job %d %s; job %d's attempts: %s",
				k+1, handed.Format("15:04:05.000000"), k, done, k, describe(ctx, st, prev.UUID))
		}
		if k == 0 && len(at) != 2 && j.State == abi.StateDone {
			return fmt.Errorf("job 1 ran %d times, want 2 (one retry)", len(at))
		}
		prev = j
	}
	return nil
}

func describe(ctx context.Context, st store.Store, id string) string {
	at, err := st.Attempts(ctx, "", id)
	if err != nil {
		return err.Error()
	}
	s := ""
	for _, a := range at {
		s += fmt.Sprintf("[%d %s started %s", a.Attempt, cmp.Or(a.Outcome, "running"), a.Started.Format("15:04:05.000000"))
		if a.Ended != nil {
			s += " ended " + a.Ended.Format("15:04:05.000000")
		}
		s += "]"
	}
	return s
}

// newJob is a testkit script job for a goroutine of its own (add calls
// t.Fatal).
func newJob(channel, steps string, retries int) store.NewJob {
	return store.NewJob{UUID: uuid.NewString(), Tenant: "default", Func: "testkit.script", Args: json.RawMessage(steps),
		Kwargs: json.RawMessage(`{}`), Context: json.RawMessage(`{}`), Channel: "root." + channel,
		Priority: 10, MaxRetries: retries}
}
