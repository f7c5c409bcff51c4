package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
	"github.com/wasmq/wasmq/store/disktest"
)

// A disk that fills up: the insert that does not fit fails as the store
// being unavailable (SQLITE_FULL: the API answers 503, not 500), stores
// none of its jobs, and leaves every job stored before readable; once
// there is room again, the store takes jobs again.
func TestADiskThatFillsUpLosesNothing(t *testing.T) {
	disk, s := onSmallDisk(t)
	ctx := context.Background()
	var stored []string
	var full error
	var lost []store.NewJob
	for range 10000 {
		jobs := bigJobs()
		if _, err := s.Insert(ctx, jobs); err != nil {
			full, lost = err, jobs
			break
		}
		for _, j := range jobs {
			stored = append(stored, j.UUID)
		}
	}
	if full == nil {
		t.Fatal("a 2 MiB disk took 200,000 jobs: the test fills nothing")
	}
	t.Logf("the disk filled after %d jobs: %v", len(stored), full)
	if !s.Unavailable(full) {
		t.Errorf("the insert on a full disk failed with %v, which is not Unavailable", full)
	}
	for _, j := range lost {
		if _, err := s.Get(ctx, "", j.UUID); err == nil {
			t.Fatalf("job %s of the failed insert was stored", j.UUID)
		}
	}
	for _, id := range stored {
		if _, err := s.Get(ctx, "", id); err != nil {
			t.Fatalf("job %s, stored before the disk filled: %v", id, err)
		}
	}
	disk.Resize("16m")
	again := bigJobs()
	if _, err := s.Insert(ctx, again); err != nil {
		t.Fatalf("with room again: %v", err)
	}
	counts, err := s.Counts(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, c := range counts {
		for _, k := range c.Counts {
			n += k
		}
	}
	if want := len(stored) + len(again); n != want {
		t.Errorf("the counts say %d jobs, want %d", n, want)
	}
}

// A start or a claim whose transaction cannot commit (the disk is full)
// starts nothing: it returns no job to run, and the jobs stay as they
// were. A node that ran the rows read before the commit failed ran jobs
// the store does not say are started, and one that counted them kept
// their worker slots for ever (the chaos suite's node took no job again
// once the disk had room).
func TestAStartOnAFullDiskStartsNothing(t *testing.T) {
	disk, s := onSmallDisk(t)
	ctx := context.Background()
	for range 15 {
		if _, err := s.Insert(ctx, bigJobs()); err != nil {
			t.Fatal(err)
		}
	}
	pending, err := s.PendingSince(ctx, 0, 300)
	if err != nil || len(pending) != 300 {
		t.Fatalf("%d pending (%v), want 300", len(pending), err)
	}
	lease := time.Now().Add(time.Minute)
	if moved, err := s.Enqueue(ctx, pending[:100], lease); err != nil || len(moved) != 100 {
		t.Fatalf("handed out %d (%v), want 100", len(moved), err)
	}
	// An empty write-ahead log and no free block: a commit has to grow
	// the log, and cannot. (A log with room left in it, from a
	// checkpoint or from a failed write, would let a small commit
	// through, and the test would prove nothing.)
	if _, err := s.d.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	disk.Fill()

	started, err := s.Start(ctx, pending[100:], "w1", lease)
	if err == nil {
		t.Fatalf("a start committed on a full disk (%d jobs)", len(started))
	}
	if len(started) != 0 || !s.Unavailable(err) {
		t.Errorf("a start on a full disk returned %d jobs and %v; want none, and the store unavailable", len(started), err)
	}
	for _, c := range pending[100:] {
		if j, err := s.Get(ctx, "", c.UUID); err != nil || j.State != abi.StatePending {
			t.Fatalf("job %s after the failed start: %v %v, want pending", c.UUID, j.State, err)
		}
	}
	claimed, err := s.Claim(ctx, "w1", 100, lease)
	if err == nil {
		t.Fatalf("a claim committed on a full disk (%d jobs)", len(claimed))
	}
	if len(claimed) != 0 || !s.Unavailable(err) {
		t.Errorf("a claim on a full disk returned %d jobs and %v; want none, and the store unavailable", len(claimed), err)
	}
	for _, c := range pending[:100] {
		if j, err := s.Get(ctx, "", c.UUID); err != nil || j.State != abi.StateEnqueued {
			t.Fatalf("job %s after the failed claim: %v %v, want enqueued", c.UUID, j.State, err)
		}
	}
}

// onSmallDisk opens a store on a 2 MiB tmpfs (disktest: root only).
func onSmallDisk(t *testing.T) (*disktest.Disk, *Store) {
	disk := disktest.Mount(t, "2m")
	s, err := Open(context.Background(), filepath.Join(disk.Dir, "wasmq.db"), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return disk, s
}

// bigJobs are 20 jobs of about 700 bytes each.
func bigJobs() []store.NewJob {
	jobs := make([]store.NewJob, 20)
	for i := range jobs {
		jobs[i] = store.NewJob{UUID: uuid.NewString(), Tenant: "t1", Func: "testkit.echo", Channel: "root",
			Priority: 10, MaxRetries: 5, Description: strings.Repeat("x", 500)}
	}
	return jobs
}
