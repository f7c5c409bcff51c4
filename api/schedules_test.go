package api_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/wasmq/wasmq/config"
)

func TestSchedulesOverHTTP(t *testing.T) {
	s := start(t, func(f *config.File) {
		f.Schedules = []config.Schedule{{Tenant: "acme", Name: "from-file", Cron: "0 3 * * *", Func: "testkit.echo", Args: []any{"x"}}}
	})
	r := s.do("POST", "/v1/schedules", tokA, map[string]any{"name": "nightly", "cron": "0 3 * * *", "timezone": "Europe/Brussels",
		"func": "testkit.echo", "args": []any{"…"}})
	v := r.json(t)
	if r.status != 201 || v["tenant"] != "acme" || v["source"] != "api" || len(v["next_runs"].([]any)) != 5 || v["timezone"] != "Europe/Brussels" {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if next := v["next_runs"].([]any)[0].(string); !strings.HasSuffix(next, ":00:00Z") || !(strings.Contains(next, "T01:") || strings.Contains(next, "T02:")) {
		t.Fatalf("03:00 in Brussels is 01:00 or 02:00 UTC, not %s", next)
	}
	for _, c := range []struct {
		body         map[string]any
		status       int
		field, inMsg string
	}{
		{map[string]any{"name": "a", "cron": "0 3 * *", "func": "testkit.echo"}, 422, "cron", "0 3 * *"},
		{map[string]any{"name": "a", "cron": "@daily", "timezone": "Mars/Base", "func": "testkit.echo"}, 422, "timezone", "Mars/Base"},
		{map[string]any{"name": "a", "cron": "@daily", "func": "nosuch.fn"}, 422, "func", "nosuch"},
		{map[string]any{"name": "a b", "cron": "@daily", "func": "testkit.echo"}, 422, "name", "a b"},
		{map[string]any{"name": "a", "cron": "@daily", "func": "testkit.echo", "eta": 10}, 400, "eta", "unknown"},
		{map[string]any{"name": "a", "cron": "@daily", "func": "testkit.echo", "priority": "high"}, 400, "priority", ""},
		{map[string]any{"name": "a", "cron": "@daily", "func": "testkit.echo", "missed_runs": "catch_up", "catch_up_max": 5000}, 422, "catch_up_max", "1000"},
		{map[string]any{"name": "nightly", "cron": "@daily", "func": "testkit.echo"}, 409, "name", "nightly"},
		{map[string]any{"name": "a", "cron": "@daily", "func": "testkit.echo", "description": "x\u0000y"}, 422, "description", "NUL"},
	} {
		r := s.do("POST", "/v1/schedules", tokA, c.body)
		if r.status != c.status {
			t.Errorf("%v: %d %s, want %d", c.body, r.status, r.body, c.status)
			continue
		}
		if _, msg, field := r.errOf(t); field != c.field || !strings.Contains(msg, c.inMsg) {
			t.Errorf("%v: %s, want field %s mentioning %q", c.body, r.body, c.field, c.inMsg)
		}
	}
	if r := s.do("PATCH", "/v1/schedules/nightly", tokA, map[string]any{"cron": "*/5 * * * *"}); r.status != 200 || r.json(t)["cron"] != "*/5 * * * *" {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}
	if r := s.do("POST", "/v1/schedules/nightly:pause", tokA, nil); r.status != 200 || r.json(t)["paused"] != true || len(r.json(t)["next_runs"].([]any)) != 0 {
		t.Fatalf("pause: %d %s", r.status, r.body)
	}
	run := s.do("POST", "/v1/schedules/nightly:run", tokA, nil)
	if run.status != 201 || run.json(t)["func"] != "testkit.echo" {
		t.Fatalf("run: %d %s", run.status, run.body)
	}
	got := s.do("GET", "/v1/schedules/nightly", tokA, nil).json(t)
	if lj, _ := got["last_job"].(map[string]any); lj == nil || lj["uuid"] != run.json(t)["uuid"] || lj["state"] == nil {
		t.Fatalf("the last job of a run: %v", got)
	}
	if r := s.do("POST", "/v1/schedules/nightly:resume", tokA, nil); r.status != 200 || r.json(t)["paused"] != false {
		t.Fatalf("resume: %d %s", r.status, r.body)
	}
	for path, status := range map[string]int{"/v1/schedules/nightly:explode": 404, "/v1/schedules/nightly": 405, "/v1/schedules/ghost:run": 404} {
		if r := s.do("POST", path, tokA, nil); r.status != status {
			t.Errorf("POST %s: %d %s, want %d", path, r.status, r.body, status)
		}
	}
	if r := s.do("PATCH", "/v1/schedules/from-file", tokA, map[string]any{"priority": 1}); r.status != 409 || !strings.Contains(string(r.body), "wasmq.toml") {
		t.Errorf("changing a schedule of the file: %d %s", r.status, r.body)
	}
	if r := s.do("DELETE", "/v1/schedules/from-file", tokA, nil); r.status != 409 {
		t.Errorf("deleting a schedule of the file: %d %s", r.status, r.body)
	}
	if r := s.do("POST", "/v1/schedules/from-file:pause", tokA, nil); r.status != 200 {
		t.Errorf("pausing a schedule of the file: %d %s", r.status, r.body)
	}
	list := s.do("GET", "/v1/schedules", tokA, nil).json(t)["schedules"].([]any)
	if len(list) != 2 {
		t.Fatalf("A's schedules: %v", list)
	}
	if r := s.do("DELETE", "/v1/schedules/nightly", tokA, nil); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r := s.do("GET", "/v1/schedules/nightly", tokA, nil); r.status != 404 {
		t.Fatalf("a deleted schedule: %d %s", r.status, r.body)
	}
	if r := s.do("GET", "/v1/schedules?state=x", tokA, nil); r.status != 400 {
		t.Fatalf("an unknown query parameter: %d %s", r.status, r.body)
	}
}

// A tenant's schedules are bounded by its max_schedules (the file's
// count but are not refused): one more is 429 naming the key, without
// Retry-After, since waiting makes no room. A run by hand past its
// max_pending is 429 with Retry-After, as an enqueue past it is.
func TestATenantsSchedulesAreBoundedOverHTTP(t *testing.T) {
	s := start(t, func(f *config.File) {
		f.Tenants[0].MaxSchedules = 2
		f.Tenants[0].MaxPending = 1
		f.Schedules = []config.Schedule{{Tenant: "acme", Name: "from-file", Cron: "0 3 * * *", Func: "testkit.echo", Args: []any{"x"}}}
	})
	mk := func(token, name string) resp {
		return s.do("POST", "/v1/schedules", token, map[string]any{"name": name, "cron": "0 3 * * *", "func": "testkit.echo", "args": []any{1}})
	}
	if r := mk(tokA, "one"); r.status != 201 {
		t.Fatalf("acme's second schedule (the file's first) under max_schedules 2: %d %s", r.status, r.body)
	}
	r := mk(tokA, "two")
	if code, msg, _ := r.errOf(t); r.status != 429 || code != "quota_exceeded" || !strings.Contains(msg, "max_schedules") || r.header.Get("Retry-After") != "" {
		t.Fatalf("acme's third schedule under max_schedules 2: %d %s (Retry-After %q), want 429 naming max_schedules, no Retry-After",
			r.status, r.body, r.header.Get("Retry-After"))
	}
	if r := mk(tokB, "two"); r.status != 201 {
		t.Fatalf("globex's schedule beside acme's quota: %d %s", r.status, r.body)
	}
	if r := s.do("POST", "/v1/jobs", tokA, map[string]any{"func": "testkit.echo", "eta": 86400}); r.status != 201 {
		t.Fatalf("acme's one waiting job: %d %s", r.status, r.body)
	}
	r = s.do("POST", "/v1/schedules/one:run", tokA, nil)
	if code, msg, _ := r.errOf(t); r.status != 429 || code != "quota_exceeded" || !strings.Contains(msg, "quota is 1") || r.header.Get("Retry-After") == "" {
		t.Fatalf("a run by hand at max_pending 1: %d %s, want 429 with Retry-After", r.status, r.body)
	}
	if r := s.do("DELETE", "/v1/schedules/one", tokA, nil); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r := mk(tokA, "two"); r.status != 201 {
		t.Fatalf("acme's schedule once one was deleted: %d %s", r.status, r.body)
	}
}

// Schedules are listed a page at a time, as jobs are: a tenant at its
// max_schedules with big templates (100 of 250 KiB) made one answer of
// 25 MB, and the admin's list of every tenant's read one job per
// schedule besides. A page holds at most its limit (100 by default) and
// 8 MiB of templates; its cursor never shows another tenant's.
func TestSchedulesArePagedOverHTTP(t *testing.T) {
	s := start(t)
	for _, name := range []string{"e", "c", "a", "d", "b"} {
		if r := s.do("POST", "/v1/schedules", tokA, map[string]any{"name": name, "cron": "0 3 * * *", "func": "testkit.echo"}); r.status != 201 {
			t.Fatalf("create %s: %d %s", name, r.status, r.body)
		}
	}
	if r := s.do("POST", "/v1/schedules", tokB, map[string]any{"name": "g", "cron": "0 3 * * *", "func": "testkit.echo"}); r.status != 201 {
		t.Fatalf("globex's: %d %s", r.status, r.body)
	}
	type page struct {
		Schedules []struct {
			Name, Tenant string
		}
		NextCursor string `json:"next_cursor"`
	}
	get := func(token, query string) page {
		t.Helper()
		r := s.do("GET", "/v1/schedules"+query, token, nil)
		if r.status != 200 {
			t.Fatalf("GET /v1/schedules%s: %d %s", query, r.status, r.body)
		}
		var p page
		if err := json.Unmarshal(r.body, &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var names []string
	cursor, pages := "", 0
	for ; pages < 10; pages++ {
		p := get(tokA, "?limit=2&cursor="+url.QueryEscape(cursor))
		for _, sc := range p.Schedules {
			names = append(names, sc.Name)
		}
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if strings.Join(names, "") != "abcde" || pages != 2 {
		t.Fatalf("acme's pages of 2: %q in %d pages, want abcde in 3", names, pages+1)
	}
	first := get(tokA, "?limit=1")
	if p := get(tokB, "?cursor="+url.QueryEscape(first.NextCursor)); len(p.Schedules) != 1 || p.Schedules[0].Name != "g" {
		t.Fatalf("globex with acme's cursor: %+v, want its own g", p)
	}
	if p := get(tokAdmin, "?limit=5"); len(p.Schedules) != 5 || p.NextCursor == "" || p.Schedules[4].Tenant != "acme" {
		t.Fatalf("the admin's first page of 5: %+v", p)
	}
	for query, field := range map[string]string{"?limit=0": "limit", "?limit=1001": "limit", "?limit=x": "limit",
		"?limit=1099511627776": "limit", "?cursor=%00": "cursor", "?cursor=WyIiLCIiXQ": "cursor", "?limit=1&limit=2": "limit", "?page=2": "page"} {
		r := s.do("GET", "/v1/schedules"+query, tokA, nil)
		if _, _, f := r.errOf(t); r.status/100 != 4 || f != field {
			t.Errorf("GET /v1/schedules%s: %d %s, want a 4xx naming %s", query, r.status, r.body, field)
		}
	}
}
