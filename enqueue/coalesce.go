package enqueue

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"slices"
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
	// Hold, when true, holds the next group back after a write, while
	// nothing is being written, until the requests that write answered
	// have come back or half the write's time has passed (see ready).
	// It pays where a write is mostly its round trip and commit:
	// defaults to true on PostgreSQL and false on SQLite, whose write is
	// shorter than the requests' way back (docs/benchmarks.md).
	Hold *bool `toml:"coalesce_hold"`
}

// holds reports whether the hold after a write is on.
func (c Coalesce) holds() bool { return c.Hold != nil && *c.Hold }

// Defaults of [enqueue].
const (
	DefaultCoalesceWindow  = 2 * time.Millisecond
	DefaultCoalesceMaxJobs = 1000
)

// errNotHandedOver: the coalescer was closed before it took the
// request, which the caller may store by itself.
var errNotHandedOver = errors.New("enqueue: the coalescer is closed")

// coalescer gathers concurrent InsertUnder calls into InsertEach groups
// (classic group commit). A caller that finds no group being written
// writes its own request at once, in its own goroutine: an idle node
// adds no hand-over to a lone request. Otherwise its request waits in
// the queue, from which the next group is taken when a flusher frees up,
// when a group's worth of jobs waits, or when the group's first request
// has waited the window.
//
// The queue is in fair order between tenants (start-time fair queueing,
// by jobs): a request's place is where its tenant's earlier requests
// still waiting end, or where the queue is being taken now if they
// were all taken. A tenant's requests keep their order, and one tenant
// alone is served in arrival order; but a tenant whose batches fill the
// queue no longer stands in front of another's next job. With the queue
// in arrival order, 16 clients sending batches of 1,000 jobs held
// another tenant's single job behind all of them: 0.39–0.56 s an enqueue,
// against 4 ms (docs/reliability.md, "Writes").
type coalescer struct {
	st  store.Store
	cfg Coalesce

	mu       sync.Mutex
	queue    []*waiting       // by (start, seq)
	queued   int              // jobs in queue
	vtime    int64            // the start of the last request taken
	finish   map[string]int64 // each tenant's requests end here, in jobs from the start
	seq      int64            // requests queued so far: arrival order among equal starts
	since    time.Time        // when the next group's first request came
	inflight int              // groups being written
	timer    *time.Timer      // wakes ready at timerAt, when armed
	timerAt  time.Time
	timerGen int // which timer is c.timer: each arming adds one
	// expect and holdUntil come from the last write to end: the requests
	// that took part in its cycle (those it answered and those that
	// gathered meanwhile), and the end of the hold after it. See ready.
	expect    int
	holdUntil time.Time
	closed    bool
	flushing  sync.WaitGroup
	// gathered, when set (tests), is told how many requests wait each
	// time one joins them.
	gathered func(requests int)
}

