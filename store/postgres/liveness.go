package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/wasmq/wasmq/store"
)

// nodeLockClass is the first key of the advisory locks that say a worker
// is alive (migration 0010): two-key locks never meet the leader's lock
// or the identity-key locks (another class).
const nodeLockClass = 0x776c76

// holdPing is how often Hold checks its connection: a lost connection has
// lost the lock, and the caller should hold again soon, before the
// leader sees the worker unheld twice (runner: confirmGone).
const holdPing = 250 * time.Millisecond

// holdPingTimeout bounds one ping: a connection that does not answer in
// this long is taken as lost.
const holdPingTimeout = 2 * time.Second

// Hold takes a shared advisory lock for workerID on a connection of its
// own, lists the worker in nodes, and keeps both until ctx ends or the
// connection fails. Shared, so that two workers whose keys collide both
// hold (a collision can only make a dead worker look alive: its leases
// still cover it).
func (s *driver) Hold(ctx context.Context, workerID string) error {
	conn, err := pgx.ConnectConfig(ctx, s.cfg)
	if err != nil {
		return fmt.Errorf("postgres store: hold %s: connect: %w", workerID, err)
	}
	defer func() {
		// The socket is closed first, by hand: the server ends the
		// session, and releases the lock, as soon as it reads the end of
		// the stream, whereas pgx's own close may wait on a cancel
		// request and a drain of up to 15 s when a statement was cut
		// short.
		conn.PgConn().Conn().Close()
		conn.Close(context.WithoutCancel(ctx))
	}()
	// The lock first, then the row: a listed worker has held.
	var key int32
	if err := conn.QueryRow(ctx, `SELECT k FROM (SELECT hashtext('wasmq-node:' || current_schema() || ':' || $1::text) & 2147483647 AS k) x,
		LATERAL pg_advisory_lock_shared($2::int, k)`, workerID, nodeLockClass).Scan(&key); err != nil {
		return fmt.Errorf("postgres store: hold %s: lock: %w", workerID, err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO nodes (worker_id, lock_key) VALUES ($1, $2)
		ON CONFLICT (worker_id) DO NOTHING`, workerID, key); err != nil {
		return fmt.Errorf("postgres store: hold %s: list: %w", workerID, err)
	}
	store.Holding(ctx)
	t := time.NewTicker(holdPing)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			// Let go now rather than when the server ends the session:
			// a worker stopping is gone at once.
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			conn.Exec(uctx, `SELECT pg_advisory_unlock_shared($1::int, $2::int)`, nodeLockClass, key)
			cancel()
			return ctx.Err()
		case <-t.C:
			// The ping does not follow ctx: a query cut short by ctx
			// leaves pgx closing the connection in the background,
			// and the lock lingers until that ends (seen up to 15 s on
			// a loaded machine), whereas a worker that stops must be
			// gone at once.
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), holdPingTimeout)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return fmt.Errorf("postgres store: hold %s: %w", workerID, err)
			}
		}
	}
}

// Unheld reads the listed workers whose lock nobody holds.
func (s *driver) Unheld(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT worker_id FROM nodes n WHERE NOT EXISTS (
		SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
			AND l.classid = $1::int::oid AND l.objid = n.lock_key::oid AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))
		ORDER BY worker_id`, nodeLockClass)
	if err != nil {
		return nil, fmt.Errorf("postgres store: unheld workers: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres store: unheld workers: %w", err)
	}
	return ids, nil
}
