package host

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wasmq/wasmq/abi"
)

// Isolation modes of [host] isolation.
const (
	// IsolationPooled reuses instances of one (tenant, module digest) across
	// jobs, one job at a time: globals, memory and vars may carry over
	// between jobs of the same tenant.
	IsolationPooled = "pooled"
	// IsolationFresh instantiates a new instance for every job and discards
	// it afterwards: nothing carries over between jobs.
	IsolationFresh = "fresh"
)

// Config is the [host] section of wasmq.toml.
type Config struct {
	// PluginsDir holds shared modules (name.wasm, optional name.toml) and
	// one sub-folder per tenant for its private modules. Defaults to
	// "plugins".
	PluginsDir string `toml:"plugins_dir"`
	// CacheDir keeps compiled modules across restarts; "" disables the
	// on-disk cache (modules are still compiled once per digest in
	// memory). Defaults to "data/wasm-cache".
	CacheDir string `toml:"cache_dir"`
	// Isolation is "pooled" (instances reused per tenant and module) or
	// "fresh" (a new instance per job). Defaults to "pooled".
	Isolation string `toml:"isolation"`
	// TenantIsolation overrides Isolation per tenant, e.g.
	// { untrusted = "fresh" }. Defaults to none.
	TenantIsolation map[string]string `toml:"tenant_isolation"`
	// Timeout is the wall-clock limit of one attempt when the function's
	// config has none. Defaults to 30s.
	Timeout abi.Duration `toml:"timeout"`
	// MemoryLimit caps an instance's linear memory (and its kernel
	// memory) when the function's config has none: bytes or "64MiB".
	// Defaults to "256MiB".
	MemoryLimit ByteSize `toml:"memory_limit"`
	// TableLimit caps the entries of each of an instance's tables, as
	// MemoryLimit caps its linear memory: a module with a table that
	// starts larger is refused at load, and a table.grow that would pass
	// it ends the attempt with wasmq.MemoryLimit. wazero keeps 8 bytes
	// per entry. Defaults to 1048576 entries (DefaultTableLimit, 8 MiB).
	TableLimit int64 `toml:"table_limit"`
	// MaxInput is the largest input document. Defaults to "1MiB".
	MaxInput ByteSize `toml:"max_input"`
	// MaxOutput is the largest output a plugin may set. Defaults to "4MiB".
	MaxOutput ByteSize `toml:"max_output"`
	// ReloadInterval is how often plugins_dir is polled for added,
	// replaced and removed files. Defaults to 1s.
	ReloadInterval abi.Duration `toml:"reload_interval"`
	// PoolSize is how many idle instances are kept per (tenant, module);
	// the runner may raise it to its worker count with SetPoolSize.
	// Defaults to 4.
	PoolSize int `toml:"pool_size"`
	// MaxUses recycles a pooled instance after this many jobs. Defaults
	// to 1000.
	MaxUses int `toml:"max_uses"`
	// RecycleMemory recycles a pooled instance whose linear memory grew
	// past this mark. Defaults to "64MiB".
	RecycleMemory ByteSize `toml:"recycle_memory"`
	// PoolMemory bounds the memory (linear memories as far as written,
	// tables at 8 bytes an entry) the idle instances of every pool hold
	// together; pooling one past it closes those pooled longest ago.
	// Defaults to "512MiB" (DefaultPoolMemory).
	PoolMemory ByteSize `toml:"pool_memory"`
	// MaxMemory bounds what the instances of the node hold together, idle
	// or running: their linear memories and kernel arenas, as far as
	// grown. A grow past it first closes idle instances, then is refused
	// (the attempt ends wasmq.MemoryBudget, retried; memory.go). 0 means
	// the default: DefaultMaxMemoryShare of SystemMemory, at least
	// memory_limit, or no bound where the system does not say.
	MaxMemory ByteSize `toml:"max_memory"`
	// TenantMemory bounds, on this node, what each tenant's instances
	// hold together, as MaxMemory the node's; filled from each
	// [[tenants]] max_memory. A tenant not listed has only the node's
	// bound. Defaults to none.
	TenantMemory map[string]ByteSize `toml:"-"`
	// MaxLogLines caps the plugin log lines kept per attempt. Defaults
	// to 200.
	MaxLogLines int `toml:"max_log_lines"`
	// MaxLogBytes caps the bytes of plugin log lines kept per attempt.
	// Defaults to "64KiB".
	MaxLogBytes ByteSize `toml:"max_log_bytes"`
	// MaxHTTPResponse caps the body an http_request may read. Defaults
	// to "4MiB".
	MaxHTTPResponse ByteSize `toml:"max_http_response"`
	// Record is which attempts keep a record for replay (docs/replay.md)
	// when neither the tenant nor the function's sidecar says: "off",
	// "failures" (attempts that did not end done) or "all". Defaults to
	// "failures" (DefaultRecord).
	Record string `toml:"record"`
	// TenantRecord overrides the policy per tenant, over the sidecars
	// (the operator's word over the plugin author's); filled from each
	// [[tenants]] record. Defaults to none.
	TenantRecord map[string]string `toml:"tenant_record"`
	// TenantPlugins bounds each tenant's private modules, filled from
	// each [[tenants]] max_plugins and max_plugin_bytes; an upload past
	// either is refused. A tenant not listed, and the shared modules,
	// have no bound. Defaults to none.
	TenantPlugins map[string]PluginQuota `toml:"-"`
	// RecordMaxBytes caps a record's tape: a longer tape keeps its first
	// calls and marks the record incomplete; the job goes on as it
	// would. Defaults to "1MiB" (DefaultRecordMaxBytes).
	RecordMaxBytes ByteSize `toml:"record_max_bytes"`
	// RecordRate and RecordBurst bound the bytes of the records each
	// tenant's attempts keep on this node: RecordRate a second, at most
	// RecordBurst at once (a token bucket). A record past them is not
	// kept: the attempt says so in its log and the job goes on as it
	// would. Default to "1MiB" and "64MiB" (DefaultRecordRate,
	// DefaultRecordBurst).
	RecordRate  ByteSize `toml:"record_rate"`
	RecordBurst ByteSize `toml:"record_burst"`
	// TenantRecordBudget overrides RecordRate and RecordBurst per
	// tenant (a zero field keeps the node's), filled from each
	// [[tenants]] record_rate and record_burst: a tenant whose failures
	// are being debugged may keep more, a noisy one less. Defaults to
	// none.
	TenantRecordBudget map[string]RecordBudget `toml:"-"`
	// CompileTimeout and CompileMemory bound the compile of a module in a
	// child process, when CompileCommand names one: past either, the
	// module is refused and the child killed. Defaults to 60s and "1GiB"
	// (DefaultCompileTimeout, DefaultCompileMemory).
	CompileTimeout abi.Duration `toml:"compile_timeout"`
	CompileMemory  ByteSize     `toml:"compile_memory"`
	// CompileCommand is the program and arguments that compile a module
	// read from stdin into CacheDir (CompileChild), given by the edge:
	// `wasmq serve` names itself. Empty: modules compile in this process,
	// bounded only by the shapes instrument refuses.
	CompileCommand []string `toml:"-"`
	// SweepCache: cache_dir is this node's alone, so at start what it
	// keeps of modules no longer loaded is removed (cachefiles.go); given
	// by the edge (`wasmq serve`). Off, such files stay, as they do for
	// hosts that share a folder (tests).
	SweepCache bool `toml:"-"`
}

