package store

import (
	"context"
	"math"
	"time"

	"github.com/wasmq/wasmq/abi"
)

func (c *Core) ChannelOverrides(ctx context.Context) ([]abi.ChannelOverride, error) {
	return c.d.ChannelOverrides(ctx)
}

func (c *Core) SetChannelOverride(ctx context.Context, o abi.ChannelOverride) error {
	if err := ValidateOverride(o); err != nil {
		return err
	}
	return c.write(ctx, func(tx Tx) error {
		if err := tx.PutChannelOverride(ctx, o); err != nil {
			return err
		}
		tx.Notes().Events.Add(EventChannels, o.Channel)
		return nil
	})
}

func (c *Core) ChannelStarts(ctx context.Context) (map[string]time.Time, error) {
	return c.d.ChannelStarts(ctx)
}

func (c *Core) MarkChannelStarts(ctx context.Context, starts map[string]time.Time) error {
	if len(starts) == 0 {
		return nil
	}
	for ch := range starts {
		if err := checkChannel(ch); err != nil {
			return err
		}
	}
	return c.write(ctx, func(tx Tx) error { return tx.PutChannelStarts(ctx, starts) })
}

// ValidateOverride refuses an override no scheduler could apply, naming
// the field.
func ValidateOverride(o abi.ChannelOverride) error {
	if err := checkChannel(o.Channel); err != nil {
		return err
	}
	if o.Capacity != nil {
		if err := checkRange("capacity", *o.Capacity, 1, abi.MaxChannelCapacity); err != nil {
			return err
		}
	}
	if o.Throttle != nil {
		t := *o.Throttle
		if math.IsNaN(t) || t < 0 || t > abi.MaxThrottleSeconds {
			return invalid("throttle", "must be a number of seconds from 0 (none) to %d", abi.MaxThrottleSeconds)
		}
	}
	return nil
}
