package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// unreachable is a driver no call may reach: the core refuses bad input
// before any SQL.
type unreachable struct {
	store.Driver // nil: any other operation panics
	t            *testing.T
}

func (d unreachable) Write(context.Context, func(store.Tx) error) error {
	d.t.Fatal("bad input reached the driver's Write")
	return nil
}

func (d unreachable) GetJob(context.Context, string, string) (abi.Job, error) {
	d.t.Fatal("bad input reached the driver's GetJob")
	return abi.Job{}, nil
}

func TestBadInputNeverReachesTheDriver(t *testing.T) {
	ctx := context.Background()
	c := store.NewCore(unreachable{t: t})
	good := store.NewJob{UUID: "u", Tenant: "t", Func: "m.f", Channel: "root", Priority: 10}
	for name, j := range map[string]store.NewJob{
		"NUL in description": func() store.NewJob { j := good; j.Description = "\x00"; return j }(),
		"priority 2^40":      func() store.NewJob { j := good; j.Priority = 1 << 40; return j }(),
		"channel ../x":       func() store.NewJob { j := good; j.Channel = "../x"; return j }(),
		"args not a list":    func() store.NewJob { j := good; j.Args = []byte(`{}`); return j }(),
	} {
		if _, err := c.Insert(ctx, []store.NewJob{j}); !errors.Is(err, abi.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := c.Update(ctx, "t", "u", store.Patch{Priority: ptr(-1)}); !errors.Is(err, abi.ErrInvalid) {
		t.Errorf("patch: %v", err)
	}
	if _, err := c.Get(ctx, "t", "a\x00"); !errors.Is(err, abi.ErrNotFound) {
		t.Errorf("get: %v", err)
	}
	if _, err := c.Requeue(ctx, "t", "\xff"); !errors.Is(err, abi.ErrNotFound) {
		t.Errorf("requeue: %v", err)
	}
	if _, err := c.List(ctx, store.Filter{Query: "\x00"}); !errors.Is(err, abi.ErrInvalid) {
		t.Errorf("list: %v", err)
	}
	// Firings whose job, tenant or due time is bad are each refused, and
	// none of them reaches a transaction.
	due := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	bad := []store.Firing{
		{Tenant: "t", Name: "s", Due: due, Job: func() store.NewJob { j := good; j.Priority = 1 << 40; return j }()},
		{Tenant: "t", Name: "s\x00", Due: due, Job: good},
		{Tenant: "t2", Name: "s", Due: due, Job: good},
		{Tenant: "t", Name: "s", Due: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), Job: good},
		{Tenant: "t", Name: "s", Job: good}, // a run by hand is FireSchedule's
	}
	res, err := c.FireEach(ctx, bad)
	if err != nil || len(res) != len(bad) {
		t.Fatalf("FireEach of bad firings: %v, %v", res, err)
	}
	for i, r := range res {
		if r.Err == nil || r.Fired.Fired {
			t.Errorf("bad firing %d: %+v, want refused", i, r)
		}
	}
	if err := c.NextDues(ctx, []store.NextDue{{Tenant: "t", Name: "\xff", Version: 1, Anchor: due, Next: due.Add(time.Hour)},
		{Tenant: "t", Name: "s", Version: 1, Anchor: due, Next: due}}); err != nil {
		t.Errorf("NextDues of no schedule's and of no due time: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

// contended is a database that ends every write to break a deadlock, as
// PostgreSQL ends one of the writers that keep meeting on the same rows
// in other orders; runs counts the writes it was sent.
type contended struct {
	store.Driver // nil: any other operation panics
	runs         *int
}

func (d contended) InsertPending(context.Context, []abi.Job) ([]abi.Job, error) {
	*d.runs++
	return nil, fmt.Errorf("insert: deadlock detected: %w", store.ErrRetryTx)
}

func (d contended) Write(context.Context, func(store.Tx) error) error {
	*d.runs++
	return fmt.Errorf("write: deadlock detected: %w", store.ErrRetryTx)
}

// The database's own word: a deadlock is neither an outage nor a commit
// in doubt.
func (contended) Unavailable(error) bool { return false }
func (contended) InDoubt(error) bool     { return false }

// A write the database ends to break a deadlock is run again, a few
// times; one that loses every run is answered as the store's busy moment
// (Unavailable: 503 with Retry-After over HTTP), which the client may send
// again since nothing of it was stored, not as wasmq's fault (500), which
// it was before.
func TestAWriteThatLosesEveryRunToOtherWritersIsUnavailable(t *testing.T) {
	ctx := context.Background()
	runs := 0
	c := store.NewCore(contended{runs: &runs})
	plain := store.NewJob{UUID: "u", Tenant: "t", Func: "m.f", Channel: "root", Priority: 10}
	keyed := plain
	keyed.IdentityKey = "k" // written in a transaction (Write), not in one statement
	for name, j := range map[string]store.NewJob{"one statement": plain, "a transaction": keyed} {
		runs = 0
		_, err := c.Insert(ctx, []store.NewJob{j})
		if !errors.Is(err, store.ErrRetryTx) {
			t.Fatalf("%s: %v, want the deadlock", name, err)
		}
		if runs != 5 {
			t.Errorf("%s: sent %d times, want 5", name, runs)
		}
		if !c.Unavailable(err) {
			t.Errorf("%s: %v is not unavailable: the API would answer 500", name, err)
		}
	}
	if c.Unavailable(fmt.Errorf("write: %w", abi.ErrConflict)) {
		t.Error("a conflict is the request's, not the store's moment")
	}
}
