package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/wasmq/wasmq/store/pgtest"
)

// leads reports whether the node is the scheduling leader (/metrics).
func leads(t *testing.T, n *node) bool {
	t.Helper()
	res, err := http.Get(n.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	// The sample's own line: its HELP text begins "1 while…" too.
	return bytes.Contains(b, []byte("\nwasmq_runner_leader 1\n"))
}

// dueTimes lists the eta of every job: a scheduled job's eta is its due time.
func dueTimes(t *testing.T, url string) []time.Time {
	t.Helper()
	res, err := http.Get(url + "/v1/jobs?limit=1000")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var p struct {
		Jobs []struct {
			ETA *time.Time `json:"eta"`
		} `json:"jobs"`
	}
	json.NewDecoder(res.Body).Decode(&p)
	var out []time.Time
	for _, j := range p.Jobs {
		if j.ETA != nil {
			out = append(out, *j.ETA)
		}
	}
	sort.Slice(out, func(i, k int) bool { return out[i].Before(out[k]) })
	return out
}

// An @every 1s schedule on two nodes sharing PostgreSQL makes one job per
// due time for 10 s while its leader is killed in the middle: no due time
// twice, no gap longer than the other node's takeover; paused it makes
// nothing; run makes one at once.
func TestASchedulerFiresOncePerDueTimeAcrossALeaderKill(t *testing.T) {
	dsn := pgtest.DSN(t)
	bin := buildWasmq(t)
	a := startNode(t, bin, dsn, "node-a")
	b := startNode(t, bin, dsn, "node-b")
	leader, other := a, b
	deadline := time.Now().Add(10 * time.Second)
	for !leads(t, leader) {
		if leads(t, other) {
			leader, other = other, leader
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no leader after 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	post(t, other.url+"/v1/schedules", map[string]any{"name": "tick", "cron": "@every 1s", "func": "testkit.echo"})
	began := time.Now()
	time.Sleep(5 * time.Second)
	leader.cmd.Process.Signal(syscall.SIGKILL)
	leader.cmd.Wait()
	killed := time.Now()
	for !leads(t, other) {
		if time.Since(killed) > 10*time.Second {
			t.Fatal("the other node did not take over within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	takeover := time.Since(killed)
	time.Sleep(time.Until(began.Add(11 * time.Second)))
	post(t, other.url+"/v1/schedules/tick:pause", nil)
	due := dueTimes(t, other.url)
	if len(due) < 7 {
		t.Fatalf("%d jobs in 10 s: %v", len(due), due)
	}
	var gaps []time.Duration
	for i := 1; i < len(due); i++ {
		gap := due[i].Sub(due[i-1])
		if gap == 0 {
			t.Fatalf("due time %v fired twice: %v", due[i], due)
		}
		if gap != time.Second {
			gaps = append(gaps, gap)
		}
	}
	// The one gap allowed is the takeover: the due times between the kill
	// and the new leader's first pass are missed, and the default policy
	// (skip) fires the latest of them only.
	if len(gaps) > 1 || len(gaps) == 1 && gaps[0] > takeover.Truncate(time.Second)+2*time.Second {
		t.Fatalf("gaps between due times %v with a takeover of %v: %v", gaps, takeover, due)
	}
	t.Logf("%d jobs, one per second from %v to %v; leader killed, takeover in %v, gaps %v",
		len(due), due[0].Format("15:04:05"), due[len(due)-1].Format("15:04:05"), takeover, gaps)

	time.Sleep(2500 * time.Millisecond)
	if n := len(dueTimes(t, other.url)); n != len(due) {
		t.Fatalf("a paused schedule made %d jobs", n-len(due))
	}
	before := len(listAll(t, other.url))
	job := post(t, other.url+"/v1/schedules/tick:run", nil)
	if after := len(listAll(t, other.url)); after != before+1 || job["uuid"] == nil {
		t.Fatalf("run made %d jobs, want 1 at once", after-before)
	}
}
