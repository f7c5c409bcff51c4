package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pipeTx is a write transaction whose BEGIN travels in the same network
// round trip as its first statement, and whose COMMIT in the same round
// trip as its last (commitWith). pgx's own transaction waits for BEGIN
// and for COMMIT on their own, and for the store's short writes those are
// half the round trips: a coalesced enqueue was begin, insert, notify,
// commit (four), and is now two; a claim or a completion likewise.
//
// Statements are pipelined with pgx batches: the server still runs them
// one after another and answers each, so an error is the statement's.
type pipeTx struct {
	conn   *pgxpool.Conn
	begun  bool // BEGIN has been sent
	closed bool // COMMIT or ROLLBACK has been sent
}

var _ pgx.Tx = (*pipeTx)(nil)

func beginPiped(ctx context.Context, pool *pgxpool.Pool) (*pipeTx, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	return &pipeTx{conn: conn}, nil
}

// first sends BEGIN with the statement b holds after it, and returns the
// batch's results with BEGIN's already read.
func (t *pipeTx) first(ctx context.Context, sql string, args []any) (pgx.BatchResults, error) {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(sql, args...)
	br := t.conn.SendBatch(ctx, b)
	t.begun = true
	if _, err := br.Exec(); err != nil {
		br.Close()
		return nil, fmt.Errorf("begin: %w", err)
	}
	return br, nil
}

func (t *pipeTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if t.closed {
		return pgconn.CommandTag{}, pgx.ErrTxClosed
	}
	if t.begun {
		return t.conn.Exec(ctx, sql, args...)
	}
	br, err := t.first(ctx, sql, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

func (t *pipeTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if t.closed {
		return nil, pgx.ErrTxClosed
	}
	if t.begun {
		return t.conn.Query(ctx, sql, args...)
	}
	br, err := t.first(ctx, sql, args)
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		br.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

func (t *pipeTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := t.Query(ctx, sql, args...)
	return &firstRow{rows: rows, err: err}
}

// commitWith runs the transaction's last statement and COMMIT in one
// round trip; an empty transaction (nothing sent yet) sends nothing.
func (t *pipeTx) commitWith(ctx context.Context, sql string, args ...any) error {
	if t.closed {
		return pgx.ErrTxClosed
	}
	if !t.begun && sql == "" {
		t.closed = true
		return nil
	}
	b := &pgx.Batch{}
	if !t.begun {
		b.Queue("BEGIN")
	}
	if sql != "" {
		b.Queue(sql, args...)
	}
	b.Queue("COMMIT")
	br := t.conn.SendBatch(ctx, b)
	t.begun, t.closed = true, true
	var tag pgconn.CommandTag
	var err error
	for i := 0; i < b.Len() && err == nil; i++ {
		tag, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	switch {
	case err == nil && tag.String() == "ROLLBACK":
		err = pgx.ErrTxCommitRollback
	case err != nil:
		// A statement before COMMIT failed: the server skipped the rest
		// and the transaction is still open, aborted. Rollback ends it,
		// and the connection goes back to the pool rather than away.
		t.closed = false
	}
	return err
}

func (t *pipeTx) Commit(ctx context.Context) error { return t.commitWith(ctx, "") }

// Rollback ends the transaction if it is still open and gives the
// connection back; it is safe after Commit (a deferred call).
func (t *pipeTx) Rollback(ctx context.Context) error {
	if t.conn == nil {
		return pgx.ErrTxClosed
	}
	var err error
	if t.begun && !t.closed {
		t.closed = true
		if _, err = t.conn.Exec(ctx, "ROLLBACK"); err != nil {
			// A connection in an unknown state is not given back.
			t.conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}
	// The pool closes rather than reuses a connection left inside a
	// transaction (a commit that failed on the wire).
	t.conn.Release()
	t.conn = nil
	return err
}

func (t *pipeTx) Begin(ctx context.Context) (pgx.Tx, error) {
	return nil, errors.New("postgres store: nested transactions are not used")
}

func (t *pipeTx) CopyFrom(ctx context.Context, table pgx.Identifier, cols []string, src pgx.CopyFromSource) (int64, error) {
	if err := t.ensureBegun(ctx); err != nil {
		return 0, err
	}
	return t.conn.CopyFrom(ctx, table, cols, src)
}

func (t *pipeTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if err := t.ensureBegun(ctx); err != nil {
		return errBatch{err}
	}
	return t.conn.SendBatch(ctx, b)
}

func (t *pipeTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	return t.conn.Conn().Prepare(ctx, name, sql)
}

func (t *pipeTx) LargeObjects() pgx.LargeObjects { return pgx.LargeObjects{} }

func (t *pipeTx) Conn() *pgx.Conn { return t.conn.Conn() }

func (t *pipeTx) ensureBegun(ctx context.Context) error {
	if t.closed {
		return pgx.ErrTxClosed
	}
	if t.begun {
		return nil
	}
	t.begun = true
	_, err := t.conn.Exec(ctx, "BEGIN")
	return err
}

// batchRows closes the batch its rows came from once they are read.
type batchRows struct {
	pgx.Rows
	br  pgx.BatchResults
	err error
}

func (r *batchRows) Close() {
	r.Rows.Close()
	if r.br != nil {
		r.err = r.br.Close()
		r.br = nil
	}
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

// firstRow is QueryRow's answer: the first row, or pgx.ErrNoRows.
type firstRow struct {
	rows pgx.Rows
	err  error
}

func (r *firstRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		r.rows.Close()
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}

type errBatch struct{ err error }

func (b errBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, b.err }
func (b errBatch) Query() (pgx.Rows, error)         { return nil, b.err }
func (b errBatch) QueryRow() pgx.Row                { return &firstRow{err: b.err} }
func (b errBatch) Close() error                     { return b.err }
func (b errBatch) Tx() pgx.Tx                       { return nil }
