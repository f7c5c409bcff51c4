package host

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/host/wasmgen"
)

func TestReplacingAModuleLetsTheRunningJobFinishOnItsVersion(t *testing.T) {
	h, dir := kitHost(t, "")
	v1 := h.Modules("")[0].SHA256
	done := make(chan abi.Outcome, 1)
	go func() { done <- run(t, h, job("kit.sleepy")) }()
	// Wait until the job holds the module, then replace the file.
	waitFor(t, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.mods[modKey{"", "kit"}].code.active == 1
	})
	copyFile(t, "testdata/kit_v2.wasm", filepath.Join(dir, "kit.wasm"))
	h.Rescan()
	if o := run(t, h, job("kit.version")); string(o.Result) != `"v2"` {
		t.Fatalf("after the replace a new job ran %s", o.Result)
	}
	o := <-done
	if string(o.Result) != `"v1"` || o.PluginSHA256 != v1 {
		t.Fatalf("the running job got %s on %s, want v1 on %s", o.Result, o.PluginSHA256, v1)
	}
	if got := h.Modules("")[0].SHA256; got == v1 {
		t.Errorf("registry still lists v1")
	}
}

func TestReloadLoopPicksUpAddedAndRemovedFiles(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.ReloadInterval = abi.Duration(20 * time.Millisecond)
	h, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	copyFile(t, "testdata/kit.wasm", filepath.Join(dir, "kit.wasm"))
	waitFor(t, func() bool { return run(t, h, job("kit.version")).Kind == abi.OutcomeDone })
	os.Remove(filepath.Join(dir, "kit.wasm"))
	waitFor(t, func() bool { return run(t, h, job("kit.version")).ExcName == abi.ExcPluginNotFound })
}

func TestABadFileDoesNotReplaceAGoodOne(t *testing.T) {
	for _, bad := range []string{"notwasm.wasm", "badimport.wasm"} {
		t.Run(bad, func(t *testing.T) {
			h, dir := kitHost(t, "")
			good := h.Modules("")[0].SHA256
			copyFile(t, "testdata/"+bad, filepath.Join(dir, "kit.wasm"))
			h.Rescan()
			if o := run(t, h, job("kit.version")); o.Kind != abi.OutcomeDone || o.PluginSHA256 != good {
				t.Fatalf("the good version stopped serving: %+v", o)
			}
			m := h.Modules("")[0]
			if m.SHA256 != good || m.LoadError == "" {
				t.Fatalf("listing %+v, want the good digest and a load error", m)
			}
			if bad == "badimport.wasm" && !strings.Contains(m.LoadError, "env.nothing_here") {
				t.Errorf("load error %q must name the missing import", m.LoadError)
			}
		})
	}
}

func TestRefusedModuleWithoutGoodVersionIsListedWithItsError(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, "testdata/badimport.wasm", filepath.Join(dir, "bad.wasm"))
	h := newTestHost(t, testConfig(dir))
	ms := h.Modules("")
	if len(ms) != 1 || ms[0].LoadError == "" || ms[0].SHA256 != "" {
		t.Fatalf("modules %+v", ms)
	}
	if o := run(t, h, job("bad.run")); o.ExcName != abi.ExcPluginInvalid {
		t.Errorf("got %s", o.ExcName)
	}
	if _, err := h.Function("acme", "bad.run"); !errors.Is(err, abi.ErrNotFound) {
		t.Errorf("Function: %v", err)
	}
}

func TestSidecarUnknownKeyIsAnErrorNamingFileAndKey(t *testing.T) {
	h, dir := kitHost(t, "[functions.echo]\nchanel = \"root.x\"\n")
	m := h.Modules("")[0]
	if !strings.Contains(m.LoadError, filepath.Join(dir, "kit.toml")) || !strings.Contains(m.LoadError, "functions.echo.chanel") {
		t.Fatalf("load error %q", m.LoadError)
	}
}

func TestSidecarConfiguresFunctions(t *testing.T) {
	h, _ := kitHost(t, `
[functions.echo]
channel = "root.fast"
max_retries = 2
timeout = "5s"
memory_limit = "8MiB"
retry_pattern = { 1 = 10, 5 = [60, 120] }
allowed_hosts = ["example.com:8443"]
description = "Echo"
`)
	fc, err := h.Function("acme", "kit.echo")
	if err != nil {
		t.Fatal(err)
	}
	if fc.Channel != "root.fast" || *fc.MaxRetries != 2 || fc.Timeout.D() != 5*time.Second || fc.RetryPattern[5].Max != 120 || fc.Description != "Echo" {
		t.Errorf("config %+v", fc)
	}
	_, err = h.Function("acme", "kit.nope")
	if !errors.Is(err, abi.ErrNotFound) || !strings.Contains(err.Error(), "kit") || !strings.Contains(err.Error(), "nope") || !strings.Contains(err.Error(), "echo") {
		t.Errorf("missing export error %v", err)
	}
	if _, err := h.Function("acme", "nomod.x"); !errors.Is(err, abi.ErrNotFound) {
		t.Errorf("missing module error %v", err)
	}
}

