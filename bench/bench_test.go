package bench

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/wasmq/wasmq/store/pgtest"
)

func plugins(b *testing.B) string {
	dir := b.TempDir()
	wasm, err := os.ReadFile("../plugins/examples/testkit/testkit.wasm")
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "testkit.wasm"), wasm, 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkEndToEndSQLite runs a small `wasmq bench` on the embedded store.
func BenchmarkEndToEndSQLite(b *testing.B) {
	dir := plugins(b)
	for b.Loop() {
		r, err := Run(context.Background(), Options{Driver: "sqlite", Jobs: 5000, Samples: 20, PluginsDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.Throughput, "jobs/s")
	}
}

// BenchmarkEndToEndPostgres runs `wasmq bench` on a fresh PostgreSQL
// schema (skipped without PostgreSQL).
func BenchmarkEndToEndPostgres(b *testing.B) {
	dir := plugins(b)
	for b.Loop() {
		r, err := Run(context.Background(), Options{Driver: "postgres", DSN: pgtest.DSN(b), Jobs: 40000, Samples: 20, PluginsDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.Throughput, "jobs/s")
		b.ReportMetric(float64(r.P50.Microseconds()), "p50-µs")
	}
}
