package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// One group commit (InsertEach) answers each request alone: a request
// refused for its input, its uuid, its identity key's dependency, its
// parent or its tenant's quota gets its own error and stores nothing; the
// others are stored, with their events and counts, as if each had been
// inserted by itself in turn.
func groupCommitRefusesEachRequestAlone(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := must(s.Subscribe(ctx))
	time.Sleep(50 * time.Millisecond) // let a LISTEN settle
	existing := nj("t")
	insert(t, s, existing)

	one := func(j store.NewJob) store.InsertRequest { return store.InsertRequest{Jobs: []store.NewJob{j}} }
	good, good2 := nj("t"), nj("t")
	taken := nj("t")
	taken.UUID = existing.UUID // a uuid in use: ErrConflict
	nul := nj("t")
	nul.Func = "bad\x00func" // refused before any SQL
	keyed, sameKey := nj("t"), nj("t")
	keyed.IdentityKey, sameKey.IdentityKey = "k", "k"
	orphan := nj("t")
	orphan.DependsOn = []string{"00000000-0000-4000-8000-000000000000"}
	child := nj("t")
	child.DependsOn = []string{existing.UUID}
	q := store.Quota{MaxPending: 2}
	quota := func() store.InsertRequest {
		j := nj("q")
		return store.InsertRequest{Quota: q, Jobs: []store.NewJob{j}}
	}
	twoJobs := store.InsertRequest{Jobs: []store.NewJob{nj("t"), nj("t")}}
	halfBad := store.InsertRequest{Jobs: []store.NewJob{nj("t"), orphan}}
	halfBad.Jobs[1].UUID = "11111111-1111-4111-8111-111111111111"

	reqs := []store.InsertRequest{one(good), one(taken), one(nul), one(keyed), one(sameKey), one(orphan),
		quota(), quota(), quota(), one(child), twoJobs, halfBad, one(good2)}
	res, err := s.InsertEach(ctx, reqs)
	if err != nil {
		t.Fatalf("InsertEach: %v", err)
	}
	if len(res) != len(reqs) {
		t.Fatalf("%d results for %d requests", len(res), len(reqs))
	}
	var qe *store.QuotaError
	wantErr := map[int]func(error) bool{
		1:  func(err error) bool { return errors.Is(err, abi.ErrConflict) },
		2:  func(err error) bool { return errors.Is(err, abi.ErrInvalid) },
		5:  func(err error) bool { return errors.Is(err, abi.ErrInvalid) },
		8:  func(err error) bool { return errors.As(err, &qe) && qe.Field == "max_pending" },
		11: func(err error) bool { return errors.Is(err, abi.ErrInvalid) },
	}
	stored := map[string]bool{}
	for i, r := range res {
		if ok, refused := wantErr[i]; refused {
			if r.Err == nil || !ok(r.Err) || r.Jobs != nil {
				t.Errorf("request %d: %+v, want its own refusal", i, r)
			}
			continue
		}
		if r.Err != nil || len(r.Jobs) != len(reqs[i].Jobs) {
			t.Errorf("request %d: %+v, want its jobs stored", i, r)
			continue
		}
		for k, ins := range r.Jobs {
			if i == 4 {
				if !ins.Deduplicated || ins.Job.UUID != keyed.UUID {
					t.Errorf("same identity key: %+v, want the keyed job of the same group", ins)
				}
				continue
			}
			if ins.Job.UUID != reqs[i].Jobs[k].UUID || ins.Deduplicated || ins.Job.Seq == 0 {
				t.Errorf("request %d job %d: %+v", i, k, ins)
			}
			stored[ins.Job.UUID] = true
		}
	}
	if got := must(s.Get(ctx, "t", child.UUID)); got.State != abi.StateWaitDependencies || len(got.DependsOn) != 1 {
		t.Errorf("a child of a pending job: %s %v, want wait_dependencies on it", got.State, got.DependsOn)
	}
	for _, id := range []string{nul.UUID, sameKey.UUID, orphan.UUID, halfBad.Jobs[0].UUID, halfBad.Jobs[1].UUID} {
		if _, err := s.Get(ctx, "", id); !errors.Is(err, abi.ErrNotFound) {
			t.Errorf("refused job %s: %v, want not stored", id, err)
		}
	}
	if got := must(s.Get(ctx, "t", existing.UUID)); got.Func != existing.Func || got.Tenant != "t" {
		t.Errorf("the job whose uuid was reused changed: %+v", got)
	}
	if n := len(must(s.List(ctx, store.Filter{Tenant: "q", Limit: 100})).Jobs); n != 2 {
		t.Errorf("%d jobs of the tenant under max_pending 2, want 2", n)
	}
	// Events name what was stored as pending, and nothing refused.
	named := map[string]bool{}
	for deadline := time.After(5 * time.Second); ; {
		missing := 0
		for id := range stored {
			if !named[id] && id != child.UUID {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		select {
		case e := <-ch:
			if e.Kind == store.EventPending {
				for _, id := range e.UUIDs {
					named[id] = true
				}
			}
		case <-deadline:
			t.Fatalf("pending events named %v, want every stored pending job of %v", named, stored)
		}
	}
	for _, id := range []string{nul.UUID, orphan.UUID, halfBad.Jobs[0].UUID, child.UUID} {
		if named[id] {
			t.Errorf("a pending event names %s, which is not a stored pending job", id)
		}
	}
}

// A uuid taken in the one insert of the simple requests fails that
// request alone: the group is written again request by request.
func groupCommitBulkConflictFailsAlone(t *testing.T, s store.Store) {
	ctx := context.Background()
	existing := nj("t")
	insert(t, s, existing)
	a, b, dup := nj("t"), nj("t"), nj("t")
	dup.UUID = existing.UUID
	twice := nj("t") // the same uuid in two requests of one group
	res := must(s.InsertEach(ctx, []store.InsertRequest{{Jobs: []store.NewJob{a}}, {Jobs: []store.NewJob{dup}},
		{Jobs: []store.NewJob{b}}, {Jobs: []store.NewJob{twice}}, {Jobs: []store.NewJob{twice}}}))
	if res[0].Err != nil || res[2].Err != nil || res[3].Err != nil {
		t.Fatalf("good requests refused: %+v", res)
	}
	if !errors.Is(res[1].Err, abi.ErrConflict) || !errors.Is(res[4].Err, abi.ErrConflict) {
		t.Fatalf("taken uuids: %v and %v, want ErrConflict each", res[1].Err, res[4].Err)
	}
	for _, j := range []store.NewJob{a, b, twice} {
		if got := must(s.Get(ctx, "t", j.UUID)); got.State != abi.StatePending {
			t.Fatalf("%s: %s", j.UUID, got.State)
		}
	}
}

// Groups committing at once from many callers keep a quota exact: never
// more jobs than max_pending, and every refusal is a QuotaError.
func groupCommitQuotasStayExact(t *testing.T, s store.Store) {
	ctx := context.Background()
	q := store.Quota{MaxPending: 17, MaxChannels: 1}
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var reqs []store.InsertRequest
			for k := 0; k < 5; k++ {
				j := nj("exact")
				if k == 4 {
					j.Channel = "root.other" // past max_channels
				}
				reqs = append(reqs, store.InsertRequest{Quota: q, Jobs: []store.NewJob{j}})
			}
			res, err := s.InsertEach(ctx, reqs)
			if err != nil {
				t.Error(err)
				return
			}
			for i, r := range res {
				var qe *store.QuotaError
				switch {
				case r.Err == nil && i == 4:
					t.Error("a job in a second channel passed max_channels 1")
				case r.Err == nil:
					mu.Lock()
					accepted++
					mu.Unlock()
				case !errors.As(r.Err, &qe):
					t.Errorf("request %d: %v, want a QuotaError", i, r.Err)
				}
			}
		}()
	}
	wg.Wait()
	n := len(must(s.List(ctx, store.Filter{Tenant: "exact", Limit: 100})).Jobs)
	if n != 17 || accepted != 17 {
		t.Fatalf("%d jobs stored, %d acknowledged, want exactly max_pending 17", n, accepted)
	}
}

