package api_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/config"
)

// The job list filters by user, model, dates and a value inside args or
// kwargs; each bad parameter is a 400 naming it, before any SQL.
func TestListFiltersOperatorsNeed(t *testing.T) {
	s := start(t)
	mk := func(user, model string, args []any, kwargs map[string]any) string {
		t.Helper()
		r := s.do("POST", "/v1/jobs", tokA, map[string]any{"func": "testkit.echo", "eta": 3600, "args": args, "kwargs": kwargs,
			"context": map[string]any{"user": user, "model": model}})
		if r.status != 201 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		return r.json(t)["uuid"].(string)
	}
	a := mk("alice", "sale.order", []any{42, "SO042"}, map[string]any{"partner_id": 7})
	b := mk("bob", "sale.order", []any{43}, map[string]any{"partner_id": 8})
	c := mk("alice", "account.move", []any{"42"}, map[string]any{"partner_id": "7"})
	mkB := s.do("POST", "/v1/jobs", tokB, map[string]any{"func": "testkit.echo", "eta": 3600, "args": []any{42},
		"context": map[string]any{"user": "alice", "model": "sale.order"}})
	if mkB.status != 201 {
		t.Fatal(mkB.status)
	}
	list := func(q string) string {
		t.Helper()
		r := s.do("GET", "/v1/jobs?"+q, tokA, nil)
		if r.status != 200 {
			t.Fatalf("GET /v1/jobs?%s: %d %s", q, r.status, r.body)
		}
		var names []string
		for _, j := range jobsOf(t, r) {
			names = append(names, map[string]string{a: "a", b: "b", c: "c"}[j["uuid"].(string)])
		}
		return strings.Join(names, " ")
	}
	now := time.Now().UTC()
	for q, want := range map[string]string{
		"user_id=alice":                                 "c a",
		"model_name=sale.order":                         "b a",
		"user_id=alice&model_name=sale.order":           "a",
		"args=42":                                       "a",
		"args=" + url.QueryEscape(`"42"`):               "c",
		"kwargs=" + url.QueryEscape(`{"partner_id":7}`): "a",
		"created_after=" + now.Add(-time.Minute).Format(time.RFC3339):  "c b a",
		"created_before=" + now.Add(-time.Minute).Format(time.RFC3339): "",
		"created_after=" + now.Format("2006-01-02"):                    "c b a",
		"ended_after=" + now.Add(-time.Minute).Format(time.RFC3339):    "",
	} {
		if got := list(q); got != want {
			t.Errorf("?%s: [%s], want [%s]", q, got, want)
		}
	}
	for q, field := range map[string]string{
		"created_after=yesterday":                    "created_after",
		"ended_before=2026-13-01":                    "ended_before",
		"args=nope":                                  "args",
		"args=" + url.QueryEscape(`[42]`):            "args",
		"kwargs=" + url.QueryEscape(`[1]`):           "kwargs",
		"kwargs=" + url.QueryEscape(`{"a":{"b":1}}`): "kwargs",
		"kwargs=" + url.QueryEscape(`{"a":`):         "kwargs",
		"nosuch=1":                                   "nosuch",
		"user_id=alice&user_id=bob":                  "user_id",
		"state=failed&state=pending":                 "state",
	} {
		r := s.do("GET", "/v1/jobs?"+q, tokA, nil)
		if code, _, f := r.errOf(t); r.status != 400 || f != field || code != "invalid_argument" {
			t.Errorf("?%s: %d %s, want 400 naming %s", q, r.status, r.body, field)
		}
		if r := s.do("POST", "/v1/jobs:cancel?"+q, tokA, nil); r.status != 400 {
			t.Errorf("bulk cancel ?%s: %d %s, want 400", q, r.status, r.body)
		}
	}
	// A page's own parameters mean nothing to a bulk action.
	for _, q := range []string{"limit=10", "cursor=x"} {
		if r := s.do("POST", "/v1/jobs:cancel?"+q, tokA, nil); r.status != 400 {
			t.Errorf("bulk cancel ?%s: %d %s, want 400", q, r.status, r.body)
		}
	}
}

