// Package config reads wasmq.toml: one struct per section, each with its
// documented defaults and a validation whose errors name the TOML key.
package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/api"
	"github.com/wasmq/wasmq/enqueue"
	"github.com/wasmq/wasmq/host"
	"github.com/wasmq/wasmq/runner"
	"github.com/wasmq/wasmq/store"
	"github.com/wasmq/wasmq/telemetry"
)

// File is the whole of wasmq.toml.
type File struct {
	Server  Server           `toml:"server"`
	Store   store.Config     `toml:"store"`
	Runner  runner.Config    `toml:"runner"`
	Host    host.Config      `toml:"host"`
	Enqueue enqueue.Coalesce `toml:"enqueue"`
	// Telemetry is where traces go (metrics are always at /metrics).
	Telemetry telemetry.Config `toml:"telemetry"`
	Tenants   []Tenant         `toml:"tenants"`
	// Schedules are the periodic jobs the file owns (config/schedules.go).
	Schedules []Schedule `toml:"schedules"`
}

// Server is the [server] section.
type Server struct {
	// Listen is the HTTP address; WASMQ_LISTEN overrides it. Without
	// tenants only a loopback address is allowed. Defaults to
	// "127.0.0.1:8765".
	Listen string `toml:"listen"`
	// AdminToken sees and acts on every tenant's jobs. Give it in clear,
	// as AdminTokenSHA256 (hex), or name an environment variable in
	// AdminTokenEnv. Defaults to none.
	AdminToken       string `toml:"admin_token"`
	AdminTokenSHA256 string `toml:"admin_token_sha256"`
	AdminTokenEnv    string `toml:"admin_token_env"`
	// BodyLimit caps a request body in bytes. Defaults to 8 MiB
	// (api.DefaultBodyLimit).
	BodyLimit int64 `toml:"body_limit"`
	// LogLevel is debug, info, warn or error. Defaults to "info".
	LogLevel string `toml:"log_level"`
	// NoDelay runs each job at once, in the request that creates it, and
	// stores nothing (tests, development). Not a file key: set by
	// WASMQ_NO_DELAY=1. Defaults to false.
	NoDelay bool `toml:"-"`

	// The HTTP server's limits (docs/reliability.md): without them a
	// client that never finishes its request holds its connection, and
	// its file descriptor, for good.

	// ReadHeaderTimeout is how long a client may take to send a
	// request's headers. Defaults to 10s (DefaultReadHeaderTimeout).
	ReadHeaderTimeout abi.Duration `toml:"read_header_timeout"`
	// ReadTimeout is how long a client may take to send a whole request,
	// headers and body. Defaults to 60s (DefaultReadTimeout): a body of
	// body_limit at 1 Mbit/s.
	ReadTimeout abi.Duration `toml:"read_timeout"`
	// WriteTimeout is how long a request may take from the end of its
	// headers to the end of its answer, handling included (an upload is
	// compiled; a long list goes to a slow client). Defaults to 120s
	// (DefaultWriteTimeout).
	WriteTimeout abi.Duration `toml:"write_timeout"`
	// IdleTimeout closes a keep-alive connection that sent no new
	// request for this long. Defaults to 60s (DefaultIdleTimeout).
	IdleTimeout abi.Duration `toml:"idle_timeout"`
	// MaxConnections caps the open HTTP connections; keep it under the
	// process's open-file limit. At the cap a new connection closes the
	// oldest one that has not sent a whole request (so /healthz still
	// gets in), or waits for one to end. Defaults to 512
	// (DefaultMaxConnections).
	MaxConnections int `toml:"max_connections"`
	// MaxUploads caps the plugin uploads the node takes at once, each
	// holding its body (up to body_limit) until compiled; a tenant has
	// one at a time. Defaults to 4 (api.DefaultMaxUploads).
	MaxUploads int `toml:"max_uploads"`
	// MaxReads caps the reads (GETs, bulk actions) the node runs against
	// the store at once, below the store's connections so that writes
	// keep the rest; more wait their turn. Defaults to 4
	// (api.DefaultMaxReads).
	MaxReads int `toml:"max_reads"`
}

// Defaults of the [server] HTTP limits.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 60 * time.Second
	DefaultWriteTimeout      = 120 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultMaxConnections    = 512
)

