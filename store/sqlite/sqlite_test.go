package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

func nj(tenant string) store.NewJob {
	return store.NewJob{UUID: uuid.NewString(), Tenant: tenant, Func: "testkit.echo", Channel: "root", Priority: 10, MaxRetries: 5}
}

func TestJobLifecycleDedupAndPaging(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "x", "w.db"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, b := nj("t"), nj("t")
	b.DependsOn = []string{a.UUID}
	ins, err := s.Insert(ctx, []store.NewJob{a, b})
	if err != nil {
		t.Fatal(err)
	}
	if ins[0].Job.State != abi.StatePending || ins[1].Job.State != abi.StateWaitDependencies || ins[1].Job.DependsOn[0] != a.UUID {
		t.Fatalf("states %+v", ins)
	}
	c, _ := s.PendingSince(ctx, 0, 10)
	if len(c) != 1 {
		t.Fatalf("cands %d", len(c))
	}
	moved, err := s.Enqueue(ctx, c, time.Now().Add(time.Minute))
	if err != nil || len(moved) != 1 {
		t.Fatal(moved, err)
	}
	cl, err := s.Claim(ctx, "w1", 10, time.Now().Add(time.Minute))
	if err != nil || len(cl) != 1 || cl[0].Retry != 1 || cl[0].Attempt != 1 {
		t.Fatal(cl, err)
	}
	ap, err := s.Complete(ctx, []store.Completion{{UUID: a.UUID, WorkerID: "w1", Attempt: 1, To: abi.StateDone, Cause: abi.CauseDone, Result: []byte(`{"x":1}`)}})
	if err != nil || len(ap) != 1 {
		t.Fatal(ap, err)
	}
	jb, _ := s.Get(ctx, "t", b.UUID)
	if jb.State != abi.StatePending {
		t.Fatalf("child %s", jb.State)
	}
	ja, _ := s.Get(ctx, "", a.UUID)
	if ja.ExecTime == nil || string(ja.Result) != `{"x":1}` {
		t.Fatalf("%+v", ja)
	}
	if _, err := s.Get(ctx, "other", a.UUID); !errors.Is(err, abi.ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := s.Cancel(ctx, "t", a.UUID); !errors.Is(err, abi.ErrIllegalTransition) {
		t.Fatal(err)
	}
	if j, err := s.Requeue(ctx, "t", a.UUID); err != nil || j.State != abi.StatePending || j.Retry != 0 {
		t.Fatal(j, err)
	}
	at, err := s.Attempts(ctx, "t", a.UUID)
	if err != nil || len(at) != 1 || at[0].Outcome != "done" {
		t.Fatal(at, err)
	}
	// dedup under concurrency
	var wg sync.WaitGroup
	var mu sync.Mutex
	created := 0
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j := nj("t")
			j.IdentityKey = "k"
			r, err := s.Insert(ctx, []store.NewJob{j})
			if err != nil {
				t.Error(err)
				return
			}
			if !r[0].Deduplicated {
				mu.Lock()
				created++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if created != 1 {
		t.Fatalf("created %d", created)
	}
	p, err := s.List(ctx, store.Filter{Tenant: "t", Limit: 2})
	if err != nil || len(p.Jobs) != 2 || p.NextCursor == "" {
		t.Fatal(p, err)
	}
	p2, err := s.List(ctx, store.Filter{Tenant: "t", Limit: 2, Cursor: p.NextCursor})
	if err != nil || len(p2.Jobs) != 1 || p2.NextCursor != "" {
		t.Fatal(len(p2.Jobs), err)
	}
}

func TestMigrationsAreIdempotentAndANewerSchemaIsRefused(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	if n, err := MigrateFile(ctx, path); err != nil || n != SchemaVersion {
		t.Fatalf("first migrate applied %d (%v), want %d", n, err, SchemaVersion)
	}
	if n, err := MigrateFile(ctx, path); err != nil || n != 0 {
		t.Fatalf("second migrate applied %d (%v), want 0", n, err)
	}
	s, err := Open(ctx, path, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, `INSERT INTO wasmq_schema_version (version) VALUES (?)`, SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = Open(ctx, path, true)
	if err == nil || !strings.Contains(err.Error(), "newer than this wasmq binary") {
		t.Fatalf("opening a newer schema: %v", err)
	}
}

func TestASecondProcessIsRefused(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "one.db")
	s, err := Open(ctx, path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Open(ctx, path, true); err == nil || !strings.Contains(err.Error(), "in use by another wasmq process") {
		t.Fatalf("second open: %v", err)
	}
}
