package postgres

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A piped transaction is a transaction: what it wrote is seen only once
// it commits, a failed statement undoes every earlier one, and the
// connection it used serves the next transaction as new.
func TestAPipedTransactionCommitsAllOrNothing(t *testing.T) {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(testDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1 // every transaction reuses the connection of the one before
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `CREATE TABLE piped (n int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	count := func() (n int) {
		if err := pool.QueryRow(ctx, `SELECT COUNT(*) FROM piped`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	write := func(fn func(tx *pipeTx) error) error {
		tx, err := beginPiped(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if err := fn(tx); err != nil {
			return err
		}
		return tx.commitWith(ctx, `INSERT INTO piped VALUES (100)`)
	}

	// The first statement carries BEGIN: a query's rows, then a commit
	// that carries the last statement.
	if err := write(func(tx *pipeTx) error {
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil || one != 1 {
			t.Fatalf("first statement: %d, %v", one, err)
		}
		_, err := tx.Exec(ctx, `INSERT INTO piped VALUES (1), (2)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 3 {
		t.Fatalf("%d rows after a commit, want 3", n)
	}

	// A statement that fails after others: nothing of the transaction
	// stays, the error is the statement's.
	err = write(func(tx *pipeTx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO piped VALUES (3)`); err != nil {
			t.Fatal(err)
		}
		_, err := tx.Exec(ctx, `INSERT INTO piped VALUES (1)`)
		return err
	})
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23505" {
		t.Fatalf("a duplicate key: %v, want the unique violation", err)
	}
	if n := count(); n != 3 {
		t.Fatalf("%d rows after a rolled back write, want 3", n)
	}

	// The commit's own statement failing (100 is there) undoes the
	// transaction too, and leaves the connection to the pool.
	pid := func() (p int32) {
		if err := pool.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	before := pid()
	if err := write(func(tx *pipeTx) error {
		_, err := tx.Exec(ctx, `INSERT INTO piped VALUES (4)`)
		return err
	}); !errors.As(err, &pe) || pe.Code != "23505" {
		t.Fatalf("a commit whose statement fails: %v, want its unique violation", err)
	}
	if n := count(); n != 3 {
		t.Fatalf("%d rows after a failed commit, want 3", n)
	}
	if after := pid(); after != before {
		t.Fatalf("the connection was replaced after a failed commit (backend %d, then %d): it should be rolled back and reused", before, after)
	}

	// A first statement that fails: the error is its own, and the
	// connection is clean for the next transaction.
	if err := write(func(tx *pipeTx) error {
		var x int
		return tx.QueryRow(ctx, `SELECT 1/0`).Scan(&x)
	}); !errors.As(err, &pe) || pe.Code != "22012" {
		t.Fatalf("a failing first statement: %v, want division by zero", err)
	}
	if err := write(func(tx *pipeTx) error {
		_, err := tx.Exec(ctx, `DELETE FROM piped WHERE n = 100`)
		return err
	}); err != nil {
		t.Fatalf("the next transaction: %v", err)
	}
	// A transaction that sends nothing commits nothing and costs nothing.
	tx, err := beginPiped(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("an empty commit: %v", err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1`); !errors.Is(err, pgx.ErrTxClosed) {
		t.Fatalf("a statement after commit: %v, want ErrTxClosed", err)
	}
	tx.Rollback(ctx)
}