// PluginQuota is what a tenant's private modules may take of a node:
// their number and the bytes of their .wasm files, in its folder.
type PluginQuota struct {
	Modules int
	Bytes   ByteSize
}

// DefaultPoolMemory is host.pool_memory's default: a few hundred idle
// instances of the usual Rust and AssemblyScript modules (1–2 MiB each),
// dozens of Go's; maxPoolMemory bounds it.
const (
	DefaultPoolMemory ByteSize = 512 << 20
	maxPoolMemory     ByteSize = 1 << 40
)

// Defaults of the compile bounds: esbuild's 14 MB Go build compiles in
// 12.5 s with an RSS of 341 MB.
const (
	DefaultCompileTimeout          = 60 * time.Second
	DefaultCompileMemory  ByteSize = 1 << 30
)

// Defaults of the recording keys.
const (
	DefaultRecord                  = abi.RecordFailures
	DefaultRecordMaxBytes ByteSize = 1 << 20
	// DefaultRecordRate and DefaultRecordBurst: a failing attempt keeps
	// its record (input and tape, up to 2 MiB by default) in the store,
	// so a tenant's jobs failing in a loop wrote records as fast as the
	// workers ran them: 8 workers whose attempts fail every 50 ms on
	// full tapes would write 320 MiB a second. 1 MiB a second keeps every
	// record of attempts with tapes of kilobytes, and 64 MiB at once an
	// outage's burst of them.
	DefaultRecordRate  ByteSize = 1 << 20
	DefaultRecordBurst ByteSize = 64 << 20
)