// DefaultMaxChannels is a tenant's default max_channels: far more than
// a channel tree is made for, far less than a flood of made-up names.
const DefaultMaxChannels = 1000

// A tenant's default plugin quota: room for a few toolchains' largest
// modules (esbuild's Go build is 12 MB) and many small ones; MaxPlugins
// and MaxPluginBytes bound what may be set.
const (
	DefaultMaxPlugins                   = 100
	DefaultMaxPluginBytes host.ByteSize = 128 << 20
	MaxPlugins                          = 100_000
	MaxPluginBytes        host.ByteSize = 1 << 40
)

// A tenant's default schedule quota, and its bound: the leader's firer
// reads every schedule at each pass and fires them one after the other,
// so a tenant's thousands of schedules would make another's fire late.
const (
	DefaultMaxSchedules = 100
	MaxSchedules        = 100_000
)

// MaxReads bounds server.max_reads and a tenant's max_reads: each read
// at once holds a store connection, and PostgreSQL's own default allows
// 100 connections.
const MaxReads = 1000

// MaxFuelRate bounds fuel_rate: a tight loop spends about a fuel a
// nanosecond, so 1e12 a second is a thousand cores.
const MaxFuelRate = 1e12

// Tenant is one [[tenants]] entry.
type Tenant struct {
	// Name owns jobs and the plugins of plugins_dir/<name>/. Required.
	Name string `toml:"name"`
	// Token authenticates the tenant: in clear, as TokenSHA256 (hex), or
	// read from the environment variable TokenEnv. Exactly one is required.
	Token       string `toml:"token"`
	TokenSHA256 string `toml:"token_sha256"`
	TokenEnv    string `toml:"token_env"`
	// MaxPending caps the tenant's jobs waiting to run. Defaults to 0
	// (unlimited).
	MaxPending int `toml:"max_pending"`
	// MaxRunning caps the tenant's jobs enqueued or running at once,
	// across all nodes. Defaults to 0 (unlimited).
	MaxRunning int `toml:"max_running"`
	// MaxChannels caps the channels holding the tenant's jobs (in any
	// state, until vacuumed): a new channel name past it is refused with
	// 429. Every channel a job names lives in the scheduler's memory, so
	// there is no unlimited setting. Defaults to 1000 (DefaultMaxChannels).
	MaxChannels int `toml:"max_channels"`
	// MaxPlugins and MaxPluginBytes cap the tenant's private modules
	// (plugins_dir/<name>/*.wasm) on a node: their number and the bytes
	// of their files. An upload past either is refused with 429; a node
	// keeps every loaded module compiled in its memory, so there is no
	// unlimited setting. Default to 100 and "128MiB"
	// (DefaultMaxPlugins, DefaultMaxPluginBytes).
	MaxPlugins     int           `toml:"max_plugins"`
	MaxPluginBytes host.ByteSize `toml:"max_plugin_bytes"`
	// MaxSchedules caps the schedules the tenant holds: one more created
	// over the API is refused with 429 (schedules of [[schedules]] are the
	// operator's, not refused, but count). Every schedule is read and
	// fired by the leader, one after the other, so there is no unlimited
	// setting. Defaults to 100 (DefaultMaxSchedules).
	MaxSchedules int `toml:"max_schedules"`
	// MaxMemory bounds what the tenant's instances hold together on a
	// node, idle or running (linear memories and kernel arenas as far as
	// grown), as host.max_memory bounds the node's: a grow past it first
	// closes the tenant's idle instances, then is refused, and the
	// attempt ends wasmq.MemoryBudget and is retried. At least
	// host.memory_limit. Defaults to 0 (only the node's bound).
	MaxMemory host.ByteSize `toml:"max_memory"`
	// RecordRate and RecordBurst override host.record_rate and
	// host.record_burst for this tenant's records: a tenant whose
	// failures are being debugged may keep more, a noisy one less. The
	// burst is at least host.max_input + host.record_max_bytes. Default
	// to 0 (the node's).
	RecordRate  host.ByteSize `toml:"record_rate"`
	RecordBurst host.ByteSize `toml:"record_burst"`
	// Rate caps jobs created per second, with Burst at once. Defaults to
	// 0 (unlimited) and Burst to max(1, Rate).
	Rate  float64 `toml:"rate"`
	Burst int     `toml:"burst"`
	// FuelRate caps the fuel the tenant's attempts use per second (fuel
	// counts function entries and loop iterations, docs/abi.md): a token
	// bucket in the scheduler, charged when an attempt ends; a tenant
	// whose bucket is empty starts nothing until it refills. It also
	// weighs the tenant in fair share: a tenth of the rate, a tenth of
	// the workers when they are all busy. Defaults to 0 (unlimited).
	FuelRate float64 `toml:"fuel_rate"`
	// FuelBurst is the bucket's size: the fuel the tenant may use at once
	// after a quiet spell. Defaults to FuelRate (one second's worth).
	FuelBurst float64 `toml:"fuel_burst"`
	// MaxReads caps the tenant's reads (GETs, bulk actions) a node runs
	// at once; more wait their turn, and past eight waiting for each the
	// tenant is answered 429. Defaults to 2 (api.DefaultTenantMaxReads).
	MaxReads int `toml:"max_reads"`
	// SQLRoles are the PostgreSQL roles whose transactions create this
	// tenant's jobs with SQL (docs/sql.md); `wasmq migrate` and every node
	// at start grant them EXECUTE on the enqueue functions. PostgreSQL
	// store only. Defaults to none.
	SQLRoles []string `toml:"sql_roles"`
	// Record is which of the tenant's attempts keep a record for replay:
	// "off", "failures" or "all", over the functions' sidecars
	// (docs/replay.md). Defaults to "" (the sidecar's, else
	// host.record).
	Record string `toml:"record"`
}

