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

// coalescer gathers concurrent InsertUnder calls into InsertEach groups
// (classic group commit). A caller that finds no group being written
// writes its own request at once, in its own goroutine: an idle node
// adds no hand-over to a lone request. Otherwise its request joins the
// group being gathered, which is written when a flusher frees up, when
// it is full, or when its first request has waited the window.
type coalescer struct {
	st  store.Store
	cfg Coalesce

	mu       sync.Mutex
	groups   [][]*waiting // gathering, oldest first; only the last one grows
	jobs     int          // jobs in the last group
	since    time.Time    // when the oldest group's first request came
	inflight int          // groups being written
	timer    *time.Timer  // the window of the oldest group, when armed
	closed   bool
	flushing sync.WaitGroup
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
	return &coalescer{st: st, cfg: cfg, gathered: gathered}
}

// insert is InsertUnder through a group: it returns once the request's
// jobs are committed, or with the request's own error.
func (c *coalescer) insert(ctx context.Context, q store.Quota, jobs []store.NewJob) ([]store.Inserted, error) {
	w := &waiting{ctx: ctx, req: store.InsertRequest{Quota: q, Jobs: jobs}, out: make(chan store.InsertResult, 1)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errNotHandedOver
	}
	if len(c.groups) == 0 || c.jobs >= c.cfg.MaxJobs {
		if len(c.groups) == 0 {
			c.since = time.Now()
		}
		c.groups, c.jobs = append(c.groups, nil), 0
	}
	last := len(c.groups) - 1
	c.groups[last], c.jobs = append(c.groups[last], w), c.jobs+len(jobs)
	if c.gathered != nil {
		c.gathered(len(c.groups[last]))
	}
	if g := c.ready(); g != nil {
		c.mu.Unlock()
		c.flush(g) // in the caller's goroutine: nothing to hand over
	} else {
		c.mu.Unlock()
	}
	// Once gathered the request is answered whatever happens (a flush
	// always answers its group, and close writes what is gathered), so
	// waiting cannot hang; a caller that gives up early does not learn
	// whether its jobs were stored, as with any request cut short.
	select {
	case r := <-w.out:
		return r.Jobs, r.Err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// ready takes the oldest group if it is to be written now: a flusher is
// free and nothing is being written, or the group is full, or its first
// request has waited the window (c.mu held). Otherwise it arms the
// window's timer.
func (c *coalescer) ready() []*waiting {
	if len(c.groups) == 0 || c.inflight >= c.cfg.Flushers {
		return nil
	}
	full := len(c.groups) > 1 || c.jobs >= c.cfg.MaxJobs
	if c.inflight > 0 && !full && time.Since(c.since) < c.cfg.Window.D() {
		if c.timer == nil {
			c.timer = time.AfterFunc(c.cfg.Window.D()-time.Since(c.since), c.windowEnded)
		}
		return nil
	}
	g := c.groups[0]
	c.groups = c.groups[1:]
	if len(c.groups) == 0 {
		c.jobs = 0
	} else {
		c.since = time.Now() // the next group starts waiting now
	}
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	c.inflight++
	c.flushing.Add(1)
	return g
}

func (c *coalescer) windowEnded() {
	c.mu.Lock()
	c.timer = nil
	g := c.ready()
	c.mu.Unlock()
	if g != nil {
		go c.flush(g)
	}
}

// close writes the groups gathered and waits for every write under way.
func (c *coalescer) close() {
	c.mu.Lock()
	c.closed = true
	groups := c.groups
	c.groups, c.jobs = nil, 0
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	c.flushing.Add(len(groups))
	c.inflight += len(groups)
	c.mu.Unlock()
	for _, g := range groups {
		c.flush(g)
	}
	c.flushing.Wait()
}

// flush writes one group and answers each of its requests, then hands
// the next group, if one is due, to a goroutine of its own.
func (c *coalescer) flush(group []*waiting) {
	c.write(group)
	c.mu.Lock()
	c.inflight--
	next := c.ready()
	c.mu.Unlock()
	c.flushing.Done()
	if next != nil {
		go c.flush(next)
	}
}

func (c *coalescer) write(group []*waiting) {
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
