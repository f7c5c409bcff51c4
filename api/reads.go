package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"
)

// Why reads pass a gate: a read holds one of the store's connections, and
// the database's CPU, for as long as its query runs, and a list filtered
// on a value no job holds (q=…, a function no job runs) walks every job
// of its tenant: seconds, under a few hundred thousand. One tenant's 32
// such reads at once, sent again as each ended, held every connection of
// the node's PostgreSQL pool (8): another tenant's enqueue waited 3.4 s
// for one, and the runner's outcomes as long (docs/reliability.md,
// "Reads"). So a tenant runs at most its max_reads reads at once, the
// node server.max_reads — fewer than the store's connections, which
// leaves the others to writes. More wait their turn, in order, within
// the request's store timeout; a tenant with readsWaitingPerSlot times
// its max_reads waiting is answered 429 at once, so that its reads do
// not hold the node's HTTP connections (server.max_connections) waiting.

// DefaultMaxReads is [server] max_reads when unset: half the eight
// connections a PostgreSQL store opens at least.
const DefaultMaxReads = 4

// DefaultTenantMaxReads is a tenant's max_reads when unset: a page of the
// UI reads up to three things at once, and waits for the third.
const DefaultTenantMaxReads = 2

// readsWaitingPerSlot: reads a tenant may have waiting for each it may run.
const readsWaitingPerSlot = 8

// MaxHeldAnswerBytes bounds the read answers a node holds in memory for
// clients taking them slowly, all tenants together. Past it, an answer is
// sent while its read keeps its turns, as before answers were held: the
// turns then bound the memory, and the slow client holds them up. Eight
// of the largest pages (8 MiB), or thousands of ordinary ones.
const MaxHeldAnswerBytes = 64 << 20

type readGate struct {
	node      *semaphore.Weighted
	nodeMax   int
	perTenant map[string]int // max_reads by tenant; the admin, and a tenant not listed, have the node's

	mu      sync.Mutex
	tenants map[string]*tenantReads // with a read running or waiting

	held *semaphore.Weighted // bytes of the answers being sent without a turn

	// refused counts the reads answered 429 or 503 by tenant and reason
	// (wasmq_api_reads_refused_total); nil counts nothing.
	refused *prometheus.CounterVec
}

type tenantReads struct {
	slots *semaphore.Weighted
	max   int
	in    int // running or waiting
}

func newReadGate(nodeMax int, perTenant map[string]int) *readGate {
	if nodeMax <= 0 {
		nodeMax = DefaultMaxReads
	}
	return &readGate{node: semaphore.NewWeighted(int64(nodeMax)), nodeMax: nodeMax, perTenant: perTenant,
		tenants: map[string]*tenantReads{}, held: semaphore.NewWeighted(MaxHeldAnswerBytes)}
}

// enter admits a read of c's once its tenant and the node have a slot for
// it, or says why not by the time ctx ends. The turn it returns is given
// back in two steps: end once the store's work is done, leave once the
// answer is sent (it counts in the tenant's waiting room until then).
func (g *readGate) enter(ctx context.Context, c caller) (*readTurn, error) {
	key, who, limit := c.tenant, "tenant "+c.tenant, g.nodeMax
	if c.admin {
		key, who = "", "the admin"
	} else if m, ok := g.perTenant[c.tenant]; ok && m > 0 {
		limit = m
	}
	g.mu.Lock()
	t := g.tenants[key]
	if t == nil {
		t = &tenantReads{slots: semaphore.NewWeighted(int64(limit)), max: limit}
		g.tenants[key] = t
	}
	if in := t.in; in >= t.max*(1+readsWaitingPerSlot) {
		g.mu.Unlock() // t.in is the gate's again: the message has its copy
		g.refuse(c, "waiting_room")
		return nil, &retryLater{&httpError{http.StatusTooManyRequests, "quota_exceeded", fmt.Sprintf(
			"%s has %d reads under way, waiting or being sent, the most it may (max_reads %d, and %d more for each): retry later",
			who, in, t.max, readsWaitingPerSlot), ""}, 1}
	}
	t.in++
	g.mu.Unlock()
	turn := &readTurn{g: g, key: key, t: t}
	if err := t.slots.Acquire(ctx, 1); err != nil {
		turn.leave()
		if gone(ctx) {
			return nil, ctx.Err()
		}
		g.refuse(c, "tenant_wait")
		return nil, &retryLater{&httpError{http.StatusTooManyRequests, "quota_exceeded", fmt.Sprintf(
			"%s's reads took all its turns (max_reads %d at once) for as long as this one could wait ([store] timeout): retry later",
			who, t.max), ""}, 1}
	}
	if err := g.node.Acquire(ctx, 1); err != nil {
		t.slots.Release(1)
		turn.leave()
		if gone(ctx) {
			return nil, ctx.Err()
		}
		g.refuse(c, "node_wait")
		return nil, &retryLater{&httpError{http.StatusServiceUnavailable, "unavailable", fmt.Sprintf(
			"the node's reads (server.max_reads %d at once) were all taken for as long as this one could wait ([store] timeout): retry later",
			g.nodeMax), ""}, 1}
	}
	turn.running = true
	return turn, nil
}

