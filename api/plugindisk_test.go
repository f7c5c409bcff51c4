package api_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmq/wasmq/config"
	"github.com/wasmq/wasmq/store/disktest"
)

// A plugin uploaded to a node whose plugins_dir's disk is full is
// answered 503 with Retry-After, saying so (the node's disk, not the
// request, nor a fault of wasmq), and nothing of it is installed; once
// there is room the same upload is taken.
func TestAPluginUploadToAFullDiskIs503AndInstallsNothing(t *testing.T) {
	wasm, err := os.ReadFile("../plugins/examples/vowels/vowels.wasm")
	if err != nil {
		t.Fatalf("vowels.wasm must be built (make plugins): %v", err)
	}
	disk := disktest.Mount(t, "1m")
	s := start(t, func(f *config.File) { f.Host.PluginsDir = disk.Dir })
	disk.Fill()
	r := s.do("PUT", "/v1/plugins/vowels", tokA, wasm)
	if r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Fatalf("upload to a full disk: %d (Retry-After %q) %s, want 503 with Retry-After", r.status, r.header.Get("Retry-After"), r.body)
	}
	// Said of the node's disk, not of the store (which is elsewhere and
	// well: on SQLite its classifier used to lend the 503 by chance, on
	// PostgreSQL the answer was a 500).
	if code, msg, _ := r.errOf(t); code != "unavailable" || !strings.Contains(msg, "cannot write the plugin") {
		t.Fatalf("upload to a full disk: %s %q, want unavailable, saying the plugin could not be written", code, msg)
	}
	left, _ := filepath.Glob(filepath.Join(disk.Dir, "acme", "*vowels*"))
	if len(left) > 0 {
		t.Fatalf("a refused upload left %v", left)
	}
	if r := s.do("GET", "/v1/plugins", tokA, nil); r.status != 200 || len(r.json(t)["plugins"].([]any)) != 0 {
		t.Fatalf("plugins after a refused upload: %d %s, want none", r.status, r.body)
	}
	disk.Resize("16m")
	if r := s.do("PUT", "/v1/plugins/vowels", tokA, wasm); r.status != 201 {
		t.Fatalf("upload once there is room: %d %s, want 201", r.status, r.body)
	}
}