// WithDefaults returns c with every unset field at its documented default.
func (c Config) WithDefaults() Config {
	if c.PluginsDir == "" {
		c.PluginsDir = "plugins"
	}
	if c.CacheDir == "" {
		c.CacheDir = "data/wasm-cache"
	}
	if c.Isolation == "" {
		c.Isolation = IsolationPooled
	}
	if c.Timeout == 0 {
		c.Timeout = abi.Duration(30 * time.Second)
	}
	if c.MemoryLimit == 0 {
		c.MemoryLimit = 256 << 20
	}
	if c.TableLimit == 0 {
		c.TableLimit = DefaultTableLimit
	}
	if c.MaxInput == 0 {
		c.MaxInput = 1 << 20
	}
	if c.MaxOutput == 0 {
		c.MaxOutput = 4 << 20
	}
	if c.ReloadInterval == 0 {
		c.ReloadInterval = abi.Duration(time.Second)
	}
	if c.PoolSize == 0 {
		c.PoolSize = 4
	}
	if c.MaxUses == 0 {
		c.MaxUses = 1000
	}
	if c.RecycleMemory == 0 {
		c.RecycleMemory = 64 << 20
	}
	if c.PoolMemory == 0 {
		c.PoolMemory = DefaultPoolMemory
	}
	if c.MaxMemory == 0 {
		if d := DefaultMaxMemory(); d > 0 {
			c.MaxMemory = max(d, c.MemoryLimit)
		}
	}
	if c.MaxLogLines == 0 {
		c.MaxLogLines = 200
	}
	if c.MaxLogBytes == 0 {
		c.MaxLogBytes = 64 << 10
	}
	if c.MaxHTTPResponse == 0 {
		c.MaxHTTPResponse = 4 << 20
	}
	if c.Record == "" {
		c.Record = DefaultRecord
	}
	if c.CompileTimeout == 0 {
		c.CompileTimeout = abi.Duration(DefaultCompileTimeout)
	}
	if c.CompileMemory == 0 {
		c.CompileMemory = DefaultCompileMemory
	}
	if c.RecordMaxBytes == 0 {
		c.RecordMaxBytes = DefaultRecordMaxBytes
	}
	if c.RecordRate == 0 {
		c.RecordRate = DefaultRecordRate
	}
	if c.RecordBurst == 0 {
		c.RecordBurst = DefaultRecordBurst
	}
	return c
}

// RecordBudget is a tenant's record_rate and record_burst.
type RecordBudget struct {
	Rate, Burst ByteSize
}

// recordBudget is what tenant's records are kept within, and the keys
// that say so.
func (c Config) recordBudget(tenant string) (rate, burst ByteSize, rateKey, burstKey string) {
	rate, burst, rateKey, burstKey = c.RecordRate, c.RecordBurst, "host.record_rate", "host.record_burst"
	if b := c.TenantRecordBudget[tenant]; b.Rate > 0 {
		rate, rateKey = b.Rate, "the tenant's record_rate"
	}
	if b := c.TenantRecordBudget[tenant]; b.Burst > 0 {
		burst, burstKey = b.Burst, "the tenant's record_burst"
	}
	return rate, burst, rateKey, burstKey
}

// Validate names the TOML key of the first problem.
// MinReloadInterval is the floor of host.reload_interval.
const MinReloadInterval = 10 * time.Millisecond