func TestTenantModulesShadowSharedOnesAndStayPrivate(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, "testdata/kit.wasm", filepath.Join(dir, "kit.wasm"))
	copyFile(t, "testdata/kit_v2.wasm", filepath.Join(dir, "acme", "kit.wasm"))
	copyFile(t, "testdata/kit_v2.wasm", filepath.Join(dir, "acme", "mine.wasm"))
	h := newTestHost(t, testConfig(dir))
	if o := run(t, h, job("kit.version")); string(o.Result) != `"v2"` {
		t.Errorf("acme sees %s, want its own v2", o.Result)
	}
	other := job("kit.version")
	other.Tenant = "other"
	if o := run(t, h, other); string(o.Result) != `"v1"` {
		t.Errorf("other sees %s, want the shared v1", o.Result)
	}
	other.Func = "mine.version"
	if o := run(t, h, other); o.ExcName != abi.ExcPluginNotFound {
		t.Errorf("other ran acme's private module: %+v", o)
	}
	if n := len(h.Modules("acme")); n != 2 {
		t.Errorf("acme lists %d modules, want 2 (its kit shadows the shared one)", n)
	}
	if n := len(h.Modules("other")); n != 1 {
		t.Errorf("other lists %d modules, want 1", n)
	}
	if n := len(h.Modules("")); n != 3 {
		t.Errorf("admin lists %d modules, want 3", n)
	}
}

func TestInstallValidatesAndRemoveDeletes(t *testing.T) {
	h := newTestHost(t, testConfig(t.TempDir()))
	bad, _ := os.ReadFile("testdata/badimport.wasm")
	if _, err := h.Install("acme", "bad", bad); !errors.Is(err, abi.ErrInvalid) {
		t.Fatalf("Install of a bad module: %v", err)
	}
	if _, err := os.Stat(filepath.Join(h.cfg.PluginsDir, "acme", "bad.wasm")); err == nil {
		t.Fatalf("a refused module was written")
	}
	if _, err := h.Install("acme", "../evil", bad); !errors.Is(err, abi.ErrInvalid) {
		t.Fatalf("Install with a path name: %v", err)
	}
	good, _ := os.ReadFile("testdata/kit.wasm")
	info, err := h.Install("acme", "kit", good)
	if err != nil || info.Tenant != "acme" || len(info.Exports) == 0 {
		t.Fatalf("Install: %+v %v", info, err)
	}
	if o := run(t, h, job("kit.version")); o.Kind != abi.OutcomeDone {
		t.Fatalf("installed module does not run: %+v", o)
	}
	if err := h.Remove("acme", "kit"); err != nil {
		t.Fatal(err)
	}
	if o := run(t, h, job("kit.version")); o.ExcName != abi.ExcPluginNotFound {
		t.Fatalf("removed module still runs")
	}
	if err := h.Remove("acme", "kit"); !errors.Is(err, abi.ErrNotFound) {
		t.Errorf("second Remove: %v", err)
	}
}

func TestCheckFileReportsEveryReason(t *testing.T) {
	if _, errs := CheckFile("testdata/kit.wasm"); len(errs) != 0 {
		t.Errorf("kit.wasm: %v", errs)
	}
	_, errs := CheckFile("testdata/badimport.wasm")
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "env.nothing_here") {
		t.Errorf("badimport.wasm: %v", errs)
	}
	if _, errs := CheckFile("testdata/notwasm.wasm"); len(errs) == 0 {
		t.Errorf("notwasm.wasm passed")
	}
}

