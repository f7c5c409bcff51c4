// Package pgtest gives tests an isolated PostgreSQL schema.
package pgtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/wasmq/wasmq/store/pgdsn"
)

// URL is the test database: WASMQ_TEST_DATABASE_URL or the local default.
func URL() string {
	if v := os.Getenv("WASMQ_TEST_DATABASE_URL"); v != "" {
		return v
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// Database returns a connection string on a fresh database, dropped when
// the test ends: for a test that must not share PostgreSQL's cleanup
// horizon with other tests' transactions (a row version that another
// session of the same database may still see cannot be pruned, whatever
// its schema). The test user needs CREATEDB, as postgres has.
func Database(t testing.TB) string {
	t.Helper()
	u, name := scratch(t, "DATABASE", "", " WITH (FORCE)")
	u.Path = "/" + name
	return u.String()
}

// DSN returns a connection string on a fresh schema, dropped when the
// test ends. Without a reachable PostgreSQL the test is skipped, except
// under CI=true where it fails.
func DSN(t testing.TB) string {
	t.Helper()
	u, schema := scratch(t, "SCHEMA", "", " CASCADE")
	return pgdsn.WithParam(u.String(), "search_path", schema)
}

// scratch creates a uniquely named object of the kind (SCHEMA, DATABASE,
// TABLESPACE) in the test database (with createSuffix), dropped (with
// dropSuffix) when the test ends, and
// returns the test database's URL and the name. Without a reachable
// PostgreSQL the test is skipped, or fails under CI=true.
func scratch(t testing.TB, kind, createSuffix, dropSuffix string) (*url.URL, string) {
	t.Helper()
	base := URL()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL is required under CI=true: %v", err)
		}
		t.Skipf("no PostgreSQL at %s: %v", base, err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("wasmq_t_%d", rand.Uint64()%1e12)
	if _, err := conn.Exec(ctx, "CREATE "+kind+" "+name+createSuffix); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c, err := pgx.Connect(context.Background(), base); err == nil {
			c.Exec(context.Background(), "DROP "+kind+" "+name+dropSuffix)
			c.Close(context.Background())
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return u, name
}

// Tablespace makes a tablespace in dir (a disk of the test's own, on the
// machine that runs PostgreSQL) and returns its name; dropped when the
// test ends, after whatever the test registers later (a schema whose
// tables live there). dir is given to PostgreSQL's system user, and its
// parent opened for it to pass through; that needs root, as mounting the
// disk does.
func Tablespace(t testing.TB, dir string) string {
	t.Helper()
	pg, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("a tablespace needs PostgreSQL's system user: %v", err)
	}
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatalf("give %s to postgres: %v", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for p := filepath.Dir(dir); p != "/" && p != "."; p = filepath.Dir(p) {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(p, fi.Mode().Perm()|0o011); err != nil {
				t.Fatalf("open %s to postgres: %v", p, err)
			}
		}
	}
	_, name := scratch(t, "TABLESPACE", " LOCATION '"+strings.ReplaceAll(dir, "'", "''")+"'", "")
	return name
}

// LockTable takes mode on table in a session of its own, as an
// operator's statement does (CREATE INDEX takes SHARE: reads go on,
// writes wait; VACUUM FULL and ALTER TABLE take ACCESS EXCLUSIVE: both
// wait), and holds it until release is called or the test ends.
func LockTable(t testing.TB, dsn, table, mode string) (release func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err == nil {
		_, err = tx.Exec(ctx, "LOCK TABLE "+pgx.Identifier{table}.Sanitize()+" IN "+mode+" MODE")
	}
	if err != nil {
		conn.Close(ctx)
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			tx.Rollback(ctx)
			conn.Close(ctx)
		})
	}
	t.Cleanup(release)
	return release
}

// Scalar reads one value over a connection of its own to dsn: what a
// test asks the database behind the code it tests.
func Scalar[T any](t testing.TB, dsn, sql string, args ...any) T {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var v T
	if err := c.QueryRow(ctx, sql, args...).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}
