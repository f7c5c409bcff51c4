package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/wasmq/wasmq/config"
	"github.com/wasmq/wasmq/enqueue"
	"github.com/wasmq/wasmq/server"
	"github.com/wasmq/wasmq/store"
)

// EnqueueOptions of an enqueue run: how fast jobs get into the store,
// with nothing running them.
type EnqueueOptions struct {
	Driver string // "sqlite" or "postgres"
	DSN    string // postgres; a fresh, empty schema is best
	// Mode is "http" (clients POST to the node's real HTTP server, as an
	// application would) or "store" (callers use the store in-process:
	// the ceiling of the HTTP path).
	Mode string
	// Clients send at once, each one request after the other.
	Clients int
	// Batch is the jobs per request: 1 is one POST /v1/jobs per job,
	// more is POST /v1/jobs:batch.
	Batch int
	Jobs  int    // jobs in all (rounded up to whole requests); default 20000
	Dir   string // scratch folder; default a temp dir
	// PluginsDir holds testkit.wasm; default plugins/enabled.
	PluginsDir string
	// Coalesce is the node's [enqueue] section; zero takes the defaults.
	Coalesce enqueue.Coalesce
	// Progress, when set, receives a progress bar (a terminal).
	Progress io.Writer
	// CPUProfile, when set, receives a CPU profile of the measured
	// phase: the clients sending, not the node's start (its plugins'
	// compilation) nor the idle requests.
	CPUProfile io.Writer
}

// EnqueueReport is what an enqueue run measured.
type EnqueueReport struct {
	Options EnqueueOptions `json:"-"`
	Mode    string
	Driver  string
	Clients int
	Batch   int
	Jobs    int
	Elapsed time.Duration
	Rate    float64 // jobs/s stored, acknowledged
	// Request latency under load, and of a lone request on the idle
	// node before the run (what one client alone waits).
	P50, P99, Idle time.Duration
	// CPU is the process's CPU time (user and system) per job during the
	// run, its clients included: on a shared machine it moves less than
	// the rate does with what else runs.
	CPU time.Duration
	// DBCPU is the PostgreSQL server's CPU time per job during the run,
	// when it runs on this machine (postgresCPU); 0 otherwise.
	DBCPU time.Duration
}

func (r EnqueueReport) String() string {
	return fmt.Sprintf("store=%s enqueue=%s clients=%d batch=%d jobs=%d: %.0f jobs/s (%v); request p50 %v p99 %v; idle request %v; cpu %v/job",
		r.Driver, r.Mode, r.Clients, r.Batch, r.Jobs, r.Rate, r.Elapsed.Round(time.Millisecond),
		r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond), r.Idle.Round(10*time.Microsecond),
		r.CPU.Round(100*time.Nanosecond)) + dbCPUText(r.DBCPU)
}

