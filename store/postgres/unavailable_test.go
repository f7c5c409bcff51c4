package postgres

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// The errors of a database that cannot serve now are Unavailable (the
// API answers 503 with Retry-After); the errors of a request are not.
// Each error comes from the real PostgreSQL, provoked for the test (too
// many connections raised with its SQLSTATE by a DO block).
func TestUnavailableIsTheDatabaseNotTheRequest(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	provoke := map[string]func() error{
		"nothing listens": func() error {
			_, err := pgx.Connect(ctx, "postgres://postgres@127.0.0.1:1/test?connect_timeout=2")
			return err
		},
		"the server ends the session (57P01)": func() error {
			c, err := pgx.Connect(ctx, s.d.cfg.ConnString())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ctx)
			_, err = c.Exec(ctx, `SELECT pg_terminate_backend(pg_backend_pid())`)
			return err
		},
		"a read-only transaction, as on a standby (25006)": func() error {
			return pgx.BeginTxFunc(ctx, s.d.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `INSERT INTO channel_overrides (channel) VALUES ('x')`)
				return err
			})
		},
		"too many connections (53300)": func() error {
			_, err := s.d.pool.Exec(ctx, `DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = 'too_many_connections'; END $$`)
			return err
		},
	}
	for name, f := range provoke {
		if err := f(); err == nil || !s.Unavailable(err) {
			t.Errorf("%s: %v, want an error that is Unavailable", name, err)
		}
	}
	request := map[string]func() error{
		"a unique violation": func() error {
			_, err := s.d.pool.Exec(ctx, `INSERT INTO channel_overrides (channel) VALUES ('dup'), ('dup')`)
			return err
		},
		"a syntax error":       func() error { _, err := s.d.pool.Exec(ctx, `SELEC 1`); return err },
		"a value out of range": func() error { _, err := s.d.pool.Exec(ctx, `SELECT 2147483648::int`); return err },
	}
	for name, f := range request {
		if err := f(); err == nil || s.Unavailable(err) {
			t.Errorf("%s: %v, want an error that is not Unavailable", name, err)
		}
	}
}
