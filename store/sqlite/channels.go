package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/wasmq/wasmq/abi"
)

func (s *driver) ChannelOverrides(ctx context.Context) ([]abi.ChannelOverride, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT channel, paused, capacity, throttle FROM channel_overrides ORDER BY channel`)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: channel overrides: %w", err)
	}
	defer rows.Close()
	out := []abi.ChannelOverride{}
	for rows.Next() {
		var o abi.ChannelOverride
		var paused sql.NullBool
		var capacity sql.NullInt64
		var throttle sql.NullFloat64
		if err := rows.Scan(&o.Channel, &paused, &capacity, &throttle); err != nil {
			return nil, fmt.Errorf("sqlite store: channel overrides: %w", err)
		}
		if paused.Valid {
			o.Paused = &paused.Bool
		}
		if capacity.Valid {
			n := int(capacity.Int64)
			o.Capacity = &n
		}
		if throttle.Valid {
			o.Throttle = &throttle.Float64
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

func (s *driver) ChannelStarts(ctx context.Context) (map[string]time.Time, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT channel, last_start FROM channel_starts`)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: channel starts: %w", err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var ch string
		var at int64
		if err := rows.Scan(&ch, &at); err != nil {
			return nil, fmt.Errorf("sqlite store: channel starts: %w", err)
		}
		out[ch] = time.UnixMicro(at).UTC()
	}
	return out, rows.Err()
}

func (w *wtx) PutChannelStarts(ctx context.Context, starts map[string]time.Time) error {
	for ch, at := range starts {
		if _, err := w.ExecContext(ctx, `INSERT INTO channel_starts (channel, last_start) VALUES (?, ?)
			ON CONFLICT (channel) DO UPDATE SET last_start = max(last_start, excluded.last_start)`, ch, at.UnixMicro()); err != nil {
			return fmt.Errorf("sqlite store: channel starts: %w", err)
		}
	}
	return nil
}

func (w *wtx) PutChannelOverride(ctx context.Context, o abi.ChannelOverride) error {
	var err error
	if o.Empty() {
		_, err = w.ExecContext(ctx, `DELETE FROM channel_overrides WHERE channel = ?`, o.Channel)
	} else {
		_, err = w.ExecContext(ctx, `INSERT INTO channel_overrides (channel, paused, capacity, throttle, updated)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (channel) DO UPDATE SET paused = excluded.paused,
			capacity = excluded.capacity, throttle = excluded.throttle, updated = excluded.updated`,
			o.Channel, o.Paused, o.Capacity, o.Throttle, w.now.UnixMicro())
	}
	if err != nil {
		return fmt.Errorf("sqlite store: channel override %s: %w", o.Channel, err)
	}
	return nil
}
