package bench

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkEndToEndSQLite runs a small `wasmq bench` on the embedded store.
func BenchmarkEndToEndSQLite(b *testing.B) {
	plugins := b.TempDir()
	wasm, err := os.ReadFile("../plugins/examples/testkit/testkit.wasm")
	if err != nil {
		b.Fatal(err)
	}
	os.WriteFile(filepath.Join(plugins, "testkit.wasm"), wasm, 0o644)
	for b.Loop() {
		r, err := Run(context.Background(), Options{Driver: "sqlite", Jobs: 5000, Samples: 20, PluginsDir: plugins})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.Throughput, "jobs/s")
	}
}
