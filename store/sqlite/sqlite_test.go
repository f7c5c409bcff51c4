package sqlite

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
	"github.com/wasmq/wasmq/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "wasmq.db"), true)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
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
	if _, err := s.d.w.ExecContext(ctx, `INSERT INTO wasmq_schema_version (version) VALUES (?)`, SchemaVersion+1); err != nil {
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

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) store.Store {
		s, err := Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), true)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	})
}

// Schema 3 counts the jobs already in the file, then keeps the counts
// through every later write.
func TestUpgradeToSchema3CountsTheJobsAlreadyThere(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.w.ExecContext(ctx, `CREATE TABLE wasmq_schema_version (version INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for i, m := range migrations[:2] {
		if _, err := old.w.ExecContext(ctx, m); err != nil {
			t.Fatalf("migration %d: %v", i+1, err)
		}
		if _, err := old.w.ExecContext(ctx, `INSERT INTO wasmq_schema_version (version) VALUES (?)`, i+1); err != nil {
			t.Fatal(err)
		}
	}
	for i, st := range []string{"pending", "pending", "done", "done", "done", "failed", "cancelled"} {
		tenant, channel := "t1", "root"
		if i%2 == 1 {
			tenant, channel = "t2", "root.b"
		}
		if _, err := old.w.ExecContext(ctx, `INSERT INTO jobs (uuid, tenant, func, args, kwargs, context, channel,
			priority, max_retries, state, date_created, version) VALUES (?, ?, 'testkit.echo', '[]', '{}', '{}', ?, 10, 5, ?, 0, ?)`,
			fmt.Sprintf("old-%d", i), tenant, channel, st, i+1); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()

	s, err := Open(ctx, path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := map[string]map[string]int{
		"":   {"root pending": 1, "root.b pending": 1, "root done": 2, "root.b done": 1, "root.b failed": 1, "root cancelled": 1},
		"t2": {"root.b pending": 1, "root.b done": 1, "root.b failed": 1},
	}
	for tenant, w := range want {
		counts, err := s.Counts(ctx, tenant)
		if err != nil {
			t.Fatal(err)
		}
		got := storetest.CountsByKey(counts)
		if !maps.Equal(got, w) {
			t.Fatalf("Counts(%q) after the upgrade = %v, want %v", tenant, got, w)
		}
	}
	// Later writes move the counts: a cancel, and a vacuum of the done jobs.
	if _, err := s.Cancel(ctx, "", "old-0"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Vacuum(ctx, "root", time.Now().Add(time.Second)); err != nil || n != 4 {
		t.Fatalf("vacuum of root deleted %d (%v), want the 2 done and the 2 cancelled", n, err)
	}
	if counts, err := s.Counts(ctx, "t1"); err != nil || len(counts) != 0 {
		t.Fatalf("Counts(t1) after cancelling its pending job and vacuuming root = %+v (%v), want none", counts, err)
	}
}

// A list reads its newest-first index backwards (schema 9 made them
// ascending, for the inserts): no filter, a tenant, a tenant's user or
// model, states that hold many jobs, each from its first page and from a
// cursor, walks an index in the list's order, never sorts the matching
// jobs. A list of states that hold few (readsStateIndex) reads the
// state's index and sorts what it finds, rather than walk every job for
// them.
func TestTheListWalksItsIndexBackwards(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "wasmq.db"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	at := &store.Cursor{Created: time.Now().UTC(), Seq: 1000}
	for _, c := range []struct {
		f       store.Filter
		byState bool
		index   string
	}{
		{store.Filter{}, false, "jobs_newest"},
		{store.Filter{Tenant: "t1"}, false, "jobs_tenant_newest"},
		{store.Filter{Tenant: "t1", UserID: "u"}, false, "jobs_user"},
		{store.Filter{Tenant: "t1", ModelName: "sale.order"}, false, "jobs_model"},
		{store.Filter{States: []abi.State{abi.StateDone}}, false, "jobs_newest"},
		{store.Filter{Tenant: "t1", States: []abi.State{abi.StateDone}}, false, "jobs_tenant_newest"},
		{store.Filter{Tenant: "t1", States: []abi.State{abi.StatePending, abi.StateCancelled}, Channel: "root"}, false, "jobs_tenant_newest"},
		{store.Filter{Tenant: "t1", States: []abi.State{abi.StateFailed}}, true, "jobs_state_channel"},
		{store.Filter{States: []abi.State{abi.StateStarted, abi.StateEnqueued}, Channel: "root"}, true, "jobs_state_channel"},
	} {
		sorts := c.byState
		for _, after := range []*store.Cursor{nil, at} {
			page, args := listPage(store.ListQuery{Filter: c.f, Limit: 51, After: after}, c.byState)
			rows, err := s.d.r.QueryContext(ctx, `EXPLAIN QUERY PLAN SELECT uuid FROM jobs `+page, args...)
			if err != nil {
				t.Fatal(err)
			}
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			rows.Close()
			text := strings.Join(plan, "; ")
			if !strings.Contains(text+" ", "INDEX "+c.index+" ") || strings.Contains(text, "TEMP B-TREE") != sorts {
				t.Errorf("filter %+v, cursor %v: plan %q; want %s read (sorted: %v)", c.f, after != nil, text, c.index, sorts)
			}
		}
	}
}

// Which way a list of states goes follows the store's counts: states
// holding few of the jobs the list may show are read through their
// index, states holding many walk the newest-first one; a channel or a
// tenant narrows the count.
func TestAListOfStatesReadsTheirIndexOnlyWhenTheyHoldFew(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "wasmq.db"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	jobs := make([]store.NewJob, stateIndexRows+1)
	for i := range jobs {
		jobs[i] = store.NewJob{UUID: fmt.Sprintf("j-%05d", i), Tenant: "t1", Func: "m.f", Channel: "root", Priority: 10, MaxRetries: 5}
	}
	jobs = append(jobs, store.NewJob{UUID: "other", Tenant: "t2", Func: "m.f", Channel: "root.mail", Priority: 10, MaxRetries: 5})
	if _, err := s.Insert(ctx, jobs); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		f    store.Filter
		want bool
	}{
		{store.Filter{}, false},
		{store.Filter{States: []abi.State{abi.StatePending}}, false},
		{store.Filter{Tenant: "t1", States: []abi.State{abi.StatePending}}, false},
		{store.Filter{Tenant: "t2", States: []abi.State{abi.StatePending}}, true},
		{store.Filter{States: []abi.State{abi.StatePending}, Channel: "root.mail"}, true},
		{store.Filter{States: []abi.State{abi.StatePending}, Channel: "root.*"}, false},
		{store.Filter{States: []abi.State{abi.StateFailed, abi.StateDone}}, true},
	} {
		if got, err := s.d.readsStateIndex(ctx, c.f); err != nil || got != c.want {
			t.Errorf("filter %+v: reads the state's index %v (%v), want %v", c.f, got, err, c.want)
		}
	}
}