func TestHTTPRequestAllowlist(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
			return
		}
		w.Write([]byte(`{"ok":true}`))
	}))
	defer target.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`"other"`)) }))
	defer other.Close()
	hostport := strings.TrimPrefix(target.URL, "http://")
	sidecar := func(url string, allowed ...string) string {
		return "[config]\nreq = '{\"url\":\"" + url + "\"}'\n[functions.http]\nallowed_hosts = [\"" + strings.Join(allowed, `","`) + "\"]\n"
	}
	cases := []struct {
		name, sidecar string
		loopback      bool
		exc           string
	}{
		{"allowed", sidecar(target.URL+"/", hostport), true, ""},
		{"not listed", sidecar(other.URL+"/", hostport), true, abi.ExcHTTPDenied},
		{"bare host pins 80/443", sidecar(target.URL+"/", "127.0.0.1"), true, abi.ExcHTTPDenied},
		{"redirect re-checked", sidecar(target.URL+"/redirect?to="+other.URL+"/", hostport), true, abi.ExcHTTPDenied},
		{"loopback refused", sidecar(target.URL+"/", hostport), false, abi.ExcHTTPDenied},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var opts []Option
			if c.loopback {
				opts = append(opts, WithAllowLoopback())
			}
			h, _ := kitHost(t, c.sidecar, opts...)
			o := run(t, h, job("kit.http"))
			if o.ExcName != c.exc {
				t.Fatalf("got %s %s %q, want %q", o.Kind, o.ExcName, o.ExcMessage, c.exc)
			}
			if c.exc == "" && string(o.Result) != `{"ok":true}` {
				t.Errorf("result %s", o.Result)
			}
		})
	}
}

func TestConfigValidateNamesKeys(t *testing.T) {
	base := Config{}.WithDefaults()
	if err := base.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	bad := []struct {
		key string
		mod func(*Config)
	}{
		{"host.timeout", func(c *Config) { c.Timeout = -1 }},
		{"host.isolation", func(c *Config) { c.Isolation = "shared" }},
		{"host.tenant_isolation.acme", func(c *Config) { c.TenantIsolation = map[string]string{"acme": "x"} }},
		{"host.memory_limit", func(c *Config) { c.MemoryLimit = 100 }},
		{"host.table_limit", func(c *Config) { c.TableLimit = -1 }},
		{"host.table_limit", func(c *Config) { c.TableLimit = 1<<27 + 1 }},
		{"host.max_input", func(c *Config) { c.MaxInput = -1 }},
	}
	for _, b := range bad {
		c := base
		b.mod(&c)
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), b.key+":") {
			t.Errorf("%s: %v", b.key, err)
		}
	}
	for in, want := range map[string]ByteSize{"64MiB": 64 << 20, "16 pages": 16 * 65536, "1000": 1000, "2KB": 2000} {
		if got, err := ParseByteSize(in); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v", in, got, err)
		}
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestConfigDecodesFromTOML(t *testing.T) {
	var c struct {
		Host Config `toml:"host"`
	}
	_, err := toml.Decode(`
[host]
plugins_dir = "p"
timeout = "5s"
memory_limit = "64MiB"
table_limit = 65536
max_input = 1048576
isolation = "fresh"
[host.tenant_isolation]
trusted = "pooled"
`, &c)
	if err != nil {
		t.Fatal(err)
	}
	h := c.Host.WithDefaults()
	if h.PluginsDir != "p" || h.Timeout.D() != 5*time.Second || h.MemoryLimit != 64<<20 || h.TableLimit != 65536 || h.MaxInput != 1<<20 ||
		h.isolation("trusted") != IsolationPooled || h.isolation("x") != IsolationFresh || h.Validate() != nil {
		t.Errorf("decoded %+v", h)
	}
}