// SQLTenants are the tenants as enqueueing from SQL sees them: roles and
// quotas; without [[tenants]], the "default" tenant with [store]
// sql_roles.
func (f File) SQLTenants() []store.SQLTenant {
	if len(f.Tenants) == 0 {
		return []store.SQLTenant{{Name: "default", Roles: f.Store.SQLRoles, Key: "store"}}
	}
	out := make([]store.SQLTenant, len(f.Tenants))
	for i, t := range f.Tenants {
		out[i] = store.SQLTenant{Name: t.Name, Roles: t.SQLRoles, MaxPending: t.MaxPending, MaxChannels: t.MaxChannels, Key: fmt.Sprintf("tenants[%d]", i)}
	}
	return out
}

// Load reads and validates a config file; "" means no file (defaults).
func Load(path string) (File, error) {
	var f File
	if path != "" {
		md, err := toml.DecodeFile(path, &f)
		if err != nil {
			var pe toml.ParseError
			if errors.As(err, &pe) {
				where := pe.ErrorWithPosition()
				var syntax map[string]any
				if _, serr := toml.DecodeFile(path, &syntax); serr == nil && pe.LastKey != "" {
					// The file parses: the error is a value's, and
					// LastKey is its key. The position follows.
					_, at, _ := strings.Cut(where, "\n")
					return f, fmt.Errorf("%s: %s: %s%s", path, pe.LastKey, pe.Message, strings.TrimRight(at, "\n"))
				}
				return f, fmt.Errorf("%s: %s", path, where)
			}
			return f, fmt.Errorf("%s: %w", path, err)
		}
		if und := md.Undecoded(); len(und) > 0 {
			keys := make([]string, len(und))
			for i, k := range und {
				keys[i] = k.String()
			}
			return f, fmt.Errorf("%s: unknown key %s", path, strings.Join(keys, ", "))
		}
	}
	f = f.WithDefaults()
	if err := f.Validate(); err != nil {
		if path != "" {
			return f, fmt.Errorf("%s: %w", path, err)
		}
		return f, err
	}
	return f, nil
}

