package api_test

import (
	"testing"
)

// Hostile bytes in a schedule's definition, its name in the path or a
// patch are a 4xx, never a 5xx, and store nothing.
func TestHostileBytesInSchedulesAreRefused(t *testing.T) {
	s := start(t)
	for name, body := range map[string]string{
		"NUL in name":              `{"name":"a\u0000","cron":"@daily","func":"testkit.echo"}`,
		"NUL in cron":              `{"name":"a","cron":"@daily\u0000","func":"testkit.echo"}`,
		"NUL in timezone":          `{"name":"a","cron":"@daily","timezone":"UTC\u0000","func":"testkit.echo"}`,
		"NUL in args":              `{"name":"a","cron":"@daily","func":"testkit.echo","args":["\u0000"]}`,
		"lone surrogate in args":   `{"name":"a","cron":"@daily","func":"testkit.echo","args":["\ud800"]}`,
		"NUL in a kwargs key":      `{"name":"a","cron":"@daily","func":"testkit.echo","kwargs":{"\u0000":1}}`,
		"NUL in identity_key":      `{"name":"a","cron":"@daily","func":"testkit.echo","identity_key":"k\u0000{due}"}`,
		"invalid UTF-8 in context": "{\"name\":\"a\",\"cron\":\"@daily\",\"func\":\"testkit.echo\",\"context\":{\"\xc3\":1}}",
		"invalid UTF-8 in cron":    "{\"name\":\"a\",\"cron\":\"@daily\xff\",\"func\":\"testkit.echo\"}",
		"priority 2^31":            `{"name":"a","cron":"@daily","func":"testkit.echo","priority":2147483648}`,
		"catch_up_max 2^63":        `{"name":"a","cron":"@daily","func":"testkit.echo","missed_runs":"catch_up","catch_up_max":9223372036854775807}`,
		"a 10 kB cron":             `{"name":"a","cron":"` + repeat("* ", 5000) + `","func":"testkit.echo"}`,
		"not an object":            `[1]`,
		"@every 999999999999h":     `{"name":"a","cron":"@every 999999999999h","func":"testkit.echo"}`,
	} {
		if r := s.do("POST", "/v1/schedules", tokA, body); r.status < 400 || r.status >= 500 {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	if r := s.do("GET", "/v1/schedules", tokA, nil).json(t)["schedules"].([]any); len(r) != 0 {
		t.Fatalf("refused schedules were stored: %v", r)
	}
	if r := s.do("POST", "/v1/schedules", tokA, map[string]any{"name": "ok", "cron": "@daily", "func": "testkit.echo"}); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	for name, body := range map[string]string{
		"NUL in description": `{"description":"\u0000"}`,
		"a bad zone":         `{"timezone":"../../etc/passwd"}`,
		"not an object":      `"x"`,
	} {
		if r := s.do("PATCH", "/v1/schedules/ok", tokA, body); r.status < 400 || r.status >= 500 {
			t.Errorf("PATCH %s: %d %s", name, r.status, r.body)
		}
	}
	for _, path := range []string{"/v1/schedules/%00", "/v1/schedules/%ff%fe", "/v1/schedules/" + repeat("a", 5000)} {
		if r := s.do("GET", path, tokA, nil); r.status != 404 {
			t.Errorf("GET %s: %d %s", path, r.status, r.body)
		}
		if r := s.do("POST", path+":run", tokA, nil); r.status != 404 {
			t.Errorf("POST %s:run: %d %s", path, r.status, r.body)
		}
		if r := s.do("DELETE", path, tokA, nil); r.status != 404 {
			t.Errorf("DELETE %s: %d %s", path, r.status, r.body)
		}
	}
}

func repeat(s string, n int) string {
	out := make([]byte, 0, len(s)*n)
	for range n {
		out = append(out, s...)
	}
	return string(out)
}
