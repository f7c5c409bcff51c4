//go:build chaos

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmq/wasmq/store/pgtest"
)

// freezePostgres stops every process of the local cluster (SIGSTOP: a
// database that takes connections but answers nothing, as a VM paused or
// a storage stall) and returns what resumes them, also run when the
// test ends.
func freezePostgres(t *testing.T) (thaw func()) {
	t.Helper()
	out, err := exec.Command("pgrep", "-u", "postgres", "-x", "postgres").Output()
	if err != nil {
		t.Skipf("no local PostgreSQL processes to freeze: %v", err)
	}
	pids := strings.Fields(string(out))
	signal := func(sig string) {
		if out, err := exec.Command("kill", append([]string{"-" + sig}, pids...)...).CombinedOutput(); err != nil {
			t.Errorf("kill -%s %v: %v %s", sig, pids, err, out)
		}
	}
	signal("STOP")
	thawed := false
	thaw = func() {
		if !thawed {
			thawed = true
			signal("CONT")
		}
	}
	t.Cleanup(thaw)
	return thaw
}

// PostgreSQL freezes for 15 s under a running node (every process
// stopped: connections open, no answer). Each request is answered within
// the store's bounds, never left hanging: a read 503 unavailable at
// [store] timeout, an enqueue 503 in_doubt naming its job once
// in_doubt_wait has passed too (its statement was sent, and a frozen
// server may still commit it when it wakes: it cannot tell), /healthz at
// once. When the database wakes, the work goes on: every acknowledged
// job is done, and an in-doubt job is either stored and done or absent.
func TestChaosPostgresFreezes(t *testing.T) {
	dsn := pgtest.DSN(t)
	bin := buildWasmq(t)
	plugins, _ := filepath.Abs("../../plugins/enabled")
	a := launchNode(t, bin, "freeze", func(addr, dir string) string {
		return fmt.Sprintf(`[server]
listen = %q
log_level = "warn"
[store]
%s
migrate = true
timeout = "2s"
in_doubt_wait = "4s"
[runner]
channels = "root:8"
node_id = "freeze"
shutdown_timeout = "2s"
[host]
plugins_dir = %q
cache_dir = %q
`, addr, storeLines(dsn), plugins, filepath.Join(dir, "cache"))
	})
	post(t, a.url+"/v1/jobs:batch", map[string]any{"jobs": sleepJobs(100, 100)})
	waitStarted(t, a.url, 4)
	acked := 100

	thaw := freezePostgres(t)
	frozen := time.Now()
	type answer struct {
		status int
		code   string
		uuids  []string
		took   time.Duration
	}
	ask := func(method, path, body string) answer {
		began := time.Now()
		req, _ := http.NewRequest(method, a.url+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		res, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("%s %s with PostgreSQL frozen: %v", method, path, err)
		}
		defer res.Body.Close()
		var out struct {
			Error struct {
				Code  string   `json:"code"`
				UUIDs []string `json:"uuids"`
			} `json:"error"`
		}
		var b bytes.Buffer
		b.ReadFrom(res.Body)
		json.Unmarshal(b.Bytes(), &out)
		t.Logf("%s %s with PostgreSQL frozen: %d %s in %v", method, path, res.StatusCode, out.Error.Code, time.Since(began).Round(time.Millisecond))
		return answer{res.StatusCode, out.Error.Code, out.Error.UUIDs, time.Since(began)}
	}
	if r := ask("GET", "/healthz", ""); r.status != 200 || r.took > time.Second {
		t.Errorf("/healthz with PostgreSQL frozen: %d in %v, want 200 at once", r.status, r.took)
	}
	if r := ask("GET", "/v1/jobs?limit=5", ""); r.status != 503 || r.code != "unavailable" || r.took > 2*time.Second+time.Second {
		t.Errorf("a read with PostgreSQL frozen: %d %s in %v, want 503 unavailable at the 2 s timeout", r.status, r.code, r.took)
	}
	var doubtful []string
	r := ask("POST", "/v1/jobs", `{"func": "testkit.sleep", "kwargs": {"ms": 100}}`)
	switch {
	case r.status == 503 && r.code == "in_doubt" && len(r.uuids) == 1:
		doubtful = r.uuids
	case r.status == 503 && r.code == "unavailable":
		// Nothing sent: no connection within the timeout (the open ones
		// wait on the frozen server, a new one cannot be made).
	default:
		t.Errorf("an enqueue with PostgreSQL frozen: %d %s %v, want 503 in_doubt naming the job (or unavailable)", r.status, r.code, r.uuids)
	}
	if r.took > 2*time.Second+4*time.Second+2*time.Second {
		t.Errorf("an enqueue with PostgreSQL frozen answered after %v, want within the timeout and the settle's wait (6 s)", r.took)
	}
	time.Sleep(15*time.Second - time.Since(frozen))
	thaw()
	back := time.Now()
	t.Logf("PostgreSQL frozen for %v", back.Sub(frozen).Round(time.Second))

	// The in-doubt job, once the database can tell: stored (and then it
	// runs) or not, never half.
	for _, id := range doubtful {
		deadline := time.Now().Add(30 * time.Second)
		for {
			res, err := http.Get(a.url + "/v1/jobs/" + id)
			if err == nil {
				res.Body.Close()
				if res.StatusCode == 200 {
					acked++
					t.Logf("the in-doubt job %s was stored", id)
					break
				}
				if res.StatusCode == 404 {
					t.Logf("the in-doubt job %s was not stored", id)
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("the in-doubt job %s: no answer from the store 30 s after PostgreSQL woke", id)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	done := waitAllDone(t, a.url, acked, 2*time.Minute)
	t.Logf("all %d jobs done %v after PostgreSQL woke", acked, done.Sub(back).Round(time.Millisecond))
}
