// Package server wires one wasmq node: store, host, runner and the HTTP
// API with the web UI. `wasmq serve` and the end-to-end tests use it.
package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/wasmq/wasmq/api"
	"github.com/wasmq/wasmq/config"
	"github.com/wasmq/wasmq/enqueue"
	"github.com/wasmq/wasmq/host"
	"github.com/wasmq/wasmq/runner"
	"github.com/wasmq/wasmq/schedule"
	"github.com/wasmq/wasmq/store"
	"github.com/wasmq/wasmq/store/backends"
	"github.com/wasmq/wasmq/telemetry"
	"github.com/wasmq/wasmq/ui"
)

// Node is a running wasmq node.
type Node struct {
	Config  config.File
	Store   store.Store
	Host    *host.Host
	Runner  *runner.Runner
	Enqueue *enqueue.Service
	// Schedules are the periodic jobs; the leader fires them.
	Schedules *schedule.Service
	Handler   http.Handler
	// Metrics is the node's registry (/metrics); Tracing its tracer,
	// off unless [telemetry] otlp_endpoint is set.
	Metrics *telemetry.Metrics
	Tracing *telemetry.Tracing
	log     zerolog.Logger
	// conns is the connection cap of the listener being served (tests).
	conns *connLimit
	// stopSQL stops publishing the plugin registry (sqlenqueue.go).
	stopSQL func()
}

// New opens the store, loads the plugins and builds the runner and the
// HTTP handler; Start sets the runner going.
func New(ctx context.Context, f config.File, log zerolog.Logger, opts ...Option) (*Node, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	tracing := o.tracing
	if tracing == nil {
		var err error
		if tracing, err = telemetry.NewTracing(ctx, f.Telemetry); err != nil {
			return nil, err
		}
	}
	st, err := backends.Open(ctx, f.Store, log)
	if err != nil {
		return nil, err
	}
	st = telemetry.TraceStore(st, tracing)
	n := &Node{Config: f, Store: st, log: log, Tracing: tracing, Metrics: telemetry.NewMetrics()}
	limits := map[string]enqueue.Limits{}
	var tenants []api.Tenant
	reads := map[string]int{}
	for i, t := range f.Tenants {
		sum, err := t.SHA256(fmt.Sprintf("tenants[%d]", i))
		if err != nil {
			st.Close()
			return nil, err
		}
		tenants = append(tenants, api.Tenant{Name: t.Name, TokenSHA256: sum})
		reads[t.Name] = t.MaxReads
		limits[t.Name] = enqueue.Limits{MaxPending: t.MaxPending, MaxChannels: t.MaxChannels, Rate: t.Rate, Burst: t.Burst,
			MaxSchedules: t.MaxSchedules}
		if t.MaxRunning > 0 {
			if f.Runner.TenantMaxRunning == nil {
				f.Runner.TenantMaxRunning = map[string]int{}
			}
			f.Runner.TenantMaxRunning[t.Name] = t.MaxRunning
		}
		if t.FuelRate > 0 {
			if f.Runner.TenantFuelRate == nil {
				f.Runner.TenantFuelRate, f.Runner.TenantFuelBurst = map[string]float64{}, map[string]float64{}
			}
			f.Runner.TenantFuelRate[t.Name], f.Runner.TenantFuelBurst[t.Name] = t.FuelRate, t.FuelBurst
		}
	}
	admin, err := f.AdminSHA256()
	if err != nil {
		st.Close()
		return nil, err
	}
	n.Enqueue = &enqueue.Service{Store: st, Limits: limits, Coalesce: f.Enqueue}
	h, err := host.New(f.Host, log, host.WithEnqueuer(n.Enqueue.Child))
	if err != nil {
		st.Close()
		return nil, err
	}
	n.Host = h
	n.Enqueue.Funcs = h
	if f.Server.NoDelay {
		n.Enqueue.Sync = runner.Sync{Exec: h, DefaultRetryInterval: f.Runner.DefaultRetryInterval.D()}.Run
	}
	n.Runner, err = runner.New(f.Runner, st, h, log)
	if err != nil {
		h.Close(ctx)
		st.Close()
		return nil, err
	}
	h.SetPoolSize(n.Runner.Config().Workers)
	n.Metrics.RegisterNode(h, n.Runner)
	n.Runner.SetObserver(&telemetry.Observer{Metrics: n.Metrics, Tracing: tracing})
	if err := n.startSchedules(ctx, f, log); err != nil {
		h.Close(ctx)
		st.Close()
		return nil, err
	}
	ao := api.Options{Store: st, Enqueue: n.Enqueue, Plugins: h, Runner: n.Runner, Tenants: tenants,
		Schedules: n.Schedules, Admin: admin, BodyLimit: f.Server.BodyLimit, MaxUploads: f.Server.MaxUploads,
		MaxReads: f.Server.MaxReads, TenantMaxReads: reads, StoreTimeout: f.Store.Timeout.D(), UI: ui.Handler(), Log: log.With().Str("component", "api").Logger(),
		Metrics: n.Metrics.Registry, Registerer: n.Metrics.Registry}
	if tracing.Enabled() {
		ao.Tracer, ao.Propagator = tracing.Tracer, tracing.Propagator
	}
	n.Handler = api.New(ao)
	return n, nil
}