func (c Config) Validate() error {
	if c.PluginsDir == "" {
		return fmt.Errorf("host.plugins_dir: must name a folder")
	}
	if err := checkIsolation(c.Isolation); err != nil {
		return fmt.Errorf("host.isolation: %w", err)
	}
	for t, v := range c.TenantIsolation {
		if err := checkIsolation(v); err != nil {
			return fmt.Errorf("host.tenant_isolation.%s: %w", t, err)
		}
	}
	if err := abi.CheckRecordPolicy(c.Record); err != nil {
		return fmt.Errorf("host.record: %w", err)
	}
	for t, v := range c.TenantRecord {
		if err := abi.CheckRecordPolicy(v); err != nil {
			return fmt.Errorf("host.tenant_record.%s: %w", t, err)
		}
	}
	if c.RecordMaxBytes < 0 {
		return fmt.Errorf("host.record_max_bytes: must be >= 0")
	}
	if c.RecordRate < 0 || c.RecordRate > MaxMemoryBound {
		return fmt.Errorf("host.record_rate: must be between 1 byte and %s a second (0 means the default, %s)", MaxMemoryBound, DefaultRecordRate)
	}
	if c.RecordBurst < 0 || c.RecordBurst > MaxMemoryBound {
		return fmt.Errorf("host.record_burst: must be between 1 byte and %s (0 means the default, %s)", MaxMemoryBound, DefaultRecordBurst)
	}
	if c.RecordBurst > 0 && c.RecordBurst < c.MaxInput+c.RecordMaxBytes {
		return fmt.Errorf("host.record_burst: %s is under host.max_input + host.record_max_bytes (%s): the largest record could never be kept", c.RecordBurst, c.MaxInput+c.RecordMaxBytes)
	}
	switch {
	case c.Timeout <= 0:
		return fmt.Errorf("host.timeout: must be > 0")
	case c.MemoryLimit < wasmPage:
		return fmt.Errorf("host.memory_limit: must be at least one 64KiB page")
	case c.MemoryLimit > 4<<30:
		return fmt.Errorf("host.memory_limit: must be at most 4GiB")
	case c.TableLimit < 1 || c.TableLimit > maxTableLimit:
		return fmt.Errorf("host.table_limit: must be between 1 and %d entries", maxTableLimit)
	case c.MaxInput <= 0:
		return fmt.Errorf("host.max_input: must be > 0")
	case c.MaxOutput <= 0:
		return fmt.Errorf("host.max_output: must be > 0")
	case c.ReloadInterval < 0:
		return fmt.Errorf("host.reload_interval: must be >= 0")
	case c.ReloadInterval > 0 && c.ReloadInterval.D() < MinReloadInterval:
		// A typo ("1ns" for "1s") would rescan plugins_dir in a loop.
		return fmt.Errorf("host.reload_interval: must be at least %s, got %s", MinReloadInterval, c.ReloadInterval.D())
	case c.PoolSize < 0:
		return fmt.Errorf("host.pool_size: must be >= 0")
	case c.MaxUses < 0:
		return fmt.Errorf("host.max_uses: must be >= 0")
	case c.RecycleMemory < 0:
		return fmt.Errorf("host.recycle_memory: must be >= 0")
	case c.PoolMemory < 0 || c.PoolMemory > maxPoolMemory:
		return fmt.Errorf("host.pool_memory: must be between 1 byte and %s (0 means the default, %s)", maxPoolMemory, DefaultPoolMemory)
	case c.MaxMemory < 0 || c.MaxMemory > MaxMemoryBound:
		return fmt.Errorf("host.max_memory: must be between 1 byte and %s (0 means the default, %d%% of the system's memory)", MaxMemoryBound, int(DefaultMaxMemoryShare*100))
	case c.MaxMemory > 0 && c.MaxMemory < c.MemoryLimit:
		return fmt.Errorf("host.max_memory: %s is under host.memory_limit of %s: a job could not grow to its limit", c.MaxMemory, c.MemoryLimit)
	case c.MaxLogLines < 0:
		return fmt.Errorf("host.max_log_lines: must be >= 0")
	case c.MaxLogBytes < 0:
		return fmt.Errorf("host.max_log_bytes: must be >= 0")
	case c.MaxHTTPResponse < 0:
		return fmt.Errorf("host.max_http_response: must be >= 0")
	case c.CompileTimeout < 0 || c.CompileTimeout > 0 && c.CompileTimeout.D() < time.Second:
		return fmt.Errorf("host.compile_timeout: must be at least 1s")
	case c.CompileMemory < 0 || c.CompileMemory > 0 && c.CompileMemory < 64<<20:
		return fmt.Errorf("host.compile_memory: must be at least 64MiB (the child's runtime alone takes ~30 MB)")
	}
	return nil
}

