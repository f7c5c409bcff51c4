package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

func (d unreachable) SetProgress(context.Context, string, string, int, abi.Progress) error {
	d.t.Fatal("bad input reached the driver's SetProgress")
	return nil
}

func (d unreachable) ListJobs(context.Context, store.ListQuery) ([]abi.Job, error) {
	d.t.Fatal("bad input reached the driver's ListJobs")
	return nil, nil
}

// The operators' additions refuse what no store keeps before any SQL:
// filters, progress reports, channel overrides, bulk actions.
func TestOperatorsBadInputNeverReachesTheDriver(t *testing.T) {
	ctx := context.Background()
	c := store.NewCore(unreachable{t: t})
	for name, f := range map[string]store.Filter{
		"args a list":        {ArgsHas: json.RawMessage(`[1]`)},
		"args not JSON":      {ArgsHas: json.RawMessage(`nope`)},
		"kwargs an object":   {KwargsHas: map[string]json.RawMessage{"a": json.RawMessage(`{"b":1}`)}},
		"kwargs NUL key":     {KwargsHas: map[string]json.RawMessage{"\x00": json.RawMessage(`1`)}},
		"user NUL":           {UserID: "\x00"},
		"model not UTF-8":    {ModelName: "\xff"},
		"created year 9999+": {CreatedBefore: ptr(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC))},
	} {
		if _, err := c.List(ctx, f); !errors.Is(err, abi.ErrInvalid) {
			t.Errorf("list %s: %v", name, err)
		}
	}
	now := time.Now()
	for name, p := range map[string]abi.Progress{
		"percent 101": {Percent: 101, Updated: now}, "percent -1": {Percent: -1, Updated: now},
		"message NUL": {Percent: 1, Message: "\x00", Updated: now}, "no date": {Percent: 1},
	} {
		if err := c.SetProgress(ctx, "u", "w", 1, p); !errors.Is(err, abi.ErrInvalid) {
			t.Errorf("progress %s: %v", name, err)
		}
	}
	for name, o := range map[string]abi.ChannelOverride{
		"bad name": {Channel: "Root!"}, "capacity 0": {Channel: "root", Capacity: ptr(0)},
		"throttle -1": {Channel: "root", Throttle: ptr(-1.0)},
	} {
		if err := c.SetChannelOverride(ctx, o); !errors.Is(err, abi.ErrInvalid) {
			t.Errorf("override %s: %v", name, err)
		}
	}
	if _, err := c.Act(ctx, "t", abi.CauseDone, nil); !errors.Is(err, abi.ErrInvalid) {
		t.Errorf("act with a cause that is not a manual action: %v", err)
	}
	if _, err := c.Act(ctx, "t", abi.CauseCancel, make([]string, store.MaxAct+1)); !errors.Is(err, abi.ErrInvalid) {
		t.Errorf("act on too many jobs: %v", err)
	}
}