// Option changes how New builds a node.
type Option func(*options)

type options struct{ tracing *telemetry.Tracing }

// WithTracing traces with t instead of what [telemetry] says (tests give
// an in-memory recorder).
func WithTracing(t *telemetry.Tracing) Option { return func(o *options) { o.tracing = t } }

// startSchedules makes the store's config-defined schedules those of the
// file and has the runner fire every schedule while this node leads.
func (n *Node) startSchedules(ctx context.Context, f config.File, log zerolog.Logger) error {
	n.Schedules = schedule.New(n.Store, n.Enqueue)
	if n.Metrics != nil {
		n.Schedules.Observer = n.Metrics
	}
	defs, err := f.ScheduleDefinitions()
	if err == nil {
		err = n.Schedules.Apply(ctx, defs)
	}
	if err != nil {
		return fmt.Errorf("schedules: %w", err)
	}
	n.Runner.WhileLeading(func(ctx context.Context) { n.Schedules.Fire(ctx, 0, log) })
	return nil
}

// Start publishes what SQL enqueues need (sqlenqueue.go) and starts the
// runner.
func (n *Node) Start(ctx context.Context) error {
	if err := n.startSQL(ctx); err != nil {
		return err
	}
	return n.Runner.Start(ctx)
}

// Close stops the runner (letting running jobs finish within the
// shutdown timeout), the host and the store.
func (n *Node) Close(ctx context.Context) error {
	err := n.Runner.Stop(ctx)
	// After the runner: its plugins enqueue children until they end.
	n.Enqueue.Close()
	if n.stopSQL != nil {
		n.stopSQL()
	}
	err = errors.Join(err, n.Host.Close(ctx), n.Store.Close(), n.Tracing.Shutdown(ctx))
	return err
}

// Serve runs the HTTP server on f.Server.Listen until ctx ends (or the
// runner finds the database migrated past this binary, which Serve then
// returns), then stops gracefully: HTTP first, then the runner.
func (n *Node) Serve(ctx context.Context) error {
	ln, err := net.Listen("tcp", n.Config.Server.Listen)
	if err != nil {
		return fmt.Errorf("server.listen: %w", err)
	}
	return n.ServeListener(ctx, ln)
}

// ServeListener is Serve on a listener of the caller's, which it closes.
func (n *Node) ServeListener(ctx context.Context, ln net.Listener) error {
	c := n.Config.WithDefaults().Server // a File not from config.Load has zeros
	// A silent new connection is not closed to make room before it had
	// a fair chance to send its request.
	n.conns = newConnLimit(ln, c.MaxConnections, min(time.Second, c.ReadHeaderTimeout.D()/2))
	srv := &http.Server{
		Handler:           closeAfterErrors(n.Handler),
		ReadHeaderTimeout: c.ReadHeaderTimeout.D(),
		ReadTimeout:       c.ReadTimeout.D(),
		WriteTimeout:      c.WriteTimeout.D(),
		IdleTimeout:       c.IdleTimeout.D(),
		ConnState:         n.conns.track,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(n.conns) }()
	n.log.Info().Str("listen", ln.Addr().String()).Str("store", n.Config.Store.Driver).
		Str("plugins_dir", n.Config.Host.PluginsDir).Msg("wasmq serving")
	var fatal error
	select {
	case err := <-errc:
		return err
	case fatal = <-n.Runner.Fatal():
	case <-ctx.Done():
	}
	n.log.Info().Msg("stopping: HTTP first, then running jobs")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(fatal, srv.Shutdown(sctx))
}

// connLimit caps the open connections of a listener at max. When a
// connection arrives at the cap, an open one that is not in a request is
// closed to make room, in this order of preference: the longest idle
// between keep-alive requests; the oldest that sent part of a request and
// stopped (it was read from, but its headers never ended); the oldest that
// sent nothing for grace. A connection that just arrived, whose request the server has
// not read yet, is spared: under a burst of a thousand it was closed
// before /healthz's request was read. So is one whose headers came whole
// but are not parsed yet: under load /healthz's was closed there too. When every connection is in a
// request, Accept waits for one to end; the new client waits in the listen
// backlog.
//
// Why not golang.org/x/net/netutil.LimitListener: wasmq does not depend on
// x/net, and that listener only waits. Clients that open connections and
// never finish a request then hold every slot until read_header_timeout,
// and again as soon as a slot frees, and /healthz waits behind them
// (docs/reliability.md has the figures).
type connLimit struct {
	net.Listener
	max   int
	grace time.Duration

	mu     sync.Mutex
	cond   *sync.Cond
	open   map[*limitedConn]struct{}
	closed bool
	// counted for tests and the docs
	peak, evicted, waited int
}

func newConnLimit(ln net.Listener, max int, grace time.Duration) *connLimit {
	l := &connLimit{Listener: ln, max: max, grace: grace, open: map[*limitedConn]struct{}{}}
	l.cond = sync.NewCond(&l.mu)
	return l
}

