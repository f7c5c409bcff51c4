package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// A worker that holds is never named unheld; once it lets go (its
// process died), it is, and ReapExpired takes its started jobs back at
// once, whatever their lease, leaving every other worker's jobs alone.
func aWorkerThatLetsGoIsTakenBackAtOnce(t *testing.T, s store.Store) {
	ctx := context.Background()
	insert(t, s, nj("t"), nj("t"))
	// A hold takes effect soon after the call, not at once: each says
	// when. (Absence from Unheld cannot tell: a worker that never held is
	// not named either, and letting go before holding proves nothing.)
	holding := make(chan struct{}, 2)
	holdCtx, letGo := context.WithCancel(store.OnHold(ctx, func() { holding <- struct{}{} }))
	held := make(chan error, 1)
	go func() { held <- s.Hold(holdCtx, "doomed/1") }()
	other, stopOther := context.WithCancel(store.OnHold(ctx, func() { holding <- struct{}{} }))
	defer stopOther()
	go s.Hold(other, "alive/1")
	doomed := start(t, s, "doomed/1", time.Hour)
	insert(t, s, nj("t"))
	alive := start(t, s, "alive/1", time.Hour)
	if len(doomed) != 2 || len(alive) != 1 {
		t.Fatalf("started %d and %d jobs, want 2 and 1", len(doomed), len(alive))
	}
	for range 2 {
		select {
		case <-holding:
		case <-time.After(15 * time.Second):
			t.Fatal("timed out waiting for both workers to hold")
		}
	}
	if u := must(s.Unheld(ctx)); slices.Contains(u, "doomed/1") || slices.Contains(u, "alive/1") {
		t.Fatalf("unheld %v names a worker that holds", u)
	}
	letGo()
	if err := <-held; err == nil {
		t.Fatal("Hold returned no error when its context ended")
	}
	waitFor(t, "the worker that let go to be unheld", func() bool {
		return slices.Contains(must(s.Unheld(ctx)), "doomed/1")
	})
	if u := must(s.Unheld(ctx)); slices.Contains(u, "alive/1") {
		t.Fatalf("unheld %v names a worker that holds", u)
	}
	// Leases an hour long: only the gone worker's jobs come back.
	got := must(s.ReapExpired(ctx, time.Now(), []string{"doomed/1"}))
	if len(got) != 2 {
		t.Fatalf("took back %+v, want the gone worker's 2 jobs", got)
	}
	for _, j := range doomed {
		if g := get(t, s, j.UUID); g.State != abi.StatePending || g.WorkerID != "" {
			t.Fatalf("a gone worker's job: %s by %q, want pending", g.State, g.WorkerID)
		}
	}
	if g := get(t, s, alive[0].UUID); g.State != abi.StateStarted {
		t.Fatalf("a holding worker's job: %s, want started", g.State)
	}
	// Taken back, the gone worker is forgotten: it is not named again.
	if u := must(s.Unheld(ctx)); slices.Contains(u, "doomed/1") {
		t.Fatalf("unheld %v still names a worker taken back", u)
	}
	if got := must(s.ReapExpired(ctx, time.Now(), []string{"doomed/1"})); len(got) != 0 {
		t.Fatalf("took back %+v a second time", got)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A quota refuses, stores nothing and names what it passed; jobs within
// it are stored; jobs of two tenants in one call under a quota are
// refused as invalid.
func quotasAreCheckedWithTheInsert(t *testing.T, s store.Store) {
	ctx := context.Background()
	at := func(ch string) store.NewJob { j := nj("q"); j.Channel = ch; return j }
	q := store.Quota{MaxPending: 3, MaxChannels: 2}
	if _, err := s.InsertUnder(ctx, q, []store.NewJob{at("root.a"), at("root.b")}); err != nil {
		t.Fatalf("within the quota: %v", err)
	}
	var qe *store.QuotaError
	if _, err := s.InsertUnder(ctx, q, []store.NewJob{at("root.a"), at("root.a")}); !errors.As(err, &qe) || qe.Field != "max_pending" {
		t.Fatalf("2 + 2 jobs under max_pending 3: %v, want a QuotaError naming max_pending", err)
	}
	if _, err := s.InsertUnder(ctx, q, []store.NewJob{at("root.c")}); !errors.As(err, &qe) || qe.Field != "max_channels" {
		t.Fatalf("a third channel under max_channels 2: %v, want a QuotaError naming max_channels", err)
	}
	if _, err := s.InsertUnder(ctx, q, []store.NewJob{at("root.b")}); err != nil {
		t.Fatalf("a third job in a channel in use: %v", err)
	}
	other := nj("someone-else")
	if _, err := s.InsertUnder(ctx, q, []store.NewJob{at("root.a"), other}); !errors.Is(err, abi.ErrInvalid) {
		t.Fatalf("two tenants under one quota: %v, want ErrInvalid", err)
	}
	if n := len(must(s.List(ctx, store.Filter{Tenant: "q", Limit: 100})).Jobs); n != 3 {
		t.Fatalf("%d jobs stored, want the 3 accepted", n)
	}
	if _, err := s.InsertUnder(ctx, store.Quota{MaxPending: -1}, []store.NewJob{at("root.a")}); !errors.Is(err, abi.ErrInvalid) {
		t.Fatalf("a negative bound: %v, want ErrInvalid", err)
	}
}
