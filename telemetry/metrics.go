package telemetry

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/wasmq/wasmq/abi"
)

// Buckets of the job histograms, in seconds: from a pooled call (a few
// µs) to the default timeout (30 s) and beyond.
var (
	// CallBuckets are those of wasmq_sandbox_call_seconds and
	// wasmq_job_run_seconds.
	CallBuckets = []float64{0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60}
	// QueueBuckets are those of wasmq_job_queue_seconds: a job ready now
	// starts within milliseconds on an idle node; a backlog holds it for
	// minutes or hours.
	QueueBuckets = []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600}
)

// TenantLabel is the label a series carries when a tenant may see it:
// /metrics shows a tenant's token only the series with its own name there.
const TenantLabel = "tenant"

// Metrics is one node's Prometheus registry and the series it records on
// the hot path. A nil *Metrics records nothing.
type Metrics struct {
	Registry *prometheus.Registry

	queue, run, call *prometheus.HistogramVec
	attempts         *prometheus.CounterVec
	sandbox          *prometheus.CounterVec
	// What attempts used (abi.Usage), by tenant and function.
	fuel, hostCalls, httpRequests, httpBytes *prometheus.CounterVec
	perFunc                                  sync.Map // tenant "\x00" func → *funcSeries

	// The leader's schedules (schedule.Observer).
	firingLate     *prometheus.HistogramVec
	firingOutcomes *prometheus.CounterVec
	pass           prometheus.Histogram
	passRead       prometheus.Counter

	// perTenant caches each tenant's series so that recording an
	// attempt is a map read and atomic adds, not a label hash per call.
	perTenant sync.Map // string → *tenantSeries
}

type funcSeries struct {
	fuel, hostCalls, httpRequests, httpIn, httpOut prometheus.Counter
}

type tenantSeries struct {
	queue, run, call prometheus.Observer
	attempts         map[abi.OutcomeKind]prometheus.Counter
}

// NewMetrics registers the job series (and the Go and process collectors)
// in a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	m.queue = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "wasmq_job_queue_seconds", Buckets: QueueBuckets,
		Help: "Time from when a job could run (created, or its eta) to when an attempt started, by tenant.",
	}, []string{TenantLabel})
	m.run = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "wasmq_job_run_seconds", Buckets: CallBuckets,
		Help: "Duration of an attempt in the host (instance taken or made, plugin call, outcome read), by tenant.",
	}, []string{TenantLabel})
	m.call = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "wasmq_sandbox_call_seconds", Buckets: CallBuckets,
		Help: "Duration of the plugin's export call in the sandbox alone, by tenant.",
	}, []string{TenantLabel})
	m.attempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wasmq_attempts_total",
		Help: "Attempts ended on this node, by tenant and outcome (done, nothing_to_do, retry, failed, sandbox, interrupted).",
	}, []string{TenantLabel, "outcome"})
	m.sandbox = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wasmq_sandbox_failures_total",
		Help: "Attempts the sandbox stopped or could not start, by tenant and exc_name (wasmq.Timeout, wasmq.Trap...).",
	}, []string{TenantLabel, "exc_name"})
	usage := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, append([]string{TenantLabel, "func"}, labels...))
	}
	m.fuel = usage("wasmq_fuel_total", "Fuel the attempts ended on this node used (function entries and loop iterations), by tenant and function.")
	m.hostCalls = usage("wasmq_host_calls_total", "Host functions called by attempts, other than the kernel's memory primitives, by tenant and function.")
	m.httpRequests = usage("wasmq_http_requests_total", "http_request calls made by attempts, by tenant and function.")
	m.httpBytes = usage("wasmq_http_bytes_total", "HTTP body bytes of attempts' requests (direction out) and responses (in), by tenant and function.", "direction")
	m.Registry.MustRegister(m.fuel, m.hostCalls, m.httpRequests, m.httpBytes)
	m.firingOutcomes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wasmq_schedule_firings_total",
		Help: "Firings of schedules this node asked for while leading, by tenant and outcome (fired, deduplicated, held, skipped, failed).",
	}, []string{TenantLabel, "outcome"})
	m.firingLate = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "wasmq_schedule_firing_delay_seconds", Buckets: QueueBuckets,
		Help: "Time from a schedule's due time to the creation of its job, by tenant.",
	}, []string{TenantLabel})
	m.pass = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "wasmq_schedule_pass_seconds", Buckets: CallBuckets,
		Help: "Duration of the leader's passes over the schedules, their firings included.",
	})
	m.passRead = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "wasmq_schedule_pass_reads_total",
		Help: "Schedules the leader's passes read (those whose next due time had come).",
	})
	m.Registry.MustRegister(m.firingOutcomes, m.firingLate, m.pass, m.passRead)
	m.Registry.MustRegister(m.queue, m.run, m.call, m.attempts, m.sandbox,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *Metrics) series(tenant string) *tenantSeries {
	if s, ok := m.perTenant.Load(tenant); ok {
		return s.(*tenantSeries)
	}
	s := &tenantSeries{queue: m.queue.WithLabelValues(tenant), run: m.run.WithLabelValues(tenant),
		call: m.call.WithLabelValues(tenant), attempts: map[abi.OutcomeKind]prometheus.Counter{}}
	for _, k := range []abi.OutcomeKind{abi.OutcomeDone, abi.OutcomeNothingToDo, abi.OutcomeRetry, abi.OutcomeFailed,
		abi.OutcomeSandbox, abi.OutcomeInterrupted} {
		s.attempts[k] = m.attempts.WithLabelValues(tenant, string(k))
	}
	got, _ := m.perTenant.LoadOrStore(tenant, s)
	return got.(*tenantSeries)
}

