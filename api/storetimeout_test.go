package api_test

import (
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/config"
	"github.com/wasmq/wasmq/store/pgtest"
)

// answerWithin sends a request of s's and fails the test if no answer
// comes within d (then unblock lets the store go, to end the request).
func answerWithin(t *testing.T, s *srv, d time.Duration, unblock func(), method, path string, body any) (resp, time.Duration) {
	t.Helper()
	began := time.Now()
	got := make(chan resp, 1)
	go func() { got <- s.send(s.request(method, path, tokA, body)) }()
	select {
	case r := <-got:
		return r, time.Since(began)
	case <-time.After(d):
		unblock()
		r := <-got
		t.Fatalf("%s %s: no answer within %v while the store was held (then %d %s)", method, path, d, r.status, r.body)
		return r, 0
	}
}

// An operator's statement holds the jobs table: a CREATE INDEX (writes
// wait), then a VACUUM FULL (reads wait too). The API answers at the
// store's timeout, 503 unavailable with Retry-After, rather than when
// the statement ends or the HTTP write timeout drops the connection;
// and what it refused (enqueues, a cancel, a bulk cancel) is not applied
// once the table is free.
func TestARequestHeldByALockIsAnswered503AtTheStoreTimeout(t *testing.T) {
	const timeout = 500 * time.Millisecond
	dsn := pgtest.DSN(t)
	backend = "postgres"
	s := start(t, func(f *config.File) {
		f.Store.DSN = dsn
		f.Store.Timeout = abi.Duration(timeout)
	})
	backend = "sqlite"
	unavailable := func(r resp, took time.Duration, what string) {
		t.Helper()
		if r.status != 503 || r.header.Get("Retry-After") == "" {
			t.Fatalf("%s: %d (Retry-After %q) %s, want 503 with Retry-After", what, r.status, r.header.Get("Retry-After"), r.body)
		}
		if code, _, _ := r.errOf(t); code != "unavailable" {
			t.Fatalf("%s: code %q, want unavailable", what, code)
		}
		if took < timeout || took > timeout+5*time.Second {
			t.Errorf("%s: answered after %v, want just past the %v timeout", what, took, timeout)
		}
		t.Logf("%s: 503 after %v", what, took.Round(time.Millisecond))
	}

	job := map[string]any{"func": "testkit.echo", "args": []any{1}}
	later := s.do("POST", "/v1/jobs", tokA, map[string]any{"func": "testkit.echo", "eta": time.Now().Add(time.Hour).Format(time.RFC3339)})
	if later.status != 201 {
		t.Fatalf("a job for later: %d %s", later.status, later.body)
	}
	laterID := later.json(t)["uuid"].(string)
	release := pgtest.LockTable(t, dsn, "jobs", "SHARE")
	r, took := answerWithin(t, s, timeout+10*time.Second, release, "POST", "/v1/jobs", job)
	unavailable(r, took, "a job behind CREATE INDEX's lock")
	r, took = answerWithin(t, s, timeout+10*time.Second, release, "POST", "/v1/jobs:batch", map[string]any{"jobs": []any{job, job}})
	unavailable(r, took, "a batch behind CREATE INDEX's lock")
	r, took = answerWithin(t, s, timeout+10*time.Second, release, "POST", "/v1/jobs/"+laterID+"/cancel", nil)
	unavailable(r, took, "a cancel behind CREATE INDEX's lock")
	r, took = answerWithin(t, s, timeout+10*time.Second, release, "POST", "/v1/jobs:cancel?state=pending", nil)
	unavailable(r, took, "a bulk cancel behind CREATE INDEX's lock")
	if r := s.do("GET", "/v1/jobs?limit=5", tokA, nil); r.status != 200 {
		t.Fatalf("a read beside CREATE INDEX's lock: %d %s, want 200", r.status, r.body)
	}
	release()
	time.Sleep(300 * time.Millisecond) // a write left behind would commit now
	if n := s.jobCount(tokA); n != 1 {
		t.Fatalf("%d jobs stored once the lock went, want the one for later: each enqueue was answered 503", n)
	}
	if st := s.do("GET", "/v1/jobs/"+laterID, tokA, nil).json(t)["state"]; st != "pending" {
		t.Fatalf("the job whose cancel was answered 503 is %v once the lock went, want pending", st)
	}

	release = pgtest.LockTable(t, dsn, "jobs", "ACCESS EXCLUSIVE")
	r, took = answerWithin(t, s, timeout+10*time.Second, release, "GET", "/v1/jobs?limit=5", nil)
	unavailable(r, took, "a read behind VACUUM FULL's lock")
	release()
	if r := s.do("POST", "/v1/jobs", tokA, job); r.status != 201 {
		t.Fatalf("once the table is free: %d %s, want 201", r.status, r.body)
	}
}
