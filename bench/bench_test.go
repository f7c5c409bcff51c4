package bench

import (
	"context"
	"testing"
)

// BenchmarkEndToEndSQLite runs a small `wasmq bench` on the embedded store.
func BenchmarkEndToEndSQLite(b *testing.B) {
	for b.Loop() {
		r, err := Run(context.Background(), Options{Driver: "sqlite", Jobs: 5000, Samples: 20, PluginsDir: "/tmp/tkonly"})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.Throughput, "jobs/s")
	}
}
