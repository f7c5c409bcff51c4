package api_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/wasmq/wasmq/api/contract"
)

// FuzzEveryRequestIsAnsweredBelow500AsDocumented sends what a client
// could: any documented operation, any path parameter, query string and
// body, with either tenant's token, the admin's or none. Whatever it is,
// the answer is below 500 and one the OpenAPI document describes, and
// globex never gets a 2xx on a path naming acme's job.
//
// `go test -run '^$' -fuzz FuzzEveryRequest ./api` explores, on SQLite,
// or on PostgreSQL with WASMQ_FUZZ_STORE=postgres (and PG_DSN); without
// -fuzz, the seeds below and those in testdata/fuzz run as a test.
func FuzzEveryRequestIsAnsweredBelow500AsDocumented(f *testing.F) {
	if os.Getenv("WASMQ_FUZZ_STORE") == "postgres" {
		backend = "postgres"
		defer func() { backend = "sqlite" }()
	}
	s := start(f)
	ops := openapiChecker(f).Operations()
	acmeJob := s.do("POST", "/v1/jobs", tokA, map[string]any{"func": "testkit.echo", "eta": 3600}).json(f)["uuid"].(string)
	s.do("PUT", "/v1/schedules/nightly", tokA, map[string]any{"cron": "@daily", "func": "testkit.echo"})

	// One seed an operation with its usual parameter, then the hostile
	// values at every place.
	for i, op := range ops {
		body := ""
		if op.Method == "POST" || op.Method == "PUT" || op.Method == "PATCH" {
			body = `{"func":"testkit.echo","args":[1],"priority":5}`
		}
		f.Add(uint16(i), "", "", []byte(body), uint8(0))
		f.Add(uint16(i), "", "limit=2&state=pending", []byte("{}"), uint8(2))
	}
	hostile := []string{"\x00", "%00", "\xff\xfe", `\ud800`, "1099511627776", "-1", "9223372036854775808", "..", "../x", strings.Repeat("a", 300), "nightly", "testkit"}
	for i, v := range hostile {
		op := uint16(i * 7)
		f.Add(op, v, "limit="+url.QueryEscape(v), []byte(`{"func":"testkit.echo","priority":`+v+`}`), uint8(i))
		f.Add(op+1, v, "q="+v+"&q=2", []byte(`{"jobs":[{"func":"`+v+`"}]}`), uint8(i+1))
		f.Add(op+2, "", "state="+v, []byte(`{"eta":"`+v+`","max_retries":`+v+`}`), uint8(i+2))
	}

	checker := openapiChecker(f)
	tokens := []string{tokA, tokB, tokAdmin, ""}
	param := regexp.MustCompile(`\{[^}]+\}`)
	f.Fuzz(func(t *testing.T, opIndex uint16, value, query string, body []byte, who uint8) {
		op := ops[int(opIndex)%len(ops)]
		path := param.ReplaceAllStringFunc(op.Template, func(p string) string {
			switch {
			case value != "":
				return url.PathEscape(value)
			case p == "{uuid}":
				return acmeJob
			case p == "{name}" && strings.HasPrefix(op.Template, "/v1/plugins"):
				return "testkit"
			default:
				return "nightly"
			}
		})
		u, err := url.Parse(path)
		if err != nil {
			return
		}
		u.RawQuery = query
		req := httptest.NewRequest(op.Method, "/", bytes.NewReader(body))
		req.URL, req.RequestURI = u, u.RequestURI()
		token := tokens[int(who)%len(tokens)]
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if who&4 == 0 {
			req.Header.Set("Content-Type", "application/json")
		}
		rec := httptest.NewRecorder()
		s.n.Handler.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s (body %q) as %q: %d %s", op.Method, u.RequestURI(), body, token, rec.Code, rec.Body.Bytes())
		}
		if token == tokB && strings.Contains(u.Path, acmeJob) && rec.Code < 300 {
			t.Fatalf("globex got %d on acme's job: %s %s: %s", rec.Code, op.Method, u.RequestURI(), rec.Body.Bytes())
		}
		x := contractExchange(req, body, rec)
		if err := checker.Check(x); err != nil {
			t.Fatalf("contract: %v", err)
		}
	})
}

// contractExchange is what contract.Check reads of one exchange served by
// a recorder.
func contractExchange(req *http.Request, body []byte, rec *httptest.ResponseRecorder) contract.Exchange {
	return contract.Exchange{Method: req.Method, URL: req.URL, ReqHeader: req.Header, ReqBody: body,
		Status: rec.Code, RespHeader: rec.Header(), RespBody: rec.Body.Bytes()}
}

// What FuzzEveryRequestIsAnsweredBelow500AsDocumented found, each
// answered before as the document does not say (an accepted parameter or
// body dropped unseen, a redirect to another route, an empty change
// accepted).
func TestWhatTheFuzzerFoundIsRefusedNamingWhatIsWrong(t *testing.T) {
	s := start(t)
	for _, c := range []struct {
		method, path, token string
		body                any
		field               string
	}{
		{"GET", "/healthz?verbose=1", "", nil, "verbose"},
		{"GET", "/readyz", "", `{"deep":true}`, "(body)"},
		{"GET", "/metrics?name=x", tokA, nil, "name"},
		{"GET", "/v1/openapi.json?v=2", "", nil, "v"},
		{"GET", "/v1/jobs", tokA, `{"state":"failed"}`, "(body)"}, // the filters are the query's
		{"PATCH", "/v1/channels/root", tokAdmin, `{}`, "(body)"},  // nothing to change
		{"PATCH", "/v1/channels/root", tokAdmin, `null`, "(body)"},
	} {
		r := s.do(c.method, c.path, c.token, c.body)
		if r.status != 400 {
			t.Errorf("%s %s: %d %s, want 400", c.method, c.path, r.status, r.body)
			continue
		}
		if _, msg, field := r.errOf(t); field != c.field {
			t.Errorf("%s %s: field %q (%s), want %q", c.method, c.path, field, msg, c.field)
		}
	}
	// A path with . or .. segments was redirected to the route of the
	// cleaned path; no route takes one.
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/v1/schedules/..", nil},         // was a 307 to /v1/
		{"PUT", "/v1/plugins/.", testkitWasm(t)}, // was a 307 to /v1/plugins/
		{"POST", "/v1/jobs//cancel", nil},        // an empty segment
		{"GET", "/v1/jobs/./attempts", nil},
	} {
		if r := s.do(c.method, c.path, tokA, c.body); r.status != 404 {
			t.Errorf("%s %s: %d %s, want 404", c.method, c.path, r.status, r.body)
		}
	}
	// What stays: a probe without parameters, a change that names a field.
	if r := s.do("GET", "/healthz", "", nil); r.status != 200 {
		t.Errorf("GET /healthz: %d %s", r.status, r.body)
	}
	if r := s.do("PATCH", "/v1/channels/root", tokAdmin, map[string]any{"paused": false}); r.status != 200 {
		t.Errorf("PATCH /v1/channels/root {paused:false}: %d %s", r.status, r.body)
	}
}
