package host

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/host/wasmgen"
	"github.com/wasmq/wasmq/store/disktest"
)

// The compilation cache only saves compiling again. A node restarted on
// a disk that filled up (its logs, another program) found every module
// it had not cached refused, "compile: write …: no space left on
// device", and failed every job of them for good (wasmq.PluginInvalid).
// Now its modules load and run; the node says once that it compiles
// without the cache.
func TestAFullCacheDiskDoesNotKeepModulesFromLoading(t *testing.T) {
	disk := disktest.Mount(t, "1m")
	disk.Fill()
	dir := t.TempDir()
	copyFile(t, "testdata/kit.wasm", filepath.Join(dir, "kit.wasm"))
	cfg := testConfig(dir)
	cfg.CacheDir = disk.Dir
	var logged bytes.Buffer
	h, err := New(cfg, zerolog.New(&logged), withoutReload())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(t.Context()) })
	if _, err := h.Function("acme", "kit.echo"); err != nil {
		t.Fatalf("kit.echo with the cache's disk full: %v", err)
	}
	if o := run(t, h, job("kit.echo")); o.Kind != abi.OutcomeDone {
		t.Fatalf("kit.echo with the cache's disk full: %+v, want done", o)
	}
	// A module added afterwards loads too, without another warning.
	copyFile(t, "testdata/kit_v2.wasm", filepath.Join(dir, "kit2.wasm"))
	h.Rescan()
	if o := run(t, h, job("kit2.echo")); o.Kind != abi.OutcomeDone {
		t.Fatalf("a module added with the cache's disk full: %+v, want done", o)
	}
	if n := bytes.Count(logged.Bytes(), []byte("compiling without it")); n != 1 {
		t.Errorf("%d warnings that the cache cannot be written, want 1:\n%s", n, logged.Bytes())
	}
}

// The compilation cache holds what the loaded modules need and no more.
// wazero removes no file it writes: a tenant replacing one module ten
// times left ten files (and ten compile marks), and a node's disk filled
// up with versions nothing used. Now a version no module uses leaves the
// cache with its mark, and a node starting drops what the cache keeps of
// modules removed while it was down, and writes a crash cut short.
func TestTheCompilationCacheKeepsOnlyWhatIsLoaded(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t.TempDir())
	cfg.CacheDir = t.TempDir()
	cfg.CompileCommand = []string{self, "compile-child"}
	cfg.SweepCache = true
	count := func(pattern string) int {
		t.Helper()
		m, _ := filepath.Glob(filepath.Join(cfg.CacheDir, pattern))
		return len(m)
	}
	version := func(i int) []byte { return wasmgen.Module(wasmgen.Flat(300 + 3*i)) }
	h := newTestHost(t, cfg)
	for i := range 10 {
		if _, err := h.Install("acme", "m", version(i)); err != nil {
			t.Fatalf("version %d: %v", i, err)
		}
	}
	if files, marks := count("wazero-*/*"), count("bounded/*"); files != 1 || marks != 1 {
		t.Errorf("after ten versions of one module the cache holds %d files and %d marks, want 1 and 1", files, marks)
	}
	if err := h.Remove("acme", "m"); err != nil {
		t.Fatal(err)
	}
	if files, marks, lists := count("wazero-*/*"), count("bounded/*"), count("modules/*"); files+marks+lists != 0 {
		t.Errorf("after its removal the cache holds %d files, %d marks and %d listings of it", files, marks, lists)
	}

	// A module removed while the node is down, and a write cut short.
	for i, name := range []string{"keep", "gone"} {
		if _, err := h.Install("acme", name, version(100+i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(cfg.PluginsDir, "acme", "gone.wasm")); err != nil {
		t.Fatal(err)
	}
	dirs, _ := filepath.Glob(filepath.Join(cfg.CacheDir, "wazero-*"))
	if len(dirs) != 1 || count("wazero-*/*") != 2 {
		t.Fatalf("before the restart: folders %v, %d files", dirs, count("wazero-*/*"))
	}
	if err := os.WriteFile(filepath.Join(dirs[0], "cut-short.123.tmp"), []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.CompileCommand = []string{"/bin/false"} // keep's mark must spare it the child
	h = newTestHost(t, cfg)
	if o := run(t, h, job("keep.run")); o.Kind != abi.OutcomeDone {
		t.Errorf("keep.run after the restart: %s %s %q", o.Kind, o.ExcName, o.ExcMessage)
	}
	if files, marks, tmps := count("wazero-*/*"), count("bounded/*"), count("wazero-*/*.tmp"); files != 1 || marks != 1 || tmps != 0 {
		t.Errorf("after the restart the cache holds %d files (%d cut short) and %d marks, want keep's 1 and 1", files, tmps, marks)
	}
}