// A bulk action moves every matching job of the caller's tenant, page
// after page, through the per-job rules: jobs it does not apply to are
// skipped and counted.
func TestBulkActionsByFilter(t *testing.T) {
	s := start(t)
	var alice []string
	for batch := range 3 { // 1203 jobs: more than two pages of bulkPage
		var jobs []any
		for i := range 401 {
			user := "bob"
			if (batch*401+i)%2 == 0 {
				user = "alice"
			}
			jobs = append(jobs, map[string]any{"func": "testkit.echo", "eta": 3600, "context": map[string]any{"user": user}})
		}
		r := s.do("POST", "/v1/jobs:batch", tokA, map[string]any{"jobs": jobs})
		if r.status != 201 {
			t.Fatalf("batch: %d %s", r.status, r.body)
		}
		for _, j := range jobsOf(t, r) {
			if j["user_id"] == "alice" {
				alice = append(alice, j["uuid"].(string))
			}
		}
	}
	other := s.do("POST", "/v1/jobs", tokB, map[string]any{"func": "testkit.echo", "eta": 3600, "context": map[string]any{"user": "alice"}}).json(t)["uuid"].(string)
	r := s.do("POST", "/v1/jobs:cancel?user_id=alice", tokA, nil)
	if got := r.json(t); r.status != 200 || got["matched"] != 602.0 || got["changed"] != 602.0 || got["skipped"] != 0.0 {
		t.Fatalf("bulk cancel: %d %s", r.status, r.body)
	}
	for _, id := range []string{alice[0], alice[301], alice[601]} {
		if st := s.do("GET", "/v1/jobs/"+id, tokA, nil).json(t)["state"]; st != "cancelled" {
			t.Errorf("alice's job %s is %v", id, st)
		}
	}
	if n := len(jobsOf(t, s.do("GET", "/v1/jobs?state=pending&limit=1000", tokA, nil))); n != 601 {
		t.Errorf("%d of bob's 601 jobs still pending", n)
	}
	if st := s.do("GET", "/v1/jobs/"+other, tokB, nil).json(t)["state"]; st != "pending" {
		t.Errorf("another tenant's matching job is %v", st)
	}
	// Set done applies to none of them now; requeue to all.
	if got := s.do("POST", "/v1/jobs:done?user_id=alice", tokA, nil).json(t); got["changed"] != 0.0 || got["skipped"] != 602.0 {
		t.Errorf("set done on cancelled jobs: %v", got)
	}
	if got := s.do("POST", "/v1/jobs:requeue?user_id=alice&state=cancelled", tokA, nil).json(t); got["changed"] != 602.0 {
		t.Errorf("requeue: %v", got)
	}
	// The admin acts on the tenant it names.
	if got := s.do("POST", "/v1/jobs:done?tenant=globex", tokAdmin, nil).json(t); got["changed"] != 1.0 {
		t.Errorf("the admin's bulk set done for globex: %v", got)
	}
	if st := s.do("GET", "/v1/jobs/"+other, tokB, nil).json(t)["state"]; st != "done" {
		t.Errorf("globex's job is %v after the admin's bulk set done", st)
	}
}

// Channels at run time: the admin pauses, resumes and resizes a channel;
// the change is stored and shown as overriding the configuration, and a
// paused channel starts nothing.
func TestChannelsAreControlledAtRunTime(t *testing.T) {
	s := start(t, func(f *config.File) { f.Runner.Channels = "root:4,mail:2" })
	channel := func(name string) abi.ChannelStatus {
		t.Helper()
		return channelsOf(t, s.do("GET", "/v1/channels", tokAdmin, nil))[name]
	}
	r := s.do("POST", "/v1/channels/mail:pause", tokAdmin, nil)
	if got := r.json(t); r.status != 200 || got["paused"] != true || got["name"] != "root.mail" || got["override"] == nil {
		t.Fatalf("pause: %d %s", r.status, r.body)
	}
	id := s.do("POST", "/v1/jobs", tokA, map[string]any{"func": "testkit.echo", "channel": "mail"}).json(t)["uuid"].(string)
	time.Sleep(500 * time.Millisecond) // a paused channel must start nothing: give it the time to
	if st := s.do("GET", "/v1/jobs/"+id, tokA, nil).json(t)["state"]; st != "pending" {
		t.Fatalf("a job of a paused channel is %v", st)
	}
	if c := channel("root.mail"); !c.Paused || c.Pending != 1 {
		t.Errorf("paused channel: %+v", c)
	}
	if r := s.do("POST", "/v1/channels/mail:resume", tokAdmin, nil); r.status != 200 || r.json(t)["paused"] != false {
		t.Fatalf("resume: %d %s", r.status, r.body)
	}
	s.waitState(tokA, id, abi.StateDone)

	r = s.do("PATCH", "/v1/channels/mail", tokAdmin, map[string]any{"capacity": 5, "throttle": 0.25})
	if got := r.json(t); r.status != 200 || got["capacity"] != 5.0 || got["throttle"] != 0.25 {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}
	r = s.do("PATCH", "/v1/channels/mail", tokAdmin, map[string]any{"capacity": nil, "throttle": nil, "paused": nil})
	if got := r.json(t); r.status != 200 || got["capacity"] != 2.0 || got["throttle"] != 0.0 || got["override"] != nil {
		t.Fatalf("back to the configuration: %d %s", r.status, r.body)
	}
	for _, c := range []struct {
		body  map[string]any
		code  int
		field string
	}{
		{map[string]any{"capacity": 0}, 422, "capacity"},
		{map[string]any{"capacity": "two"}, 400, "capacity"},
		{map[string]any{"capacity": 1.5}, 400, "capacity"},
		{map[string]any{"throttle": -1}, 422, "throttle"},
		{map[string]any{"paused": "yes"}, 400, "paused"},
		{map[string]any{"workers": 3}, 400, "workers"},
	} {
		r := s.do("PATCH", "/v1/channels/mail", tokAdmin, c.body)
		if _, _, f := r.errOf(t); r.status != c.code || f != c.field {
			t.Errorf("PATCH %v: %d %s, want %d naming %s", c.body, r.status, r.body, c.code, c.field)
		}
	}
	for _, p := range []string{"/v1/channels/mail:stop", "/v1/channels/mail", "/v1/channels/Bad%20Name:pause"} {
		if r := s.do("POST", p, tokAdmin, nil); r.status/100 != 4 {
			t.Errorf("POST %s: %d %s, want a 4xx", p, r.status, r.body)
		}
	}
	if r := s.do("POST", "/v1/channels/mail:pause", tokA, nil); r.status != 403 {
		t.Errorf("a tenant pausing a channel: %d %s", r.status, r.body)
	}
}

