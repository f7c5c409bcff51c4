package store_test

import (
	"context"
	"errors"
	"testing"

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
}

func ptr[T any](v T) *T { return &v }
