package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/wasmq/wasmq/store/pgtest"
	"github.com/wasmq/wasmq/store/postgres"
)

// node is a `wasmq serve` process.
type node struct {
	cmd  *exec.Cmd
	url  string
	name string
	log  string
}

func buildWasmq(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "wasmq")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// startNode starts a node on the shared PostgreSQL schema of dsn, with a
// 2 s lease.
func startNode(t *testing.T, bin, dsn, name string) *node {
	t.Helper()
	return startNodeWith(t, bin, dsn, name, `lease = "2s"`)
}

// startNodeWith starts a node with these lines added to its [runner]
// section; a dsn that is a file path makes it a SQLite node.
func startNodeWith(t *testing.T, bin, dsn, name, runner string) *node {
	t.Helper()
	plugins, _ := filepath.Abs("../../plugins/enabled")
	return launchNode(t, bin, name, func(addr, dir string) string {
		return fmt.Sprintf(`[server]
listen = %q
log_level = "warn"
[store]
%s
migrate = true
[runner]
channels = "root:8"
node_id = %q
shutdown_timeout = "2s"
%s
[host]
plugins_dir = %q
cache_dir = %q
`, addr, storeLines(dsn), name, runner, plugins, filepath.Join(dir, "cache"))
	})
}

// launchNode starts `wasmq serve` with the config config writes for its
// listen address and a folder of its own, and waits until it is ready.
func launchNode(t *testing.T, bin, name string, config func(addr, dir string) string) *node {
	t.Helper()
	dir := t.TempDir()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	cfg := filepath.Join(dir, "wasmq.toml")
	os.WriteFile(cfg, []byte(config(addr, dir)), 0o644)
	n := &node{url: "http://" + addr, name: name, log: filepath.Join(dir, "serve.log")}
	n.cmd = exec.Command(bin, "serve", "--config", cfg)
	logf, _ := os.Create(n.log)
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if n.cmd.ProcessState == nil {
			n.cmd.Process.Signal(syscall.SIGTERM)
			n.cmd.Wait()
		}
		if t.Failed() {
			// The folder goes with the test: what the node said is
			// kept in the test's output.
			b, _ := os.ReadFile(n.log)
			if len(b) > 8000 {
				b = append([]byte("…"), b[len(b)-8000:]...)
			}
			t.Logf("node %s's log:\n%s", name, b)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if res, err := http.Get(n.url + "/readyz"); err == nil && res.StatusCode == 200 {
			res.Body.Close()
			return n
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(n.log)
			t.Fatalf("node %s not ready: %s", name, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func storeLines(dsn string) string {
	if strings.HasPrefix(dsn, "postgres") {
		return fmt.Sprintf("driver = \"postgres\"\ndsn = %q", dsn)
	}
	return fmt.Sprintf("driver = \"sqlite\"\npath = %q", dsn)
}

func post(t *testing.T, url string, body any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(body)
	res, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	json.NewDecoder(res.Body).Decode(&out)
	if res.StatusCode >= 300 {
		t.Fatalf("POST %s: %d %v", url, res.StatusCode, out)
	}
	return out
}

type listed struct {
	UUID     string `json:"uuid"`
	State    string `json:"state"`
	Attempt  int    `json:"attempt"`
	Retry    int    `json:"retry"`
	WorkerID string `json:"worker_id"`
}

// nodeOf is the node_id of a worker_id (node_id/incarnation).
func nodeOf(workerID string) string {
	node, _, _ := strings.Cut(workerID, "/")
	return node
}

func listAll(t *testing.T, url string) []listed { return listJobs[listed](t, url, "") }

// listJobs reads every job the token sees (none: no tenants), page by
// page, each decoded as a T.
func listJobs[T any](t *testing.T, url, token string) []T {
	t.Helper()
	var all []T
	cursor := ""
	for {
		req, _ := http.NewRequest("GET", url+"/v1/jobs?limit=1000&cursor="+cursor, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var p struct {
			Jobs       []T    `json:"jobs"`
			NextCursor string `json:"next_cursor"`
		}
		json.NewDecoder(res.Body).Decode(&p)
		res.Body.Close()
		all = append(all, p.Jobs...)
		if p.NextCursor == "" {
			return all
		}
		cursor = p.NextCursor
	}
}

func TestTwoNodesRunEveryJobExactlyOnce(t *testing.T) {
	dsn := pgtest.DSN(t)
	bin := buildWasmq(t)
	a := startNode(t, bin, dsn, "node-a")
	b := startNode(t, bin, dsn, "node-b")
	jobs := make([]map[string]any, 1000)
	for i := range jobs {
		jobs[i] = map[string]any{"func": "testkit.sleep", "kwargs": map[string]any{"ms": 5}}
	}
	post(t, a.url+"/v1/jobs:batch", map[string]any{"jobs": jobs[:500]})
	post(t, b.url+"/v1/jobs:batch", map[string]any{"jobs": jobs[500:]})
	deadline := time.Now().Add(60 * time.Second)
	for {
		all := listAll(t, a.url)
		done, byNode := 0, map[string]int{}
		for _, j := range all {
			if j.State == "done" {
				done++
				byNode[nodeOf(j.WorkerID)]++
			}
		}
		if done == 1000 {
			for _, j := range all {
				if j.Attempt != 1 {
					t.Fatalf("job %s ran %d times", j.UUID, j.Attempt)
				}
			}
			if byNode["node-a"] == 0 || byNode["node-b"] == 0 {
				t.Fatalf("one node did all the work: %v", byNode)
			}
			t.Logf("jobs per node: %v", byNode)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 1000 jobs done after 60s", done)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestJobsOfAKilledNodeFinishOnAnother(t *testing.T) {
	dsn := pgtest.DSN(t)
	bin := buildWasmq(t)
	a := startNode(t, bin, dsn, "node-a")
	var ids []string
	for i := 0; i < 3; i++ {
		j := post(t, a.url+"/v1/jobs", map[string]any{"func": "testkit.sleep", "kwargs": map[string]any{"ms": 3000}, "max_retries": 3})
		ids = append(ids, j["uuid"].(string))
	}
	// Wait until node a runs them, then kill it without warning.
	waitStarted(t, a.url, 3)
	a.cmd.Process.Signal(syscall.SIGKILL)
	a.cmd.Wait()
	killed := time.Now()
	b := startNode(t, bin, dsn, "node-b")
	deadline := time.Now().Add(20 * time.Second)
	for {
		all := listAll(t, b.url)
		done := 0
		for _, j := range all {
			if j.State == "done" {
				done++
				if nodeOf(j.WorkerID) != "node-b" || j.Attempt != 2 || j.Retry != 2 {
					t.Fatalf("recovered job %+v: want run by node-b on attempt 2, the death counted", j)
				}
			}
		}
		if done == 3 {
			t.Logf("recovered %v after kill -9", time.Since(killed))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 3 jobs recovered after 20s: %+v", done, all)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A node still running when the database is migrated past its binary
// (a rolling upgrade done in the wrong order) stops within a lease and
// says why, rather than writing jobs the new schema's scheduler never
// sees; the job it was running finishes first.
func TestANodeStopsWhenTheDatabaseIsMigratedPastIt(t *testing.T) {
	dsn := pgtest.DSN(t)
	bin := buildWasmq(t)
	a := startNode(t, bin, dsn, "node-a")
	j := post(t, a.url+"/v1/jobs", map[string]any{"func": "testkit.sleep", "kwargs": map[string]any{"ms": 1000}})
	deadline := time.Now().Add(10 * time.Second)
	for state := ""; state != "started"; {
		for _, x := range listAll(t, a.url) {
			state = x.State
		}
		if time.Now().After(deadline) {
			t.Fatal("the job did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `INSERT INTO wasmq_schema_version (version) VALUES ($1)`, postgres.SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- a.cmd.Wait() }()
	select {
	case err := <-exited:
		if err == nil {
			t.Fatal("the node exited with status 0; want a failure")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the node still runs 10s after the database was migrated past it")
	}
	log, _ := os.ReadFile(a.log)
	if !bytes.Contains(log, []byte("newer than this wasmq binary")) {
		t.Fatalf("the node's log does not say why it stopped:\n%s", log)
	}
	var state string
	if err := conn.QueryRow(context.Background(), `SELECT state FROM jobs WHERE uuid = $1`, j["uuid"]).Scan(&state); err != nil || state != "done" {
		t.Fatalf("the running job is %q (%v), want done: a graceful stop lets it finish", state, err)
	}
}

// explainStuck prints, for a failed test, the jobs left started, their
// batches' leases and the node's log: what is needed to tell why.
func explainStuck(t *testing.T, dsn string, n *node) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Logf("explain: %v", err)
		return
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, `SELECT j.uuid, j.worker_id, j.attempt, j.date_started, j.run_id, r.worker_id, r.lease_until, r.remaining
		FROM jobs j LEFT JOIN job_runs r ON r.id = j.run_id WHERE j.state = 'started' ORDER BY j.date_started`)
	for rows.Next() {
		vals, _ := rows.Values()
		t.Logf("started: %v", vals)
	}
	rows.Close()
	rows, _ = conn.Query(ctx, `SELECT job_uuid, attempt, worker_id, started, ended, outcome, exc_name FROM job_attempts ORDER BY started DESC LIMIT 20`)
	for rows.Next() {
		vals, _ := rows.Values()
		t.Logf("attempt: %v", vals)
	}
	rows.Close()
	if b, err := os.ReadFile(n.log); err == nil {
		if len(b) > 20000 {
			b = b[len(b)-20000:]
		}
		t.Logf("%s log:\n%s", n.name, b)
	}
}

// progress counts the node's jobs by state, as one node's API lists them.
func progress(t *testing.T, url string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, j := range listAll(t, url) {
		out[j.State]++
	}
	return out
}

// waitAllDone waits until the store holds n jobs, every one done, and
// returns when that was: a job stored beyond the n the test counted (an
// answer that said "nothing stored" and was wrong) fails it too.
func waitAllDone(t *testing.T, url string, n int, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p := progress(t, url)
		total := 0
		for _, k := range p {
			total += k
		}
		if p["done"] == n && total == n {
			return time.Now()
		} else if time.Now().After(deadline) {
			t.Fatalf("after %v: %v (%d jobs), want %d, all done", timeout, p, total, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitStarted waits until n jobs of the node are started.
func waitStarted(t *testing.T, url string, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		started := 0
		for _, j := range listAll(t, url) {
			if j.State == "started" {
				started++
			}
		}
		if started >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d jobs started, want %d", started, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// With the default configuration (a 10 s lease), a killed node's jobs
// start again on another node within 5 s of the kill, whether the killed
// node led or not: PostgreSQL ends the dead process's session, so its
// liveness hold is gone at once, and the leader takes its jobs back
// without waiting for their leases to lapse.
func TestAKilledNodesJobsStartAgainElsewhereWithinFiveSeconds(t *testing.T) {
	bin := buildWasmq(t)
	for _, victim := range []string{"leader", "follower"} {
		t.Run(victim, func(t *testing.T) {
			dsn := pgtest.DSN(t)
			// The first node up leads: it is alone when it tries.
			leader := startNodeWith(t, bin, dsn, "first", "")
			follower := startNodeWith(t, bin, dsn, "second", "")
			kill, survivor := leader, follower
			if victim == "follower" {
				kill, survivor = follower, leader
			}
			// root:8 caps the cluster: up to 8 long jobs, posted one by one
			// until the victim runs some (the leader shares the work once it
			// has heard from the follower).
			deadline := time.Now().Add(20 * time.Second)
			for posted := 0; ; {
				held := 0
				for _, j := range listAll(t, leader.url) {
					if j.State == "started" && nodeOf(j.WorkerID) == kill.name {
						held++
					}
				}
				if held > 0 && posted == 8 {
					t.Logf("the %s (%s) runs %d of the 8 jobs", victim, kill.name, held)
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the %s never ran a job: %v", victim, listAll(t, leader.url))
				}
				if posted < 8 && (held == 0 || posted < 4) {
					post(t, leader.url+"/v1/jobs", sleepJobs(1, 20000)[0])
					posted++
				} else if posted < 8 {
					post(t, leader.url+"/v1/jobs:batch", map[string]any{"jobs": sleepJobs(8-posted, 20000)})
					posted = 8
				}
				time.Sleep(300 * time.Millisecond)
			}
			kill.cmd.Process.Signal(syscall.SIGKILL)
			kill.cmd.Wait()
			killed := time.Now()
			// Every job the victim held starts again on the survivor.
			deadline = time.Now().Add(30 * time.Second)
			for {
				again := 0
				all := listAll(t, survivor.url)
				for _, j := range all {
					if j.State == "started" && nodeOf(j.WorkerID) == survivor.name {
						again++
					}
				}
				if again == 8 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("30 s after the kill the survivor runs %d of the 8 jobs: %+v", again, all)
				}
				time.Sleep(50 * time.Millisecond)
			}
			worst := recovery(t, dsn, []time.Time{killed})
			t.Logf("the killed %s's jobs started again %v after the kill at worst", victim, worst.Round(time.Millisecond))
			if worst <= 0 || worst > 5*time.Second {
				t.Fatalf("the killed %s's jobs started again %v after the kill, want within 5 s", victim, worst)
			}
		})
	}
}

// sleepJobs are n jobs of testkit.sleep for ms each.
func sleepJobs(n, ms int) []map[string]any {
	jobs := make([]map[string]any, n)
	for i := range jobs {
		jobs[i] = map[string]any{"func": "testkit.sleep", "kwargs": map[string]any{"ms": ms}}
	}
	return jobs
}

// recovery is the longest time from a kill to the new start of a job the
// killed process held (its attempt recorded "dead").
func recovery(t *testing.T, dsn string, kills []time.Time) time.Duration {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT a.started, b.started FROM job_attempts a
		JOIN job_attempts b ON b.job_uuid = a.job_uuid AND b.attempt = a.attempt + 1 WHERE a.outcome = 'dead'
		UNION ALL SELECT a.started, j.date_started FROM job_attempts a JOIN jobs j ON j.uuid = a.job_uuid
		WHERE a.outcome = 'dead' AND j.attempt = a.attempt + 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var worst time.Duration
	for rows.Next() {
		var started, again time.Time
		if err := rows.Scan(&started, &again); err != nil {
			t.Fatal(err)
		}
		var kill time.Time // the first kill after the dead attempt started
		for _, k := range kills {
			if k.After(started) {
				kill = k
				break
			}
		}
		if !kill.IsZero() && again.Sub(kill) > worst {
			worst = again.Sub(kill)
		}
	}
	return worst
}

// A node killed and started again under the same node_id (a fixed name,
// or <hostname>-<pid> as PID 1 in a container) is a new incarnation: it
// does not renew its predecessor's leases, so the jobs the killed process
// held come back and run, instead of staying started for good.
func TestANodeBackUnderTheSameNameDoesNotAdoptItsLeases(t *testing.T) {
	dsn := pgtest.DSN(t)
	bin := buildWasmq(t)
	a := startNode(t, bin, dsn, "worker-1")
	jobs := make([]map[string]any, 12)
	for i := range jobs {
		jobs[i] = map[string]any{"func": "testkit.sleep", "kwargs": map[string]any{"ms": 3000}}
	}
	post(t, a.url+"/v1/jobs:batch", map[string]any{"jobs": jobs})
	waitStarted(t, a.url, 8)
	a.cmd.Process.Signal(syscall.SIGKILL)
	a.cmd.Wait()
	killed := time.Now()
	again := startNode(t, bin, dsn, "worker-1")
	deadline := time.Now().Add(30 * time.Second)
	for {
		all := listAll(t, again.url)
		done, rerun := 0, 0
		for _, j := range all {
			if j.State == "done" {
				done++
				if j.Attempt == 2 {
					rerun++
				}
			}
		}
		if done == 12 {
			if rerun != 8 {
				t.Fatalf("%d jobs ran twice, want the 8 the killed process held", rerun)
			}
			t.Logf("all 12 done %v after kill -9 and restart under the same name", time.Since(killed))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 12 jobs done 30s after the restart: %+v", done, all)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