// An action that reads no body refuses one: a client that sends its
// filter there (a JSON filter to a bulk cancel) would otherwise see it
// ignored and the action reach every job of the tenant. A body that
// carries nothing ({} or null, as some HTTP libraries send) passes.
func TestActionsRefuseABodyTheyWouldIgnore(t *testing.T) {
	s := start(t)
	keep := s.do("POST", "/v1/jobs", tokA, map[string]any{"func": "testkit.echo", "eta": 3600, "context": map[string]any{"user": "bob"}}).json(t)["uuid"].(string)
	filter := map[string]any{"filter": map[string]any{"user_id": "alice"}}
	for _, path := range []string{"/v1/jobs:cancel", "/v1/jobs:done", "/v1/jobs:requeue", "/v1/jobs/" + keep + "/cancel",
		"/v1/jobs/" + keep + "/done", "/v1/channels/root:pause"} {
		r := s.do("POST", path, tokAdmin, filter)
		_, msg, field := r.errOf(t)
		if r.status != 400 || field != "(body)" || !strings.Contains(msg, "takes no body") {
			t.Errorf("POST %s with a body: %d field %q %q", path, r.status, field, msg)
		}
	}
	if !strings.Contains(string(s.do("POST", "/v1/jobs:cancel", tokA, `{"user_id": "alice"}`).body), "query string") {
		t.Error("a bulk action's refusal does not say where its filters go")
	}
	if st := s.do("GET", "/v1/jobs/"+keep, tokA, nil).json(t)["state"]; st != "pending" {
		t.Fatalf("a refused action moved the job: %v", st)
	}
	for _, empty := range []string{"", "{}", " { } ", "null"} {
		if r := s.do("POST", "/v1/jobs:done?user_id=nobody", tokA, empty); r.status != 200 {
			t.Errorf("a bulk action with the body %q: %d %s", empty, r.status, r.body)
		}
	}
}

// A query parameter the operation does not take is refused, naming it
// and what the operation takes: read by nobody, it would be dropped
// unseen (POST /v1/jobs?priority=5 made a job of the default priority).
// The OpenAPI document is the list.
func TestUnknownQueryParametersAreRefusedOnEveryRoute(t *testing.T) {
	s := start(t)
	id := s.do("POST", "/v1/jobs", tokA, map[string]any{"func": "testkit.echo", "eta": 3600}).json(t)["uuid"].(string)
	for _, c := range []struct{ method, path, param string }{
		{"POST", "/v1/jobs?priority=5", "priority"},
		{"POST", "/v1/jobs:batch?atomic=false", "atomic"},
		{"GET", "/v1/jobs/" + id + "?fields=uuid", "fields"},
		{"PATCH", "/v1/jobs/" + id + "?priority=3", "priority"},
		{"POST", "/v1/jobs/" + id + "/cancel?force=true", "force"},
		{"GET", "/v1/stats?state=failed", "state"},
		{"GET", "/v1/channels?name=root", "name"},
		{"POST", "/v1/channels/root:pause?tenant=acme", "tenant"},
		{"GET", "/v1/usage?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z&func=m.f", "func"},
		{"POST", "/v1/schedules/nightly:run?at=now", "at"},
	} {
		body := any(nil)
		if c.method == "POST" && strings.HasPrefix(c.path, "/v1/jobs?") {
			body = map[string]any{"func": "testkit.echo"}
		} else if strings.HasPrefix(c.path, "/v1/jobs:batch") {
			body = map[string]any{"jobs": []any{map[string]any{"func": "testkit.echo"}}}
		} else if c.method == "PATCH" {
			body = map[string]any{}
		}
		r := s.do(c.method, c.path, tokAdmin, body)
		_, msg, field := r.errOf(t)
		if r.status != 400 || field != c.param || !strings.Contains(msg, "this operation takes") {
			t.Errorf("%s %s: %d field %q %q", c.method, c.path, r.status, field, msg)
		}
	}
	if n := s.jobCount(tokAdmin); n != 1 {
		t.Errorf("%d jobs stored, want the one made before", n)
	}
	if st := s.do("GET", "/v1/jobs/"+id, tokA, nil).json(t)["state"]; st != "pending" {
		t.Errorf("a refused cancel moved the job: %v", st)
	}
	// What the document lists passes.
	if r := s.do("GET", "/v1/stats?tenant=acme", tokAdmin, nil); r.status != 200 {
		t.Errorf("stats of a named tenant: %d %s", r.status, r.body)
	}
}
