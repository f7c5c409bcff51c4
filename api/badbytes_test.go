package api_test

import (
	"strings"
	"testing"
)

// Hostile bytes anywhere in a request are a 4xx naming what is wrong, on
// every store, and store nothing; no answer is a 5xx.
func TestHostileBytesAreRefusedNotAnInternalError(t *testing.T) {
	s := start(t)
	posts := map[string]string{
		"NUL in description":     `{"func":"testkit.echo","description":"a\u0000b"}`,
		"NUL in identity_key":    `{"func":"testkit.echo","identity_key":"k\u0000"}`,
		"NUL in context":         `{"func":"testkit.echo","context":{"user":"\u0000"}}`,
		"NUL in a kwargs key":    `{"func":"testkit.echo","kwargs":{"a\u0000":1}}`,
		"NUL in args":            `{"func":"testkit.echo","args":["\u0000"]}`,
		"invalid UTF-8 in args":  "{\"func\":\"testkit.echo\",\"args\":[\"\xff\xfe\"]}",
		"invalid UTF-8 in ctx":   "{\"func\":\"testkit.echo\",\"context\":{\"\xc3\":1}}",
		"lone surrogate in args": `{"func":"testkit.echo","args":["\ud800"]}`,
		"lone surrogate key":     `{"func":"testkit.echo","kwargs":{"\udc00":1}}`,
		"lone surrogate in ctx":  `{"func":"testkit.echo","context":{"user":"\ud83d\u0041"}}`,
		"a kwargs key twice":     `{"func":"testkit.echo","kwargs":{"a":1,"a":2}}`,
		"the context user twice": `{"func":"testkit.echo","context":{"user":"alice","user":"bob"}}`,
		"priority 2^31":          `{"func":"testkit.echo","priority":2147483648}`,
		"priority 2^40":          `{"func":"testkit.echo","priority":1099511627776}`,
		"max_retries 2^31":       `{"func":"testkit.echo","max_retries":2147483648}`,
		"eta 9223372037 seconds": `{"func":"testkit.echo","eta":9223372037}`,
		"eta year 10000":         `{"func":"testkit.echo","eta":"10000-01-01T00:00:00Z"}`,
	}
	for name, body := range posts {
		r := s.do("POST", "/v1/jobs", tokA, body)
		if r.status < 400 || r.status >= 500 {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
		b := s.do("POST", "/v1/jobs:batch", tokA, `{"jobs":[{"func":"testkit.echo"},`+body+`]}`)
		if b.status < 400 || b.status >= 500 {
			t.Errorf("%s in a batch: %d %s", name, b.status, b.body)
		}
	}
	if n := s.jobCount(tokA); n != 0 {
		t.Fatalf("refused requests stored %d jobs", n)
	}
	id := s.do("POST", "/v1/jobs", tokA, map[string]any{"func": "testkit.echo", "eta": 3600}).json(t)["uuid"].(string)
	for name, body := range map[string]string{
		"NUL in description": `{"description":"\u0000"}`,
		"priority 2^40":      `{"priority":1099511627776}`,
		"max_retries 2^31":   `{"max_retries":2147483648}`,
		"channel ../x":       `{"channel":"../x"}`,
	} {
		if r := s.do("PATCH", "/v1/jobs/"+id, tokA, body); r.status < 400 || r.status >= 500 {
			t.Errorf("PATCH %s: %d %s", name, r.status, r.body)
		}
	}
	for _, path := range []string{
		"/v1/jobs?q=%00", "/v1/jobs?channel=%00", "/v1/jobs?func=%00", "/v1/jobs?identity_key=%ff",
		"/v1/jobs?graph_uuid=%00", "/v1/jobs?cursor=%00", "/v1/jobs/%00", "/v1/jobs/%ff%fe",
		"/v1/jobs/%00/attempts", "/v1/jobs?args=%22%5Cud800%22", "/v1/jobs?kwargs=%7B%22a%22%3A%22%5Cudc00%22%7D",
		"/v1/jobs?kwargs=%7B%22a%22%3A1%2C%22a%22%3A2%7D", "/v1/jobs?kwargs=%7B%22%5Cud800%22%3A1%7D",
	} {
		if r := s.do("GET", path, tokA, nil); r.status < 400 || r.status >= 500 {
			t.Errorf("GET %s: %d %s", path, r.status, r.body)
		}
	}
	// The admin's ?tenant= reaches the store on every route that reads it.
	for _, path := range []string{"/v1/stats", "/v1/jobs", "/v1/schedules", "/v1/channels", "/v1/plugins",
		"/v1/usage?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z"} {
		for _, tenant := range []string{"%00", "%ff%fe", "acme&tenant=globex"} {
			sep := "?"
			if strings.Contains(path, "?") {
				sep = "&"
			}
			r := s.do("GET", path+sep+"tenant="+tenant, tokAdmin, nil)
			if _, _, field := r.errOf(t); r.status != 422 || field != "tenant" {
				t.Errorf("GET %s with tenant %s: %d %s", path, tenant, r.status, r.body)
			}
		}
	}
	for _, action := range []string{"cancel", "requeue", "done"} {
		if r := s.do("POST", "/v1/jobs/%00/"+action, tokA, nil); r.status != 404 {
			t.Errorf("POST %s of a NUL uuid: %d %s", action, r.status, r.body)
		}
	}
}

// An internal error names nothing of the server's insides: no query, no
// database, user or host; nor does the unauthenticated readiness check.
func TestInternalErrorsKeepTheirCauseInTheLog(t *testing.T) {
	s := start(t)
	s.n.Store.Close() // every store call now fails
	for _, r := range []resp{s.do("GET", "/v1/jobs", tokA, nil), s.do("GET", "/readyz", "", nil)} {
		if r.status < 500 {
			t.Fatalf("with the store closed: %d %s", r.status, r.body)
		}
		body := strings.ToLower(string(r.body))
		for _, leak := range []string{"sql", "postgres", "127.0.0.1", "database", "wasmq.db", "closed", "pool"} {
			if strings.Contains(body, leak) {
				t.Errorf("a %d answer names %q: %s", r.status, leak, r.body)
			}
		}
	}
}
