// Package host runs wasmq job functions: WebAssembly plugins written with
// the official Extism PDKs, on wazero, with the extism:host/env kernel and
// wasmq's extism:host/user functions implemented in Go.
//
// It owns the plugin registry (plugins_dir, sidecar config, hot reload),
// compilation (once per digest, cached on disk), sandbox limits (timeout,
// memory, input/output size, HTTP allowlist) and instance pools.
package host

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/wasmq/wasmq/abi"
	"golang.org/x/time/rate"
)

// ChildEnqueuer enqueues a child job for parent's tenant from the JSON body
// of POST /v1/jobs, for wasmq_enqueue_v1.
type ChildEnqueuer func(ctx context.Context, parent *abi.Job, request []byte) (uuid string, err error)

// Option changes how New builds a Host.
type Option func(*options)

type options struct {
	enqueue       ChildEnqueuer
	allowLoopback bool
	noReload      bool
	noMeter       bool
	// observe sees every completed call's raw input and output (tests).
	observe func(input, output []byte, rc int32, errMsg string)
}

// WithEnqueuer lets plugins enqueue child jobs through wasmq_enqueue_v1.
func WithEnqueuer(e ChildEnqueuer) Option { return func(o *options) { o.enqueue = e } }

// WithAllowLoopback lets http_request reach loopback and private addresses.
// For tests only: in production plugins must never reach the node itself.
func WithAllowLoopback() Option { return func(o *options) { o.allowLoopback = true } }

// withoutReload disables the polling goroutine (tests drive Rescan).
func withoutReload() Option { return func(o *options) { o.noReload = true } }

// Host runs job functions. All methods are safe for concurrent use.
type Host struct {
	cfg  Config
	log  zerolog.Logger
	opts options
	rt   wazero.Runtime
	// bare, made when the compilation cache cannot be written, compiles
	// and runs the modules loaded since (see compileModule); guarded by rtMu.
	bare wazero.Runtime
	rtMu sync.Mutex
	// provided maps "module\x00name" to every function the host provides.
	provided map[string]api.FunctionDefinition
	http     *httpClient

	compileMu sync.Mutex
	// uploads holds one lock a tenant (its folder), taken across an
	// upload's quota check, compile and write: a tenant's uploads go
	// one at a time, so a tenant sending many at once waits for its
	// own and holds the compiler one compile at a time, not the queue
	// of every other tenant. Guarded by mu.
	uploads map[string]*sync.Mutex
	// idleFirst..idleLast list the pooled instances, the longest pooled
	// first, and idleBytes is what they hold: at most host.pool_memory
	// (pool.go).
	idleFirst, idleLast *instance
	idleBytes           uint64
	mu                  sync.Mutex
	// memHeld is what every instance's memory and kernel arena hold, at
	// most memLimit (host.max_memory); memTenants holds each tenant's
	// share (memory.go). Guarded by memMu, taken after mu, never before.
	memMu      sync.Mutex
	memHeld    uint64
	memLimit   uint64
	memTenants map[string]*tenantMemory
	// recLimits holds each tenant's record bucket (recordbudget.go),
	// guarded by recMu; recordsDropped counts the records not kept.
	recMu          sync.Mutex
	recLimits      map[string]*rate.Limiter
	recordsDropped atomic.Uint64
	codes          map[string]*compiled
	mods           map[modKey]*module
	poolSize       atomic.Int64

	// kill cancels every running attempt when Close gives up waiting.
	killCtx context.Context
	kill    context.CancelFunc

	ready   atomic.Bool
	stop    chan struct{}
	stopped chan struct{}
	closed  atomic.Bool
	running atomic.Int64 // attempts in Run
}

// New starts a host: it loads plugins_dir once (so Ready is true on
// return) and then polls it every reload_interval.
func New(cfg Config, log zerolog.Logger, opts ...Option) (*Host, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h := &Host{
		cfg:        cfg,
		log:        log.With().Str("component", "host").Logger(),
		codes:      map[string]*compiled{},
		mods:       map[modKey]*module{},
		uploads:    map[string]*sync.Mutex{},
		memTenants: map[string]*tenantMemory{},
		recLimits:  map[string]*rate.Limiter{},
		memLimit:   uint64(cfg.MaxMemory),
		stop:       make(chan struct{}),
		stopped:    make(chan struct{}),
	}
	for _, o := range opts {
		o(&h.opts)
	}
	h.killCtx, h.kill = context.WithCancel(context.Background())
	h.poolSize.Store(int64(cfg.PoolSize))
	h.http = newHTTPClient(h.opts.allowLoopback, int64(cfg.MaxHTTPResponse))
	if err := h.startRuntime(context.Background()); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.PluginsDir, 0o755); err != nil {
		h.rt.Close(context.Background())
		return nil, fmt.Errorf("host.plugins_dir: %w", err)
	}
	h.scan(context.Background())
	h.sweepCache()
	h.ready.Store(true)
	if h.opts.noReload || cfg.ReloadInterval == 0 {
		close(h.stopped)
	} else {
		go h.reloadLoop()
	}
	return h, nil
}

