package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// TestTheBenchLoaderWritesWhatAnInsertWrites: the jobs LoadBacklog
// writes are counted, read by the scheduler's reads and startable like
// inserted ones, and the done ones are history only.
func TestTheBenchLoaderWritesWhatAnInsertWrites(t *testing.T) {
	ctx := context.Background()
	dsn := testDSN(t)
	s := openOn(t, dsn, true)
	eta := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Microsecond)
	var seen []int
	if err := LoadBacklog(ctx, dsn, Backlog{Tenant: "t1", Func: "testkit.echo", Channel: "root", Future: loadChunk + 10, ETA: eta, Done: 7},
		func(done, _ int) { seen = append(seen, done) }); err != nil {
		t.Fatal(err)
	}
	if want := []int{loadChunk, loadChunk + 10, loadChunk + 17}; len(seen) != 3 || seen[0] != want[0] || seen[1] != want[1] || seen[2] != want[2] {
		t.Fatalf("progress %v, want %v", seen, want)
	}
	if err := s.d.foldCounts(ctx); err != nil {
		t.Fatal(err)
	}
	counts, err := s.Counts(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	if len(counts) != 1 || counts[0].Counts[abi.StatePending] != loadChunk+10 || counts[0].Counts[abi.StateDone] != 7 {
		t.Fatalf("counts %+v, want %d pending and 7 done in root", counts, loadChunk+10)
	}
	if due, err := s.PendingDue(ctx, 0, time.Now().Add(time.Hour), nil, 10); err != nil || len(due) != 0 {
		t.Fatalf("%d loaded jobs due within the hour, want none", len(due))
	}
	later, err := s.PendingByETA(ctx, store.ETACursor{}, eta, 10)
	if err != nil || len(later) != 10 || !later[0].ETA.Equal(eta) {
		t.Fatalf("PendingByETA up to the backlog's eta: %d jobs (%+v), want a page of 10 at %v", len(later), later, eta)
	}
	started, err := s.Start(ctx, later[:1], "w", time.Now().Add(time.Minute))
	if err != nil || len(started) != 1 || started[0].Func != "testkit.echo" || string(started[0].Args) != "[1]" {
		t.Fatalf("started %+v, want the loaded job", started)
	}
}