// A module whose imports the host cannot satisfy is refused from its
// bytes, before any compile: the node's compile child here is a command
// that fails, so reaching it would change the message.
func TestImportsAreCheckedBeforeCompiling(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.CompileCommand = []string{"/bin/false"}
	h := newTestHost(t, cfg)
	const i32, i64 = 0x7f, 0x7e
	for _, tc := range []struct {
		name string
		wasm []byte
		says string
	}{
		{"missing", importing("env", "nothing_here", 0x00, 0, nil, nil), "imports env.nothing_here, which the host does not provide"},
		{"mistyped", importing(abi.HostEnvModule, "input_length", 0x00, 0, []byte{i32}, nil),
			"imports extism:host/env.input_length as (i32) -> (), but the host provides () -> (i64)"},
		{"typed past its types", importing(abi.HostEnvModule, "input_length", 0x00, 7, nil, []byte{i64}),
			"imports extism:host/env.input_length with type 7, which the module does not define"},
		{"a memory", importing("env", "memory", 0x02, 0, nil, nil), "imports memory env.memory; the host provides none"},
		{"the instrumentation's own", importing("wasmq:internal", "check", 0x00, 0, nil, nil), "imports wasmq:internal.check, which the host does not provide"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.Install("acme", "imp", tc.wasm)
			if !errors.Is(err, abi.ErrInvalid) || !strings.Contains(err.Error(), tc.says) || strings.Contains(err.Error(), "child") {
				t.Fatalf("Install: %v, want %q", err, tc.says)
			}
		})
	}
	// The control: a module the host can run does reach the child.
	kit, _ := os.ReadFile("testdata/kit.wasm")
	if _, err := h.Install("acme", "kit", kit); err == nil || !strings.Contains(err.Error(), "compile in a child process") {
		t.Fatalf("kit did not reach the failing child: %v", err)
	}
	// wasmq plugins check does not compile a module it refuses on its
	// shape or imports: a nesting compile bomb (100,000 blocks took
	// wazero 86 s) is reported at once.
	bomb := filepath.Join(t.TempDir(), "bomb.wasm")
	if err := os.WriteFile(bomb, wasmgen.Module(wasmgen.Nested(100000)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errs := CheckFile(bomb); len(errs) != 1 || !strings.Contains(errs[0].Error(), "nest") {
		t.Errorf("CheckFile of a compile bomb: %v", errs)
	}
}

// importing is a module of one import (kind 0x00 a function of type typ,
// 0x02 a memory) whose one type is params -> results, and an export "run"
// () -> i32 of its own.
func importing(module, name string, kind byte, typ int, params, results []byte) []byte {
	vec := func(n int, b ...byte) []byte { return append([]byte{byte(n)}, b...) }
	section := func(id byte, body []byte) []byte { return append([]byte{id, byte(len(body))}, body...) }
	str := func(s string) []byte { return append([]byte{byte(len(s))}, s...) }
	ft := func(p, r []byte) []byte {
		return append(append([]byte{0x60}, vec(len(p), p...)...), vec(len(r), r...)...)
	}
	imp := append(str(module), str(name)...)
	if kind == 0x00 {
		imp = append(imp, 0x00, byte(typ))
	} else {
		imp = append(imp, 0x02, 0x00, 0x01) // memory, min 1 page
	}
	m := []byte("\x00asm\x01\x00\x00\x00")
	m = append(m, section(1, vec(2, append(ft(params, results), ft(nil, []byte{0x7f})...)...))...)
	m = append(m, section(2, vec(1, imp...))...)
	m = append(m, section(3, vec(1, 1))...)
	m = append(m, section(7, vec(1, append(str("run"), 0x00, 1)...))...)
	if kind != 0x00 {
		m[len(m)-1] = 0 // no function import: run is function 0
	}
	return append(m, section(10, vec(1, 4, 0, 0x41, 0, 0x0b))...)
}

// A tenant's private modules are bounded in number and bytes: an upload
// past either is refused before it is compiled or written, a module
// replaced is not counted twice, removing one makes room, and other
// tenants and the shared modules are not bounded by it.
func TestAPluginQuotaBoundsATenantsModules(t *testing.T) {
	cfg := testConfig(t.TempDir())
	small := func(i int) []byte { return wasmgen.Module(wasmgen.Flat(300 + 3*i)) }
	cfg.TenantPlugins = map[string]PluginQuota{"acme": {Modules: 2, Bytes: ByteSize(len(small(0)) + len(small(1)) + 20)}}
	h := newTestHost(t, cfg)
	for i, name := range []string{"a", "b"} {
		if _, err := h.Install("acme", name, small(i)); err != nil {
			t.Fatalf("install %s within the quota: %v", name, err)
		}
	}
	refused := func(what string, err error, key string) {
		t.Helper()
		if !errors.Is(err, abi.ErrQuota) || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: %v, want a refusal naming %s", what, err, key)
		}
	}
	_, err := h.Install("acme", "c", small(2))
	refused("a third module", err, "(max_plugins)")
	_, err = h.InstallWithConfig("acme", "c", small(2), []byte("[config]\n"))
	refused("a third module with its config", err, "(max_plugins)")
	if _, err := os.Stat(filepath.Join(cfg.PluginsDir, "acme", "c.wasm")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused module was written: %v", err)
	}
	if _, err := h.Install("acme", "a", small(3)); err != nil {
		t.Errorf("replacing a module within the bytes: %v", err)
	}
	_, err = h.Install("acme", "a", small(30))
	refused("replacing a module with a larger one", err, "max_plugin_bytes: ")
	if _, err := h.InstallWithConfig("acme", "a", nil, []byte("[config]\n")); err != nil {
		t.Errorf("a config alone, at the quota: %v", err)
	}
	for _, tenant := range []string{"globex", ""} {
		for _, name := range []string{"a", "b", "c"} {
			if _, err := h.Install(tenant, name, small(40)); err != nil {
				t.Errorf("tenant %q, not bounded, install %s: %v", tenant, name, err)
			}
		}
	}
	if err := h.Remove("acme", "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Install("acme", "c", small(2)); err != nil {
		t.Errorf("install after a removal made room: %v", err)
	}
}

