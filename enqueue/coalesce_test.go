package enqueue

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// groups is a store that records the size of each InsertEach group and
// can hold the first one until released.
type groups struct {
	store.Store
	mu      sync.Mutex
	sizes   []int
	tenants [][]string    // each group's requests' tenants
	began   []time.Time   // when each group's write began
	hold    chan struct{} // the first group waits for it to close, when set
	holding chan struct{} // closed when the first group is held
	slow    time.Duration // every write takes this long more, when set
}

func (g *groups) InsertEach(ctx context.Context, reqs []store.InsertRequest) ([]store.InsertResult, error) {
	g.mu.Lock()
	g.sizes = append(g.sizes, len(reqs))
	var who []string
	for _, r := range reqs {
		who = append(who, r.Jobs[0].Tenant)
	}
	g.tenants = append(g.tenants, who)
	g.began = append(g.began, time.Now())
	first := len(g.sizes) == 1
	g.mu.Unlock()
	if first && g.hold != nil {
		close(g.holding)
		<-g.hold
	}
	time.Sleep(g.slow)
	return g.Store.InsertEach(ctx, reqs)
}

func (g *groups) lastBegan() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.began[len(g.began)-1]
}

func (g *groups) seen() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]int(nil), g.sizes...)
}

func eachStore(t *testing.T, fn func(t *testing.T, st store.Store)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, sqliteStore(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, postgresStore(t)) })
}

// A lone request on an idle node is written at once, not after the
// window: coalescing costs an idle client nothing.
func TestALoneRequestIsWrittenAtOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, st store.Store) {
		g := &groups{Store: st}
		s := &Service{Store: g, Funcs: funcs{}, Coalesce: Coalesce{Window: abi.Duration(30 * time.Second), Flushers: 2}}
		defer s.Close()
		for i := range 3 {
			began := time.Now()
			ins, err := s.Create(t.Context(), "acme", Request{Func: "m.f"})
			if err != nil {
				t.Fatal(err)
			}
			if took := time.Since(began); took > 5*time.Second {
				t.Fatalf("request %d took %v: a lone request waited for the 30s window", i, took)
			}
			if _, err := st.Get(t.Context(), "acme", ins[0].Job.UUID); err != nil {
				t.Fatalf("acknowledged job not in the store: %v", err)
			}
		}
		if got := g.seen(); len(got) != 3 {
			t.Fatalf("groups %v, want one per lone request", got)
		}
	})
}

// Requests arriving while a group is being written gather into the next
// one; each is answered with its own outcome: a job depending on an
// unknown job, and one past its tenant's quota, are refused alone and
// the others are stored.
func TestConcurrentRequestsShareAGroupEachWithItsOwnAnswer(t *testing.T) {
	eachStore(t, func(t *testing.T, st store.Store) {
		const n = 20
		g := &groups{Store: st, hold: make(chan struct{}), holding: make(chan struct{})}
		s := &Service{Store: g, Funcs: funcs{}, Limits: map[string]Limits{"small": {MaxPending: 1}}}
		full := make(chan struct{})
		s.coOnce.Do(func() {
			s.co = newCoalescer(g, Coalesce{Window: abi.Duration(time.Minute), Flushers: 1}, func(size int) {
				if size == n {
					close(full)
				}
			})
		})
		defer s.Close()
		ctx := t.Context()
		// The first request's group is held in the store: the next n
		// gather behind it.
		first := make(chan error, 1)
		go func() { _, err := s.Create(ctx, "acme", Request{Func: "m.f"}); first <- err }()
		<-g.holding
		type answer struct {
			i   int
			ins []store.Inserted
			err error
		}
		answers := make(chan answer, n)
		for i := range n {
			r, tenant := Request{Func: "m.f"}, "acme"
			switch i {
			case 3:
				r.DependsOn = []string{"00000000-0000-4000-8000-000000000000"}
			case 7, 8:
				tenant = "small" // max_pending 1: the second one is refused
			}
			go func() { ins, err := s.Create(ctx, tenant, r); answers <- answer{i, ins, err} }()
		}
		<-full
		close(g.hold)
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		quotaRefused := 0
		for range n {
			a := <-answers
			var fe *abi.FieldError
			var qe *QuotaError
			switch {
			case a.i == 3:
				if !errors.As(a.err, &fe) || fe.Field != "depends_on" || !errors.Is(a.err, abi.ErrInvalid) {
					t.Errorf("unknown parent: %v, want its own depends_on error", a.err)
				}
			case errors.As(a.err, &qe):
				if a.i != 7 && a.i != 8 {
					t.Errorf("request %d refused by a quota it is not under: %v", a.i, a.err)
				}
				quotaRefused++
			case a.err != nil:
				t.Errorf("request %d: %v", a.i, a.err)
			default:
				if _, err := st.Get(ctx, "", a.ins[0].Job.UUID); err != nil {
					t.Errorf("request %d acknowledged, not stored: %v", a.i, err)
				}
			}
		}
		if quotaRefused != 1 {
			t.Errorf("%d requests refused under max_pending 1, want 1", quotaRefused)
		}
		if got := g.seen(); len(got) != 2 || got[1] != n {
			t.Fatalf("groups %v, want the held one then all %d together", got, n)
		}
	})
}

