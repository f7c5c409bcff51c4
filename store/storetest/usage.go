package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// Every attempt's usage is kept where the attempt is: a retried attempt
// in its recorded row, a silent success on the job row, from which the
// listed attempt is made; a job that never reached a host has none.
func attemptsKeepTheirUsage(t *testing.T, s store.Store) {
	ctx := context.Background()
	j := nj("t")
	insert(t, s, j)
	first := abi.Usage{Fuel: 1234, WallMS: 5, PeakMemory: 65536, HostCalls: 3, HTTPRequests: 1, HTTPBytesOut: 7, HTTPBytesIn: 11}
	second := abi.Usage{Fuel: 99, WallMS: 1, PeakMemory: 131072}
	if g := get(t, s, j.UUID); g.Usage != nil {
		t.Fatalf("a new job has usage %+v", g.Usage)
	}
	run := start(t, s, "w", time.Minute)[0]
	if _, err := s.Complete(ctx, []store.Completion{{UUID: run.UUID, WorkerID: "w", Attempt: run.Attempt,
		To: abi.StatePending, Cause: abi.CauseRetry, ExcName: "x", Usage: &first}}); err != nil {
		t.Fatal(err)
	}
	if g := get(t, s, j.UUID); g.Usage == nil || *g.Usage != first {
		t.Fatalf("job row usage after a retry %+v, want %+v", g.Usage, first)
	}
	run = start(t, s, "w", time.Minute)[0]
	if _, err := s.Complete(ctx, []store.Completion{{UUID: run.UUID, WorkerID: "w", Attempt: run.Attempt,
		To: abi.StateDone, Cause: abi.CauseDone, Result: []byte(`1`), Usage: &second}}); err != nil {
		t.Fatal(err)
	}
	if g := get(t, s, j.UUID); g.Usage == nil || *g.Usage != second {
		t.Fatalf("job row usage after success %+v, want %+v", g.Usage, second)
	}
	as := must(s.Attempts(ctx, "t", j.UUID))
	if len(as) != 2 || as[0].Usage == nil || *as[0].Usage != first || as[1].Usage == nil || *as[1].Usage != second {
		t.Fatalf("attempts %+v, want usages %+v then %+v", as, first, second)
	}

	// Reaped: no usage on the attempt that never reported.
	k := nj("t")
	insert(t, s, k)
	start(t, s, "gone", time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	if _, err := s.ReapExpired(ctx, time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	for _, a := range must(s.Attempts(ctx, "t", k.UUID)) {
		if a.Usage != nil {
			t.Fatalf("a reaped attempt has usage %+v", a.Usage)
		}
	}
}

// The usage aggregate adds buckets of the same minute, keeps the larger
// peak memory, sums over whole minutes in [from, to), shows a tenant only
// its own, and survives the vacuum of the jobs it counted.
func usageAggregateSumsPerTenantAndFunction(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	b := func(tenant, fn string, minute time.Time, fuel, peak int64) store.UsageBucket {
		return store.UsageBucket{Tenant: tenant, Func: fn, Minute: minute, Attempts: 1,
			Usage: abi.Usage{Fuel: fuel, WallMS: 2, PeakMemory: peak, HostCalls: 1, HTTPRequests: 1, HTTPBytesOut: 3, HTTPBytesIn: 4}}
	}
	// Two batches, the first with a repeated key in it.
	if err := s.AddUsage(ctx, []store.UsageBucket{
		b("a", "m.f", m, 10, 100), b("a", "m.f", m.Add(30*time.Second), 5, 300), b("a", "m.g", m, 1, 1),
		b("b", "m.f", m, 1000, 1),
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddUsage(ctx, []store.UsageBucket{b("a", "m.f", m.Add(time.Minute), 100, 200), b("a", "m.f", m.Add(time.Hour), 1e6, 1)}); err != nil {
		t.Fatal(err)
	}
	rows := must(s.Usage(ctx, store.UsageQuery{Tenant: "a", From: m, To: m.Add(2 * time.Minute)}))
	want := []store.UsageRow{
		{Tenant: "a", Func: "m.f", Attempts: 3, Usage: abi.Usage{Fuel: 115, WallMS: 6, PeakMemory: 300, HostCalls: 3, HTTPRequests: 3, HTTPBytesOut: 9, HTTPBytesIn: 12}},
		{Tenant: "a", Func: "m.g", Attempts: 1, Usage: abi.Usage{Fuel: 1, WallMS: 2, PeakMemory: 1, HostCalls: 1, HTTPRequests: 1, HTTPBytesOut: 3, HTTPBytesIn: 4}},
	}
	if len(rows) != len(want) || rows[0] != want[0] || rows[1] != want[1] {
		t.Fatalf("tenant a's usage\n%+v\nwant\n%+v", rows, want)
	}
	// A range starting inside a minute leaves that minute out.
	rows = must(s.Usage(ctx, store.UsageQuery{Tenant: "a", From: m.Add(time.Second), To: m.Add(2 * time.Minute)}))
	if len(rows) != 1 || rows[0].Fuel != 100 {
		t.Fatalf("from inside the first minute: %+v, want only the second minute's 100 fuel", rows)
	}
	all := must(s.Usage(ctx, store.UsageQuery{From: m, To: m.Add(2 * time.Hour)}))
	if len(all) != 3 || all[2].Tenant != "b" || all[2].Fuel != 1000 || all[0].Fuel != 1000115 {
		t.Fatalf("every tenant's usage: %+v", all)
	}
	if rows := must(s.Usage(ctx, store.UsageQuery{Tenant: "nobody", From: m, To: m.Add(time.Hour)})); rows == nil || len(rows) != 0 {
		t.Fatalf("an unknown tenant's usage: %#v, want an empty list", rows)
	}
	// Vacuuming jobs leaves the aggregate alone.
	if _, err := s.Vacuum(ctx, "root", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if rows := must(s.Usage(ctx, store.UsageQuery{Tenant: "b", From: m, To: m.Add(time.Hour)})); len(rows) != 1 || rows[0].Fuel != 1000 {
		t.Fatalf("after vacuum: %+v", rows)
	}

	for _, bad := range []struct {
		q     store.UsageQuery
		field string
	}{
		{store.UsageQuery{To: m}, "from"},
		{store.UsageQuery{From: m}, "to"},
		{store.UsageQuery{From: m, To: m}, "to"},
		{store.UsageQuery{From: m, To: m.Add(store.MaxUsageRange + time.Minute)}, "to"},
	} {
		var fe *abi.FieldError
		if _, err := s.Usage(ctx, bad.q); !errors.As(err, &fe) || fe.Field != bad.field || !errors.Is(err, abi.ErrInvalid) {
			t.Errorf("query %+v: %v, want an invalid %s", bad.q, err, bad.field)
		}
	}
	for _, bad := range []store.UsageBucket{{Func: "m.f", Minute: m}, {Tenant: "a", Minute: m}, {Tenant: "a", Func: "m.f", Minute: m, Usage: abi.Usage{Fuel: -1}}} {
		if err := s.AddUsage(ctx, []store.UsageBucket{bad}); !errors.Is(err, abi.ErrInvalid) {
			t.Errorf("bucket %+v: %v, want refused", bad, err)
		}
	}
}
