package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// Writers that meet on the same rows in other orders — a database breaks
// that with a deadlock — each get the answer their request deserves, not
// the database's: these cases hold every writer a client can set going.

// Two batches at once naming the same new uuids in opposite orders (a
// client sending a batch again while the first is on its way, say) are
// stored once: the other is told its uuid is taken (abi.ErrConflict),
// whatever the database broke in between. Every other round, one of them
// goes through a group commit, one request a job.
func takenUUIDsAreAConflictInAnyOrder(t *testing.T, s store.Store) {
	ctx := context.Background()
	for round := range 10 {
		jobs := make([]store.NewJob, 100)
		for i := range jobs {
			jobs[i] = nj("t")
		}
		reversed := slices.Clone(jobs)
		slices.Reverse(reversed)
		stored := make([]bool, 2)
		atOnce(t, round, 2, func(g int) error {
			var err error
			if g == 0 {
				_, err = s.Insert(ctx, jobs)
			} else if round%2 == 0 {
				_, err = s.Insert(ctx, reversed)
			} else {
				reqs := make([]store.InsertRequest, len(reversed))
				for i, j := range reversed {
					reqs[i] = store.InsertRequest{Jobs: []store.NewJob{j}}
				}
				var res []store.InsertResult
				if res, err = s.InsertEach(ctx, reqs); err == nil {
					err = oneOutcome(res)
				}
			}
			if err == nil {
				stored[g] = true
				return nil
			}
			if errors.Is(err, abi.ErrConflict) {
				return nil
			}
			return fmt.Errorf("writer %d: %w", g, err)
		})
		if n := countTrue(stored); n > 1 {
			t.Fatalf("round %d: %d writers stored the same uuids", round, n)
		}
	}
}

// oneOutcome is nil if every request of a group was stored, the first
// refusal if none was; a group with both stored part of the uuids, which
// is fine for a group (each request stands alone) but then the others
// must have been refused as taken.
func oneOutcome(res []store.InsertResult) error {
	for _, r := range res {
		if r.Err != nil && !errors.Is(r.Err, abi.ErrConflict) {
			return r.Err
		}
	}
	for _, r := range res {
		if r.Err != nil {
			return r.Err
		}
	}
	return nil
}

