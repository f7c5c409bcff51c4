// Package bench measures a whole wasmq node: end-to-end throughput of
// jobs (testkit.echo by default), each run in the wasm sandbox, and the
// latency from enqueue to start on an idle node. `wasmq bench` prints its
// report.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/config"
	"github.com/wasmq/wasmq/server"
	"github.com/wasmq/wasmq/store"
)

// Options of one run.
type Options struct {
	Driver     string // "sqlite" or "postgres"
	DSN        string // postgres; a fresh, empty schema is best
	Jobs       int    // throughput jobs; default 20000
	Capacity   int    // root channel capacity; default 100
	Isolation  string // "pooled" or "fresh"
	Samples    int    // latency samples; default 200
	PluginsDir string // holds testkit.wasm; default plugins/enabled
	// Func is the job function run: testkit.echo by default (its result
	// is its whole input, about 250 bytes stored per job); testkit.noop
	// writes nothing, like the no-op jobs other queues are measured with.
	Func string
	Dir  string // scratch folder; default a temp dir
	// CPUProfile, when set, receives a pprof CPU profile of the
	// throughput run only (not of compiling plugins or storing the jobs).
	CPUProfile io.Writer
	// Backlog future jobs (an eta a day ahead) and History done ones are
	// in the store before either run (see loadBacklog).
	Backlog, History int
	// Progress, when set (a terminal), shows a bar during long phases.
	Progress io.Writer `json:"-"`
}

// Report is what a run measured.
type Report struct {
	Options    Options
	Throughput float64 // jobs/s run, from the node's start to the last done
	Elapsed    time.Duration
	InsertRate float64       // jobs/s stored, in batches of 1,000, before the start
	P50, P99   time.Duration // enqueue → start, idle node
	Max        time.Duration
	// StartUp: from the latency node's Start to its first job done, with
	// the backlog in the store.
	StartUp time.Duration
	// Held: the pending jobs the idle node's scheduler held after the
	// latency samples (Runner.Held): the backlog must not be among them.
	Held int
	// CPU is the process's CPU time (user and system) per job during the
	// run: the node's own cost, steadier than the rate on a shared machine.
	CPU time.Duration
	// DBCPU is the PostgreSQL server's CPU time per job during the run,
	// when it runs on this machine (postgresCPU); 0 otherwise.
	DBCPU time.Duration
}

func (r Report) String() string {
	backlog := ""
	if r.Options.Backlog > 0 || r.Options.History > 0 {
		backlog = fmt.Sprintf("backlog=%d history=%d (start-up %v, scheduler holds %d): ", r.Options.Backlog, r.Options.History,
			r.StartUp.Round(time.Millisecond), r.Held)
	}
	return backlog + fmt.Sprintf("store=%s isolation=%s capacity=%d func=%s jobs=%d: run %.0f jobs/s (%v; stored beforehand at %.0f jobs/s; cpu %v/job); idle enqueue→start p50 %v p99 %v max %v (%d samples)",
		r.Options.Driver, r.Options.Isolation, r.Options.Capacity, r.Options.Func, r.Options.Jobs, r.Throughput, r.Elapsed.Round(time.Millisecond), r.InsertRate,
		r.CPU.Round(100*time.Nanosecond), r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond), r.Max.Round(10*time.Microsecond), r.Options.Samples) + dbCPUText(r.DBCPU)
}

// dbCPUText is the database's CPU per job, for a report's line.
func dbCPUText(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return fmt.Sprintf("; postgres cpu %v/job", d.Round(100*time.Nanosecond))
}