// waiting is one request in a group, answered on out once its group has
// committed (or failed).
type waiting struct {
	ctx        context.Context
	req        store.InsertRequest
	out        chan store.InsertResult
	start, seq int64 // its place in the queue
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
	return &coalescer{st: st, cfg: cfg, gathered: gathered, finish: map[string]int64{}}
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
	if len(c.queue) == 0 {
		c.since = time.Now()
	}
	c.enqueue(w)
	if c.gathered != nil {
		c.gathered(len(c.queue))
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

// enqueue places w in the queue (c.mu held): after its tenant's requests
// still waiting, and no earlier than the request taken last.
func (c *coalescer) enqueue(w *waiting) {
	tenant := ""
	if len(w.req.Jobs) > 0 {
		tenant = w.req.Jobs[0].Tenant
	}
	w.start, w.seq = max(c.vtime, c.finish[tenant]), c.seq
	c.seq++
	c.finish[tenant] = w.start + int64(len(w.req.Jobs))
	i, _ := slices.BinarySearchFunc(c.queue, w, func(a, b *waiting) int {
		if a.start != b.start {
			return cmp.Compare(a.start, b.start)
		}
		return cmp.Compare(a.seq, b.seq)
	})
	c.queue = slices.Insert(c.queue, i, w)
	c.queued += len(w.req.Jobs)
}

// take removes the next group from the queue (c.mu held): requests in
// queue order until a group's worth of jobs (the last may pass it).
func (c *coalescer) take() []*waiting {
	n, jobs := 0, 0
	for n < len(c.queue) && jobs < c.cfg.MaxJobs {
		jobs += len(c.queue[n].req.Jobs)
		n++
	}
	g := slices.Clone(c.queue[:n])
	c.queue = slices.Delete(c.queue, 0, n)
	c.queued -= jobs
	c.vtime = max(c.vtime, g[n-1].start)
	if len(c.finish) > 64 { // tenants whose requests were all taken start at vtime anyway
		maps.DeleteFunc(c.finish, func(_ string, f int64) bool { return f <= c.vtime })
	}
	return g
}

// holdShare is the longest the next group is held after a write ends,
// as a share of that write's time (and never beyond the window).
// Waiting half a write to write twice the requests wins while a write's
// time is mostly its round trip and its commit, which is what a small
// group's write is (docs/benchmarks.md, "The hold after a write").
const holdShare = 2 // the hold is at most took / holdShare

// ready takes the oldest group if it is to be written now (c.mu held),
// and otherwise arms the timer for when it will be. A group is written
// when a flusher is free and
//   - it is full (coalesce_max_jobs), or
//   - nothing is being written, and either the hold is off, or the last
//     write ended longer ago than its hold (an idle node: a lone request
//     goes at once), or the group holds as many requests as took part in
//     that write's cycle: the requests a write answers usually come back
//     at once (each application worker sends its next job), and writing
//     them with the others, rather than in a group after them, halves
//     the writes, or
//   - its first request has waited the window while another group was
//     being written.
func (c *coalescer) ready() []*waiting {
	if len(c.queue) == 0 || c.inflight >= c.cfg.Flushers {
		return nil
	}
	full := c.queued >= c.cfg.MaxJobs
	if !full {
		now := time.Now()
		var until time.Time
		switch {
		case c.inflight > 0 && now.Sub(c.since) < c.cfg.Window.D():
			until = c.since.Add(c.cfg.Window.D())
		case c.inflight == 0 && c.cfg.holds() && len(c.queue) < c.expect && now.Before(c.holdUntil):
			until = c.holdUntil
		}
		if !until.IsZero() {
			if c.timer == nil || c.timerAt.After(until) {
				if c.timer != nil {
					c.timer.Stop()
				}
				c.timerGen++
				gen := c.timerGen
				c.timer, c.timerAt = time.AfterFunc(until.Sub(now), func() { c.windowEnded(gen) }), until
			}
			return nil
		}
	}
	g := c.take()
	if len(c.queue) > 0 {
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

func (c *coalescer) windowEnded(gen int) {
	c.mu.Lock()
	// A timer replaced by an earlier one may fire all the same (Stop
	// came too late): it must not make ready forget the one armed now.
	if gen == c.timerGen {
		c.timer = nil
	}
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
	var groups [][]*waiting
	for len(c.queue) > 0 {
		groups = append(groups, c.take())
	}
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
	began := time.Now()
	c.write(group)
	took := time.Since(began)
	c.mu.Lock()
	c.inflight--
	c.expect = len(group) + len(c.queue)
	c.holdUntil = time.Now().Add(min(c.cfg.Window.D(), took/holdShare))
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
	// The group outlives any one of its requests: not cancelled with the
	// first one's, and bounded by the store ([store] timeout).
	res, err := c.st.InsertEach(context.WithoutCancel(live[0].ctx), reqs)
	for i, w := range live {
		if err != nil {
			w.out <- store.InsertResult{Err: err}
			continue
		}
		w.out <- res[i]
	}
}
