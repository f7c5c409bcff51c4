package runner

import (
	"fmt"
	"os"
	"time"

	"github.com/wasmq/wasmq/abi"
)

// Config is the [runner] section of wasmq.toml.
type Config struct {
	// Channels is the channel configuration (docs/channels.md); the
	// WASMQ_CHANNELS environment variable overrides it (read by package
	// config). Defaults to "root:4".
	Channels string `toml:"channels"`
	// NodeID names this node in worker_id and leases, followed by an
	// incarnation drawn at each start ("worker-1/3f9a02c1"), so a process
	// started again under the same name never adopts the leases of the one
	// before it. Defaults to "<hostname>-<pid>".
	NodeID string `toml:"node_id"`
	// Workers is how many jobs this node runs at once. Defaults to the
	// root channel's capacity.
	Workers int `toml:"workers"`
	// Lease is how long a node's claim on a job lasts without renewal; a
	// killed node's jobs come back after it. Defaults to 10s (DefaultLease).
	Lease abi.Duration `toml:"lease"`
	// ShutdownTimeout is how long a stopping node lets running jobs
	// finish before interrupting them. Defaults to 30s.
	ShutdownTimeout abi.Duration `toml:"shutdown_timeout"`
	// DefaultRetryInterval postpones a retry when neither the plugin nor
	// the function's retry_pattern gives a delay. Defaults to 10m
	// (abi.DefaultRetryInterval).
	DefaultRetryInterval abi.Duration `toml:"default_retry_interval"`
	// RemovalInterval is how long done and cancelled jobs are kept, for
	// channels without removal_interval. Defaults to 720h (30 days).
	RemovalInterval abi.Duration `toml:"removal_interval"`
	// VacuumEvery is how often the leader deletes old jobs. Defaults to 1h.
	VacuumEvery abi.Duration `toml:"vacuum_every"`
	// SafetyPoll re-reads the store in case a notification was lost.
	// Defaults to 5s.
	SafetyPoll abi.Duration `toml:"safety_poll"`
	// DueHorizon is how far ahead the scheduler holds the jobs to come
	// (channels that are not sequential); later ones stay in the store
	// until they come within it. Defaults to DefaultDueHorizon.
	DueHorizon abi.Duration `toml:"due_horizon"`
	// BatchSize caps the jobs enqueued, claimed or completed in one store
	// call. Defaults to 500.
	BatchSize int `toml:"batch_size"`
	// TenantMaxRunning caps each tenant's enqueued+started jobs across
	// all nodes; filled from [[tenants]] max_running. Defaults to none.
	TenantMaxRunning map[string]int `toml:"-"`
	// TenantFuelRate is each tenant's fuel per second (a token bucket in
	// the scheduler), with TenantFuelBurst at once; filled from
	// [[tenants]] fuel_rate and fuel_burst. Defaults to none (unlimited).
	TenantFuelRate  map[string]float64 `toml:"-"`
	TenantFuelBurst map[string]float64 `toml:"-"`
	// UsageFlush is how often the usage this node's attempts used is
	// added to the store's per-minute aggregate (and at stop). Defaults
	// to 5s (DefaultUsageFlush).
	UsageFlush abi.Duration `toml:"usage_flush"`
	// MaxClockOffset is how far this node's clock may be from the
	// store's before the node stops taking jobs and stops (see
	// DefaultMaxClockOffset). Must be under lease/2.
	MaxClockOffset abi.Duration `toml:"max_clock_offset"`
}

// DefaultUsageFlush: the usage aggregate is at most 5 s behind, for one
// statement per node every 5 s.
const DefaultUsageFlush = 5 * time.Second

// DefaultLease brings a killed node's jobs back within 10–13 s (the
// lease, plus the reaper's period of lease/3). A store unreachable for
// longer than a lease makes the node's running jobs run again once it is
// back. A 3 s lease (recovery within 4 s) costs about 11 % of PostgreSQL
// throughput in `wasmq bench` (renewals and reaper passes every second):
// docs/benchmarks.md, "Store core".
const DefaultLease = 10 * time.Second

// MaxLease bounds runner.lease: a lease is renewed every lease/3 however
// long its job runs, so a longer one only delays a dead node's jobs, and
// the leader's lead, a lease too, is held by a session bound PostgreSQL
// counts in milliseconds within an int32 (24.8 days).
const MaxLease = time.Hour

// DefaultMaxClockOffset: each node writes leases, etas and dates with its
// own clock, and another node reads them with its own. A leader whose
// clock is ahead of a worker's by more than about two thirds of a lease
// takes the worker's running jobs back and runs them a second time; a
// clock behind runs jobs late, or early on the others' side. Two seconds
// is far beyond what NTP keeps (milliseconds) and well under a 10 s lease.
const DefaultMaxClockOffset = 2 * time.Second