// A request whose caller gave up before its group was written is not
// written; Close answers the requests still gathering.
func TestAGoneCallerIsNotWrittenAndCloseAnswersEveryone(t *testing.T) {
	st := sqliteStore(t)
	g := &groups{Store: st, hold: make(chan struct{}), holding: make(chan struct{})}
	s := &Service{Store: g, Funcs: funcs{}}
	gathered := make(chan int, 2)
	s.coOnce.Do(func() {
		s.co = newCoalescer(g, Coalesce{Window: abi.Duration(time.Minute), Flushers: 1}, func(size int) { gathered <- size })
	})
	first := make(chan error, 1)
	go func() { _, err := s.Create(t.Context(), "acme", Request{Func: "m.f"}); first <- err }()
	<-gathered // the first request's group
	<-g.holding
	ctx, cancel := context.WithCancel(t.Context())
	gone := make(chan error, 1)
	go func() { _, err := s.Create(ctx, "acme", Request{Func: "m.f"}); gone <- err }()
	<-gathered // the second request, gathering behind the held group
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Fatalf("gone caller: %v", err)
	}
	close(g.hold)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	s.Close()
	if n := len(must(st.List(t.Context(), store.Filter{Tenant: "acme"})).Jobs); n != 1 {
		t.Fatalf("%d jobs stored, want only the first (the second caller left before its group)", n)
	}
	// After Close, requests are still stored, one by one.
	if _, err := s.Create(t.Context(), "acme", Request{Func: "m.f"}); err != nil {
		t.Fatalf("after Close: %v", err)
	}
}