func countTrue(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// A job stored with parents while they end — by their attempts' outcome,
// or by an operator's done or cancel — is settled as if one had come
// after the other: it never waits for parents that are all done, nor for
// a cancelled one.
func aChildStoredAsItsParentsEndIsSettled(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, cause := range []abi.Cause{abi.CauseDone, abi.CauseSetDone, abi.CauseCancel} {
		for round := range 6 {
			parents := make([]store.NewJob, 20)
			ids := make([]string, len(parents))
			for i := range parents {
				parents[i] = nj("t")
				ids[i] = parents[i].UUID
			}
			if _, err := s.Insert(ctx, parents); err != nil {
				t.Fatal(err)
			}
			var started []store.Claimed
			if cause == abi.CauseDone {
				cands, err := s.Pending(ctx, ids)
				if err != nil {
					t.Fatal(err)
				}
				if started, err = s.Start(ctx, cands, "w", time.Now().Add(time.Minute)); err != nil || len(started) != len(ids) {
					t.Fatalf("started %d of %d: %v", len(started), len(ids), err)
				}
			}
			children := make([]string, 4)
			atOnce(t, round, 5, func(g int) error {
				if g == 4 && cause == abi.CauseDone {
					cs := make([]store.Completion, len(started))
					for i, j := range started {
						cs[i] = store.Completion{UUID: j.UUID, WorkerID: "w", Attempt: j.Attempt, To: abi.StateDone,
							Cause: abi.CauseDone, Result: []byte(`null`), Ended: time.Now()}
					}
					_, err := s.Complete(ctx, cs)
					return err
				}
				if g == 4 {
					_, err := s.Act(ctx, "t", cause, ids)
					return err
				}
				child := nj("t")
				child.DependsOn = ids[g*5:]
				children[g] = child.UUID
				_, err := s.Insert(ctx, []store.NewJob{child})
				return err
			})
			want := abi.StatePending
			if cause == abi.CauseCancel {
				want = abi.StateCancelled
			}
			for _, id := range children {
				if id == "" {
					continue
				}
				j, err := s.Get(ctx, "t", id)
				if err != nil {
					t.Fatal(err)
				}
				if j.State != want {
					t.Fatalf("%s, round %d: a child of parents all %s is %s, want %s", cause, round, cause, j.State, want)
				}
			}
		}
	}
}

// Four writers set going at once on one graph of jobs, each a random mix
// of what a queue's clients do — jobs stored under parents, actions one
// at a time and in bulk, patches, attempts started and ended by the
// runner, leases taken back, finished jobs vacuumed — and
// afterwards the rules hold as if they had come one after another: no
// job waits for parents all done; none waits for parents all finished
// (one cancelled) unless it was requeued since, when it waits for that
// parent to be requeued and done; and the counts are the jobs'
// (countsMatchTheJobs, after every case).
func theRulesHoldWhateverWritersMeet(t *testing.T, s store.Store) {
	ctx := context.Background()
	var mu sync.Mutex
	var known []string
	requeued := map[string]bool{}
	requeue := func(ids ...string) {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range ids {
			requeued[id] = true
		}
	}
	pick := func(r *rand.Rand, n int) []string {
		mu.Lock()
		defer mu.Unlock()
		out := make([]string, 0, n)
		for range n {
			out = append(out, known[r.IntN(len(known))])
		}
		return slices.Compact(slices.Sorted(slices.Values(out)))
	}
	for range 10 {
		j := nj("t")
		must(s.Insert(ctx, []store.NewJob{j}))
		known = append(known, j.UUID)
	}
	causes := []abi.Cause{abi.CauseRequeue, abi.CauseCancel, abi.CauseSetDone}
	randomWriters(t, func(r *rand.Rand, worker string) error {
		switch x := r.IntN(100); {
		case x < 30: // a job under one to three parents
			j := nj("t")
			j.DependsOn = pick(r, 1+r.IntN(3))
			if r.IntN(2) == 0 {
				slices.Reverse(j.DependsOn)
			}
			if _, err := s.Insert(ctx, []store.NewJob{j}); err != nil {
				var fe *abi.FieldError
				if errors.As(err, &fe) && fe.Field == "depends_on" {
					return nil // a parent vacuumed meanwhile
				}
				return fmt.Errorf("insert: %w", err)
			}
			mu.Lock()
			known = append(known, j.UUID)
			mu.Unlock()
		case x < 50: // a bulk action
			cause, ids := causes[r.IntN(len(causes))], pick(r, 1+r.IntN(8))
			if cause == abi.CauseRequeue {
				requeue(ids...)
			}
			if _, err := s.Act(ctx, "t", cause, ids); err != nil {
				return fmt.Errorf("%s in bulk: %w", cause, err)
			}
		case x < 55: // a patch, as PATCH /v1/jobs/{uuid} sends (only before a start)
			prio := r.IntN(20)
			_, err := s.Update(ctx, "t", pick(r, 1)[0], store.Patch{Priority: &prio})
			if err != nil && !errors.Is(err, abi.ErrIllegalTransition) && !errors.Is(err, abi.ErrNotFound) { // not found: vacuumed
				return fmt.Errorf("patch: %w", err)
			}
		case x < 57: // every finished job vacuumed
			if _, err := s.Vacuum(ctx, "root", time.Now().Add(time.Hour)); err != nil {
				return fmt.Errorf("vacuum: %w", err)
			}
		case x < 60: // the leases of every attempt taken back, as after a node died
			if _, err := s.ReapExpired(ctx, time.Now().Add(2*time.Minute), nil); err != nil {
				return fmt.Errorf("reap: %w", err)
			}
		case x < 70: // an action on one job
			id := pick(r, 1)[0]
			var err error
			switch r.IntN(3) {
			case 0:
				requeue(id)
				_, err = s.Requeue(ctx, "t", id)
			case 1:
				_, err = s.Cancel(ctx, "t", id)
			default:
				_, err = s.SetDone(ctx, "t", id, nil)
			}
			if err != nil && !errors.Is(err, abi.ErrIllegalTransition) && !errors.Is(err, abi.ErrNotFound) { // not found: vacuumed
				return fmt.Errorf("action on %s: %w", id, err)
			}
		default: // attempts started and ended, as the runner does
			return runSome(ctx, s, r, worker, pick(r, 1+r.IntN(8)))
		}
		return nil
	})
	jobs := allJobs(t, s)
	states := map[string]abi.State{}
	for _, j := range jobs {
		states[j.UUID] = j.State
	}
	for _, j := range jobs {
		if j.State != abi.StateWaitDependencies {
			continue
		}
		var parents []abi.State
		for _, p := range j.DependsOn {
			st, ok := states[p]
			if !ok {
				st = abi.StateDone // vacuumed: counts as done
			}
			parents = append(parents, st)
		}
		if !slices.ContainsFunc(parents, func(s abi.State) bool { return s != abi.StateDone }) {
			t.Errorf("job %s waits for parents all done", j.UUID)
		}
		if !requeued[j.UUID] && !slices.ContainsFunc(parents, func(s abi.State) bool { return s != abi.StateDone && s != abi.StateCancelled }) {
			t.Errorf("job %s waits for parents all finished: %v", j.UUID, parents)
		}
	}
}

// Four writers store jobs under five identity keys at once — one job a
// request, batches, group commits — while the runner starts and ends
// jobs and an operator cancels some: afterwards no key is held by two
// waiting jobs (wait_dependencies, pending or enqueued), and every job a
// writer was told is the key's holder exists with that key.
func identityKeysHoldWhateverWritersMeet(t *testing.T, s store.Store) {
	ctx := context.Background()
	var mu sync.Mutex
	var known []string
	holders := map[string]string{} // uuid → the key it was answered for
	note := func(ins []store.Inserted, keys []string) {
		mu.Lock()
		defer mu.Unlock()
		for i, in := range ins {
			if !in.Deduplicated {
				known = append(known, in.Job.UUID)
			}
			holders[in.Job.UUID] = keys[i]
		}
	}
	pick := func(r *rand.Rand, n int) []string {
		mu.Lock()
		defer mu.Unlock()
		if len(known) == 0 {
			return nil
		}
		out := make([]string, 0, n)
		for range n {
			out = append(out, known[r.IntN(len(known))])
		}
		return slices.Compact(slices.Sorted(slices.Values(out)))
	}
	keyed := func(r *rand.Rand, n int) ([]store.NewJob, []string) {
		jobs, keys := make([]store.NewJob, n), make([]string, n)
		for i := range jobs {
			jobs[i] = nj("t")
			keys[i] = fmt.Sprintf("k%d", r.IntN(5))
			jobs[i].IdentityKey = keys[i]
		}
		return jobs, keys
	}
	randomWriters(t, func(r *rand.Rand, worker string) error {
		switch x := r.IntN(100); {
		case x < 45: // one job, or a batch, a request
			jobs, keys := keyed(r, 1+r.IntN(3))
			ins, err := s.Insert(ctx, jobs)
			if err != nil {
				return fmt.Errorf("insert: %w", err)
			}
			note(ins, keys)
		case x < 60: // a group commit of single jobs
			jobs, keys := keyed(r, 1+r.IntN(4))
			reqs := make([]store.InsertRequest, len(jobs))
			for i, j := range jobs {
				reqs[i] = store.InsertRequest{Jobs: []store.NewJob{j}}
			}
			res, err := s.InsertEach(ctx, reqs)
			if err != nil {
				return fmt.Errorf("group commit: %w", err)
			}
			for i, rs := range res {
				if rs.Err != nil {
					return fmt.Errorf("group commit, request %d: %w", i, rs.Err)
				}
				note(rs.Jobs, keys[i:i+1])
			}
		case x < 70: // a cancel
			if _, err := s.Act(ctx, "t", abi.CauseCancel, pick(r, 1+r.IntN(3))); err != nil {
				return fmt.Errorf("cancel: %w", err)
			}
		default: // attempts started and ended, done or failed (a retry
			// would bring a job back under a key taken meanwhile,
			// which the rules allow)
			return runSome(ctx, s, r, worker, pick(r, 1+r.IntN(8)))
		}
		return nil
	})
	waiting := map[string][]string{}
	stored := map[string]abi.Job{}
	for _, j := range allJobs(t, s) {
		stored[j.UUID] = j
		switch j.State {
		case abi.StateWaitDependencies, abi.StatePending, abi.StateEnqueued:
			waiting[j.IdentityKey] = append(waiting[j.IdentityKey], j.UUID)
		}
	}
	for key, ids := range waiting {
		if len(ids) > 1 {
			t.Errorf("key %s is held by %d waiting jobs: %v", key, len(ids), ids)
		}
	}
	for id, key := range holders {
		if j, ok := stored[id]; !ok || j.IdentityKey != key {
			t.Errorf("job %s, answered as the holder of key %s, is stored as %+v (found: %v)", id, key, j.IdentityKey, ok)
		}
	}
}

// runSome starts the pending jobs among ids for worker and ends them, as
// the runner does: done, or failed one time in four.
func runSome(ctx context.Context, s store.Store, r *rand.Rand, worker string, ids []string) error {
	cands, err := s.Pending(ctx, ids)
	if err != nil {
		return fmt.Errorf("pending: %w", err)
	}
	started, err := s.Start(ctx, cands, worker, time.Now().Add(time.Minute))
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	cs := make([]store.Completion, len(started))
	for i, j := range started {
		cs[i] = store.Completion{UUID: j.UUID, WorkerID: worker, Attempt: j.Attempt, To: abi.StateDone,
			Cause: abi.CauseDone, Result: []byte(`null`), Ended: time.Now()}
		if r.IntN(4) == 0 {
			cs[i].To, cs[i].Cause, cs[i].ExcName = abi.StateFailed, abi.CauseFail, abi.ExcError
		}
	}
	if _, err := s.Complete(ctx, cs); err != nil {
		return fmt.Errorf("complete: %w", err)
	}
	return nil
}

// allJobs lists every job of the store, page after page.
func allJobs(t *testing.T, s store.Store) []abi.Job {
	t.Helper()
	var jobs []abi.Job
	for f := (store.Filter{Limit: 1000}); ; {
		page := must(s.List(context.Background(), f))
		jobs = append(jobs, page.Jobs...)
		if f.Cursor = page.NextCursor; f.Cursor == "" {
			return jobs
		}
	}
}

// randomWriters runs step 60 times in each of four writers at once, each
// with its own random source drawn from one seed, which a failing test
// logs (the interleaving is the machine's, not the seed's).
func randomWriters(t *testing.T, step func(r *rand.Rand, worker string) error) {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	defer func() {
		if t.Failed() {
			t.Logf("seed %d", seed)
		}
	}()
	atOnce(t, 0, 4, func(g int) error {
		r := rand.New(rand.NewPCG(seed, uint64(g)))
		worker := fmt.Sprintf("w%d", g)
		for i := range 60 {
			if err := step(r, worker); err != nil {
				return fmt.Errorf("writer %s, step %d: %w", worker, i, err)
			}
		}
		return nil
	})
}
