package api

import (
	"context"
	"fmt"
	"net/http"
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

type readGate struct {
	node      *semaphore.Weighted
	nodeMax   int
	perTenant map[string]int // max_reads by tenant; the admin, and a tenant not listed, have the node's

	mu      sync.Mutex
	tenants map[string]*tenantReads // with a read running or waiting

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
		tenants: map[string]*tenantReads{}}
}

// enter admits a read of c's once its tenant and the node have a slot for
// it, or says why not by the time ctx ends; leave ends the read.
func (g *readGate) enter(ctx context.Context, c caller) (leave func(), err error) {
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
	if t.in >= t.max*(1+readsWaitingPerSlot) {
		g.mu.Unlock()
		g.refuse(c, "waiting_room")
		return nil, &retryLater{&httpError{http.StatusTooManyRequests, "quota_exceeded", fmt.Sprintf(
			"%s has %d reads under way or waiting, the most it may (max_reads %d, and %d waiting for each): retry later",
			who, t.in, t.max, readsWaitingPerSlot), ""}, 1}
	}
	t.in++
	g.mu.Unlock()
	out := func() {
		g.mu.Lock()
		if t.in--; t.in == 0 {
			delete(g.tenants, key) // no holder, no waiter: a new one is the same
		}
		g.mu.Unlock()
	}
	if err := t.slots.Acquire(ctx, 1); err != nil {
		out()
		g.refuse(c, "tenant_wait")
		return nil, &retryLater{&httpError{http.StatusTooManyRequests, "quota_exceeded", fmt.Sprintf(
			"%s's reads took all its turns (max_reads %d at once) for as long as this one could wait ([store] timeout): retry later",
			who, t.max), ""}, 1}
	}
	if err := g.node.Acquire(ctx, 1); err != nil {
		t.slots.Release(1)
		out()
		g.refuse(c, "node_wait")
		return nil, &retryLater{&httpError{http.StatusServiceUnavailable, "unavailable", fmt.Sprintf(
			"the node's reads (server.max_reads %d at once) were all taken for as long as this one could wait ([store] timeout): retry later",
			g.nodeMax), ""}, 1}
	}
	return func() {
		g.node.Release(1)
		t.slots.Release(1)
		out()
	}, nil
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

// read runs h once the read gate admits it (admitRead).
func (s *server) read(h handler) handler {
	return func(w http.ResponseWriter, r *http.Request, c caller) error {
		_, leave, err := s.admitRead(r, c)
		if err != nil {
			return err
		}
		defer leave()
		return h(w, r, c)
	}
}

// admitRead waits for the turn of c's read r at the gate, at most the
// store's timeout (a GET's context carries it already; a bulk action's
// and a scrape's do not), and returns r's context within that bound.
func (s *server) admitRead(r *http.Request, c caller) (ctx context.Context, leave func(), err error) {
	ctx, cancel := r.Context(), context.CancelFunc(func() {})
	if s.StoreTimeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, s.StoreTimeout)
	}
	out, err := s.reads.enter(ctx, c)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return ctx, func() { out(); cancel() }, nil
}
