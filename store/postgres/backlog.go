package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Backlog is what LoadBacklog writes: Future pending jobs due at ETA and
// Done finished ones, of one tenant, function and channel.
type Backlog struct {
	Tenant, Func, Channel string
	Future                int
	ETA                   time.Time
	Done                  int
}

// loadChunk: rows per statement (and per progress report).
const loadChunk = 50000

// LoadBacklog is `wasmq bench --backlog`'s own loader: it writes the jobs
// with INSERT … SELECT over generate_series, a chunk per statement, in a
// tenth of the time the ordinary insert path takes (no identity keys,
// dependencies, quotas or events: a benchmark's filler, not an enqueue).
// The rows are what an insert writes: the jobs, the pending_log rows of
// the pending ones and the count deltas. progress, if not nil, hears the
// rows written so far.
func LoadBacklog(ctx context.Context, dsn string, b Backlog, progress func(done, total int)) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("postgres store: backlog: %w", err)
	}
	defer conn.Close(ctx)
	total := b.Future + b.Done
	written := 0
	for _, part := range []struct {
		n     int
		state string
		eta   *time.Time
	}{{b.Future, "pending", &b.ETA}, {b.Done, "done", nil}} {
		for left := part.n; left > 0; {
			n := min(left, loadChunk)
			if _, err := conn.Exec(ctx, `WITH ins AS (
					INSERT INTO jobs (uuid, tenant, func, args, kwargs, context, func_string, description, channel, priority,
						eta, max_retries, state, date_created, date_enqueued, date_started, date_done, exec_time, attempt, retry)
					SELECT gen_random_uuid()::text, $1, $2, '[1]', '{}', '{}', $2 || '(1)', 'backlog', $3, 10, $4, 5, $5, now(),
						d, d, d, CASE WHEN $5 = 'done' THEN 0.001 END, a, a
					FROM generate_series(1, $6::int),
						LATERAL (SELECT CASE WHEN $5 = 'done' THEN now() END AS d, CASE WHEN $5 = 'done' THEN 1 ELSE 0 END AS a) x
					RETURNING `+candidateColumns+`, state),
				logged AS (INSERT INTO pending_log (`+candidateColumns+`) SELECT `+candidateColumns+` FROM ins WHERE state = 'pending')
				INSERT INTO job_count_deltas (tenant, channel, state, n) SELECT $1, $3, $5, COUNT(*) FROM ins`,
				b.Tenant, b.Func, b.Channel, part.eta, part.state, n); err != nil {
				return fmt.Errorf("postgres store: backlog: %w", err)
			}
			left, written = left-n, written+n
			if progress != nil {
				progress(written, total)
			}
		}
	}
	// Vacuumed and analyzed now, not by autovacuum during the measured
	// runs (a million inserted rows trigger it, and it takes seconds of a
	// core with the GIN indexes).
	for _, table := range []string{"jobs", "pending_log", "job_count_deltas"} {
		if _, err := conn.Exec(ctx, `VACUUM (ANALYZE) `+table); err != nil {
			return fmt.Errorf("postgres store: backlog: vacuum %s: %w", table, err)
		}
	}
	return nil
}
