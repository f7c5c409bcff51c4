package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/wasmq/wasmq/abi"
)

func (s *driver) ChannelOverrides(ctx context.Context) ([]abi.ChannelOverride, error) {
	rows, err := s.pool.Query(ctx, `SELECT channel, paused, capacity, throttle FROM channel_overrides ORDER BY channel`)
	if err != nil {
		return nil, fmt.Errorf("postgres store: channel overrides: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (abi.ChannelOverride, error) {
		var o abi.ChannelOverride
		err := r.Scan(&o.Channel, &o.Paused, &o.Capacity, &o.Throttle)
		return o, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres store: channel overrides: %w", err)
	}
	if out == nil {
		out = []abi.ChannelOverride{}
	}
	return out, nil
}

func (s *driver) ChannelStarts(ctx context.Context) (map[string]time.Time, error) {
	rows, err := s.pool.Query(ctx, `SELECT channel, last_start FROM channel_starts`)
	if err != nil {
		return nil, fmt.Errorf("postgres store: channel starts: %w", err)
	}
	out := map[string]time.Time{}
	var ch string
	var at time.Time
	if _, err := pgx.ForEachRow(rows, []any{&ch, &at}, func() error { out[ch] = at; return nil }); err != nil {
		return nil, fmt.Errorf("postgres store: channel starts: %w", err)
	}
	return out, nil
}

func (w *wtx) PutChannelStarts(ctx context.Context, starts map[string]time.Time) error {
	chs, ats := make([]string, 0, len(starts)), make([]time.Time, 0, len(starts))
	for ch, at := range starts {
		chs, ats = append(chs, ch), append(ats, at)
	}
	if _, err := w.Exec(ctx, `INSERT INTO channel_starts (channel, last_start)
		SELECT * FROM unnest($1::text[], $2::timestamptz[]) ORDER BY 1
		ON CONFLICT (channel) DO UPDATE SET last_start = GREATEST(channel_starts.last_start, EXCLUDED.last_start)`, chs, ats); err != nil {
		return fmt.Errorf("postgres store: channel starts: %w", err)
	}
	return nil
}

func (w *wtx) PutChannelOverride(ctx context.Context, o abi.ChannelOverride) error {
	var err error
	if o.Empty() {
		_, err = w.Exec(ctx, `DELETE FROM channel_overrides WHERE channel = $1`, o.Channel)
	} else {
		_, err = w.Exec(ctx, `INSERT INTO channel_overrides (channel, paused, capacity, throttle, updated)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (channel) DO UPDATE SET paused = EXCLUDED.paused,
			capacity = EXCLUDED.capacity, throttle = EXCLUDED.throttle, updated = EXCLUDED.updated`,
			o.Channel, o.Paused, o.Capacity, o.Throttle, w.now)
	}
	if err != nil {
		return fmt.Errorf("postgres store: channel override %s: %w", o.Channel, err)
	}
	return nil
}
