package main

import (
	"bytes"
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/wasmq/wasmq/store/pgtest"
)

// A node freezes (SIGSTOP: a container paused, a VM suspended, a host
// that stalls) while two nodes share 300 jobs, with a 2 s lease. Its
// sessions stay open, since its kernel still answers for its sockets, and
// it says nothing. Whether it led or followed, the other node runs every
// job while it sleeps: it leads within a lease and a second (the store
// ends a leader's session silent for a lease), and takes back the jobs
// the frozen node held once their leases lapse. Thawed, the frozen node
// learns it lost the lead if it had it, follows, and runs jobs again; what
// it reports of the jobs taken from it changes nothing.
func TestAFrozenNodesWorkGoesOnWithoutIt(t *testing.T) {
	bin := buildWasmq(t)
	for _, victim := range []string{"leader", "follower"} {
		t.Run(victim, func(t *testing.T) {
			dsn := pgtest.DSN(t)
			first := startNode(t, bin, dsn, "first")
			for deadline := time.Now().Add(10 * time.Second); !leads(t, first); time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the first node never led")
				}
			}
			second := startNode(t, bin, dsn, "second")
			frozen, awake := first, second
			if victim == "follower" {
				frozen, awake = second, first
			}
			post(t, awake.url+"/v1/jobs:batch", map[string]any{"jobs": sleepJobs(300, 100)})
			for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				held := map[string]int{}
				for _, j := range listAll(t, awake.url) {
					if j.State == "started" {
						held[nodeOf(j.WorkerID)]++
					}
				}
				if held[frozen.name] > 0 && held[awake.name] > 0 {
					t.Logf("at the freeze: %v started", held)
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the two nodes never ran jobs together: %v", held)
				}
			}
			frozen.cmd.Process.Signal(syscall.SIGSTOP)
			froze := time.Now()
			defer frozen.cmd.Process.Signal(syscall.SIGCONT) // a failed test must not leave it stopped
			for !leads(t, awake) {
				if time.Since(froze) > 10*time.Second {
					t.Fatalf("10 s after the freeze the awake node does not lead: %v", progress(t, awake.url))
				}
				time.Sleep(50 * time.Millisecond)
			}
			took := time.Since(froze)
			t.Logf("the awake node leads %v after the freeze", took.Round(time.Millisecond))
			if took > 4*time.Second {
				t.Errorf("the awake node leads %v after the freeze, want within the 2 s lease and the 1 s between tries (and a second for a loaded machine)", took)
			}
			done := waitAllDone(t, awake.url, 300, 40*time.Second)
			t.Logf("all 300 done %v after the freeze, the frozen node still stopped", done.Sub(froze).Round(time.Millisecond))
			frozen.cmd.Process.Signal(syscall.SIGCONT)
			thawed := time.Now()

			if victim == "leader" {
				for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
					if b, _ := os.ReadFile(frozen.log); bytes.Contains(b, []byte("lost leadership")) {
						break
					}
					if time.Now().After(deadline) {
						t.Fatal("10 s after the thaw the frozen leader has not said it lost the lead")
					}
				}
			} else {
				time.Sleep(time.Second)
			}
			if leads(t, frozen) || !leads(t, awake) {
				t.Fatalf("after the thaw the thawed node leads: %v, the awake one: %v; want only the awake one", leads(t, frozen), leads(t, awake))
			}
			// The jobs the frozen node held were taken back (their first
			// attempt recorded dead) and done by the awake node at their
			// second; what the thawed node then reported of them was
			// refused.
			ctx := context.Background()
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			var jobs, nDone, again, againByAwake, dead, deadOfFrozen int
			if err := conn.QueryRow(ctx, `SELECT
				(SELECT count(*) FROM jobs),
				(SELECT count(*) FROM jobs WHERE state = 'done'),
				(SELECT count(*) FROM jobs WHERE attempt > 1),
				(SELECT count(*) FROM jobs WHERE attempt = 2 AND worker_id LIKE $1 || '/%'),
				(SELECT count(*) FROM job_attempts WHERE outcome = 'dead'),
				(SELECT count(*) FROM job_attempts WHERE outcome = 'dead' AND attempt = 1 AND worker_id LIKE $2 || '/%')`,
				awake.name, frozen.name).Scan(&jobs, &nDone, &again, &againByAwake, &dead, &deadOfFrozen); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d jobs, %d done; %d ran again, %d of them done by the awake node; %d attempts taken back, %d the frozen node's",
				jobs, nDone, again, againByAwake, dead, deadOfFrozen)
			if jobs != 300 || nDone != 300 || again < 1 || again != againByAwake || dead != again || deadOfFrozen != dead {
				t.Errorf("want 300 jobs done, those that ran again taken back from the frozen node at their first attempt and done by the awake one")
			}
			// And the thawed node runs jobs again, beside the leader.
			post(t, awake.url+"/v1/jobs:batch", map[string]any{"jobs": sleepJobs(100, 50)})
			waitAllDone(t, awake.url, 400, 30*time.Second)
			ran := map[string]int{}
			rows, err := conn.Query(ctx, `SELECT worker_id FROM jobs WHERE date_started > $1`, thawed)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var w string
				rows.Scan(&w)
				ran[nodeOf(w)]++
			}
			rows.Close()
			t.Logf("after the thaw the nodes ran %v", ran)
			if ran[frozen.name] == 0 || ran[awake.name] == 0 {
				t.Errorf("after the thaw the nodes ran %v: want both to run jobs", ran)
			}
		})
	}
}
