package api_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/config"
)

// GET /v1/usage refuses a range it cannot answer with a 400 naming the
// parameter, before any SQL.
func TestUsageRefusesBadRangesNamingTheParameter(t *testing.T) {
	s := start(t)
	now := time.Now().UTC()
	at := func(t time.Time) string { return url.QueryEscape(t.Format(time.RFC3339)) }
	cases := map[string]struct{ field, msg string }{
		"":                              {"from", "required"},
		"?to=" + at(now):                {"from", ""},
		"?from=" + at(now):              {"to", ""},
		"?from=yesterday&to=" + at(now): {"from", ""},
		"?from=" + at(now) + "&to=2026-13-01T00:00:00Z":         {"to", ""},
		"?from=" + at(now) + "&to=" + at(now):                   {"to", ""},
		"?from=" + at(now) + "&to=" + at(now.Add(-time.Hour)):   {"to", ""},
		"?from=" + at(now.AddDate(-2, 0, 0)) + "&to=" + at(now): {"to", ""},
		"?from=%00&to=" + at(now):                               {"from", ""},
		"?from=0001-01-01T00:00:00Z&to=" + at(now):              {"from", "out of range (1970 to 9999)"},
		"?from=" + at(now) + "&to=9999-12-31T23:59:59Z":         {"to", "the range is over"},
	}
	for q, want := range cases {
		r := s.do("GET", "/v1/usage"+q, tokA, nil)
		if r.status != 400 {
			t.Errorf("GET /v1/usage%s: %d %s, want 400", q, r.status, r.body)
			continue
		}
		if e := r.json(t)["error"].(map[string]any); e["field"] != want.field || !strings.Contains(e["message"].(string), want.msg) {
			t.Errorf("GET /v1/usage%s: field %v, want %q with %q (%s)", q, e["field"], want.field, want.msg, r.body)
		}
	}
}

// A job's attempt shows what it used, and within a flush the usage
// aggregate has it, for its tenant only; the admin sees every tenant.
func TestAnAttemptsUsageIsShownAndSummedForItsTenantOnly(t *testing.T) {
	s := start(t, func(f *config.File) { f.Runner.UsageFlush = abi.Duration(50 * time.Millisecond) })
	began := time.Now().UTC()
	r := s.do("POST", "/v1/jobs", tokA, map[string]any{"func": "testkit.echo", "args": []any{"x"}})
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id := r.json(t)["uuid"].(string)
	job := s.waitState(tokA, id, abi.StateDone)
	u, _ := job["usage"].(map[string]any)
	if u == nil || u["fuel"].(float64) <= 0 || u["peak_memory"].(float64) <= 0 {
		t.Fatalf("the done job's usage: %v", job["usage"])
	}
	atts := s.do("GET", "/v1/jobs/"+id+"/attempts", tokA, nil).json(t)["attempts"].([]any)
	if au := atts[len(atts)-1].(map[string]any)["usage"]; au == nil || au.(map[string]any)["fuel"] != u["fuel"] {
		t.Fatalf("the attempt's usage %v, the job's %v", au, u)
	}

	q := "/v1/usage?from=" + url.QueryEscape(began.Add(-time.Minute).Format(time.RFC3339)) + "&to=" + url.QueryEscape(began.Add(time.Hour).Format(time.RFC3339))
	var rows []any
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if rows, _ = s.do("GET", q, tokA, nil).json(t)["usage"].([]any); len(rows) > 0 {
			break
		}
	}
	if len(rows) != 1 {
		t.Fatalf("A's usage: %v, want one row", rows)
	}
	row := rows[0].(map[string]any)
	if row["tenant"] != "acme" || row["func"] != "testkit.echo" || row["attempts"] != 1.0 || row["fuel"] != u["fuel"] {
		t.Fatalf("A's usage row %v, want one attempt of testkit.echo with fuel %v", row, u["fuel"])
	}
	if b := s.do("GET", q, tokB, nil); b.status != 200 || strings.Contains(string(b.body), "acme") || len(b.json(t)["usage"].([]any)) != 0 {
		t.Fatalf("B's usage: %d %s, want none", b.status, b.body)
	}
	if all := s.do("GET", q, tokAdmin, nil).json(t)["usage"].([]any); len(all) != 1 {
		t.Fatalf("the admin's usage: %v", all)
	}
}