// gone says a read's wait ended because its client went away, not at its
// deadline: nothing to refuse nor count (writeErr).
func gone(ctx context.Context) bool { return errors.Is(ctx.Err(), context.Canceled) }

// readTurn is a read let in by the gate.
type readTurn struct {
	g       *readGate
	key     string
	t       *tenantReads
	running bool // holds a slot of its tenant's and one of the node's
	left    bool
	cancel  context.CancelFunc // admitRead's bound on the read's context, if any
}

// end gives the turn's slots back: the store's work is done. The answer,
// being sent, still counts in its tenant's waiting room (leave).
func (r *readTurn) end() {
	if r.running {
		r.running = false
		r.g.node.Release(1)
		r.t.slots.Release(1)
	}
}

// leave ends the read: its answer is sent, or it was refused.
func (r *readTurn) leave() {
	r.end()
	if r.left {
		return
	}
	r.left = true
	if r.cancel != nil {
		r.cancel()
	}
	r.g.mu.Lock()
	defer r.g.mu.Unlock()
	if r.t.in--; r.t.in == 0 {
		delete(r.g.tenants, r.key) // no holder, no waiter: a new one is the same
	}
}

// refuse counts a read of c's refused for reason. The admin's carry no
// tenant, so that no tenant's scrape shows them.
func (g *readGate) refuse(c caller, reason string) {
	if g.refused != nil {
		g.refused.WithLabelValues(c.tenant, reason).Inc()
	}
}

// readsRefused is wasmq_api_reads_refused_total, registered in reg.
func readsRefused(reg prometheus.Registerer) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wasmq_api_reads_refused_total",
		Help: "API reads answered 429 or 503 by the read gate, by tenant and reason (waiting_room, tenant_wait, node_wait)."},
		[]string{tenantLabel, "reason"})
	reg.MustRegister(v)
	return v
}

// read runs h once the read gate admits it (admitRead), into an answer
// held in memory, and sends that answer once the turn is given back: a
// client that takes its answer slowly (a UI on a slow link, 8 MiB pages
// of large jobs) holds no turn, only its place in its tenant's waiting
// room, which bounds the answers a tenant has the node keep, and bytes
// of MaxHeldAnswerBytes, which bounds them all.
func (s *server) read(h handler) handler {
	return func(w http.ResponseWriter, r *http.Request, c caller) error {
		_, turn, err := s.admitRead(r, c)
		if err != nil {
			return err
		}
		defer turn.leave()
		held := &heldAnswer{header: http.Header{}, status: http.StatusOK}
		if err := h(held, r, c); err != nil {
			return err // nothing of held is sent: the error is the answer
		}
		if n := int64(held.body.Len()); s.reads.held.TryAcquire(n) {
			defer s.reads.held.Release(n)
			turn.end()
		}
		held.send(w)
		return nil // a client gone while its answer was sent needs no other
	}
}

// admitRead waits for the turn of c's read r at the gate, at most the
// store's timeout (a GET's context carries it already; a bulk action's
// and a scrape's do not), and returns r's context within that bound.
// The turn's leave also ends that context.
func (s *server) admitRead(r *http.Request, c caller) (context.Context, *readTurn, error) {
	ctx, cancel := r.Context(), context.CancelFunc(func() {})
	if s.StoreTimeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, s.StoreTimeout)
	}
	turn, err := s.reads.enter(ctx, c)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	turn.cancel = cancel
	return ctx, turn, nil
}

// heldAnswer is an answer written in memory, to be sent after.
type heldAnswer struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (a *heldAnswer) Header() http.Header         { return a.header }
func (a *heldAnswer) WriteHeader(status int)      { a.status = status }
func (a *heldAnswer) Write(b []byte) (int, error) { return a.body.Write(b) }

// send writes the held answer to w, its length known (a client can
// tell how much is to come).
func (a *heldAnswer) send(w http.ResponseWriter) {
	for k, v := range a.header {
		w.Header()[k] = v
	}
	if a.status >= 200 && a.status != http.StatusNoContent && a.status != http.StatusNotModified && w.Header().Get("Content-Length") == "" {
		w.Header().Set("Content-Length", strconv.Itoa(a.body.Len()))
	}
	w.WriteHeader(a.status)
	w.Write(a.body.Bytes())
}
