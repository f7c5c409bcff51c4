package sqlite

import (
	"context"
	"fmt"

	"github.com/wasmq/wasmq/store"
)

func (s *driver) AddUsage(ctx context.Context, bs []store.UsageBucket) error {
	return s.write(ctx, func(w *wtx) error {
		st, err := w.PrepareContext(ctx, `INSERT INTO usage_minutes (tenant, func, minute, attempts, fuel, wall_ms,
				peak_memory, host_calls, http_requests, http_bytes_out, http_bytes_in)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (tenant, minute, func) DO UPDATE SET attempts = attempts + excluded.attempts,
				fuel = fuel + excluded.fuel, wall_ms = wall_ms + excluded.wall_ms,
				peak_memory = MAX(peak_memory, excluded.peak_memory), host_calls = host_calls + excluded.host_calls,
				http_requests = http_requests + excluded.http_requests,
				http_bytes_out = http_bytes_out + excluded.http_bytes_out,
				http_bytes_in = http_bytes_in + excluded.http_bytes_in`)
		if err != nil {
			return fmt.Errorf("sqlite store: add usage: %w", err)
		}
		defer st.Close()
		for _, b := range bs {
			if _, err := st.ExecContext(ctx, b.Tenant, b.Func, b.Minute.Unix(), b.Attempts, b.Fuel, b.WallMS,
				b.PeakMemory, b.HostCalls, b.HTTPRequests, b.HTTPBytesOut, b.HTTPBytesIn); err != nil {
				return fmt.Errorf("sqlite store: add usage: %w", err)
			}
		}
		return nil
	})
}

func (s *driver) ReadUsage(ctx context.Context, q store.UsageQuery) ([]store.UsageRow, error) {
	// A bucket is a whole minute: one that starts before To is in.
	from, to := q.From.Unix(), q.To.Unix()
	if q.From.Unix()*1e9 < q.From.UnixNano() {
		from++
	}
	if q.To.Unix()*1e9 < q.To.UnixNano() {
		to++
	}
	rows, err := s.r.QueryContext(ctx, `SELECT tenant, func, SUM(attempts), SUM(fuel), SUM(wall_ms), MAX(peak_memory),
			SUM(host_calls), SUM(http_requests), SUM(http_bytes_out), SUM(http_bytes_in)
		FROM usage_minutes WHERE (? = '' OR tenant = ?) AND minute >= ? AND minute < ?
		GROUP BY tenant, func ORDER BY tenant, func`, q.Tenant, q.Tenant, from, to)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: read usage: %w", err)
	}
	defer rows.Close()
	var out []store.UsageRow
	for rows.Next() {
		var u store.UsageRow
		if err := rows.Scan(&u.Tenant, &u.Func, &u.Attempts, &u.Fuel, &u.WallMS, &u.PeakMemory, &u.HostCalls,
			&u.HTTPRequests, &u.HTTPBytesOut, &u.HTTPBytesIn); err != nil {
			return nil, fmt.Errorf("sqlite store: read usage: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}