// Uploads a tenant sends at once cannot together pass its quota: each
// checks it after the one before is written.
func TestConcurrentUploadsCannotPassTheQuota(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.TenantPlugins = map[string]PluginQuota{"acme": {Modules: 3, Bytes: 1 << 20}}
	h := newTestHost(t, cfg)
	const n = 12
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := h.Install("acme", fmt.Sprintf("m%d", i), wasmgen.Module(wasmgen.Flat(300+3*i)))
			errs <- err
		}()
	}
	installed := 0
	for range n {
		switch err := <-errs; {
		case err == nil:
			installed++
		case !errors.Is(err, abi.ErrQuota):
			t.Errorf("an upload failed otherwise: %v", err)
		}
	}
	ents, _ := filepath.Glob(filepath.Join(cfg.PluginsDir, "acme", "*.wasm"))
	if installed != 3 || len(ents) != 3 {
		t.Errorf("%d uploads succeeded, %d files written, want 3 of each (the quota)", installed, len(ents))
	}
}

// A sidecar is a tenant's upload, and the TOML parser's time grows as the
// square of its nesting (2,000 inline tables inside each other, 8 KB:
// 1.5 s; 100,000 did not end in minutes). Its size, nesting and dotted
// keys are bounded before it is parsed, reading strings and comments as
// TOML does, so that brackets cannot hide in them.
func TestASidecarsShapeIsBoundedBeforeItIsParsed(t *testing.T) {
	deep := func(open, close string, n int) string {
		return strings.Repeat(open, n) + "1" + strings.Repeat(close, n)
	}
	for _, c := range []struct{ text, says string }{
		{"[config]\na = " + deep("{b=", "}", 10000) + "\n", "tables and arrays nest more than 32 deep"},
		{"[config]\na = " + deep("[", "]", 33) + "\n", "line 2: tables and arrays nest more than 32 deep"},
		{"[config]\n" + strings.Repeat("b.", 40) + "c = 1\n", "a key has more than 32 dotted parts"},
		{"[config." + strings.Repeat("b.", 40) + "c]\nx = 1\n", "a key has more than 32 dotted parts"},
		{"[config]\nx = \"" + strings.Repeat("y", 300000) + "\"\n", "over the 262144 a sidecar may take"},
		// A multi-line string may close with up to five quotes: what
		// follows it is TOML again.
		{"[config]\na = \"\"\"x\"\"\"\"\"\nb = " + deep("[", "]", 40) + "\n", "line 3: tables and arrays nest"},
		{"[config]\na = '''x\n{{{'''''\nb = " + deep("[", "]", 40) + "\n", "line 4: tables and arrays nest"},
		{"[config]\na = \"x\\\"{{\"\nb = " + deep("[", "]", 40) + "\n", "line 3: tables and arrays nest"},
	} {
		if _, err := parseSidecar("k.toml", []byte(c.text)); err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%.60q…: %v, want %q", c.text, err, c.says)
		}
	}
	// Brackets and dots in strings and comments are not structure; nor
	// are a value's dots. Each is valid TOML, whose shape passes.
	for _, text := range []string{
		"[config]\nx = \"" + strings.Repeat("{[.", 50) + "\"\n",
		"[config]\nx = '" + strings.Repeat("{[.", 50) + "'\n",
		"[config]\nx = \"\"\"\n" + strings.Repeat("{[.\n", 50) + "\"\"\"\n",
		"# " + strings.Repeat("{[.", 50) + "\n[config]\nx = 1.5\ny = 1979-05-27T07:32:00.999Z\n",
		"[config]\n" + strings.Repeat("b.", 30) + "c = " + deep("[", "]", 31) + "\n",
		"[functions.run]\nconfig = { a = { b = { c = \"d.e.f\" } } }\n",
	} {
		var v map[string]any
		if _, err := toml.Decode(text, &v); err != nil {
			t.Fatalf("%.60q…: not TOML: %v", text, err)
		}
		if err := checkSidecarShape([]byte(text)); err != nil {
			t.Errorf("%.60q…: %v", text, err)
		}
	}
}
