package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// Bench runs the store benchmarks every backend reports
// (docs/benchmarks.md): one insert, a 10k batch, the worker hot path,
// the counts.
func Bench(b *testing.B, open func(b *testing.B) store.Store) {
	b.Run("InsertOne", func(b *testing.B) {
		s := open(b)
		ctx := context.Background()
		for b.Loop() {
			if _, err := s.Insert(ctx, []store.NewJob{nj("t")}); err != nil {
				b.Fatal(err)
			}
		}
	})
	// A fan-in's children stored one request each, four at a time, all
	// under the same ten parents: each takes its parents' rows for its
	// transaction (Tx.LockParents), so this is what that costs them.
	b.Run("InsertChildrenOf10Parents", func(b *testing.B) {
		s := open(b)
		ctx := context.Background()
		parents := make([]store.NewJob, 10)
		ids := make([]string, len(parents))
		for i := range parents {
			parents[i] = nj("t")
			ids[i] = parents[i].UUID
		}
		if _, err := s.Insert(ctx, parents); err != nil {
			b.Fatal(err)
		}
		b.SetParallelism(2) // four at a time on two cores
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				j := nj("t")
				j.DependsOn = ids
				if _, err := s.Insert(ctx, []store.NewJob{j}); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
	})
	b.Run("InsertBatch10k", func(b *testing.B) {
		s := open(b)
		ctx := context.Background()
		for b.Loop() {
			jobs := make([]store.NewJob, 10000)
			for i := range jobs {
				jobs[i] = nj("t")
			}
			if _, err := s.Insert(ctx, jobs); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*10000)/b.Elapsed().Seconds(), "jobs/s")
	})
	for _, batch := range []int{100, 500} {
		b.Run("ClaimComplete"+map[int]string{100: "100", 500: "500"}[batch], func(b *testing.B) {
			s := open(b)
			ctx := context.Background()
			for i := 0; i < batch*b.N; i += 10000 {
				jobs := make([]store.NewJob, min(10000, batch*b.N-i))
				for k := range jobs {
					jobs[k] = nj("t")
				}
				if _, err := s.Insert(ctx, jobs); err != nil {
					b.Fatal(err)
				}
			}
			for {
				c, err := s.PendingSince(ctx, 0, 10000)
				if err != nil {
					b.Fatal(err)
				}
				if len(c) == 0 {
					break
				}
				if _, err := s.Enqueue(ctx, c, time.Now().Add(time.Hour)); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for range b.N {
				jobs, err := s.Claim(ctx, "w", batch, time.Now().Add(time.Minute))
				if err != nil || len(jobs) != batch {
					b.Fatalf("claimed %d: %v", len(jobs), err)
				}
				cs := make([]store.Completion, len(jobs))
				for i, j := range jobs {
					cs[i] = store.Completion{UUID: j.UUID, WorkerID: "w", Attempt: j.Attempt, To: abi.StateDone,
						Cause: abi.CauseDone, Result: []byte(`null`), Ended: time.Now()}
				}
				if applied, err := s.Complete(ctx, cs); err != nil || len(applied) != batch {
					b.Fatalf("completed %d: %v", len(applied), err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "jobs/s")
		})
	}
	// The leader's path: Start the jobs it picked for its own workers,
	// then complete them.
	b.Run("StartComplete100", func(b *testing.B) {
		s := open(b)
		ctx := context.Background()
		var cands []store.Candidate
		for i := 0; i < 100*b.N; i += 10000 {
			jobs := make([]store.NewJob, min(10000, 100*b.N-i))
			for k := range jobs {
				jobs[k] = nj("t")
			}
			if _, err := s.Insert(ctx, jobs); err != nil {
				b.Fatal(err)
			}
		}
		for len(cands) < 100*b.N {
			after := int64(0)
			if len(cands) > 0 {
				after = cands[len(cands)-1].Version
			}
			c, err := s.PendingSince(ctx, after, 10000)
			if err != nil || len(c) == 0 {
				b.Fatalf("pending: %d, %v", len(c), err)
			}
			cands = append(cands, c...)
		}
		b.ResetTimer()
		for i := range b.N {
			jobs, err := s.Start(ctx, cands[i*100:(i+1)*100], "w", time.Now().Add(time.Minute))
			if err != nil || len(jobs) != 100 {
				b.Fatalf("started %d: %v", len(jobs), err)
			}
			cs := make([]store.Completion, len(jobs))
			for i, j := range jobs {
				cs[i] = store.Completion{UUID: j.UUID, WorkerID: "w", Attempt: j.Attempt, To: abi.StateDone,
					Cause: abi.CauseDone, Result: []byte(`null`), Ended: time.Now()}
			}
			if applied, err := s.Complete(ctx, cs); err != nil || len(applied) != 100 {
				b.Fatalf("completed %d: %v", len(applied), err)
			}
		}
		b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "jobs/s")
	})
	// Counts answers the channel page, the metrics and every enqueue under
	// a max_pending quota: it must not cost a scan of the jobs.
	b.Run("CountsOf100kJobs", func(b *testing.B) {
		s := open(b)
		ctx := context.Background()
		for range 10 {
			jobs := make([]store.NewJob, 10000)
			for k := range jobs {
				jobs[k] = nj(fmt.Sprintf("t%d", k%5))
				jobs[k].Channel = fmt.Sprintf("root.c%d", k%7)
			}
			if _, err := s.Insert(ctx, jobs); err != nil {
				b.Fatal(err)
			}
		}
		for b.Loop() {
			for _, tenant := range []string{"", "t1"} {
				if c, err := s.Counts(ctx, tenant); err != nil || len(c) != 7 {
					b.Fatalf("counts of %q: %d channels (%v), want 7", tenant, len(c), err)
				}
			}
		}
	})
}