// Run starts a node, measures it and stops it.
func Run(ctx context.Context, o Options) (Report, error) {
	if o.Jobs == 0 {
		o.Jobs = 20000
	}
	if o.Capacity == 0 {
		o.Capacity = 100
	}
	if o.Samples == 0 {
		o.Samples = 200
	}
	if o.Isolation == "" {
		o.Isolation = "pooled"
	}
	if o.PluginsDir == "" {
		o.PluginsDir = "plugins/enabled"
	}
	if o.Func == "" {
		o.Func = DefaultFunc
	}
	progress := func(phase string, total int) *bar { return newBar(o.Progress, phase, total) } // nil: no bars
	if o.Dir == "" {
		d, err := os.MkdirTemp("", "wasmq-bench-")
		if err != nil {
			return Report{}, err
		}
		defer os.RemoveAll(d)
		o.Dir = d
	}
	var f config.File
	f.Store.Driver, f.Store.DSN, f.Store.Path = o.Driver, o.DSN, filepath.Join(o.Dir, "bench.db")
	migrate := true
	f.Store.Migrate = &migrate
	f.Runner.Channels = fmt.Sprintf("root:%d", o.Capacity)
	f.Runner.BatchSize = 1000
	f.Host.PluginsDir, f.Host.Isolation = o.PluginsDir, o.Isolation
	f.Host.CacheDir = filepath.Join(o.Dir, "cache")
	f = f.WithDefaults()
	if err := f.Validate(); err != nil {
		return Report{}, err
	}
	open := func() (*server.Node, error) {
		n, err := server.New(ctx, f, zerolog.Nop())
		if err != nil {
			return nil, err
		}
		if _, err := n.Host.Function("default", o.Func); err != nil {
			n.Close(context.Background())
			return nil, fmt.Errorf("bench runs %s, not found in %s: %w", o.Func, o.PluginsDir, err)
		}
		return n, nil
	}
	r := Report{Options: o}

	// Latency first, on an idle node: after the throughput run the
	// database would still be busy (autovacuum cleans up after it). One
	// job at a time, enqueue → date_started.
	n, err := open()
	if err != nil {
		return r, err
	}
	if err := loadBacklog(ctx, n, f, o, progress); err != nil {
		n.Close(context.Background())
		return r, err
	}
	started := time.Now()
	if err := n.Start(ctx); err != nil {
		n.Close(context.Background())
		return r, err
	}
	// A few jobs first warm the node up (connections, prepared
	// statements, the plugin's instance pool); they are not counted.
	if _, err := idleLatency(ctx, n, o.Func, 1); err != nil {
		n.Close(context.Background())
		return r, err
	}
	r.StartUp = time.Since(started)
	if _, err := idleLatency(ctx, n, o.Func, 19); err != nil {
		n.Close(context.Background())
		return r, err
	}
	lat, err := idleLatency(ctx, n, o.Func, o.Samples)
	r.Held = n.Runner.Held()
	n.Close(context.Background())
	if err != nil {
		return r, err
	}
	sort.Slice(lat, func(i, k int) bool { return lat[i] < lat[k] })
	r.P50, r.P99, r.Max = lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]

	// Throughput, on a second node over the same store: as River's
	// benchmark counts it, the jobs are stored first (timed on their own),
	// then the node starts and works them off; measured until the last one
	// is done.
	if n, err = open(); err != nil {
		return r, err
	}
	defer n.Close(context.Background())
	insertStart := time.Now()
	for i := 0; i < o.Jobs; i += 1000 {
		batch := make([]store.NewJob, 0, 1000)
		for k := i; k < min(i+1000, o.Jobs); k++ {
			batch = append(batch, job(o.Func))
		}
		if _, err := n.Store.Insert(ctx, batch); err != nil {
			return r, err
		}
	}
	r.InsertRate = float64(o.Jobs) / time.Since(insertStart).Seconds()
	if o.CPUProfile != nil {
		if err := pprof.StartCPUProfile(o.CPUProfile); err != nil {
			return r, fmt.Errorf("bench: cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	start, cpu0, db := time.Now(), processCPU(), startDBCPU(f.Store.Driver, f.Store.DSN)
	if err := n.Start(ctx); err != nil {
		return Report{}, err
	}
	bar := progress("run", o.Jobs)
	// The node's own counters tell when every job has run; only then is
	// the store asked (a count is a scan of every job: polling it would
	// compete with the node for the CPU). The time is the store's: until
	// the last outcome is committed.
	for {
		st := n.Runner.Stats()
		if st.Failed > 0 || st.Retried > 0 {
			return r, fmt.Errorf("bench jobs did not succeed: %d failed, %d retried", st.Failed, st.Retried)
		}
		if st.Done >= int64(o.Jobs) {
			break
		}
		bar.show(int(st.Done))
		time.Sleep(time.Millisecond)
	}
	bar.end()
	for {
		done, err := count(ctx, n.Store, abi.StateDone)
		if err != nil {
			return r, err
		}
		if done >= o.Jobs+o.Samples { // the latency samples are done too
			break
		}
		time.Sleep(time.Millisecond)
	}
	r.Elapsed = time.Since(start)
	r.CPU = (processCPU() - cpu0) / time.Duration(o.Jobs)
	r.DBCPU = db.perJob(o.Jobs)
	r.Throughput = float64(o.Jobs) / r.Elapsed.Seconds()
	return r, nil
}

// idleLatency enqueues one job at a time and measures enqueue →
// date_started of each.
func idleLatency(ctx context.Context, n *server.Node, fn string, samples int) ([]time.Duration, error) {
	var lat []time.Duration
	for i := 0; i < samples; i++ {
		time.Sleep(2 * time.Millisecond)
		ins, err := n.Store.Insert(ctx, []store.NewJob{job(fn)})
		if err != nil {
			return nil, err
		}
		id := ins[0].Job.UUID
		for {
			j, err := n.Store.Get(ctx, "", id)
			if err != nil {
				return nil, err
			}
			if j.DateStarted != nil && j.State == abi.StateDone {
				lat = append(lat, j.DateStarted.Sub(j.DateCreated))
				break
			}
			// The sample is read from the store's own dates, so how
			// often this looks adds nothing to it; looking too often
			// (four statements a look) would compete with the start it
			// measures for the same two cores.
			time.Sleep(time.Millisecond)
		}
	}
	return lat, nil
}

// DefaultFunc is the job function of the runs unless Options.Func names
// another.
const DefaultFunc = "testkit.echo"

func job(fn string) store.NewJob {
	return store.NewJob{UUID: uuid.Must(uuid.NewV7()).String(), Tenant: "default", Func: fn, Args: json.RawMessage(`[1]`),
		Kwargs: json.RawMessage(`{}`), Context: json.RawMessage(`{}`), FuncString: fn + "(1)",
		Description: "bench", Channel: "root", Priority: 10, MaxRetries: 5}
}

func count(ctx context.Context, st store.Store, s abi.State) (int, error) {
	cs, err := st.Counts(ctx, "default")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range cs {
		n += c.Counts[s]
	}
	return n, nil
}
