package host

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/wasmq/wasmq/abi"
)

// compiled is one module digest compiled once and shared by every tenant
// and registry entry that has those bytes.
type compiled struct {
	digest string
	// wasm is the module's bytes, which a record refers to (the store
	// keeps them once per digest, after the file is gone).
	wasm    []byte
	cm      wazero.CompiledModule
	rt      wazero.Runtime // the runtime that compiled cm, which runs it
	exports []string
	hasInit bool
	// minMemory is the initial size of its memory, in bytes, and
	// tableEntries the initial entries of its tables.
	minMemory, tableEntries uint64
	// cacheFiles are its files in the compilation cache (cachefiles.go).
	cacheFiles []string
	// guarded by Host.mu
	refs   int // registry entries using it
	active int // jobs running on it
	pools  map[string][]*instance
}

type modKey struct{ tenant, name string }

type fileStamp struct {
	size, sideSize int64
	mtime, sideMT  time.Time
}

type module struct {
	info abi.ModuleInfo
	code *compiled
	// configs is what config_get serves each export: the module's
	// [config] under the function's own config; exports without a
	// config of their own share the module's map.
	configs map[string]map[string]string
	stamp   fileStamp
}

// sidecar is the optional name.toml next to name.wasm.
type sidecar struct {
	Functions map[string]abi.FunctionConfig `toml:"functions"`
	// Config is served to the plugin by Extism's config_get.
	Config map[string]string `toml:"config"`
}

// validName refuses names that are not a plain file or folder name.
func validName(what, s string) error { return abi.CheckPluginName(what, s) }

func readSidecar(path string) (sidecar, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return sidecar{}, err
	}
	return parseSidecar(path, data)
}