// Requests holding several identity keys in opposite orders, committing
// at once again and again (in groups and alone), never wait on each
// other: every request is answered, the first stored and the others
// deduplicated onto it.
func groupCommitKeysNeverDeadlock(t *testing.T, s store.Store) {
	ctx := context.Background()
	keyed := func(keys ...string) store.InsertRequest {
		var jobs []store.NewJob
		for _, k := range keys {
			j := nj("t")
			j.IdentityKey = k
			jobs = append(jobs, j)
		}
		return store.InsertRequest{Jobs: jobs}
	}
	for round := range 8 {
		atOnce(t, round, 4, func(g int) error {
			if g == 3 { // and the same through InsertUnder
				_, err := s.InsertUnder(ctx, store.Quota{}, keyed(fmt.Sprintf("b%d", round), fmt.Sprintf("a%d", round)).Jobs)
				return err
			}
			a, b := fmt.Sprintf("a%d", round), fmt.Sprintf("b%d", round)
			if g%2 == 1 {
				a, b = b, a
			}
			res, err := s.InsertEach(ctx, []store.InsertRequest{keyed(a, b)})
			if err == nil {
				for _, r := range res {
					err = errors.Join(err, r.Err)
				}
			}
			return err
		})
	}
}

// atOnce runs fn for goroutines 0 to n-1 at once and fails the test with
// the first error of the round.
func atOnce(t *testing.T, round, n int, fn func(g int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- fn(g)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
}

// A group of plain requests (no key, no parent, no quota) is one insert
// with its commit: every job comes back as stored (its seq, its date),
// the tenant's counts hold them all, and the events name every one, past
// the size of one notification.
func aPlainGroupIsCountedAndAnnouncedWhole(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := must(s.Subscribe(ctx))
	time.Sleep(50 * time.Millisecond) // let a LISTEN settle
	var reqs []store.InsertRequest
	want := map[string]bool{}
	for i := 0; i < 200; i++ {
		r := store.InsertRequest{Jobs: []store.NewJob{nj("plain")}}
		if i%2 == 0 {
			r.Jobs = append(r.Jobs, nj("plain"))
		}
		for _, j := range r.Jobs {
			want[j.UUID] = true
		}
		reqs = append(reqs, r)
	}
	before := time.Now().Add(-time.Second)
	res := must(s.InsertEach(ctx, reqs))
	seqs := map[int64]bool{}
	for i, r := range res {
		if r.Err != nil || len(r.Jobs) != len(reqs[i].Jobs) {
			t.Fatalf("request %d: %d jobs, %v", i, len(r.Jobs), r.Err)
		}
		for k, got := range r.Jobs {
			stored := must(s.Get(ctx, "plain", got.Job.UUID))
			if got.Job.UUID != reqs[i].Jobs[k].UUID || got.Job.Seq == 0 || seqs[got.Job.Seq] ||
				got.Job.Seq != stored.Seq || !got.Job.DateCreated.Equal(stored.DateCreated) || stored.DateCreated.Before(before) ||
				stored.State != abi.StatePending {
				t.Fatalf("request %d job %d answered %+v, stored %+v", i, k, got.Job, stored)
			}
			seqs[got.Job.Seq] = true
		}
	}
	counts := must(s.Counts(ctx, "plain"))
	if len(counts) != 1 || counts[0].Channel != "root" || counts[0].Counts[abi.StatePending] != len(want) {
		t.Fatalf("counts %+v, want %d pending on root", counts, len(want))
	}
	untilNamed(t, ch, store.EventPending, want, "jobs of the group")
}

// An EventPending that brings its jobs' candidates (a store may, for a
// small plain insert) brings what Pending reads of them, field for field:
// a scheduler starts them on the event's word. A large insert's event
// names its jobs still.
func announcedJobsAreWhatPendingReads(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := must(s.Subscribe(ctx))
	time.Sleep(50 * time.Millisecond) // let a LISTEN settle
	later, expected := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond), time.Now().Add(time.Minute).UTC().Truncate(time.Microsecond)
	a, b, c := nj("ann"), nj("ann"), nj("ann")
	b.ETA, b.Priority, b.Channel = &later, 3, "root.mail"
	c.ExpectedAt = &expected
	insert(t, s, a, b, c)
	var many []store.NewJob
	for i := 0; i < 100; i++ {
		many = append(many, nj("ann"))
	}
	insert(t, s, many...)
	want := map[string]store.Candidate{}
	for _, cand := range must(s.Pending(ctx, []string{a.UUID, b.UUID, c.UUID})) {
		want[cand.UUID] = cand
	}
	named := map[string]bool{}
	for deadline := time.After(5 * time.Second); len(named) < 103; {
		select {
		case e := <-ch:
			if e.Kind != store.EventPending {
				continue
			}
			for _, id := range e.UUIDs {
				named[id] = true
			}
			if len(e.Jobs) > 0 && len(e.Jobs) != len(e.UUIDs) {
				t.Fatalf("an event names %d jobs and brings %d", len(e.UUIDs), len(e.Jobs))
			}
			for _, got := range e.Jobs {
				w, ok := want[got.UUID]
				if !ok {
					t.Fatalf("event brought %+v, not one of the small insert's", got)
				}
				if got.Tenant != w.Tenant || got.Channel != w.Channel || got.Priority != w.Priority || got.Seq != w.Seq ||
					got.Version != w.Version || !got.DateCreated.Equal(w.DateCreated) || !sameTime(got.ETA, w.ETA) ||
					!sameTime(got.ExpectedAt, w.ExpectedAt) {
					t.Fatalf("event brought %+v, Pending reads %+v", got, w)
				}
			}
		case <-deadline:
			t.Fatalf("events named %d of the 103 jobs", len(named))
		}
	}
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// Manual actions over the same jobs in opposite orders, at once (two
// admins' bulk requeues, a bulk cancel beside a runner's writes), never
// fail: a transaction the database ends to break a deadlock is run
// again, and each action reaches every job.
func actionsInOppositeOrdersNeverFail(t *testing.T, s store.Store) {
	ctx := context.Background()
	var jobs []store.NewJob
	for range 200 {
		jobs = append(jobs, nj("t"))
	}
	if _, err := s.Insert(ctx, jobs); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.UUID
	}
	reversed := slices.Clone(ids)
	slices.Reverse(reversed)
	for round := range 10 {
		atOnce(t, round, 4, func(g int) error {
			order := ids
			if g%2 == 1 {
				order = reversed
			}
			moved, err := s.Act(ctx, "t", abi.CauseRequeue, order)
			if err == nil && len(moved) != len(order) {
				err = fmt.Errorf("requeued %d of %d pending jobs", len(moved), len(order))
			}
			return err
		})
	}
}
