package enqueue

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
	"github.com/wasmq/wasmq/store/pgtest"
	"github.com/wasmq/wasmq/store/postgres"
	"github.com/wasmq/wasmq/store/sqlite"
)

func sqliteStore(t *testing.T) store.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "wasmq.db"), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func postgresStore(t *testing.T) store.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), pgtest.DSN(t), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// 50 requests of 4 jobs at once into a tenant whose max_pending is 100:
// exactly 25 are accepted, 100 jobs, the others refused with a quota
// error. (Checking the count and inserting in two steps let 106 in.)
func testMaxPendingHoldsUnderConcurrentEnqueues(t *testing.T, st store.Store) {
	s := &Service{Store: st, Funcs: funcs{}, Limits: map[string]Limits{"acme": {MaxPending: 100}, "other": {MaxPending: 1000}}}
	const requests, perRequest = 50, 4
	ctx := t.Context()
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted, refused := 0, 0
	for range requests {
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, err := s.CreateBatch(ctx, "acme", BatchRequest{Jobs: batchOf(perRequest)})
			var qe *QuotaError
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				accepted++
			case errors.As(err, &qe):
				refused++
			default:
				t.Error(err)
			}
		}()
		go func() { // another tenant's enqueues, under their own lock
			defer wg.Done()
			if _, err := s.Create(ctx, "other", Request{Func: "m.f"}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if accepted != 100/perRequest || refused != requests-100/perRequest {
		t.Errorf("%d requests accepted, %d refused; want %d and %d", accepted, refused, 100/perRequest, requests-100/perRequest)
	}
	for tenant, want := range map[string]int{"acme": 100, "other": requests} {
		counts, err := st.Counts(ctx, tenant)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, c := range counts {
			n += c.Counts[abi.StatePending]
		}
		if n != want {
			t.Errorf("%s has %d pending jobs, want %d", tenant, n, want)
		}
	}
}

func TestMaxPendingHoldsUnderConcurrentEnqueues(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) { testMaxPendingHoldsUnderConcurrentEnqueues(t, sqliteStore(t)) })
	t.Run("PostgreSQL", func(t *testing.T) { testMaxPendingHoldsUnderConcurrentEnqueues(t, postgresStore(t)) })
}

func batchOf(n int) []Request {
	jobs := make([]Request, n)
	for i := range jobs {
		jobs[i].Func = "m.f"
	}
	return jobs
}

// Two nodes sharing one PostgreSQL database, each with its own enqueue
// service and connections: their concurrent requests together never pass
// the tenant's max_pending (the count and the insert are one step in the
// store, not in a node's memory).
func TestMaxPendingHoldsAcrossNodes(t *testing.T) {
	dsn := pgtest.DSN(t)
	var nodes []*Service
	for range 2 {
		st, err := postgres.Open(t.Context(), dsn, true)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		nodes = append(nodes, &Service{Store: st, Funcs: funcs{}, Limits: map[string]Limits{"acme": {MaxPending: 100}}})
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	for i := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := nodes[i%2].CreateBatch(t.Context(), "acme", BatchRequest{Jobs: batchOf(4)})
			var qe *QuotaError
			switch {
			case err == nil:
				mu.Lock()
				accepted++
				mu.Unlock()
			case !errors.As(err, &qe):
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	counts, err := nodes[0].Store.Counts(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range counts {
		n += c.Counts[abi.StatePending]
	}
	if accepted != 25 || n != 100 {
		t.Fatalf("two nodes accepted %d requests, %d jobs pending; want 25 and exactly the quota, 100", accepted, n)
	}
}

// A tenant that names channel after channel is stopped at max_channels
// with a 429-kind error naming the quota; channels it already uses stay
// open to it, and other tenants are not affected.
func TestMaxChannelsStopsAFloodOfChannelNames(t *testing.T) {
	s := &Service{Store: sqliteStore(t), Funcs: funcs{}, Limits: map[string]Limits{"acme": {MaxChannels: 3}}}
	ctx := t.Context()
	for _, ch := range []string{"root.a", "root.b", "root.c", "root.a"} {
		if _, err := s.Create(ctx, "acme", Request{Func: "m.f", Channel: &ch}); err != nil {
			t.Fatalf("channel %s: %v", ch, err)
		}
	}
	_, err := s.Create(ctx, "acme", Request{Func: "m.f", Channel: ptr("root.d")})
	var qe *QuotaError
	if !errors.As(err, &qe) || !strings.Contains(qe.Msg, "3 channels") && !strings.Contains(qe.Msg, "quota is 3") {
		t.Fatalf("a 4th channel: %v, want a quota error naming the bound", err)
	}
	if _, err := s.Create(ctx, "acme", Request{Func: "m.f", Channel: ptr("root.b")}); err != nil {
		t.Fatalf("a channel already in use: %v", err)
	}
	if _, err := s.Create(ctx, "other", Request{Func: "m.f", Channel: ptr("root.d")}); err != nil {
		t.Fatalf("another tenant: %v", err)
	}
	// A batch whose new channels would pass the bound is refused whole.
	_, err = s.CreateBatch(ctx, "acme", BatchRequest{Jobs: []Request{{Func: "m.f", Channel: ptr("root.a")}, {Func: "m.f", Channel: ptr("root.e")}}})
	if !errors.As(err, &qe) {
		t.Fatalf("a batch naming a new channel past the bound: %v", err)
	}
	counts, _ := s.Store.Counts(ctx, "acme")
	if len(counts) != 3 {
		t.Fatalf("acme holds jobs in %d channels, want 3: %+v", len(counts), counts)
	}
}

func ptr[T any](v T) *T { return &v }