// parseSidecar reads a sidecar's text; errors start with label (its path,
// or its name for one sent over HTTP) and name the key.
func parseSidecar(path string, data []byte) (sidecar, error) {
	var sc sidecar
	if err := checkSidecarShape(data); err != nil {
		return sc, fmt.Errorf("%s: %w", path, err)
	}
	md, err := toml.Decode(string(data), &sc)
	if err != nil {
		return sc, fmt.Errorf("%s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return sc, fmt.Errorf("%s: unknown key %s", path, strings.Join(keys, ", "))
	}
	for fn, fc := range sc.Functions {
		if fc.MemoryLimit != "" {
			if _, err := ParseByteSize(fc.MemoryLimit); err != nil {
				return sc, fmt.Errorf("%s: functions.%s.memory_limit: %w", path, fn, err)
			}
		}
		if fc.Timeout < 0 {
			return sc, fmt.Errorf("%s: functions.%s.timeout: must be > 0", path, fn)
		}
		// What a job takes from its function's settings must be what the
		// store keeps: else every enqueue that relies on them is refused,
		// naming a field the client never sent.
		if fc.MaxRetries != nil && (*fc.MaxRetries < 0 || *fc.MaxRetries > abi.MaxMaxRetries) {
			return sc, fmt.Errorf("%s: functions.%s.max_retries: must be an integer from 0 to %d", path, fn, abi.MaxMaxRetries)
		}
		if fc.Channel != "" {
			if _, err := abi.ParseChannel(fc.Channel); err != nil {
				return sc, fmt.Errorf("%s: functions.%s.%w", path, fn, err)
			}
		}
		if err := abi.CheckDescription(fc.Description); err != nil {
			return sc, fmt.Errorf("%s: functions.%s.%w", path, fn, err)
		}
		if fc.MaxFuel < 0 || fc.MaxFuel > maxFuelLimit {
			return sc, fmt.Errorf("%s: functions.%s.max_fuel: must be between 0 (no limit) and %d", path, fn, int64(maxFuelLimit))
		}
		for _, e := range fc.AllowedHosts {
			if _, _, err := parseAllowed(e); err != nil {
				return sc, fmt.Errorf("%s: functions.%s.allowed_hosts: %w", path, fn, err)
			}
		}
		if err := checkFunctionExtras(fc); err != nil {
			return sc, fmt.Errorf("%s: functions.%s.%w", path, fn, err)
		}
	}
	for k, v := range sc.Config {
		if err := checkConfigEntry(k, v); err != nil {
			return sc, fmt.Errorf("%s: config: %w", path, err)
		}
	}
	return sc, nil
}

// checkFunctionExtras checks the keys that make a plain Extism plugin run
// unmodified; the error starts with the key's name.
func checkFunctionExtras(fc abi.FunctionConfig) error {
	switch fc.Input {
	case "", abi.InputEnvelope, abi.InputRaw:
	default:
		return fmt.Errorf("input: %q is not an input mode; use %q or %q", fc.Input, abi.InputEnvelope, abi.InputRaw)
	}
	if err := abi.CheckRecordPolicy(fc.Record); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	for k, v := range fc.Config {
		if err := checkConfigEntry(k, v); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	return nil
}

// checkConfigEntry refuses what config_get could not hand over intact.
func checkConfigEntry(k, v string) error {
	switch {
	case k == "":
		return errors.New("a key must not be empty")
	case !utf8.ValidString(k) || strings.IndexByte(k, 0) >= 0:
		return fmt.Errorf("key %q must be UTF-8 text without NUL", k)
	case !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0:
		return fmt.Errorf("%s: the value must be UTF-8 text without NUL", k)
	case len(k) > maxConfigBytes || len(v) > maxConfigBytes:
		return fmt.Errorf("%s: keys and values are at most %d bytes", k, maxConfigBytes)
	}
	return nil
}

// maxConfigBytes caps a config key or value: config is settings, not data.
const maxConfigBytes = 64 << 10

// functionConfigs merges the module's [config] under each function's
// config, once at load, so that config_get is one map lookup.
func functionConfigs(sc sidecar, exports []string) map[string]map[string]string {
	out := make(map[string]map[string]string, len(exports))
	for _, e := range exports {
		own := sc.Functions[e].Config
		if len(own) == 0 {
			out[e] = sc.Config
			continue
		}
		m := make(map[string]string, len(sc.Config)+len(own))
		for k, v := range sc.Config {
			m[k] = v
		}
		for k, v := range own {
			m[k] = v
		}
		out[e] = m
	}
	return out
}

// compile returns the compiled module for wasm, compiling it at most once
// per digest, after checking its imports and that it could run within the
// limits. The caller holds compileMu.
func (h *Host) compile(ctx context.Context, wasm []byte) (*compiled, error) {
	sum := sha256.Sum256(wasm)
	digest := hex.EncodeToString(sum[:])
	h.mu.Lock()
	c := h.codes[digest]
	h.mu.Unlock()
	if c != nil {
		return c, nil
	}
	inst, err := instrument(wasm)
	if err != nil {
		return nil, err
	}
	sh, err := shapeOf(wasm)
	if err != nil {
		return nil, err
	}
	if errs := h.cfg.checkShape(sh); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if errs := h.checkImports(sh); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	before := h.cacheEntries()
	if len(h.cfg.CompileCommand) > 0 {
		if err := h.compileInChild(ctx, wasm, digest); err != nil {
			return nil, err
		}
	}
	cm, rt, err := h.compileModule(ctx, inst)
	if err != nil {
		h.dropCacheFiles(digest, h.noteCacheFiles(digest, before))
		return nil, fmt.Errorf("compile: %w", err)
	}
	c = &compiled{digest: digest, wasm: wasm, cm: cm, rt: rt, exports: exportsOf(cm), minMemory: sh.memMin, pools: map[string][]*instance{}}
	c.cacheFiles = h.noteCacheFiles(digest, before)
	for _, n := range sh.tables {
		c.tableEntries += n
	}
	if f, ok := cm.ExportedFunctions()["_initialize"]; ok && len(f.ParamTypes()) == 0 && len(f.ResultTypes()) == 0 {
		c.hasInit = true
	}
	h.mu.Lock()
	h.codes[digest] = c
	h.mu.Unlock()
	return c, nil
}

// exportsOf lists the job functions: exports of type () -> i32 whose name
// does not start with '_' (_initialize, _start and toolchain internals).
func exportsOf(cm wazero.CompiledModule) []string {
	var out []string
	for name, f := range cm.ExportedFunctions() {
		if strings.HasPrefix(name, "_") || len(f.ParamTypes()) != 0 || len(f.ResultTypes()) != 1 || f.ResultTypes()[0] != api.ValueTypeI32 {
			continue
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// checkImports names every import the host does not provide, read from
// the module's bytes: a module that could never be instantiated is
// refused before it is compiled, which for a large one takes seconds
// (esbuild's 14 MB: 12.5 s).
func (h *Host) checkImports(sh shape) []error {
	var errs []error
	for _, imp := range sh.funcImports {
		want, ok := h.provided[imp.module+"\x00"+imp.name]
		if !ok || imp.module == checkModule {
			// wasmq:internal is the instrumentation's own: a guest
			// calling it directly could tell the host of grows that
			// never happened.
			errs = append(errs, fmt.Errorf("imports %s.%s, which the host does not provide", imp.module, imp.name))
			continue
		}
		if imp.typ >= uint64(len(sh.types)) {
			errs = append(errs, fmt.Errorf("imports %s.%s with type %d, which the module does not define", imp.module, imp.name, imp.typ))
			continue
		}
		got := sh.types[imp.typ]
		if !sameTypes(want.ParamTypes(), got.params) || !sameTypes(want.ResultTypes(), got.results) {
			errs = append(errs, fmt.Errorf("imports %s.%s as %s, but the host provides %s", imp.module, imp.name, sig(got.params, got.results), sig(want.ParamTypes(), want.ResultTypes())))
		}
	}
	for _, m := range sh.memImports {
		errs = append(errs, fmt.Errorf("imports memory %s; the host provides none (the module must define its own)", m))
	}
	return errs
}

func sameTypes(a, b []api.ValueType) bool { return bytes.Equal(a, b) }

func sig(params, results []api.ValueType) string {
	names := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return strings.Join(s, ", ")
	}
	return "(" + names(params) + ") -> (" + names(results) + ")"
}

// scan brings the registry in line with plugins_dir: new and changed files
// are loaded (a refused file keeps the previous good version), removed
// files are dropped.
func (h *Host) scan(ctx context.Context) {
	seen := map[modKey]string{}
	h.scanDir(ctx, h.cfg.PluginsDir, "", seen)
	if ents, err := os.ReadDir(h.cfg.PluginsDir); err == nil {
		for _, e := range ents {
			if e.IsDir() && validName("tenant", e.Name()) == nil {
				h.scanDir(ctx, filepath.Join(h.cfg.PluginsDir, e.Name()), e.Name(), seen)
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		h.log.Warn().Err(err).Str("dir", h.cfg.PluginsDir).Msg("read plugins_dir")
		return // keep what is loaded
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, m := range h.mods {
		if _, ok := seen[k]; !ok {
			if _, err := os.Stat(m.info.Path); err == nil {
				continue // written (e.g. by Install) after the listing
			}
			h.log.Info().Str("tenant", k.tenant).Str("module", k.name).Msg("plugin removed")
			delete(h.mods, k)
			h.releaseLocked(m.code)
		}
	}
}

func (h *Host) scanDir(ctx context.Context, dir, tenant string, seen map[modKey]string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".wasm")
		if !ok || e.IsDir() || validName("module", name) != nil {
			continue
		}
		path := filepath.Join(dir, e.Name())
		seen[modKey{tenant, name}] = path
		h.loadFile(ctx, tenant, name, path)
	}
}

func stampOf(path string) (fileStamp, error) {
	st, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	fs := fileStamp{size: st.Size(), mtime: st.ModTime()}
	if sst, err := os.Stat(sidecarPath(path)); err == nil {
		fs.sideSize, fs.sideMT = sst.Size(), sst.ModTime()
	}
	return fs, nil
}

func sidecarPath(wasmPath string) string { return strings.TrimSuffix(wasmPath, ".wasm") + ".toml" }

// loadFile (re)loads one module file if its size or mtime (or its
// sidecar's) changed since the last look.
func (h *Host) loadFile(ctx context.Context, tenant, name, path string) {
	key := modKey{tenant, name}
	stamp, err := stampOf(path)
	if err != nil {
		return // vanished between listing and stat; the next scan drops it
	}
	h.mu.Lock()
	old := h.mods[key]
	h.mu.Unlock()
	if old != nil && old.stamp == stamp {
		return
	}
	h.compileMu.Lock()
	defer h.compileMu.Unlock()
	info, code, configs, err := h.loadModule(ctx, path)
	info.Name, info.Tenant, info.Path = name, tenant, path
	h.mu.Lock()
	defer h.mu.Unlock()
	old = h.mods[key]
	if err != nil {
		h.log.Error().Str("file", path).Err(err).Msg("plugin refused")
		if old != nil && old.code != nil {
			// Keep serving the last good version; show the error.
			old.info.LoadError = err.Error()
			old.stamp = stamp
			return
		}
		h.mods[key] = &module{info: abi.ModuleInfo{Name: name, Tenant: tenant, Path: path, LoadError: err.Error(), Size: stamp.size}, stamp: stamp}
		return
	}
	code.refs++
	h.mods[key] = &module{info: info, code: code, configs: configs, stamp: stamp}
	if old != nil {
		h.releaseLocked(old.code)
	}
	if old == nil || old.code == nil || old.code != code {
		h.log.Info().Str("file", path).Str("sha256", info.SHA256).Strs("exports", info.Exports).Msg("plugin loaded")
	}
}

// loadModule reads, validates and compiles one file and its sidecar.
func (h *Host) loadModule(ctx context.Context, path string) (abi.ModuleInfo, *compiled, map[string]map[string]string, error) {
	var info abi.ModuleInfo
	wasm, err := os.ReadFile(path)
	if err != nil {
		return info, nil, nil, err
	}
	var sc sidecar
	if _, err := os.Stat(sidecarPath(path)); err == nil {
		if sc, err = readSidecar(sidecarPath(path)); err != nil {
			return info, nil, nil, err
		}
	}
	code, err := h.compile(ctx, wasm)
	if err != nil {
		return info, nil, nil, err
	}
	var errs []error
	for fn := range sc.Functions {
		if !contains(code.exports, fn) {
			errs = append(errs, fmt.Errorf("%s: [functions.%s] names no export of the module (exports: %s)", sidecarPath(path), fn, strings.Join(code.exports, ", ")))
		}
	}
	errs = append(errs, checkFunctionMemory(path, sc, code.minMemory)...)
	if len(errs) > 0 {
		h.mu.Lock()
		h.maybeRetireLocked(code)
		h.mu.Unlock()
		return info, nil, nil, errors.Join(errs...)
	}
	info = abi.ModuleInfo{SHA256: code.digest, Size: int64(len(wasm)), Exports: code.exports, Functions: map[string]abi.FunctionConfig{}}
	for _, e := range code.exports {
		info.Functions[e] = sc.Functions[e]
	}
	return info, code, functionConfigs(sc, code.exports), nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// releaseLocked drops one registry reference to c; the last user closes
// it. Caller holds h.mu.
func (h *Host) releaseLocked(c *compiled) {
	if c == nil {
		return
	}
	c.refs--
	h.maybeRetireLocked(c)
}

func (h *Host) maybeRetireLocked(c *compiled) {
	if c.refs > 0 || c.active > 0 {
		return
	}
	for _, idle := range c.pools {
		for _, in := range idle {
			h.unpoolLocked(in)
			in.close()
		}
	}
	c.pools = map[string][]*instance{}
	delete(h.codes, c.digest)
	c.cm.Close(context.Background())
	h.dropCacheFiles(c.digest, c.cacheFiles)
}

// lookup finds the module a tenant sees under name: its own, else shared.
func (h *Host) lookupLocked(tenant, name string) *module {
	if tenant != "" {
		if m := h.mods[modKey{tenant, name}]; m != nil {
			return m
		}
	}
	return h.mods[modKey{"", name}]
}

// Function returns the configuration of tenant's module.function. The
// error wraps abi.ErrNotFound and lists the module's exports when the
// module exists.
func (h *Host) Function(tenant, fn string) (abi.FunctionConfig, error) {
	modName, export, err := abi.SplitFunc(fn)
	if err != nil {
		return abi.FunctionConfig{}, fmt.Errorf("%w: %v", abi.ErrInvalid, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.lookupLocked(tenant, modName)
	if m == nil {
		return abi.FunctionConfig{}, fmt.Errorf("%w: no plugin module %q", abi.ErrNotFound, modName)
	}
	if m.code == nil {
		return abi.FunctionConfig{}, fmt.Errorf("%w: plugin module %q failed to load: %s", abi.ErrNotFound, modName, m.info.LoadError)
	}
	fc, ok := m.info.Functions[export]
	if !ok {
		return abi.FunctionConfig{}, fmt.Errorf("%w: plugin module %q has no function %q (exports: %s)", abi.ErrNotFound, modName, export, strings.Join(m.info.Exports, ", "))
	}
	return fc, nil
}

// Modules lists the modules tenant sees (shared ones and its own, its own
// shadowing shared ones of the same name); tenant "" lists every module of
// every tenant.
func (h *Host) Modules(tenant string) []abi.ModuleInfo {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []abi.ModuleInfo
	for k, m := range h.mods {
		switch {
		case tenant == "":
		case k.tenant == tenant:
		case k.tenant == "" && h.mods[modKey{tenant, k.name}] == nil:
		default:
			continue
		}
		out = append(out, cloneInfo(m.info))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Tenant < out[j].Tenant
	})
	return out
}

func cloneInfo(i abi.ModuleInfo) abi.ModuleInfo {
	i.Exports = append([]string(nil), i.Exports...)
	fns := make(map[string]abi.FunctionConfig, len(i.Functions))
	for k, v := range i.Functions {
		fns[k] = v
	}
	i.Functions = fns
	return i
}

// Install validates wasm and writes it atomically as
// plugins_dir/<tenant>/name.wasm (tenant "" = shared), then loads it. An
// upload that would take the tenant past its PluginQuota is refused
// (ErrQuota) before it is compiled.
func (h *Host) Install(tenant, name string, wasm []byte) (abi.ModuleInfo, error) {
	dir, err := h.pluginDir(tenant, name)
	if err != nil {
		return abi.ModuleInfo{}, err
	}
	defer h.uploading(tenant)()
	if err := h.checkQuota(tenant, dir, name, len(wasm)); err != nil {
		return abi.ModuleInfo{}, err
	}
	return h.install(tenant, name, dir, wasm)
}

// pluginDir is the folder of tenant's module name, both names checked.
func (h *Host) pluginDir(tenant, name string) (string, error) {
	if err := validName("module", name); err != nil {
		return "", err
	}
	if tenant == "" {
		return h.cfg.PluginsDir, nil
	}
	if err := validName("tenant", tenant); err != nil {
		return "", err
	}
	return filepath.Join(h.cfg.PluginsDir, tenant), nil
}

// uploading takes tenant's upload lock and returns its release.
func (h *Host) uploading(tenant string) func() {
	h.mu.Lock()
	l := h.uploads[tenant]
	if l == nil {
		l = &sync.Mutex{}
		h.uploads[tenant] = l
	}
	h.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// checkQuota refuses a module of size bytes written as name in dir when
// the tenant's modules there, the one it replaces set aside, would then
// pass its max_plugins or max_plugin_bytes. Files are what is counted:
// modules an operator put in the folder count too. The caller holds the
// tenant's upload lock, so two uploads cannot both take the last room.
func (h *Host) checkQuota(tenant, dir, name string, size int) error {
	q, ok := h.cfg.TenantPlugins[tenant]
	if !ok || tenant == "" {
		return nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("install plugin: %w", err)
	}
	modules, bytes := 1, int64(size)
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(n, ".wasm") || strings.HasPrefix(n, ".") || n == name+".wasm" {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		modules++
		bytes += fi.Size()
	}
	switch {
	case modules > q.Modules:
		return &abi.FieldError{Err: abi.ErrQuota, Msg: fmt.Sprintf("tenant %s holds %d plugin modules, its quota (max_plugins): remove one before uploading another", tenant, modules-1)}
	case bytes > int64(q.Bytes):
		return &abi.FieldError{Err: abi.ErrQuota, Msg: fmt.Sprintf("this module of %d bytes would take tenant %s's plugin modules to %d bytes, over its quota (max_plugin_bytes: %s)", size, tenant, bytes, q.Bytes)}
	}
	return nil
}

// install is Install past the name, lock and quota checks.
func (h *Host) install(tenant, name, dir string, wasm []byte) (abi.ModuleInfo, error) {
	ctx := context.Background()
	h.compileMu.Lock()
	_, err := h.compile(ctx, wasm)
	h.compileMu.Unlock()
	if err != nil {
		return abi.ModuleInfo{}, fmt.Errorf("%w: module %q refused: %v", abi.ErrInvalid, name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return abi.ModuleInfo{}, fmt.Errorf("install plugin: %w", err)
	}
	path := filepath.Join(dir, name+".wasm")
	tmp, err := os.CreateTemp(dir, "."+name+".*.tmp")
	if err != nil {
		return abi.ModuleInfo{}, fmt.Errorf("install plugin: %w", err)
	}
	_, werr := tmp.Write(wasm)
	if err := errors.Join(werr, tmp.Sync(), tmp.Close()); err != nil {
		os.Remove(tmp.Name())
		return abi.ModuleInfo{}, fmt.Errorf("install plugin: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return abi.ModuleInfo{}, fmt.Errorf("install plugin: %w", err)
	}
	h.loadFile(ctx, tenant, name, path)
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.mods[modKey{tenant, name}]
	if m == nil {
		return abi.ModuleInfo{}, fmt.Errorf("install plugin %s: vanished after writing", path)
	}
	if m.info.LoadError != "" {
		// e.g. an existing sidecar names a function the new module lacks.
		return cloneInfo(m.info), fmt.Errorf("%w: module %q written but refused: %s", abi.ErrInvalid, name, m.info.LoadError)
	}
	return cloneInfo(m.info), nil
}

// InstallWithConfig is Install with the module's sidecar (the text of
// name.toml) sent along: both are validated together, the sidecar against
// the module's exports and memory, before either is written. A nil wasm
// keeps the module in place and replaces only its sidecar (ErrNotFound
// when tenant has no such module of its own).
func (h *Host) InstallWithConfig(tenant, name string, wasm, sidecarTOML []byte) (abi.ModuleInfo, error) {
	dir, err := h.pluginDir(tenant, name)
	if err != nil {
		return abi.ModuleInfo{}, err
	}
	defer h.uploading(tenant)()
	path := filepath.Join(dir, name+".wasm")
	if wasm != nil {
		if err := h.checkQuota(tenant, dir, name, len(wasm)); err != nil {
			return abi.ModuleInfo{}, err
		}
	} else {
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			return abi.ModuleInfo{}, fmt.Errorf("%w: no plugin module %q", abi.ErrNotFound, name)
		}
		if err != nil {
			return abi.ModuleInfo{}, fmt.Errorf("install plugin config: %w", err)
		}
		wasm = b
	}
	sc, err := parseSidecar(name+".toml", sidecarTOML)
	if err != nil {
		return abi.ModuleInfo{}, fmt.Errorf("%w: %v", abi.ErrInvalid, err)
	}
	ctx := context.Background()
	h.compileMu.Lock()
	code, err := h.compile(ctx, wasm)
	if err == nil {
		var errs []error
		for fn := range sc.Functions {
			if !contains(code.exports, fn) {
				errs = append(errs, fmt.Errorf("%s.toml: [functions.%s] names no export of the module (exports: %s)", name, fn, strings.Join(code.exports, ", ")))
			}
		}
		errs = append(errs, checkFunctionMemory(name+".wasm", sc, code.minMemory)...)
		if err = errors.Join(errs...); err != nil {
			h.mu.Lock()
			h.maybeRetireLocked(code) // unless a loaded module shares it
			h.mu.Unlock()
		}
	}
	h.compileMu.Unlock()
	if err != nil {
		return abi.ModuleInfo{}, fmt.Errorf("%w: module %q refused: %v", abi.ErrInvalid, name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return abi.ModuleInfo{}, fmt.Errorf("install plugin: %w", err)
	}
	// The sidecar first: a scan between the two writes sees the old
	// module with the new config, which the checks above let the new
	// module run; then Install writes the module and loads both.
	if err := writeAtomic(dir, sidecarPath(path), sidecarTOML); err != nil {
		return abi.ModuleInfo{}, err
	}
	return h.install(tenant, name, dir, wasm)
}

// writeAtomic writes data as path through a temporary file in dir.
func writeAtomic(dir, path string, data []byte) error {
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("install plugin: %w", err)
	}
	_, werr := tmp.Write(data)
	if err := errors.Join(werr, tmp.Sync(), tmp.Close()); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("install plugin: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("install plugin: %w", err)
	}
	return nil
}

// Remove deletes plugins_dir/<tenant>/name.wasm; jobs running on it finish.
func (h *Host) Remove(tenant, name string) error {
	if err := validName("module", name); err != nil {
		return err
	}
	dir := h.cfg.PluginsDir
	if tenant != "" {
		if err := validName("tenant", tenant); err != nil {
			return err
		}
		dir = filepath.Join(dir, tenant)
	}
	path := filepath.Join(dir, name+".wasm")
	if err := os.Remove(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: no plugin module %q", abi.ErrNotFound, name)
		}
		return fmt.Errorf("remove plugin: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if m := h.mods[modKey{tenant, name}]; m != nil {
		delete(h.mods, modKey{tenant, name})
		h.releaseLocked(m.code)
	}
	return nil
}