// A tenant whose batches fill the queue does not stand in front of
// another tenant's next job: the queue is in fair order between tenants,
// each tenant's requests in their own order. In arrival order, acme's
// job was written after all five of flood's batches.
func TestATenantsBatchesDoNotQueueAheadOfAnothersJob(t *testing.T) {
	st := sqliteStore(t)
	g := &groups{Store: st, hold: make(chan struct{}), holding: make(chan struct{})}
	s := &Service{Store: g, Funcs: funcs{}}
	gathered := make(chan int, 10)
	s.coOnce.Do(func() {
		s.co = newCoalescer(g, Coalesce{Window: abi.Duration(time.Minute), Flushers: 1, MaxJobs: 10}, func(size int) { gathered <- size })
	})
	defer s.Close()
	ctx := t.Context()
	answered := make(chan error, 7)
	go func() { _, err := s.Create(ctx, "acme", Request{Func: "m.f"}); answered <- err }()
	<-gathered
	<-g.holding // acme's first job is being written: the rest queue
	batch := BatchRequest{Jobs: make([]Request, 10)}
	for i := range batch.Jobs {
		batch.Jobs[i] = Request{Func: "m.f"}
	}
	for range 5 {
		go func() { _, err := s.CreateBatch(ctx, "flood", batch); answered <- err }()
		<-gathered // one after the other
	}
	go func() { _, err := s.Create(ctx, "acme", Request{Func: "m.f"}); answered <- err }()
	<-gathered
	close(g.hold)
	for range 7 {
		if err := <-answered; err != nil {
			t.Fatal(err)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	t.Logf("groups, by tenant: %v", g.tenants)
	floods := 0 // flood's batches written before acme's second job
	for _, who := range g.tenants[1:] {
		if slices.Contains(who, "acme") {
			break
		}
		floods += len(who)
	}
	if floods > 1 {
		t.Fatalf("%d of flood's batches were written before acme's job (groups %v), want at most the one queued first", floods, g.tenants)
	}
	if n := len(must(st.List(ctx, store.Filter{Tenant: "flood", Limit: 100})).Jobs); n != 50 {
		t.Fatalf("%d of flood's jobs stored, want 50", n)
	}
}

// workers are n application workers, each sending rounds jobs one after
// the other (a closed loop, as an application's workers enqueue).
func workers(t *testing.T, s *Service, n, rounds int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n*rounds)
	for range n {
		wg.Go(func() {
			for range rounds {
				if _, err := s.Create(t.Context(), "acme", Request{Func: "m.f"}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// When a write ends, the requests it answered come back with their next
// jobs: the hold waits for them, so that the workers' jobs are written
// together rather than in two groups taking turns. Without the hold, six
// workers make a group of one and a group of five, turn about.
func TestTheHoldWritesTheWorkersOfAWriteTogetherAgain(t *testing.T) {
	const n, rounds = 6, 8
	for _, hold := range []bool{true, false} {
		g := &groups{Store: sqliteStore(t), slow: 40 * time.Millisecond}
		s := &Service{Store: g, Funcs: funcs{}, Coalesce: Coalesce{Window: abi.Duration(time.Second), Flushers: 1, Hold: &hold}}
		workers(t, s, n, rounds)
		s.Close()
		sizes := g.seen()
		whole := 0
		for _, size := range sizes {
			if size == n {
				whole++
			}
		}
		switch {
		case hold && (len(sizes) > rounds+2 || whole < rounds-2):
			t.Errorf("with the hold: groups %v, want nearly all of the %d workers together", sizes, n)
		case !hold && len(sizes) < 2*rounds-2:
			t.Errorf("without the hold: groups %v, want the workers split in two groups taking turns", sizes)
		}
	}
}

// The hold lasts at most half the write that ended (never the window):
// a request that gathered behind a write whose own request does not come
// back goes after that half.
func TestTheHoldEndsAfterHalfTheWrite(t *testing.T) {
	hold := true
	g := &groups{Store: sqliteStore(t), slow: 200 * time.Millisecond}
	s := &Service{Store: g, Funcs: funcs{}, Coalesce: Coalesce{Window: abi.Duration(time.Second), Flushers: 1, Hold: &hold}}
	defer s.Close()
	first := make(chan error, 1)
	go func() { _, err := s.Create(t.Context(), "acme", Request{Func: "m.f"}); first <- err }()
	for len(g.seen()) == 0 {
		time.Sleep(time.Millisecond)
	}
	began := time.Now()
	if _, err := s.Create(t.Context(), "acme", Request{Func: "m.f"}); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	// The first write's 200 ms, a hold of up to 100 ms for the first
	// request's worker (who sends nothing more), then this write's 200
	// ms; a hold until the 1 s window would make it 1.4 s.
	if took := time.Since(began); took > 900*time.Millisecond {
		t.Fatalf("the request behind a write took %v: the hold outlasted half the write", took)
	}
	if got := g.seen(); len(got) != 2 {
		t.Fatalf("groups %v, want the two requests written one after the other", got)
	}
	// Once the hold is over, the node is idle again: a request is
	// written at once.
	time.Sleep(300 * time.Millisecond)
	began = time.Now()
	if _, err := s.Create(t.Context(), "acme", Request{Func: "m.f"}); err != nil {
		t.Fatal(err)
	}
	if waited := g.lastBegan().Sub(began); waited > 50*time.Millisecond {
		t.Fatalf("a lone request after the hold waited %v before its write", waited)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
