package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/wasmq/wasmq/store/pgtest"
)

// `wasmq bench -h` lists the flags, the enqueue ones included, and exits 0.
func TestBenchHelpListsItsFlags(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"bench", "-h"}, &out); err != nil {
		t.Fatalf("bench -h: %v", err)
	}
	for _, flag := range []string{"-enqueue", "-clients", "-batch", "-store", "-jobs", "-no-coalesce", "-flushers", "-window", "-schema"} {
		if !strings.Contains(out.String(), flag) {
			t.Errorf("bench -h does not list %s:\n%s", flag, out.String())
		}
	}
}

// A short enqueue run over HTTP, single jobs then batches: every job
// acknowledged is counted in the store (the bench fails otherwise), and
// no progress bar is drawn into a buffer.
func TestBenchEnqueueOverHTTP(t *testing.T) {
	for _, batch := range []string{"1", "25"} {
		var out bytes.Buffer
		err := run([]string{"bench", "--enqueue", "http", "--clients", "4", "--batch", batch, "--jobs", "200",
			"--plugins", "../../plugins/enabled", "--json"}, &out)
		if err != nil {
			t.Fatalf("batch %s: %v", batch, err)
		}
		var r struct {
			Jobs, Batch int
			Rate        float64
		}
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatalf("batch %s: %v: %s", batch, err, out.String())
		}
		if r.Jobs != 200 || r.Rate <= 0 || strings.Contains(out.String(), "\r") {
			t.Fatalf("batch %s: %s", batch, out.String())
		}
	}
	var out bytes.Buffer
	if err := run([]string{"bench", "--enqueue", "carrier-pigeon"}, &out); err == nil || !strings.Contains(err.Error(), "--enqueue") {
		t.Fatalf("an unknown mode: %v, want an error naming --enqueue", err)
	}
}

// `wasmq bench --schema` runs on PostgreSQL in a scratch schema of its
// own, which is gone afterwards; on SQLite the flag is refused.
func TestBenchRunsInAScratchSchema(t *testing.T) {
	db := pgtest.DSN(t) // a shared database: no DROP DATABASE, whose checkpoint disturbs other tests
	name := fmt.Sprintf("wasmq_bench_cli_%d", rand.Uint32())
	var out bytes.Buffer
	err := run([]string{"bench", "--store", "postgres", "--dsn", db, "--schema", name, "--enqueue", "store",
		"--clients", "2", "--jobs", "50", "--plugins", "../../plugins/enabled", "--json"}, &out)
	if err != nil {
		t.Fatalf("bench --schema: %v\n%s", err, out.String())
	}
	c, err := pgx.Connect(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var n int
	if err := c.QueryRow(context.Background(), `SELECT count(*) FROM pg_namespace WHERE nspname = $1`, name).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the scratch schema after the run: %d (%v), want it dropped", n, err)
	}
	if err := run([]string{"bench", "--schema", "wasmq_bench"}, &out); err == nil || !strings.Contains(err.Error(), "--schema") {
		t.Fatalf("--schema on SQLite: %v, want a refusal naming the flag", err)
	}
}

// `--cpuprofile` with `--enqueue` profiles the clients sending, not the
// node's start: the plugins' compilation (about a second of CPU) is not
// in it.
func TestBenchEnqueueProfilesTheMeasuredPhaseOnly(t *testing.T) {
	prof := filepath.Join(t.TempDir(), "cpu.prof")
	var out bytes.Buffer
	if err := run([]string{"bench", "--enqueue", "http", "--clients", "4", "--jobs", "400",
		"--plugins", "../../plugins/enabled", "--cpuprofile", prof}, &out); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(prof)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f) // a profile is a gzipped protocol buffer
	if err != nil {
		t.Fatalf("the profile: %v", err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("the profile: %v", err)
	}
	if bytes.Contains(b, []byte("CompileModule")) {
		t.Error("the enqueue profile holds the plugins' compilation, from before the measured phase")
	}
}
