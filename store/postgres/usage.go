package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/wasmq/wasmq/store"
)

func (s *driver) AddUsage(ctx context.Context, bs []store.UsageBucket) error {
	n := len(bs)
	tenants, funcs := make([]string, 0, n), make([]string, 0, n)
	minutes := make([]time.Time, 0, n)
	cols := make([][]int64, 8)
	for _, b := range bs {
		tenants, funcs, minutes = append(tenants, b.Tenant), append(funcs, b.Func), append(minutes, b.Minute)
		for i, v := range []int64{b.Attempts, b.Fuel, b.WallMS, b.PeakMemory, b.HostCalls, b.HTTPRequests, b.HTTPBytesOut, b.HTTPBytesIn} {
			cols[i] = append(cols[i], v)
		}
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO usage_minutes (tenant, func, minute, attempts, fuel, wall_ms, peak_memory,
			host_calls, http_requests, http_bytes_out, http_bytes_in)
		SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bigint[], $5::bigint[], $6::bigint[],
			$7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[])
		ON CONFLICT (tenant, minute, func) DO UPDATE SET attempts = usage_minutes.attempts + EXCLUDED.attempts,
			fuel = usage_minutes.fuel + EXCLUDED.fuel, wall_ms = usage_minutes.wall_ms + EXCLUDED.wall_ms,
			peak_memory = GREATEST(usage_minutes.peak_memory, EXCLUDED.peak_memory),
			host_calls = usage_minutes.host_calls + EXCLUDED.host_calls,
			http_requests = usage_minutes.http_requests + EXCLUDED.http_requests,
			http_bytes_out = usage_minutes.http_bytes_out + EXCLUDED.http_bytes_out,
			http_bytes_in = usage_minutes.http_bytes_in + EXCLUDED.http_bytes_in`,
		tenants, funcs, minutes, cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7])
	if err != nil {
		return fmt.Errorf("postgres store: add usage: %w", err)
	}
	return nil
}

func (s *driver) ReadUsage(ctx context.Context, q store.UsageQuery) ([]store.UsageRow, error) {
	rows, err := s.pool.Query(ctx, `SELECT tenant, func, SUM(attempts), SUM(fuel), SUM(wall_ms), MAX(peak_memory),
			SUM(host_calls), SUM(http_requests), SUM(http_bytes_out), SUM(http_bytes_in)
		FROM usage_minutes WHERE ($1 = '' OR tenant = $1) AND minute >= $2 AND minute < $3
		GROUP BY tenant, func ORDER BY tenant, func`, q.Tenant, q.From, q.To)
	if err != nil {
		return nil, fmt.Errorf("postgres store: read usage: %w", err)
	}
	return collect(rows, "read usage", func(r pgx.CollectableRow) (store.UsageRow, error) {
		var u store.UsageRow
		err := r.Scan(&u.Tenant, &u.Func, &u.Attempts, &u.Fuel, &u.WallMS, &u.PeakMemory, &u.HostCalls,
			&u.HTTPRequests, &u.HTTPBytesOut, &u.HTTPBytesIn)
		return u, err
	})
}
