package postgres

import (
	"context"
	"testing"

	"github.com/wasmq/wasmq/store"
)

// The batch paths side by side: 1,000 jobs per Insert, through the arrays
// (unnest) or COPY. docs/benchmarks.md has the figures.
func BenchmarkInsert1000Unnest(b *testing.B) { benchInsert(b, 1<<30) }
func BenchmarkInsert1000Copy(b *testing.B)   { benchInsert(b, 1) }

func benchInsert(b *testing.B, threshold int) {
	defer func(n int) { copyThreshold = n }(copyThreshold)
	copyThreshold = threshold
	s := openTest(b)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		jobs := make([]store.NewJob, 1000)
		for i := range jobs {
			jobs[i] = newJob("")
		}
		if _, err := s.Insert(ctx, jobs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "jobs/s")
}