// Enqueue starts a node (its runner stopped: nothing runs the jobs),
// sends the jobs and counts them in the store afterwards.
func Enqueue(ctx context.Context, o EnqueueOptions) (EnqueueReport, error) {
	if o.Jobs <= 0 {
		o.Jobs = 20000
	}
	if o.Clients <= 0 {
		o.Clients = 16
	}
	if o.Batch <= 0 {
		o.Batch = 1
	}
	if o.Mode == "" {
		o.Mode = "http"
	}
	if o.Mode != "http" && o.Mode != "store" {
		return EnqueueReport{}, fmt.Errorf("bench: --enqueue: %q is not http or store", o.Mode)
	}
	if o.PluginsDir == "" {
		o.PluginsDir = "plugins/enabled"
	}
	if o.Dir == "" {
		d, err := os.MkdirTemp("", "wasmq-bench-")
		if err != nil {
			return EnqueueReport{}, err
		}
		defer os.RemoveAll(d)
		o.Dir = d
	}
	var f config.File
	f.Enqueue = o.Coalesce
	f.Store.Driver, f.Store.DSN, f.Store.Path = o.Driver, o.DSN, filepath.Join(o.Dir, "bench.db")
	migrate := true
	f.Store.Migrate = &migrate
	f.Server.Listen = "127.0.0.1:0"
	f.Server.LogLevel = "error"
	f.Host.PluginsDir = o.PluginsDir
	f.Host.CacheDir = filepath.Join(o.Dir, "cache")
	f = f.WithDefaults()
	if err := f.Validate(); err != nil {
		return EnqueueReport{}, err
	}
	n, err := server.New(ctx, f, zerolog.Nop())
	if err != nil {
		return EnqueueReport{}, err
	}
	defer n.Close(context.Background())
	if _, err := n.Host.Function("default", "testkit.echo"); err != nil {
		return EnqueueReport{}, fmt.Errorf("bench needs testkit.wasm in %s: %w", o.PluginsDir, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return EnqueueReport{}, err
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- n.ServeListener(sctx, ln) }()
	defer func() { stop(); <-served }()

	addr := ln.Addr().String()
	// Each client has a connection of its own (and the idle requests one
	// more), kept alive from request to request.
	conns := make([]*clientConn, o.Clients+1)
	for i := range conns {
		conns[i] = &clientConn{addr: addr}
		defer conns[i].close()
	}
	send := func(ctx context.Context, c *clientConn, k int) error {
		if o.Mode == "store" {
			if k == 1 {
				_, err := n.Enqueue.Create(ctx, "default", single)
				return err
			}
			_, err := n.Enqueue.CreateBatch(ctx, "default", enqueue.BatchRequest{Jobs: slices.Repeat([]enqueue.Request{single}, k)})
			return err
		}
		return c.post(k)
	}

	r := EnqueueReport{Options: o, Mode: o.Mode, Driver: f.Store.Driver, Clients: o.Clients, Batch: o.Batch}
	// A few requests warm up connections and statements; then the idle
	// latency: one request alone, the median of 50.
	var idle []time.Duration
	for i := 0; i < 60; i++ {
		began := time.Now()
		if err := send(ctx, conns[o.Clients], 1); err != nil {
			return r, err
		}
		if i >= 10 {
			idle = append(idle, time.Since(began))
		}
		time.Sleep(time.Millisecond)
	}
	sort.Slice(idle, func(i, k int) bool { return idle[i] < idle[k] })
	r.Idle = idle[len(idle)/2]
	before, err := countAll(ctx, n.Store)
	if err != nil {
		return r, err
	}

	requests := (o.Jobs + o.Batch - 1) / o.Batch
	var next, sent atomic.Int64
	lat := make([][]time.Duration, o.Clients)
	errs := make(chan error, o.Clients)
	var wg sync.WaitGroup
	bar := newProgress(o.Progress, int64(requests*o.Batch))
	if o.CPUProfile != nil {
		if err := pprof.StartCPUProfile(o.CPUProfile); err != nil {
			return r, fmt.Errorf("bench: cpu profile: %w", err)
		}
	}
	cpu0, db := processCPU(), startDBCPU(f.Store.Driver, f.Store.DSN)
	start := time.Now()
	for c := 0; c < o.Clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(requests) {
				began := time.Now()
				if err := send(ctx, conns[c], o.Batch); err != nil {
					errs <- err
					return
				}
				lat[c] = append(lat[c], time.Since(began))
				bar.set(sent.Add(int64(o.Batch)))
			}
		}()
	}
	wg.Wait()
	r.Elapsed = time.Since(start)
	cpu := processCPU() - cpu0
	if o.CPUProfile != nil {
		pprof.StopCPUProfile()
	}
	bar.done()
	close(errs)
	if err := <-errs; err != nil {
		return r, err
	}
	after, err := countAll(ctx, n.Store)
	if err != nil {
		return r, err
	}
	r.Jobs = after - before
	if r.Jobs != requests*o.Batch {
		return r, fmt.Errorf("bench: %d jobs acknowledged, %d stored", requests*o.Batch, r.Jobs)
	}
	r.Rate = float64(r.Jobs) / r.Elapsed.Seconds()
	r.CPU = cpu / time.Duration(r.Jobs)
	r.DBCPU = db.perJob(r.Jobs)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, k int) bool { return all[i] < all[k] })
	r.P50, r.P99 = all[len(all)/2], all[len(all)*99/100]
	return r, nil
}

