package host

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/wasmq/wasmq/abi"
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
