package bench

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/wasmq/wasmq/store/pgtest"
)

func plugins(b testing.TB) string {
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

// BenchmarkEndToEndPostgresNoop is BenchmarkEndToEndPostgres with jobs
// that write nothing (testkit.noop): what is left is the sandbox's cost
// and the queue's, as in other queues' no-op benchmarks.
func BenchmarkEndToEndPostgresNoop(b *testing.B) {
	dir := plugins(b)
	for b.Loop() {
		r, err := Run(context.Background(), Options{Driver: "postgres", DSN: pgtest.DSN(b), Jobs: 40000, Samples: 20, PluginsDir: dir,
			Func: "testkit.noop"})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.Throughput, "jobs/s")
	}
}

// BenchmarkBacklogPostgres is issue #15's scenario: 1,000,000 jobs due a
// day ahead and 100,000 done jobs in the store, then 100,000 jobs due
// now. Compare with BenchmarkEndToEndPostgres (-benchtime=1x; the load
// takes about a minute).
func BenchmarkBacklogPostgres(b *testing.B) {
	dir := plugins(b)
	for b.Loop() {
		r, err := Run(context.Background(), Options{Driver: "postgres", DSN: pgtest.DSN(b), Jobs: 100000, Samples: 200,
			PluginsDir: dir, Backlog: 1000000, History: 100000})
		if err != nil {
			b.Fatal(err)
		}
		if r.Held > 1000 {
			b.Fatalf("the idle scheduler holds %d jobs with the backlog in the store", r.Held)
		}
		b.ReportMetric(r.Throughput, "jobs/s")
		b.ReportMetric(float64(r.P50.Microseconds()), "p50-µs")
		b.ReportMetric(r.StartUp.Seconds(), "startup-s")
		b.ReportMetric(float64(r.Held), "held")
	}
}