func (h *Host) startRuntime(ctx context.Context) error {
	var cache wazero.CompilationCache
	if h.cfg.CacheDir != "" {
		var err error
		if cache, err = wazero.NewCompilationCacheWithDir(h.cfg.CacheDir); err != nil {
			return fmt.Errorf("host.cache_dir: %w", err)
		}
	}
	rt, provided, err := h.newRuntime(ctx, cache)
	if err != nil {
		return err
	}
	h.rt, h.provided = rt, provided
	return nil
}

// newRuntime makes a runtime with the host's modules in it, compiling
// through cache when there is one.
func (h *Host) newRuntime(ctx context.Context, cache wazero.CompilationCache) (wazero.Runtime, map[string]api.FunctionDefinition, error) {
	rc := wazero.NewRuntimeConfig().
		// Deadlines are enforced by the countdown instrument() adds,
		// which is far cheaper than wazero's check at every loop
		// iteration (instrument.go).
		WithCloseOnContextDone(false).
		// Traps name functions from the name section; DWARF line numbers
		// would be wrong after instrument shifts the code section.
		WithDebugInfoEnabled(false).
		// Memory limits are per function, enforced by limitedMemory; this
		// only keeps wazero from capping below what a function may ask.
		WithMemoryLimitPages(65536)
	if cache != nil {
		rc = rc.WithCompilationCache(cache)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	provided := map[string]api.FunctionDefinition{}
	add := func(m api.Module, err error) error {
		if err != nil {
			return fmt.Errorf("host modules: %w", err)
		}
		for name, def := range m.ExportedFunctionDefinitions() {
			provided[m.Name()+"\x00"+name] = def
		}
		return nil
	}
	err := add(instantiateHostModule(ctx, rt, abi.HostEnvModule, counted(envFunctions(), h.opts.noMeter)))
	if err == nil {
		err = add(instantiateHostModule(ctx, rt, abi.HostUserModule, counted(userFunctions(), h.opts.noMeter)))
	}
	if err == nil {
		err = add(instantiateCheckModule(ctx, rt))
	}
	if err == nil {
		if _, werr := wasi_snapshot_preview1.Instantiate(ctx, rt); werr != nil {
			err = fmt.Errorf("host modules: %w", werr)
		}
	}
	if err == nil {
		err = add(rt.Module(wasi_snapshot_preview1.ModuleName), nil)
	}
	if err != nil {
		rt.Close(ctx)
		return nil, nil, err
	}
	return rt, provided, nil
}

// compileModule compiles a module, through the compilation cache when it
// can. The cache only saves compiling again: a cache_dir that cannot be
// written (its disk full, read-only) must not keep modules from loading,
// or a node restarted on a full disk would fail every job. After the
// first such failure the host compiles on a runtime without the cache
// (made then, once), which also runs what it compiled; the rest stays
// on the first runtime.
func (h *Host) compileModule(ctx context.Context, inst []byte) (wazero.CompiledModule, wazero.Runtime, error) {
	h.rtMu.Lock()
	rt := h.rt
	if h.bare != nil {
		rt = h.bare
	}
	h.rtMu.Unlock()
	cm, err := rt.CompileModule(ctx, inst)
	var pe *fs.PathError
	var le *os.LinkError
	if err == nil || rt != h.rt || !(errors.As(err, &pe) || errors.As(err, &le)) {
		return cm, rt, err
	}
	h.rtMu.Lock()
	if h.bare == nil {
		bare, _, berr := h.newRuntime(context.Background(), nil)
		if berr != nil {
			h.rtMu.Unlock()
			return nil, nil, fmt.Errorf("%w (and without the cache: %w)", err, berr)
		}
		h.bare = bare
		h.log.Warn().Err(err).Str("cache_dir", h.cfg.CacheDir).
			Msg("the compilation cache cannot be written: compiling without it until the node restarts")
	}
	rt = h.bare
	h.rtMu.Unlock()
	cm, err = rt.CompileModule(ctx, inst)
	return cm, rt, err
}

func (h *Host) reloadLoop() {
	defer close(h.stopped)
	t := time.NewTicker(h.cfg.ReloadInterval.D())
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
			h.scan(context.Background())
		}
	}
}

// Rescan looks at plugins_dir now instead of waiting for the next poll.
func (h *Host) Rescan() { h.scan(context.Background()) }

// SetPoolSize sets how many idle instances are kept per (tenant, module);
// the runner calls it with its worker count.
func (h *Host) SetPoolSize(n int) {
	if n < 0 {
		n = 0
	}
	h.poolSize.Store(int64(n))
}

// Stats counts the modules and instances now, for /metrics.
func (h *Host) Stats() abi.HostStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := abi.HostStats{Modules: len(h.mods), Running: int(h.running.Load()), PoolSize: int(h.poolSize.Load()), IdleBytes: h.idleBytes}
	for _, c := range h.codes {
		for _, idle := range c.pools {
			st.IdleInstances += len(idle)
		}
	}
	h.memMu.Lock() // after mu, as everywhere
	st.MemoryBytes = h.memHeld
	h.memMu.Unlock()
	st.RecordsDropped = h.recordsDropped.Load()
	return st
}