// WithDefaults fills every section's defaults and environment overrides.
func (f File) WithDefaults() File {
	f = f.withEnv(os.Getenv)
	if f.Server.Listen == "" {
		f.Server.Listen = "127.0.0.1:8765"
	}
	if f.Server.BodyLimit == 0 {
		f.Server.BodyLimit = api.DefaultBodyLimit
	}
	if f.Server.LogLevel == "" {
		f.Server.LogLevel = "info"
	}
	for _, d := range []struct {
		v   *abi.Duration
		def time.Duration
	}{
		{&f.Server.ReadHeaderTimeout, DefaultReadHeaderTimeout}, {&f.Server.ReadTimeout, DefaultReadTimeout},
		{&f.Server.WriteTimeout, DefaultWriteTimeout}, {&f.Server.IdleTimeout, DefaultIdleTimeout},
	} {
		if *d.v == 0 {
			*d.v = abi.Duration(d.def)
		}
	}
	if f.Server.MaxConnections == 0 {
		f.Server.MaxConnections = DefaultMaxConnections
	}
	if f.Server.MaxUploads == 0 {
		f.Server.MaxUploads = api.DefaultMaxUploads
	}
	if f.Server.MaxReads == 0 {
		f.Server.MaxReads = api.DefaultMaxReads
	}
	for i := range f.Tenants {
		if f.Tenants[i].MaxReads == 0 {
			f.Tenants[i].MaxReads = api.DefaultTenantMaxReads
		}
		if f.Tenants[i].Burst == 0 {
			f.Tenants[i].Burst = max(1, int(f.Tenants[i].Rate))
		}
		if f.Tenants[i].MaxChannels == 0 {
			f.Tenants[i].MaxChannels = DefaultMaxChannels
		}
		if f.Tenants[i].MaxPlugins == 0 {
			f.Tenants[i].MaxPlugins = DefaultMaxPlugins
		}
		if f.Tenants[i].MaxSchedules == 0 {
			f.Tenants[i].MaxSchedules = DefaultMaxSchedules
		}
		if f.Tenants[i].MaxPluginBytes == 0 {
			f.Tenants[i].MaxPluginBytes = DefaultMaxPluginBytes
		}
		if f.Host.TenantPlugins == nil {
			f.Host.TenantPlugins = map[string]host.PluginQuota{}
		}
		f.Host.TenantPlugins[f.Tenants[i].Name] = host.PluginQuota{Modules: f.Tenants[i].MaxPlugins, Bytes: f.Tenants[i].MaxPluginBytes}
		if m := f.Tenants[i].MaxMemory; m > 0 {
			if f.Host.TenantMemory == nil {
				f.Host.TenantMemory = map[string]host.ByteSize{}
			}
			f.Host.TenantMemory[f.Tenants[i].Name] = m
		}
		if b := (host.RecordBudget{Rate: f.Tenants[i].RecordRate, Burst: f.Tenants[i].RecordBurst}); b != (host.RecordBudget{}) {
			if f.Host.TenantRecordBudget == nil {
				f.Host.TenantRecordBudget = map[string]host.RecordBudget{}
			}
			f.Host.TenantRecordBudget[f.Tenants[i].Name] = b
		}
		// The host applies a tenant's recording policy (docs/replay.md).
		if r := f.Tenants[i].Record; r != "" {
			if f.Host.TenantRecord == nil {
				f.Host.TenantRecord = map[string]string{}
			}
			f.Host.TenantRecord[f.Tenants[i].Name] = r
		}
		if f.Tenants[i].FuelBurst == 0 {
			f.Tenants[i].FuelBurst = f.Tenants[i].FuelRate
		}
	}
	if f.Enqueue.Window == 0 {
		f.Enqueue.Window = abi.Duration(enqueue.DefaultCoalesceWindow)
	}
	if f.Enqueue.MaxJobs == 0 {
		f.Enqueue.MaxJobs = enqueue.DefaultCoalesceMaxJobs
	}
	if f.Store.Timeout == 0 && f.Server.WriteTimeout > 0 {
		// Within the HTTP write timeout, so that the 503 reaches the
		// client: half of it when it is short.
		f.Store.Timeout = abi.Duration(max(store.MinTimeout, min(store.DefaultTimeout, f.Server.WriteTimeout.D()/2)))
	}
	f.Store = f.Store.WithDefaults()
	if f.Enqueue.Flushers == 0 {
		// SQLite has one writer: a second group would only wait for it.
		f.Enqueue.Flushers = 2
		if f.Store.Driver == "sqlite" {
			f.Enqueue.Flushers = 1
		}
	}
	if f.Enqueue.Hold == nil {
		// A PostgreSQL write is mostly its round trip and its flush;
		// SQLite's is shorter than the requests' way back to it.
		hold := f.Store.Driver != "sqlite"
		f.Enqueue.Hold = &hold
	}
	f.Runner = f.Runner.WithDefaults()
	f.Host = f.Host.WithDefaults()
	f.Telemetry = f.Telemetry.WithDefaults()
	return f
}

