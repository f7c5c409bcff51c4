package runner

import (
	"context"
	"fmt"
	"time"

	"github.com/wasmq/wasmq/abi"
)

// readOverrides re-reads the channel overrides when an event or the poll
// said they changed. A failed read fails the round, which is retried:
// scheduling on stale overrides could start jobs in a channel just paused.
func (s *scheduler) readOverrides(ctx context.Context) error {
	if !s.ovStale {
		return nil
	}
	list, err := s.r.store.ChannelOverrides(ctx)
	if err != nil {
		return fmt.Errorf("read channel overrides: %w", err)
	}
	ov := make(map[*Channel]abi.ChannelOverride, len(list))
	for _, o := range list {
		ov[s.tree.Get(o.Channel)] = o
	}
	s.ov, s.ovStale = ov, false
	return nil
}

// readStarts, once a leadership, takes in when each throttled channel
// last handed a job over, as the leaders before this one kept it: the
// throttle spaces this leader's first hand-over from there. Without it,
// a node that took the lead (a failover, a node started again under its
// name, a deploy) handed a job over at once, a throttle or not after the
// last leader's (found by TestTheSchedulersRulesHoldWhateverHappens).
func (s *scheduler) readStarts(ctx context.Context) error {
	if s.startsRead {
		return nil
	}
	starts, err := s.r.store.ChannelStarts(ctx)
	if err != nil {
		return fmt.Errorf("read channel starts: %w", err)
	}
	for name, at := range starts {
		// A channel no longer throttled keeps an entry no round reads.
		if c := s.tree.Get(name); at.After(s.lastStart[c]) {
			s.lastStart[c] = at
		}
	}
	s.startsRead = true
	return nil
}

// markStarts keeps this round's hand-overs in throttled channels for the
// leaders after this one. A failed write is tried again with the next
// round's; until it succeeds, a new leader could hand a job over in such
// a channel early, once. Its failures are logged as the round's are (the
// first at once, then one line every failing.ReportEvery): it runs after
// each round that handed a job over, so a store that keeps refusing it
// while hand-overs succeed would otherwise log a line a round.
func (s *scheduler) markStarts(ctx context.Context) {
	if len(s.marks) == 0 {
		return
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.r.store.MarkChannelStarts(wctx, s.marks); err != nil {
		s.markFails.Fail(&s.r.log, err, time.Now())
		return
	}
	s.markFails.OK(&s.r.log, time.Now())
	clear(s.marks)
}

// capacity, throttle and paused are a channel's settings with the
// operators' overrides over the configuration.
func (s *scheduler) capacity(c *Channel) int {
	if o, ok := s.ov[c]; ok && o.Capacity != nil {
		return *o.Capacity
	}
	return c.Capacity
}

func (s *scheduler) throttle(c *Channel) time.Duration {
	if o, ok := s.ov[c]; ok && o.Throttle != nil {
		return time.Duration(*o.Throttle * float64(time.Second))
	}
	return c.Throttle
}

// paused: c or an ancestor is paused.
func (s *scheduler) paused(c *Channel) bool {
	for x := c; x != nil; x = x.Parent {
		if o, ok := s.ov[x]; ok && o.Paused != nil {
			if *o.Paused {
				return true
			}
			continue
		}
		if x.Paused {
			return true
		}
	}
	return false
}

// SetChannel edits the stored override of one channel (edit sets or
// clears its fields; nothing left means the configuration holds again)
// and returns the channel's status. Every node's scheduler applies it at
// the event the store publishes, or at its safety poll. A sequential
// channel keeps capacity 1.
func (r *Runner) SetChannel(ctx context.Context, name string, edit func(*abi.ChannelOverride)) (abi.ChannelStatus, error) {
	name, err := abi.ParseChannel(name)
	if err != nil {
		return abi.ChannelStatus{}, err
	}
	list, err := r.store.ChannelOverrides(ctx)
	if err != nil {
		return abi.ChannelStatus{}, err
	}
	cur := abi.ChannelOverride{Channel: name}
	for _, o := range list {
		if o.Channel == name {
			cur = o
		}
	}
	edit(&cur)
	cur.Channel = name
	if ch, ok := r.tree.Lookup(name); ok && ch.Sequential && cur.Capacity != nil && *cur.Capacity != 1 {
		return abi.ChannelStatus{}, &abi.FieldError{Field: "capacity", Msg: fmt.Sprintf("channel %s is sequential: its capacity stays 1", name), Err: abi.ErrInvalid}
	}
	defer r.ovChanged.Store(true) // this node's scheduler, before the answer
	if err := r.store.SetChannelOverride(ctx, cur); err != nil {
		return abi.ChannelStatus{}, err
	}
	all, err := r.Channels(ctx, "")
	if err != nil {
		return abi.ChannelStatus{}, err
	}
	for _, s := range all {
		if s.Name == name {
			return s, nil
		}
	}
	return abi.ChannelStatus{Name: name}, nil
}

// pausedWith reports whether c or an ancestor is paused, the overrides
// (by channel name) over the configuration.
func pausedWith(c *Channel, ov map[string]abi.ChannelOverride) bool {
	for x := c; x != nil; x = x.Parent {
		if o, ok := ov[x.Name]; ok && o.Paused != nil {
			if *o.Paused {
				return true
			}
			continue
		}
		if x.Paused {
			return true
		}
	}
	return false
}