// Ready reports whether plugins_dir has been loaded once.
func (h *Host) Ready() bool { return h.ready.Load() && !h.closed.Load() }

// Close stops polling, waits for running jobs (until ctx ends) and frees
// every instance and compiled module.
func (h *Host) Close(ctx context.Context) error {
	if h.closed.Swap(true) {
		return nil
	}
	if !h.opts.noReload && h.cfg.ReloadInterval != 0 {
		close(h.stop)
	}
	<-h.stopped
	done := make(chan struct{})
	go func() {
		for h.running.Load() > 0 {
			time.Sleep(5 * time.Millisecond)
		}
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("close host: %w", ctx.Err())
		h.kill()
		<-done
	}
	h.kill()
	// Every attempt has ended (kill stops guests at their next countdown
	// check and blocking host functions at once): free everything.
	if cerr := h.rt.Close(context.Background()); cerr != nil && err == nil {
		err = fmt.Errorf("close host: %w", cerr)
	}
	h.rtMu.Lock()
	bare := h.bare
	h.rtMu.Unlock()
	if bare != nil {
		if cerr := bare.Close(context.Background()); cerr != nil && err == nil {
			err = fmt.Errorf("close host: %w", cerr)
		}
	}
	return err
}

// limits are the effective limits of one function.
type limits struct {
	timeout  time.Duration
	memory   uint64
	isolated bool
}

func (h *Host) limitsFor(tenant string, fc abi.FunctionConfig) limits {
	l := limits{timeout: h.cfg.Timeout.D(), memory: uint64(h.cfg.MemoryLimit), isolated: h.cfg.isolation(tenant) == IsolationFresh}
	if fc.Timeout > 0 {
		l.timeout = fc.Timeout.D()
	}
	if fc.MemoryLimit != "" {
		if v, err := ParseByteSize(fc.MemoryLimit); err == nil && v >= wasmPage {
			l.memory = min(uint64(v), uint64(h.cfg.MemoryLimit), 4<<30)
		}
	}
	return l
}

// CheckFile reports every reason a host with the defaults would refuse
// the module at path (and its sidecar).
func CheckFile(path string) (abi.ModuleInfo, []error) { return CheckFileWith(Config{}, path) }

// CheckFileWith reports every reason a host configured with cfg's limits
// (memory_limit, table_limit; unset ones at their defaults) would refuse
// the module at path and its sidecar, for `wasmq plugins check`.
func CheckFileWith(cfg Config, path string) (abi.ModuleInfo, []error) {
	name := strings.TrimSuffix(filepath.Base(path), ".wasm")
	info := abi.ModuleInfo{Name: name, Path: path}
	var errs []error
	if !strings.HasSuffix(path, ".wasm") {
		errs = append(errs, fmt.Errorf("%s: file name must end in .wasm", path))
	}
	if err := validName("module", name); err != nil {
		errs = append(errs, err)
	}
	wasm, err := os.ReadFile(path)
	if err != nil {
		return info, append(errs, err)
	}
	info.Size = int64(len(wasm))
	cfg.CacheDir = "-"
	h := &Host{cfg: cfg.WithDefaults(), codes: map[string]*compiled{}, log: zerolog.Nop()}
	h.cfg.CacheDir = ""
	if err := h.startRuntime(context.Background()); err != nil {
		return info, append(errs, err)
	}
	defer h.rt.Close(context.Background())
	var sc sidecar
	if _, err := os.Stat(sidecarPath(path)); err == nil {
		if sc, err = readSidecar(sidecarPath(path)); err != nil {
			errs = append(errs, err)
		}
	}
	inst, err := instrument(wasm)
	if err != nil {
		return info, append(errs, err)
	}
	sh, err := shapeOf(wasm)
	if err != nil {
		return info, append(errs, err)
	}
	refused := append(h.cfg.checkShape(sh), h.checkImports(sh)...)
	errs = append(append(errs, refused...), checkFunctionMemory(path, sc, sh.memMin)...)
	if len(refused) > 0 {
		// As a node would: a module refused on its shape or imports is
		// not compiled (a compile bomb would hold the check for minutes).
		return info, errs
	}
	cm, _, err := h.compileModule(context.Background(), inst)
	if err != nil {
		return info, append(errs, fmt.Errorf("compile: %w", err))
	}
	info.Exports = exportsOf(cm)
	info.Functions = map[string]abi.FunctionConfig{}
	for _, e := range info.Exports {
		info.Functions[e] = sc.Functions[e]
	}
	for fn := range sc.Functions {
		if !contains(info.Exports, fn) {
			errs = append(errs, fmt.Errorf("%s: [functions.%s] names no export of the module", sidecarPath(path), fn))
		}
	}
	if len(info.Exports) == 0 {
		errs = append(errs, errors.New("exports no job function (an export of type () -> i32)"))
	}
	return info, errs
}
