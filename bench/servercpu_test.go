package bench

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/procfs"
	"github.com/wasmq/wasmq/store/pgtest"
)

// The database's CPU counts what its backends did, a connection closed
// since included: a query that keeps a backend busy for a while, on a
// connection closed before the second reading, shows in the difference.
func TestPostgresCPUCountsAClosedConnectionsWork(t *testing.T) {
	dsn := pgtest.DSN(t)
	if _, ok := postgresCPU(); !ok {
		if os.Getenv("CI") == "true" {
			t.Fatal("no PostgreSQL process is visible in /proc: CI runs the server on this machine")
		}
		t.Skip("PostgreSQL does not run on this machine")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	before, _ := postgresCPU()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if err := conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM generate_series(1, 4000000) g WHERE g % 7 = 3`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	proc, err := procfs.NewProc(pid)
	if err != nil {
		t.Fatal(err)
	}
	st, err := proc.Stat()
	if err != nil {
		t.Fatal(err)
	}
	own := procTicks(st)
	if own < 5 { // 50 ms: the query must be work enough to tell
		t.Fatalf("backend %d used %d ticks over a count of %d rows", pid, own, n)
	}
	conn.Close(ctx)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); os.IsNotExist(err) {
			break // exited, and reaped: its times are its postmaster's now
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend %d still runs 10 s after its connection closed", pid)
		}
	}
	after, _ := postgresCPU()
	if ownTime := time.Duration(own) * time.Second / userHZ; after-before < ownTime {
		t.Fatalf("PostgreSQL used %v between the readings, less than the closed backend's own %v", after-before, ownTime)
	}
}

// An enqueue run on a PostgreSQL of this machine reports the server's
// CPU per job beside the node's; on SQLite there is no server to read.
func TestAnEnqueueRunReportsTheServersCPU(t *testing.T) {
	dsn := pgtest.DSN(t)
	if _, ok := postgresCPU(); !ok {
		t.Skip("PostgreSQL does not run on this machine")
	}
	dir := plugins(t)
	ctx := context.Background()
	r, err := Enqueue(ctx, EnqueueOptions{Driver: "postgres", DSN: dsn, Clients: 2, Batch: 100, Jobs: 4000, PluginsDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if r.DBCPU <= 0 || !strings.Contains(r.String(), "; postgres cpu ") {
		t.Fatalf("the report gives no server CPU: %s", r)
	}
	r, err = Enqueue(ctx, EnqueueOptions{Driver: "sqlite", Clients: 2, Batch: 100, Jobs: 400, PluginsDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if r.DBCPU != 0 || strings.Contains(r.String(), "postgres cpu") {
		t.Fatalf("a SQLite run reports a server's CPU: %s", r)
	}
}

// The server's CPU is read only when the DSN names this machine: a Unix
// socket or a loopback address, every fallback host included.
func TestOnlyALocalServersCPUIsRead(t *testing.T) {
	for dsn, local := range map[string]bool{
		"postgres://postgres@127.0.0.1:5432/test":                true,
		"postgres://postgres@localhost/test?sslmode=disable":     true,
		"postgres://postgres@[::1]:5432/test":                    true,
		"host=/var/run/postgresql dbname=test":                   true,
		"postgres://postgres@db.example.com/test":                false,
		"postgres://postgres@10.0.0.5:5432/test":                 false,
		"postgres://postgres@127.0.0.1,db.example.com:5432/test": false,
		"postgres://%zz": false,
	} {
		if got := localServer(dsn); got != local {
			t.Errorf("localServer(%q) = %v, want %v", dsn, got, local)
		}
	}
	if c := startDBCPU("postgres", "postgres://postgres@db.example.com/test"); c.ok {
		t.Error("a remote server's CPU was read from this machine's processes")
	}
}
