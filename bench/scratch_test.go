package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/wasmq/wasmq/store/pgtest"
)

// scratchName is a schema name of this test's own in the shared test
// database (dropped when the test ends), and that database's DSN: no
// DROP DATABASE, whose forced checkpoint would disturb other packages'
// tests running beside this one.
func scratchName(t *testing.T) (db, name string) {
	t.Helper()
	db = pgtest.DSN(t) // skips without PostgreSQL, fails under CI=true
	name = fmt.Sprintf("wasmq_bench_%d", rand.Uint32())
	t.Cleanup(func() {
		if c, err := pgx.Connect(context.Background(), db); err == nil {
			c.Exec(context.Background(), `DROP SCHEMA IF EXISTS `+name+` CASCADE`)
			c.Close(context.Background())
		}
	})
	return db, name
}

func searchPath(t *testing.T, dsn string) string {
	return pgtest.Scalar[string](t, dsn, `SHOW search_path`)
}

func schemaExists(t *testing.T, dsn, name string) bool {
	return pgtest.Scalar[int](t, dsn, `SELECT count(*) FROM pg_namespace WHERE nspname = $1`, name) == 1
}

// A run in a scratch schema stores its jobs there, and the schema is gone
// once the run is over.
func TestABenchRunsInItsScratchSchemaAndDropsIt(t *testing.T) {
	db, name := scratchName(t)
	ctx := context.Background()
	dsn, drop, err := ScratchSchema(ctx, db, name)
	if err != nil {
		t.Fatal(err)
	}
	if sp := searchPath(t, dsn); sp != name {
		t.Fatalf("the run's search_path is %q, want %s", sp, name)
	}
	r, err := Enqueue(ctx, EnqueueOptions{Mode: "store", Driver: "postgres", DSN: dsn, Jobs: 40, Clients: 2, Batch: 1, PluginsDir: plugins(t)})
	if err != nil {
		t.Fatal(err)
	}
	if r.Jobs != 40 {
		t.Fatalf("the run stored %d jobs, want 40", r.Jobs)
	}
	c, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int // the run's jobs, and the lone requests measured before it
	if err := c.QueryRow(ctx, `SELECT count(*) FROM `+name+`.jobs`).Scan(&n); err != nil || n < 40 {
		t.Fatalf("%s.jobs holds %d jobs (%v), want the run's 40 at least", name, n, err)
	}
	if err := drop(); err != nil {
		t.Fatal(err)
	}
	if schemaExists(t, db, name) {
		t.Fatal("the scratch schema is still there after the run")
	}
}

// A schema left by a run cut short is emptied by the next run.
func TestAScratchSchemaLeftByAnEarlierRunIsMadeAfresh(t *testing.T) {
	db, name := scratchName(t)
	ctx := context.Background()
	dsn, _, err := ScratchSchema(ctx, db, name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, `CREATE TABLE leftover (x int)`); err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)
	if _, _, err := ScratchSchema(ctx, db, name); err != nil {
		t.Fatalf("the earlier run's schema was refused: %v", err)
	}
	c, err = pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = $1`, name).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the new scratch schema holds %d tables (%v), want none", n, err)
	}
}

// A schema bench did not make is refused and left as it was: a mistyped
// name must never cost anyone their tables.
func TestAScratchSchemaRefusesASchemaItDidNotMake(t *testing.T) {
	db, accounts := scratchName(t)
	_, marked := scratchName(t)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	for _, sql := range []string{`CREATE SCHEMA ` + accounts, `CREATE TABLE ` + accounts + `.ledger (x int)`, `INSERT INTO ` + accounts + `.ledger VALUES (42)`,
		`CREATE SCHEMA ` + marked, `COMMENT ON SCHEMA ` + marked + ` IS 'payroll'`} {
		if _, err := c.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{accounts, marked, "public"} {
		_, _, err := ScratchSchema(ctx, db, name)
		if err == nil || !strings.Contains(err.Error(), "--schema "+name) || !strings.Contains(err.Error(), "did not make it") {
			t.Errorf("--schema %s: %v, want a refusal naming the flag", name, err)
		}
	}
	var x int
	if err := c.QueryRow(ctx, `SELECT x FROM `+accounts+`.ledger`).Scan(&x); err != nil || x != 42 {
		t.Fatalf("%s.ledger after the refusal: %d, %v", accounts, x, err)
	}
}

// A name that would need quoting is refused before any connection: the
// DSN here reaches nothing, so a refusal after connecting would say so.
func TestAScratchSchemaNameIsAPlainIdentifier(t *testing.T) {
	const nowhere = "postgres://nobody@127.0.0.1:1/none?connect_timeout=1"
	for _, name := range []string{"", "Bench", "a;DROP SCHEMA public", "1st", "with space", "é", strings.Repeat("a", 64)} {
		_, _, err := ScratchSchema(context.Background(), nowhere, name)
		if err == nil || !strings.Contains(err.Error(), "--schema") || strings.Contains(err.Error(), "connect") {
			t.Errorf("--schema %q: %v, want a refusal of the name", name, err)
		}
	}
	if _, _, err := ScratchSchema(context.Background(), "", "wasmq_bench"); err == nil || !strings.Contains(err.Error(), "--dsn") {
		t.Errorf("--schema without a DSN: %v, want a refusal naming --dsn", err)
	}
}

// The search_path reaches PostgreSQL from either form of connection
// string, replacing one already there, and the string's other parameters
// reach it unchanged: an option with a space in it was once re-encoded
// into one PostgreSQL refused.
func TestTheScratchSchemaIsTheSearchPathOfEitherFormOfDSN(t *testing.T) {
	db, _ := scratchName(t)
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	u.RawQuery += "&search_path=elsewhere&options=-c%20statement_timeout%3D7s"
	if u.RawQuery[0] == '&' {
		u.RawQuery = u.RawQuery[1:]
	}
	dsn := withSearchPath(u.String(), "wasmq_bench")
	if sp := searchPath(t, dsn); sp != "wasmq_bench" {
		t.Errorf("URL with a search_path: %q", sp)
	}
	if st := pgtest.Scalar[string](t, dsn, `SHOW statement_timeout`); st != "7s" {
		t.Errorf("URL with options: statement_timeout %q, want the 7s of its options", st)
	}
	pass, _ := u.User.Password()
	kv := "host=" + u.Hostname() + " port=" + u.Port() + " user=" + u.User.Username() + " dbname=" + strings.TrimPrefix(u.Path, "/") +
		" sslmode=disable search_path=elsewhere options='-c statement_timeout=7s'"
	if pass != "" {
		kv += " password=" + pass
	}
	dsn = withSearchPath(kv, "wasmq_bench")
	if sp := searchPath(t, dsn); sp != "wasmq_bench" {
		t.Errorf("keyword/value DSN with a search_path: %q", sp)
	}
	if st := pgtest.Scalar[string](t, dsn, `SHOW statement_timeout`); st != "7s" {
		t.Errorf("keyword/value DSN with options: statement_timeout %q, want the 7s of its options", st)
	}
}