// withEnv applies the environment variables of docs/config.md: this is
// the one place, with the token_env keys, where wasmq reads its
// environment; the sections' packages only see the typed values.
func (f File) withEnv(getenv func(string) string) File {
	if v := getenv("WASMQ_LISTEN"); v != "" {
		f.Server.Listen = v
	}
	if getenv("WASMQ_NO_DELAY") == "1" {
		f.Server.NoDelay = true
	}
	if v := getenv("WASMQ_DATABASE_URL"); v != "" {
		f.Store.DSN = v
	}
	if v := getenv("WASMQ_OTLP_ENDPOINT"); v != "" {
		f.Telemetry.OTLPEndpoint = v
	}
	if v := getenv("WASMQ_CHANNELS"); v != "" {
		f.Runner.Channels = v
	}
	return f
}

// Validate returns every problem, each naming its key.
func (f File) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(f.Server.Listen); err != nil {
		errs = append(errs, fmt.Errorf("server.listen: %q is not host:port", f.Server.Listen))
	}
	if f.Server.BodyLimit < 1024 {
		errs = append(errs, fmt.Errorf("server.body_limit: must be at least 1024 bytes"))
	}
	switch f.Server.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("server.log_level: %q is not debug, info, warn or error", f.Server.LogLevel))
	}
	for _, d := range []struct {
		key string
		v   abi.Duration
	}{
		{"read_header_timeout", f.Server.ReadHeaderTimeout}, {"read_timeout", f.Server.ReadTimeout},
		{"write_timeout", f.Server.WriteTimeout}, {"idle_timeout", f.Server.IdleTimeout},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("server.%s: must be > 0 (without it a client that never finishes holds its connection)", d.key))
		}
	}
	if f.Server.ReadTimeout > 0 && f.Server.ReadHeaderTimeout > f.Server.ReadTimeout {
		errs = append(errs, fmt.Errorf("server.read_header_timeout: %s is longer than read_timeout (%s), which covers the headers too",
			f.Server.ReadHeaderTimeout.D(), f.Server.ReadTimeout.D()))
	}
	if f.Server.WriteTimeout > 0 && f.Store.Timeout >= f.Server.WriteTimeout {
		errs = append(errs, fmt.Errorf("server.write_timeout: %s is not longer than store.timeout (%s): "+
			"a request the store holds that long would get no answer", f.Server.WriteTimeout.D(), f.Store.Timeout.D()))
	}
	if f.Server.MaxUploads < 0 || f.Server.MaxUploads > 1000 {
		errs = append(errs, fmt.Errorf("server.max_uploads: must be between 1 and 1000 (0 means the default, %d), got %d", api.DefaultMaxUploads, f.Server.MaxUploads))
	}
	if f.Server.MaxReads < 0 || f.Server.MaxReads > MaxReads {
		errs = append(errs, fmt.Errorf("server.max_reads: must be between 1 and %d (0 means the default, %d), got %d", MaxReads, api.DefaultMaxReads, f.Server.MaxReads))
	}
	if f.Server.MaxConnections < 1 {
		errs = append(errs, fmt.Errorf("server.max_connections: must be at least 1"))
	}
	if _, err := f.AdminSHA256(); err != nil {
		errs = append(errs, err)
	}
	if f.Enqueue.Window <= 0 || f.Enqueue.Window.D() > time.Second {
		errs = append(errs, fmt.Errorf("enqueue.coalesce_window: must be > 0 and at most 1s (a request may wait this long for others)"))
	}
	if f.Enqueue.MaxJobs < 1 || f.Enqueue.MaxJobs > 100*abi.MaxBatch {
		errs = append(errs, fmt.Errorf("enqueue.coalesce_max_jobs: must be between 1 and %d", 100*abi.MaxBatch))
	}
	if f.Enqueue.Flushers < 1 || f.Enqueue.Flushers > 64 {
		errs = append(errs, fmt.Errorf("enqueue.coalesce_flushers: must be between 1 and 64"))
	}
	seen := map[string]bool{}
	for i, t := range f.Tenants {
		key := fmt.Sprintf("tenants[%d]", i)
		switch {
		case t.Name == "":
			errs = append(errs, fmt.Errorf("%s.name: is required", key))
		case seen[t.Name]:
			errs = append(errs, fmt.Errorf("%s.name: tenant %q is listed twice", key, t.Name))
		case t.Name == "default" || strings.ContainsAny(t.Name, "/\\. "):
			errs = append(errs, fmt.Errorf("%s.name: %q is reserved or not a folder-safe name", key, t.Name))
		}
		seen[t.Name] = true
		if _, err := t.SHA256(key); err != nil {
			errs = append(errs, err)
		}
		for _, n := range []struct {
			key string
			v   int
		}{{"max_pending", t.MaxPending}, {"max_running", t.MaxRunning}, {"burst", t.Burst}} {
			if n.v < 0 {
				errs = append(errs, fmt.Errorf("%s.%s: must be 0 (unlimited) or more, got %d", key, n.key, n.v))
			}
		}
		if !(t.Rate >= 0) || math.IsInf(t.Rate, 1) { // NaN fails every comparison
			errs = append(errs, fmt.Errorf("%s.rate: must be 0 (unlimited) or a finite number of jobs a second, got %v", key, t.Rate))
		}
		switch {
		case t.FuelRate < 0 || t.FuelRate > MaxFuelRate || t.FuelRate != t.FuelRate:
			errs = append(errs, fmt.Errorf("%s.fuel_rate: must be between 0 (unlimited) and %g fuel per second", key, float64(MaxFuelRate)))
		case t.FuelBurst < 0 || t.FuelBurst > MaxFuelRate*3600 || t.FuelBurst != t.FuelBurst:
			errs = append(errs, fmt.Errorf("%s.fuel_burst: must be between 0 (one second of fuel_rate) and an hour of the largest fuel_rate", key))
		case t.FuelBurst > 0 && t.FuelRate == 0:
			errs = append(errs, fmt.Errorf("%s.fuel_burst: needs a fuel_rate", key))
		}
		if t.MaxReads < 0 || t.MaxReads > MaxReads {
			errs = append(errs, fmt.Errorf("%s.max_reads: must be between 1 and %d (0 means the default, %d), got %d", key, MaxReads, api.DefaultTenantMaxReads, t.MaxReads))
		}
		if t.MaxChannels < 0 {
			errs = append(errs, fmt.Errorf("%s.max_channels: must be >= 1 (0 means the default, %d)", key, DefaultMaxChannels))
		}
		if t.MaxPlugins < 0 || t.MaxPlugins > MaxPlugins {
			errs = append(errs, fmt.Errorf("%s.max_plugins: must be between 1 and %d (0 means the default, %d), got %d", key, MaxPlugins, DefaultMaxPlugins, t.MaxPlugins))
		}
		if t.MaxSchedules < 0 || t.MaxSchedules > MaxSchedules {
			errs = append(errs, fmt.Errorf("%s.max_schedules: must be between 1 and %d (0 means the default, %d), got %d", key, MaxSchedules, DefaultMaxSchedules, t.MaxSchedules))
		}
		if t.MaxPluginBytes < 0 || t.MaxPluginBytes > MaxPluginBytes {
			errs = append(errs, fmt.Errorf("%s.max_plugin_bytes: must be between 1 byte and %s (0 means the default, %s), got %d", key, MaxPluginBytes, DefaultMaxPluginBytes, int64(t.MaxPluginBytes)))
		}
		switch {
		case t.MaxMemory < 0 || t.MaxMemory > host.MaxMemoryBound:
			errs = append(errs, fmt.Errorf("%s.max_memory: must be between 1 byte and %s (0 means only host.max_memory), got %d", key, host.MaxMemoryBound, int64(t.MaxMemory)))
		case t.MaxMemory > 0 && t.MaxMemory < f.Host.MemoryLimit:
			errs = append(errs, fmt.Errorf("%s.max_memory: %s is under host.memory_limit of %s: one of its jobs could not grow to its limit", key, t.MaxMemory, f.Host.MemoryLimit))
		}
		if err := host.CheckRecordBudget(host.RecordBudget{Rate: t.RecordRate, Burst: t.RecordBurst}, f.Host.MaxInput+f.Host.RecordMaxBytes); err != nil {
			errs = append(errs, fmt.Errorf("%s.%w", key, err))
		}
		if err := abi.CheckRecordPolicy(t.Record); err != nil {
			errs = append(errs, fmt.Errorf("%s.record: %w", key, err))
		}
	}
	if len(f.Tenants) > 0 && len(f.Store.SQLRoles) > 0 {
		errs = append(errs, fmt.Errorf("store.sql_roles: is for the single default tenant; with [[tenants]], give each its sql_roles"))
	}
	roles := map[string]string{}
	for _, t := range f.SQLTenants() {
		for _, r := range t.Roles {
			switch {
			case f.Store.Driver != "postgres":
				errs = append(errs, fmt.Errorf("%s.sql_roles: enqueueing from SQL needs store.driver = \"postgres\"", t.Key))
			case r == "" || len(r) > 63 || strings.IndexByte(r, 0) >= 0:
				errs = append(errs, fmt.Errorf("%s.sql_roles: %q is not a PostgreSQL role name (1 to 63 bytes)", t.Key, r))
			case roles[r] != "":
				errs = append(errs, fmt.Errorf("%s.sql_roles: role %q is mapped to tenant %q already", t.Key, r, roles[r]))
			}
			roles[r] = t.Name
		}
	}
	if len(f.Tenants) == 0 && f.Server.AdminToken == "" && f.Server.AdminTokenSHA256 == "" && f.Server.AdminTokenEnv == "" {
		if host, _, err := net.SplitHostPort(f.Server.Listen); err == nil {
			ip := net.ParseIP(host)
			if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
				errs = append(errs, fmt.Errorf("server.listen: %s is not a loopback address, and no [[tenants]] tokens are configured: "+
					"anyone could run jobs; configure tenants or listen on 127.0.0.1", f.Server.Listen))
			}
		}
	}
	if _, err := f.ScheduleDefinitions(); err != nil {
		errs = append(errs, err)
	}
	for _, err := range []error{f.Store.Validate(), f.Runner.Validate(), f.Host.Validate(), f.Telemetry.Validate()} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// SHA256 is the digest of the tenant's token, wherever it was given.
