package enqueue

import (
	"context"
	"errors"
	"path/filepath"
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

func TestWaitingForATenantsQuotaLockEndsWithTheRequest(t *testing.T) {
	s := &Service{}
	unlock, err := s.lockPending(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.lockPending(ctx, "acme"); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled request waiting for the lock: %v", err)
	}
	other, err := s.lockPending(t.Context(), "other") // not held by acme's
	if err != nil {
		t.Fatalf("another tenant's lock: %v", err)
	}
	other()
	unlock()
	again, err := s.lockPending(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	again()
}