const singleBody = `{"func":"testkit.echo","args":[1]}`

// single is singleBody decoded, for the in-process mode.
var single = enqueue.Request{Func: "testkit.echo", Args: []byte(`[1]`)}

var batchBodies sync.Map // k → body of k jobs

// clientConn is one bench client's keep-alive HTTP/1.1 connection.
// Requests are written whole and answers read with http.ReadResponse, in
// the client's own goroutine: net/http's Transport hands every request
// to two goroutines of its own per connection (writeLoop, readLoop), and
// with 16 clients in the node's process on two cores those hand-overs
// took a third of the process's CPU, CPU the node under test lacked. The
// server sees the same requests either way.
type clientConn struct {
	addr string
	c    net.Conn
	br   *bufio.Reader
	reqs map[int][]byte // k → the whole request of k jobs
	out  bytes.Buffer   // the last answer's body
}

func (c *clientConn) post(k int) error {
	req, ok := c.reqs[k]
	if !ok {
		path, body := "/v1/jobs", []byte(singleBody)
		if k > 1 {
			path = "/v1/jobs:batch"
			b, ok := batchBodies.Load(k)
			if !ok {
				b = []byte(`{"jobs":[` + strings.TrimSuffix(strings.Repeat(singleBody+",", k), ",") + `]}`)
				batchBodies.Store(k, b)
			}
			body = b.([]byte)
		}
		req = fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
			path, c.addr, len(body), body)
		if c.reqs == nil {
			c.reqs = map[int][]byte{}
		}
		c.reqs[k] = req
	}
	if c.c == nil {
		conn, err := net.Dial("tcp", c.addr)
		if err != nil {
			return err
		}
		c.c, c.br = conn, bufio.NewReader(conn)
	}
	c.c.SetDeadline(time.Now().Add(time.Minute))
	if _, err := c.c.Write(req); err != nil {
		c.close()
		return err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.close()
		return err
	}
	// The answer is read into the connection's own buffer: a 1,000-job
	// answer is about a megabyte, and reading each into a new one was a
	// seventh of the process's allocations, GC work taken from the node.
	c.out.Reset()
	_, err = c.out.ReadFrom(resp.Body)
	out := c.out.Bytes()
	resp.Body.Close()
	if err != nil || resp.Close {
		c.close()
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("bench: POST %d jobs: %s: %s", k, resp.Status, out)
	}
	return err
}

func (c *clientConn) close() {
	if c.c != nil {
		c.c.Close()
		c.c = nil
	}
}

// processCPU is the CPU time the process has used, user and system.
func processCPU() time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		return 0
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}

func countAll(ctx context.Context, st store.Store) (int, error) {
	cs, err := st.Counts(ctx, "default")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range cs {
		for _, k := range c.Counts {
			n += k
		}
	}
	return n, nil
}

// progress draws a bar on a terminal, at most ten times a second.
type progress struct {
	w     io.Writer
	total int64
	mu    sync.Mutex
	last  time.Time
}

func newProgress(w io.Writer, total int64) *progress { return &progress{w: w, total: total} }

func (p *progress) set(n int64) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.last) < 100*time.Millisecond && n < p.total {
		return
	}
	p.last = time.Now()
	const width = 40
	filled := int(min(n, p.total) * width / max(p.total, 1))
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d jobs", strings.Repeat("#", filled), strings.Repeat(".", width-filled), n, p.total)
}

func (p *progress) done() {
	if p.w != nil {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

// IsTerminal says whether f is a terminal (a progress bar is only drawn
// on one).
func IsTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