func (m *Metrics) funcSeries(tenant, fn string) *funcSeries {
	key := tenant + "\x00" + fn
	if s, ok := m.perFunc.Load(key); ok {
		return s.(*funcSeries)
	}
	s := &funcSeries{fuel: m.fuel.WithLabelValues(tenant, fn), hostCalls: m.hostCalls.WithLabelValues(tenant, fn),
		httpRequests: m.httpRequests.WithLabelValues(tenant, fn),
		httpIn:       m.httpBytes.WithLabelValues(tenant, fn, "in"), httpOut: m.httpBytes.WithLabelValues(tenant, fn, "out")}
	got, _ := m.perFunc.LoadOrStore(key, s)
	return got.(*funcSeries)
}

// Attempt records one ended attempt of job.
func (m *Metrics) Attempt(job *abi.Job, o *abi.Outcome) {
	if m == nil {
		return
	}
	s := m.series(job.Tenant)
	if job.DateStarted != nil {
		ready := job.DateCreated
		if job.ETA != nil && job.ETA.After(ready) {
			ready = *job.ETA
		}
		if wait := job.DateStarted.Sub(ready); wait >= 0 {
			s.queue.Observe(wait.Seconds())
		}
	}
	s.run.Observe(o.Duration.Seconds())
	if o.CallTime > 0 {
		s.call.Observe(o.CallTime.Seconds())
	}
	if c, ok := s.attempts[o.Kind]; ok {
		c.Inc()
	} else {
		m.attempts.WithLabelValues(job.Tenant, string(o.Kind)).Inc()
	}
	if o.ExcName != "" && (o.Kind == abi.OutcomeSandbox || isSandboxName(o.ExcName)) {
		m.sandbox.WithLabelValues(job.Tenant, o.ExcName).Inc()
	}
	if u := o.Usage; u != (abi.Usage{WallMS: u.WallMS}) {
		f := m.funcSeries(job.Tenant, job.Func)
		f.fuel.Add(float64(u.Fuel))
		f.hostCalls.Add(float64(u.HostCalls))
		f.httpRequests.Add(float64(u.HTTPRequests))
		f.httpIn.Add(float64(u.HTTPBytesIn))
		f.httpOut.Add(float64(u.HTTPBytesOut))
	}
}

// ScheduleFiring records one firing of a schedule of tenant's
// (schedule.Observer): its outcome, and for a job created how late.
func (m *Metrics) ScheduleFiring(tenant, outcome string, late time.Duration) {
	if m == nil {
		return
	}
	m.firingOutcomes.WithLabelValues(tenant, outcome).Inc()
	if outcome == "fired" { // schedule.Fired: a job created, whose lateness counts
		m.firingLate.WithLabelValues(tenant).Observe(late.Seconds())
	}
}