// DefaultDueHorizon: the scheduler holds a minute of jobs to come. It
// reads the next ones by eta every half horizon (an indexed read of what
// comes due), so a shorter horizon costs reads, a longer one memory when
// many jobs are scheduled within it.
const DefaultDueHorizon = time.Minute

// WithDefaults returns c with unset fields at their defaults.
func (c Config) WithDefaults() Config {
	if c.Channels == "" {
		c.Channels = "root:4"
	}
	if c.NodeID == "" {
		h, _ := os.Hostname()
		c.NodeID = fmt.Sprintf("%s-%d", h, os.Getpid())
	}
	def := func(d *abi.Duration, v time.Duration) {
		if *d == 0 {
			*d = abi.Duration(v)
		}
	}
	def(&c.Lease, DefaultLease)
	def(&c.ShutdownTimeout, 30*time.Second)
	def(&c.DefaultRetryInterval, abi.DefaultRetryInterval)
	def(&c.RemovalInterval, 30*24*time.Hour)
	def(&c.VacuumEvery, time.Hour)
	def(&c.SafetyPoll, 5*time.Second)
	def(&c.DueHorizon, DefaultDueHorizon)
	def(&c.UsageFlush, DefaultUsageFlush)
	def(&c.MaxClockOffset, min(DefaultMaxClockOffset, c.Lease.D()/4))
	if c.BatchSize == 0 {
		c.BatchSize = 500
	}
	if c.Workers == 0 {
		if t, err := ParseChannels(c.Channels); err == nil {
			c.Workers = t.Root().Capacity
		}
	}
	return c
}

// Floors of the periods a node keeps: below them a typo ("1ns" for
// "1s") would make the node re-read the store, vacuum or flush in a loop.
const (
	MinSafetyPoll  = 10 * time.Millisecond
	MinUsageFlush  = 10 * time.Millisecond
	MinDueHorizon  = 100 * time.Millisecond
	MinVacuumEvery = time.Second
	// MaxWorkers bounds runner.workers, as abi.MaxChannelCapacity bounds
	// a channel's: each worker is a goroutine and a slot of the
	// runner's queues, allocated at start.
	MaxWorkers = abi.MaxChannelCapacity
)

// Validate names the TOML key of the first problem, in the order of the
// keys: the lease before max_clock_offset, whose default derives from it.
func (c Config) Validate() error {
	if _, err := ParseChannels(c.Channels); err != nil {
		return fmt.Errorf("runner.channels: %w", err)
	}
	if c.Lease.D() < time.Second {
		return fmt.Errorf("runner.lease: must be at least 1s (leases are renewed every lease/3)")
	}
	if c.Lease.D() > MaxLease {
		return fmt.Errorf("runner.lease: must be at most %s (a dead node's jobs come back only after it)", MaxLease)
	}
	for _, d := range []struct {
		key string
		v   abi.Duration
		min time.Duration
	}{
		{"runner.default_retry_interval", c.DefaultRetryInterval, 0},
		{"runner.removal_interval", c.RemovalInterval, 0},
		{"runner.vacuum_every", c.VacuumEvery, MinVacuumEvery},
		{"runner.safety_poll", c.SafetyPoll, MinSafetyPoll},
		{"runner.due_horizon", c.DueHorizon, MinDueHorizon},
		{"runner.usage_flush", c.UsageFlush, MinUsageFlush},
		{"runner.max_clock_offset", c.MaxClockOffset, 0},
	} {
		switch {
		case d.v <= 0:
			return fmt.Errorf("%s: must be > 0", d.key)
		case d.v.D() < d.min:
			return fmt.Errorf("%s: must be at least %s, got %s", d.key, d.min, d.v.D())
		}
	}
	if c.ShutdownTimeout < 0 {
		return fmt.Errorf("runner.shutdown_timeout: must be >= 0")
	}
	if c.MaxClockOffset.D() >= c.Lease.D()/2 {
		return fmt.Errorf("runner.max_clock_offset: must be under half of runner.lease (%s): a clock off by more takes running jobs back", c.Lease.D())
	}
	if c.Workers < 1 || c.Workers > MaxWorkers {
		return fmt.Errorf("runner.workers: must be from 1 to %d", MaxWorkers)
	}
	if c.BatchSize < 1 || c.BatchSize > abi.MaxBatch {
		return fmt.Errorf("runner.batch_size: must be from 1 to %d", abi.MaxBatch)
	}
	return nil
}
