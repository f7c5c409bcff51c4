package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/wasmq/wasmq/store/pgtest"
)

// span is when a job ran, as the store recorded it.
type span struct {
	State   string     `json:"state"`
	Started *time.Time `json:"date_started"`
	Done    *time.Time `json:"date_done"`
}

func spansOf(t *testing.T, url, channel string) []span {
	t.Helper()
	res, err := http.Get(url + "/v1/jobs?limit=1000&channel=" + channel)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var p struct{ Jobs []span }
	json.NewDecoder(res.Body).Decode(&p)
	return p.Jobs
}

func send(t *testing.T, method, url string, body any) map[string]any {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, url, rd)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	json.NewDecoder(res.Body).Decode(&out)
	if res.StatusCode != 200 {
		t.Fatalf("%s %s: %d %v", method, url, res.StatusCode, out)
	}
	return out
}

// maxOverlap is the most jobs that ran at once among those started after since.
func maxOverlap(spans []span, since time.Time) int {
	type edge struct {
		at time.Time
		d  int
	}
	var es []edge
	for _, s := range spans {
		if s.Started == nil || s.Done == nil || s.Started.Before(since) {
			continue
		}
		es = append(es, edge{*s.Started, 1}, edge{*s.Done, -1})
	}
	sort.Slice(es, func(i, j int) bool {
		if es[i].at.Equal(es[j].at) {
			return es[i].d < es[j].d
		}
		return es[i].at.Before(es[j].at)
	})
	n, most := 0, 0
	for _, e := range es {
		n += e.d
		most = max(most, n)
	}
	return most
}

// A channel paused over one node's API stops starts on every node within
// a second; a capacity set on another node holds across both; both
// survive a restart of every node.
func TestChannelControlReachesEveryNodeAndSurvivesRestarts(t *testing.T) {
	dsn := pgtest.DSN(t)
	bin := buildWasmq(t)
	runner := `lease = "2s"`
	a := startNodeWith(t, bin, dsn, "node-a", runner)
	b := startNodeWith(t, bin, dsn, "node-b", runner)
	jobs := make([]map[string]any, 400)
	for i := range jobs {
		jobs[i] = map[string]any{"func": "testkit.sleep", "channel": "mail", "kwargs": map[string]any{"ms": 40}}
	}
	post(t, b.url+"/v1/jobs:batch", map[string]any{"jobs": jobs})
	waitStarted(t, b.url, 2)

	send(t, "POST", a.url+"/v1/channels/mail:pause", nil)
	paused := time.Now()
	time.Sleep(1500 * time.Millisecond)
	var late, pending int
	for _, s := range spansOf(t, b.url, "mail") {
		if s.Started != nil && s.Started.After(paused.Add(time.Second)) {
			late++
		}
		if s.State == "pending" {
			pending++
		}
	}
	if late > 0 || pending == 0 {
		t.Fatalf("%d jobs started more than a second after the pause (%d still pending)", late, pending)
	}

	send(t, "PATCH", b.url+"/v1/channels/mail", map[string]any{"capacity": 2})
	resumed := send(t, "POST", b.url+"/v1/channels/mail:resume", nil)
	if resumed["capacity"] != 2.0 || resumed["paused"] != false {
		t.Fatalf("after resize and resume: %v", resumed)
	}
	since := time.Now().Add(time.Second)
	time.Sleep(2500 * time.Millisecond)
	if n := maxOverlap(spansOf(t, a.url, "mail"), since); n > 2 || n == 0 {
		t.Errorf("%d jobs of mail ran at once on the two nodes, want at most the capacity set, 2", n)
	}

	// Paused again, then every node restarted: the pause and the capacity
	// are stored, and win over the configuration.
	send(t, "POST", a.url+"/v1/channels/mail:pause", nil)
	for _, n := range []*node{a, b} {
		n.cmd.Process.Signal(syscall.SIGTERM)
		n.cmd.Wait()
	}
	restarted := time.Now()
	a = startNodeWith(t, bin, dsn, "node-a", runner)
	b = startNodeWith(t, bin, dsn, "node-b", runner)
	var chs struct{ Channels []map[string]any }
	res, err := http.Get(a.url + "/v1/channels")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(res.Body).Decode(&chs)
	res.Body.Close()
	for _, c := range chs.Channels {
		if c["name"] == "root.mail" && (c["paused"] != true || c["capacity"] != 2.0 || c["override"] == nil) {
			t.Errorf("root.mail after the restart: %v, want paused, capacity 2, shown as overridden", c)
		}
	}
	time.Sleep(1500 * time.Millisecond)
	for _, s := range spansOf(t, b.url, "mail") {
		if s.Started != nil && s.Started.After(restarted) {
			t.Fatalf("a job of the paused channel started after the restart, at %s", s.Started)
		}
	}
	send(t, "POST", a.url+"/v1/channels/mail:resume", nil)
	since = time.Now().Add(time.Second)
	time.Sleep(2 * time.Second)
	if n := maxOverlap(spansOf(t, a.url, "mail"), since); n > 2 || n == 0 {
		t.Errorf("after the restart, %d jobs of mail ran at once, want at most 2", n)
	}
}

// A job cancelled over one node's API while it runs on another is
// interrupted there: that node's only worker is free again at once, not
// when the job's timeout would have ended it.
func TestCancelInterruptsAJobRunningOnAnotherNode(t *testing.T) {
	dsn := pgtest.DSN(t)
	bin := buildWasmq(t)
	runner := "lease = \"2s\"\nworkers = 1"
	a := startNodeWith(t, bin, dsn, "node-a", runner)
	b := startNodeWith(t, bin, dsn, "node-b", runner)
	hang := post(t, a.url+"/v1/jobs", map[string]any{"func": "testkit.script", "args": []string{"hang"}})["uuid"].(string)
	busy := post(t, a.url+"/v1/jobs", map[string]any{"func": "testkit.sleep", "kwargs": map[string]any{"ms": 20000}})["uuid"].(string)
	waitStarted(t, a.url, 2) // one on each node: each has one worker
	var hangNode string
	for _, j := range listAll(t, a.url) {
		if j.UUID == hang {
			hangNode = nodeOf(j.WorkerID)
		}
	}
	other := a
	if hangNode == "node-a" {
		other = b
	}
	cancelled := time.Now()
	send(t, "POST", other.url+"/v1/jobs/"+hang+"/cancel", nil)
	// Only the worker that ran the hanging job can take this one.
	next := post(t, other.url+"/v1/jobs", map[string]any{"func": "testkit.echo"})["uuid"].(string)
	for {
		var done bool
		for _, j := range listAll(t, a.url) {
			if j.UUID == next && j.State == "done" {
				done = true
			}
		}
		if done {
			break
		}
		if time.Since(cancelled) > 5*time.Second {
			t.Fatalf("the worker of the cancelled job (on %s) is still busy %s after the cancel", hangNode, time.Since(cancelled))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("the next job ran %s after the cancel of a job running on %s", time.Since(cancelled), hangNode)
	for _, j := range listAll(t, a.url) {
		if j.UUID == hang && j.State != "cancelled" || j.UUID == busy && j.State != "started" {
			t.Errorf("%s is %s", j.UUID, j.State)
		}
	}
}