// limitedConn is one connection of a connLimit. state and since are
// guarded by the connLimit's mu.
type limitedConn struct {
	net.Conn
	l     *connLimit
	state http.ConnState
	since time.Time // when it entered state
	// heard: how much of its first request's headers has been read,
	// one of the values below, in one atomic word: as two flags, set one
	// after the other, Accept could see a request that came whole in
	// one read as "heard, not whole" between the two stores, and close
	// it as a client that stopped (it closed /healthz's under a flood).
	// net/http marks a connection active only once it has parsed the
	// headers, and under load that takes a while: meanwhile a whole
	// request is a request being served, not a client that stopped.
	heard atomic.Int32
	// tail is the last bytes read, for a blank line split between two
	// reads (Read's goroutine only).
	tail []byte
	once sync.Once
}

const (
	heardNothing = iota
	heardPart    // read from, no blank line yet
	heardWhole   // the blank line that ends the headers came
)

var blankLine = []byte("\r\n\r\n")

func (c *limitedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.heard.Load() != heardWhole {
		keep := len(blankLine) - 1
		seen := append(c.tail, p[:min(n, keep)]...)
		if bytes.Contains(seen, blankLine) || bytes.Contains(p[:n], blankLine) {
			c.heard.Store(heardWhole)
		} else {
			c.heard.Store(heardPart)
		}
		if n >= keep {
			c.tail = append(c.tail[:0], p[n-keep:n]...)
		} else {
			c.tail = append(c.tail[:0], seen[max(0, len(seen)-keep):]...)
		}
	}
	return n, err
}

// ReadFrom keeps sendfile for the files the UI serves.
func (c *limitedConn) ReadFrom(r io.Reader) (int64, error) { return io.Copy(c.Conn, r) }

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.open, c)
		c.l.cond.Signal()
		c.l.mu.Unlock()
	})
	return err
}

func (l *connLimit) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	lc := &limitedConn{Conn: c, l: l, state: http.StateNew, since: time.Now()}
	l.mu.Lock()
	for len(l.open) >= l.max && !l.closed {
		victim, retry := l.victimLocked()
		switch {
		case victim != nil:
			l.evicted++
			l.mu.Unlock()
			victim.Close()
			l.mu.Lock()
		case retry > 0: // a silent connection will have had its grace
			l.waited++
			l.mu.Unlock()
			time.Sleep(min(retry, 10*time.Millisecond))
			l.mu.Lock()
		default: // every connection is in a request
			l.waited++
			l.cond.Wait()
		}
	}
	if l.closed {
		l.mu.Unlock()
		c.Close()
		return nil, net.ErrClosed
	}
	l.open[lc] = struct{}{}
	l.peak = max(l.peak, len(l.open))
	l.mu.Unlock()
	return lc, nil
}

// victimLocked picks the connection to close to make room, or says how
// long until a silent one has had its grace.
func (l *connLimit) victimLocked() (victim *limitedConn, retry time.Duration) {
	now := time.Now()
	rank := func(c *limitedConn) int {
		switch heard := c.heard.Load(); {
		case c.state == http.StateIdle:
			return 0
		case c.state != http.StateNew || heard == heardWhole:
			return -1 // in a request
		case heard == heardPart:
			return 1
		case now.Sub(c.since) >= l.grace:
			return 2
		}
		if wait := l.grace - now.Sub(c.since); retry == 0 || wait < retry {
			retry = wait
		}
		return -1
	}
	best := -1
	for c := range l.open {
		r := rank(c)
		if r < 0 || best >= 0 && (r > best || r == best && !c.since.Before(victim.since)) {
			continue
		}
		victim, best = c, r
	}
	return victim, retry
}

func (l *connLimit) Close() error {
	l.mu.Lock()
	l.closed = true
	l.cond.Broadcast()
	l.mu.Unlock()
	return l.Listener.Close()
}

// track is the http.Server's ConnState hook.
func (l *connLimit) track(c net.Conn, state http.ConnState) {
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lc.state, lc.since = state, time.Now()
}

// closeAfterErrors closes the connection at once after an error answer
// to a request with a body. net/http reads what is left of an unread body,
// up to 256 KiB, before it closes or reuses a connection, even with
// "Connection: close", and at the client's pace: an unauthenticated
// request whose body never came held its connection, busy (so never
// closed to make room), until read_timeout. Its read now ends at once.
func closeAfterErrors(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength == 0 {
			h.ServeHTTP(w, r)
			return
		}
		cw := &closeOnError{ResponseWriter: w}
		h.ServeHTTP(cw, r)
		if cw.failed {
			http.NewResponseController(w).SetReadDeadline(time.Now())
		}
	})
}

type closeOnError struct {
	http.ResponseWriter
	wroteHeader, failed bool
}

func (w *closeOnError) WriteHeader(code int) {
	if !w.wroteHeader && code >= 400 {
		w.Header().Set("Connection", "close")
		w.failed = true
	}
	w.wroteHeader = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *closeOnError) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *closeOnError) Unwrap() http.ResponseWriter { return w.ResponseWriter }
