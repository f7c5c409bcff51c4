//go:build chaos

package main

import (
	"bytes"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/wasmq/wasmq/store/disktest"
	"github.com/wasmq/wasmq/store/pgdsn"
	"github.com/wasmq/wasmq/store/pgtest"
)

// PostgreSQL's disk for the jobs fills up under a node enqueueing and
// running jobs (the node's tables in a tablespace on a small disk, the
// WAL elsewhere: a server whose data volume filled). Enqueues are refused
// 503 with Retry-After and store nothing; the node stays up, serves reads
// and says so once every ten seconds, not at every retry; once room is
// made, every acknowledged job runs, and only those.
func TestChaosPostgresDiskFills(t *testing.T) {
	bin := buildWasmq(t)
	disk := disktest.Mount(t, "6m")
	space := pgtest.Tablespace(t, disk.Dir)
	dsn := pgdsn.WithParam(pgtest.DSN(t), "options", "-c default_tablespace="+space)
	a := startNodeWith(t, bin, dsn, "pgdiskfull", "")
	send := batchSender(t, a.url, 5)
	acked := fillUntilRefused(t, send, "a 6 MiB tablespace")
	full := time.Now()
	t.Logf("the tablespace filled after %d acknowledged jobs: %v", acked, progress(t, a.url))
	// The node runs on with its writes refused, and serves what needs no
	// room.
	for time.Since(full) < 4*time.Second {
		for _, path := range []string{"/healthz", "/v1/jobs?limit=5"} {
			res, err := http.Get(a.url + path)
			if err != nil {
				t.Fatalf("GET %s on a full disk: %v (the node is gone?)", path, err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("GET %s on a full disk: %d, want 200", path, res.StatusCode)
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	if status, _, out := send(); status != http.StatusServiceUnavailable {
		t.Fatalf("still full: %d %v, want 503", status, out)
	}
	// The scheduler and the outcomes are retried within a second: a line
	// a try would flood the log for as long as the disk stays full.
	log, _ := os.ReadFile(a.log)
	for _, what := range []string{"scheduler round failed", "recording outcomes failed", "claim failed"} {
		most := 2 + int(time.Since(full)/(10*time.Second))
		if n := bytes.Count(log, []byte(what)); n > most {
			t.Errorf("%d lines %q in %v of a full disk, want at most %d (one per 10 s)", n, what, time.Since(full).Round(time.Second), most)
		}
	}
	t.Logf("while full: %v", progress(t, a.url))
	disk.Resize("64m")
	made := time.Now()
	acked += takenAgain(t, send, made)
	// Exactly the acknowledged jobs (waitAllDone counts them all): a
	// refused batch left none behind.
	done := waitAllDone(t, a.url, acked, 2*time.Minute)
	t.Logf("all %d acknowledged jobs done %v after room was made", acked, done.Sub(made).Round(time.Millisecond))
}
