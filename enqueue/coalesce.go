package enqueue

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// Coalesce is the [enqueue] section: how concurrent requests are
// gathered into one store transaction (group commit, docs/architecture.md
// "Coalesced enqueues").
type Coalesce struct {
	// Off stores each request in its own transaction. Defaults to false.
	Off bool `toml:"coalesce_off"`
	// Window is the longest a request waits for others to join its group
	// while a group is being written already; a request arriving when
	// nothing is being written is written at once. Defaults to 2ms
	// (DefaultCoalesceWindow).
	Window abi.Duration `toml:"coalesce_window"`
	// MaxJobs caps the jobs of one group. Defaults to 1000
	// (DefaultCoalesceMaxJobs).
	MaxJobs int `toml:"coalesce_max_jobs"`
	// Flushers is how many groups are written at once. Defaults to 1 on
	// SQLite (one writer) and 2 on PostgreSQL.
	Flushers int `toml:"coalesce_flushers"`
}

// Defaults of [enqueue].
const (
	DefaultCoalesceWindow  = 2 * time.Millisecond
	DefaultCoalesceMaxJobs = 1000
)

// errNotHandedOver: the coalescer was closed before it took the
// request, which the caller may store by itself.
var errNotHandedOver = errors.New("enqueue: the coalescer is closed")

// flushTimeout bounds one group's transaction: the requests in it have
// their own deadlines, but the group outlives any one of them.
const flushTimeout = time.Minute

// coalescer gathers concurrent InsertUnder calls into InsertEach groups.
// One goroutine (run) owns the gathering; flushes run beside it, at most
// Flushers at once.
type coalescer struct {
	st   store.Store
	cfg  Coalesce
	in   chan *waiting
	done chan struct{} // closed by close: run stops
	wg   sync.WaitGroup
	once sync.Once
	// gathered, when set (tests), is told the size of the group being
	// gathered each time a request joins it.
	gathered func(requests int)
}

// waiting is one request in a group, answered on out once its group has
// committed (or failed).
type waiting struct {
	ctx context.Context
	req store.InsertRequest
	out chan store.InsertResult
}

func newCoalescer(st store.Store, cfg Coalesce, gathered func(int)) *coalescer {
	if cfg.Window.D() <= 0 {
		cfg.Window = abi.Duration(DefaultCoalesceWindow)
	}
	if cfg.MaxJobs <= 0 {
		cfg.MaxJobs = DefaultCoalesceMaxJobs
	}
	if cfg.Flushers <= 0 {
		cfg.Flushers = 1
	}
	c := &coalescer{st: st, cfg: cfg, in: make(chan *waiting), done: make(chan struct{}), gathered: gathered}
	c.wg.Add(1)
	go c.run()
	return c
}

// insert is InsertUnder through a group: it returns once the request's
// jobs are committed, or with the request's own error.
func (c *coalescer) insert(ctx context.Context, q store.Quota, jobs []store.NewJob) ([]store.Inserted, error) {
	w := &waiting{ctx: ctx, req: store.InsertRequest{Quota: q, Jobs: jobs}, out: make(chan store.InsertResult, 1)}
	select {
	case c.in <- w:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		return nil, errNotHandedOver
	}
	// Once handed over the request is answered whatever happens (a
	// flush always answers its group), so waiting for it cannot hang;
	// a caller that gives up early does not learn whether its jobs were
	// stored, as with any request cut short.
	select {
	case r := <-w.out:
		return r.Jobs, r.Err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *coalescer) close() {
	c.once.Do(func() { close(c.done) })
	c.wg.Wait()
}

// run gathers requests into a group and hands it to a flusher when one is
// free and either nothing is being written (an idle node writes a lone
// request at once), the group is full, or its first request has waited
// the window.
func (c *coalescer) run() {
	defer c.wg.Done()
	var group []*waiting
	jobs, inflight := 0, 0
	var since time.Time
	finished := make(chan struct{}, c.cfg.Flushers)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := false
	for {
		in := c.in
		if jobs >= c.cfg.MaxJobs {
			in = nil // full: new requests wait in their senders
		}
		select {
		case w := <-in:
			if len(group) == 0 {
				since = time.Now()
			}
			group, jobs = append(group, w), jobs+len(w.req.Jobs)
			if c.gathered != nil {
				c.gathered(len(group))
			}
		case <-finished:
			inflight--
		case <-timer.C:
			armed = false
		case <-c.done:
			// The requests gathered are written before the coalescer
			// stops: their callers are waiting for an answer.
			if len(group) > 0 {
				inflight++
				go c.flush(group, finished)
			}
			for inflight > 0 {
				<-finished
				inflight--
			}
			return
		}
		if len(group) == 0 || inflight >= c.cfg.Flushers {
			continue
		}
		if inflight == 0 || jobs >= c.cfg.MaxJobs || time.Since(since) >= c.cfg.Window.D() {
			inflight++
			go c.flush(group, finished)
			group, jobs = nil, 0
			if armed {
				timer.Stop()
				armed = false
			}
			continue
		}
		if !armed {
			timer.Reset(c.cfg.Window.D() - time.Since(since))
			armed = true
		}
	}
}

// flush writes one group and answers each of its requests.
func (c *coalescer) flush(group []*waiting, finished chan<- struct{}) {
	defer func() { finished <- struct{}{} }()
	live := group[:0]
	for _, w := range group {
		if err := w.ctx.Err(); err != nil {
			w.out <- store.InsertResult{Err: err} // gone before its group was written
			continue
		}
		live = append(live, w)
	}
	if len(live) == 0 {
		return
	}
	reqs := make([]store.InsertRequest, len(live))
	for i, w := range live {
		reqs[i] = w.req
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(live[0].ctx), flushTimeout)
	defer cancel()
	res, err := c.st.InsertEach(ctx, reqs)
	for i, w := range live {
		if err != nil {
			w.out <- store.InsertResult{Err: err}
			continue
		}
		w.out <- res[i]
	}
}