func checkIsolation(v string) error {
	if v != IsolationPooled && v != IsolationFresh {
		return fmt.Errorf("%q is not an isolation mode; use %q or %q", v, IsolationPooled, IsolationFresh)
	}
	return nil
}

// isolation is the mode that applies to tenant.
func (c Config) isolation(tenant string) string {
	if v, ok := c.TenantIsolation[tenant]; ok {
		return v
	}
	return c.Isolation
}

const wasmPage = 65536

// DefaultTableLimit is host.table_limit's default: 1Mi entries, 8 MiB in
// wazero. Toolchains size a table by the functions a module calls
// indirectly: 32 entries for the Rust example, 6231 for the Go one.
const DefaultTableLimit = 1 << 20

// maxTableLimit is the largest table wazero accepts (1<<27 entries, 1 GiB).
const maxTableLimit = 1 << 27

// ByteSize is a number of bytes read from TOML as an integer or a string
// such as "64MiB", "512KiB", "1GB" or "16 pages" (64KiB wasm pages).
type ByteSize int64

// ParseByteSize reads the forms ByteSize accepts.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	num := strings.TrimRightFunc(t, func(r rune) bool { return r < '0' || r > '9' })
	unit := strings.ToLower(strings.TrimSpace(t[len(num):]))
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size (use e.g. 65536, \"64MiB\" or \"16 pages\")", s)
	}
	mult := map[string]int64{
		"": 1, "b": 1, "k": 1 << 10, "kb": 1000, "kib": 1 << 10, "m": 1 << 20, "mb": 1000 * 1000,
		"mib": 1 << 20, "g": 1 << 30, "gb": 1000 * 1000 * 1000, "gib": 1 << 30,
		"page": wasmPage, "pages": wasmPage,
	}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("%q has an unknown unit %q (use B, KiB, MiB, GiB, KB, MB, GB or pages)", s, unit)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return ByteSize(n * mult), nil
}

func (b *ByteSize) UnmarshalText(t []byte) error {
	v, err := ParseByteSize(string(t))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

func (b ByteSize) MarshalText() ([]byte, error) {
	switch {
	case b != 0 && b%(1<<30) == 0:
		return []byte(fmt.Sprintf("%dGiB", b>>30)), nil
	case b != 0 && b%(1<<20) == 0:
		return []byte(fmt.Sprintf("%dMiB", b>>20)), nil
	case b != 0 && b%(1<<10) == 0:
		return []byte(fmt.Sprintf("%dKiB", b>>10)), nil
	}
	return []byte(strconv.FormatInt(int64(b), 10)), nil
}

func (b ByteSize) String() string { t, _ := b.MarshalText(); return string(t) }

// CheckRecordBudget refuses a tenant's record budget out of bounds, or
// whose burst could never keep the largest record (largest: max_input +
// record_max_bytes), naming the field.
func CheckRecordBudget(b RecordBudget, largest ByteSize) error {
	switch {
	case b.Rate < 0 || b.Rate > MaxMemoryBound:
		return fmt.Errorf("record_rate: must be between 1 byte and %s a second (0 means host.record_rate)", MaxMemoryBound)
	case b.Burst < 0 || b.Burst > MaxMemoryBound:
		return fmt.Errorf("record_burst: must be between 1 byte and %s (0 means host.record_burst)", MaxMemoryBound)
	case b.Burst > 0 && b.Burst < largest:
		return fmt.Errorf("record_burst: %s is under host.max_input + host.record_max_bytes (%s): the largest record could never be kept", b.Burst, largest)
	}
	return nil
}