// SchedulePass records one of the leader's passes: n schedules read, d
// taken.
func (m *Metrics) SchedulePass(n int, d time.Duration) {
	if m == nil {
		return
	}
	m.pass.Observe(d.Seconds())
	m.passRead.Add(float64(n))
}

// isSandboxName tells the sandbox's failures that retry_on turned into
// retries, or that happen before the guest runs, from a guest's errors.
func isSandboxName(exc string) bool {
	switch exc {
	case abi.ExcTimeout, abi.ExcMemoryLimit, abi.ExcTrap, abi.ExcExit, abi.ExcInputTooLarge, abi.ExcOutputTooLarge,
		abi.ExcHTTPDenied, abi.ExcPluginNotFound, abi.ExcPluginInvalid, abi.ExcFuelExhausted, abi.ExcMemoryBudget:
		return true
	}
	return false
}

// HostStats is what the host tells of its instances.
type HostStats interface {
	Stats() abi.HostStats
}

// RunnerStats is what the runner tells of its work.
type RunnerStats interface {
	Stats() abi.RunnerStats
	Workers() int
}

// RegisterNode adds the node-wide series, read at each scrape: the host's
// modules and instances, the runner's counters and leadership. They carry
// no tenant label (they sum every tenant's work): only the admin sees them.
func (m *Metrics) RegisterNode(h HostStats, r RunnerStats) {
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	if h != nil {
		m.Registry.MustRegister(
			gauge("wasmq_host_modules", "Plugin modules loaded (shared and per tenant).", func() float64 { return float64(h.Stats().Modules) }),
			gauge("wasmq_host_instances_idle", "Instances kept idle in the pools.", func() float64 { return float64(h.Stats().IdleInstances) }),
			counter("wasmq_host_records_dropped_total", "Records of attempts not kept because their tenant was over host.record_rate.", func() float64 { return float64(h.Stats().RecordsDropped) }),
			gauge("wasmq_host_memory_bytes", "Memory every instance holds, idle or running: linear memories and kernel arenas as far as grown (at most host.max_memory).", func() float64 { return float64(h.Stats().MemoryBytes) }),
			gauge("wasmq_host_instances_idle_bytes", "Memory the idle instances hold: linear memories as far as written, tables at 8 bytes an entry (at most host.pool_memory).", func() float64 { return float64(h.Stats().IdleBytes) }),
			gauge("wasmq_host_instances_busy", "Attempts running in the host now.", func() float64 { return float64(h.Stats().Running) }),
			gauge("wasmq_host_pool_size", "Idle instances kept at most per (tenant, module).", func() float64 { return float64(h.Stats().PoolSize) }),
		)
	}
	if r != nil {
		st := func(f func(abi.RunnerStats) int64) func() float64 {
			return func() float64 { return float64(f(r.Stats())) }
		}
		m.Registry.MustRegister(
			counter("wasmq_runner_enqueued_total", "Jobs this node's scheduler enqueued for any node.", st(func(s abi.RunnerStats) int64 { return s.Enqueued })),
			counter("wasmq_runner_started_total", "Attempts this node started.", st(func(s abi.RunnerStats) int64 { return s.Started })),
			counter("wasmq_runner_done_total", "Attempts that ended done.", st(func(s abi.RunnerStats) int64 { return s.Done })),
			counter("wasmq_runner_failed_total", "Attempts that ended failed.", st(func(s abi.RunnerStats) int64 { return s.Failed })),
			counter("wasmq_runner_retried_total", "Attempts that ended in a retry.", st(func(s abi.RunnerStats) int64 { return s.Retried })),
			counter("wasmq_runner_interrupted_total", "Attempts cut short by a stop.", st(func(s abi.RunnerStats) int64 { return s.Interrupted })),
			counter("wasmq_runner_late_total", "Jobs that ended after their expected_at.", st(func(s abi.RunnerStats) int64 { return s.Late })),
			gauge("wasmq_runner_leader", "1 while this node leads the scheduling.", func() float64 {
				if r.Stats().Leader {
					return 1
				}
				return 0
			}),
			gauge("wasmq_runner_workers", "Jobs this node runs at once at most.", func() float64 { return float64(r.Workers()) }),
		)
	}
}
