//go:build chaos

package main

import (
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/wasmq/wasmq/store/pgtest"
)

// Schedules across a PostgreSQL outage: two @every 1s schedules, one that
// catches up (missed_runs = "catch_up", up to 100) and one that skips (the
// default), on a node whose database is stopped for 12 s. Once it is back
// the first has one job for every second, the outage's included, and
// none twice; the second one job a second but for one gap, the outage,
// after which it fired the latest due time only. The leader's next due
// times (next_due) are the store's, so nothing of them is lost with the
// connections.
func TestChaosSchedulesAcrossAPostgresOutage(t *testing.T) {
	dsn := pgtest.DSN(t)
	bin := buildWasmq(t)
	a := startNodeWith(t, bin, dsn, "sched-outage", "")
	defer pgUp(t)
	post(t, a.url+"/v1/schedules", map[string]any{"name": "catchup", "cron": "@every 1s", "func": "testkit.echo",
		"missed_runs": "catch_up", "catch_up_max": 100, "description": "catchup"})
	post(t, a.url+"/v1/schedules", map[string]any{"name": "skip", "cron": "@every 1s", "func": "testkit.echo", "description": "skip"})
	time.Sleep(3 * time.Second)
	pgctl(t, "stop")
	stopped := time.Now()
	time.Sleep(12 * time.Second)
	starting := time.Now()
	pgctl(t, "start")
	back := time.Now()

	type job struct {
		Description string    `json:"description"`
		ETA         time.Time `json:"eta"`
		DateCreated time.Time `json:"date_created"`
	}
	byName := func() map[string][]job {
		out := map[string][]job{}
		for _, j := range listJobs[job](t, a.url, "") {
			out[j.Description] = append(out[j.Description], j)
		}
		for _, js := range out {
			sort.Slice(js, func(i, k int) bool { return js[i].ETA.Before(js[k].ETA) })
		}
		return out
	}
	var jobs map[string][]job
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if ready(a.url) {
			jobs = byName()
			c := jobs["catchup"]
			if len(c) > 0 && c[len(c)-1].ETA.After(back.Add(2*time.Second)) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the schedules did not fire past 2 s after PostgreSQL came back, in 60 s: %d and %d jobs", len(jobs["catchup"]), len(jobs["skip"]))
		}
	}
	post(t, a.url+"/v1/schedules/catchup:pause", nil)
	post(t, a.url+"/v1/schedules/skip:pause", nil)
	jobs = byName()

	c := jobs["catchup"]
	if !c[0].ETA.Before(stopped) || !c[len(c)-1].ETA.After(back) {
		t.Fatalf("catchup's jobs run from %v to %v, want them across the outage (%v to %v)", c[0].ETA, c[len(c)-1].ETA, stopped, back)
	}
	var caughtUp time.Time // when the last of the missed due times fired
	for i := 1; i < len(c); i++ {
		if gap := c[i].ETA.Sub(c[i-1].ETA); gap != time.Second {
			t.Fatalf("catchup: due times %v then %v (a gap of %v), want one job every second", c[i-1].ETA, c[i].ETA, gap)
		}
		if c[i].ETA.After(stopped) && c[i].ETA.Before(back) {
			caughtUp = later(caughtUp, c[i].DateCreated)
		}
	}
	s := jobs["skip"]
	var gaps []time.Duration
	for i := 1; i < len(s); i++ {
		gap := s[i].ETA.Sub(s[i-1].ETA)
		if gap <= 0 {
			t.Fatalf("skip: due time %v fired twice", s[i].ETA)
		}
		if gap != time.Second {
			gaps = append(gaps, gap)
		}
	}
	outage := back.Sub(stopped)
	if len(gaps) != 1 || gaps[0] < outage-2*time.Second || gaps[0] > outage+10*time.Second {
		t.Fatalf("skip: gaps %v with an outage of %v, want one gap about the outage", gaps, outage)
	}
	t.Logf("outage %v (PostgreSQL starting for %v of it); catchup: %d jobs, one a second, the missed ones made %v after the start was asked; skip: %d jobs, one gap of %v",
		outage.Round(time.Millisecond), back.Sub(starting).Round(time.Millisecond), len(c), caughtUp.Sub(starting).Round(time.Millisecond), len(s), gaps[0])
}

// ready tells whether the node answers /readyz with 200: its store serves.
func ready(url string) bool {
	res, err := http.Get(url + "/readyz")
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
