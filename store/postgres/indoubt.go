package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A write whose connection breaks after its commit was sent may have
// committed: PostgreSQL commits, then answers, and a crash, a restart or
// a cut network between the two loses only the answer. The core settles
// such an insert (store.Core.settle); the driver tells which errors are
// in doubt and when the session that wrote has ended, after which what
// the transaction wrote is there or will never be.

// inDoubtError is a write's error whose commit may have happened, with
// the server session (pid and start) that ran it.
type inDoubtError struct {
	pid   uint32
	start time.Time // zero when unknown: the pid alone then names the session
	err   error
}

func (e *inDoubtError) Error() string { return e.err.Error() }
func (e *inDoubtError) Unwrap() error { return e.err }

// doubt marks err, from the commit (or the one-statement transaction)
// of a write on pc, as in doubt when the answer may have been lost after
// the server took it: not when nothing was sent (pgconn's SafeToRetry),
// nor when the server answered with an error that rolled the
// transaction back (any error short of a FATAL ending the session), nor
// when the database is not the cause.
func (s *driver) doubt(pc *pgconn.PgConn, err error) error {
	if err == nil || pgconn.SafeToRetry(err) || !s.Unavailable(err) {
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Severity != "FATAL" && pe.Severity != "PANIC" {
		return err
	}
	start, _ := s.sessions.started(pc.PID())
	return &inDoubtError{pid: pc.PID(), start: start, err: err}
}

func (s *driver) InDoubt(err error) bool {
	var d *inDoubtError
	return errors.As(err, &d)
}

// errSessionAlive: the session of a write in doubt is still there (its
// client's connection was cut, not the server).
var errSessionAlive = errors.New("postgres store: the session of the write in doubt has not ended yet")

// Ended: the session that ran the write is gone from pg_stat_activity
// (a server restart ends them all). A session that outlived its client
// (a network cut the server has not noticed yet) is terminated, which
// ends its transaction, committed or rolled back; the next call sees it
// gone.
func (s *driver) Ended(ctx context.Context, err error) error {
	var d *inDoubtError
	if !errors.As(err, &d) {
		return nil
	}
	var alive bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
		WHERE pid = $1 AND ($2::timestamptz IS NULL OR backend_start = $2))`, int32(d.pid), nullTime(d.start)).Scan(&alive); err != nil {
		return fmt.Errorf("postgres store: is the session of a write in doubt gone: %w", err)
	}
	if !alive {
		return nil
	}
	if d.start.IsZero() {
		// A pid alone may be another session's after a restart: it is
		// waited for, never ended.
		return errSessionAlive
	}
	if _, err := s.pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, int32(d.pid)); err != nil {
		return fmt.Errorf("postgres store: end the session of a write in doubt: %w", err)
	}
	return errSessionAlive
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// sessionStarts keeps when each pooled connection's server session
// began: with its pid that names the session for good, where a pid alone
// may be reused after a restart.
type sessionStarts struct{ m sync.Map } // pid (uint32) → time.Time

func (ss *sessionStarts) note(ctx context.Context, c *pgx.Conn) error {
	var t time.Time
	if err := c.QueryRow(ctx, `SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()`).Scan(&t); err != nil {
		return fmt.Errorf("postgres store: read the session's start: %w", err)
	}
	ss.m.Store(c.PgConn().PID(), t)
	return nil
}

func (ss *sessionStarts) forget(c *pgx.Conn) { ss.m.Delete(c.PgConn().PID()) }

func (ss *sessionStarts) started(pid uint32) (time.Time, bool) {
	t, ok := ss.m.Load(pid)
	if !ok {
		return time.Time{}, false
	}
	return t.(time.Time), true
}