func (t Tenant) SHA256(key string) ([32]byte, error) {
	return tokenSHA(key+".token", t.Token, t.TokenSHA256, t.TokenEnv, true)
}

// AdminSHA256 is the admin token's digest, or nil when none is set.
func (f File) AdminSHA256() (*[32]byte, error) {
	s := f.Server
	if s.AdminToken == "" && s.AdminTokenSHA256 == "" && s.AdminTokenEnv == "" {
		return nil, nil
	}
	sum, err := tokenSHA("server.admin_token", s.AdminToken, s.AdminTokenSHA256, s.AdminTokenEnv, true)
	return &sum, err
}

func tokenSHA(key, clear, hexSum, env string, required bool) ([32]byte, error) {
	var sum [32]byte
	n := 0
	for _, v := range []string{clear, hexSum, env} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return sum, fmt.Errorf("%s: give exactly one of token, token_sha256 or token_env", key)
	}
	switch {
	case clear != "":
		if len(clear) < 16 {
			return sum, fmt.Errorf("%s: a token must be at least 16 characters", key)
		}
		return sha256.Sum256([]byte(clear)), nil
	case hexSum != "":
		b, err := hex.DecodeString(hexSum)
		if err != nil || len(b) != 32 {
			return sum, fmt.Errorf("%s_sha256: must be 64 hex digits (sha256 of the token)", key)
		}
		copy(sum[:], b)
		return sum, nil
	}
	v := os.Getenv(env)
	if len(v) < 16 {
		return sum, fmt.Errorf("%s_env: environment variable %s is unset or shorter than 16 characters", key, env)
	}
	return sha256.Sum256([]byte(v)), nil
}
