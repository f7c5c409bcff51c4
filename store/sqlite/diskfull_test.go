package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/wasmq/wasmq/store"
	"github.com/wasmq/wasmq/store/disktest"
)

// A disk that fills up: the insert that does not fit fails as the store
// being unavailable (SQLITE_FULL: the API answers 503, not 500), stores
// none of its jobs, and leaves every job stored before readable; once
// there is room again, the store takes jobs again.
func TestADiskThatFillsUpLosesNothing(t *testing.T) {
	disk := disktest.Mount(t, "2m")
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(disk.Dir, "wasmq.db"), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	batch := func() []store.NewJob {
		jobs := make([]store.NewJob, 20)
		for i := range jobs {
			jobs[i] = store.NewJob{UUID: uuid.NewString(), Tenant: "t1", Func: "testkit.echo", Channel: "root",
				Priority: 10, MaxRetries: 5, Description: strings.Repeat("x", 500)}
		}
		return jobs
	}
	var stored []string
	var full error
	var lost []store.NewJob
	for range 10000 {
		jobs := batch()
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
	again := batch()
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
