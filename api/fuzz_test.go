package api_test

import (
	"bytes"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
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
		{"POST", "/v1/jobs:cancel?state=failed;x", tokA, nil, "(query)"}, // was every job: the pair dropped
		{"GET", "/v1/jobs?state=%zz", tokA, nil, "(query)"},
		{"GET", "/healthz?a;b", "", nil, "(query)"},
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

// FuzzAnAcceptedJobIsReadBackAsSent: whatever args, kwargs and
// description a client sends, a job the server accepts reads back with
// the same values (JSON values compared as values: numbers exactly, keys
// in any order), on SQLite and, with WASMQ_FUZZ_STORE=postgres, on
// PostgreSQL's jsonb. Nothing is lost or changed on the way in.
func FuzzAnAcceptedJobIsReadBackAsSent(f *testing.F) {
	if os.Getenv("WASMQ_FUZZ_STORE") == "postgres" {
		backend = "postgres"
		defer func() { backend = "sqlite" }()
	}
	s := start(f)
	for _, c := range [][3]string{
		{`[1,"two",3.5]`, `{"lang":"fr"}`, "hello"},
		{`[9007199254740993, -0, 1e400, 123456789012345678901234567890]`, `{"n":1E2,"m":0.1}`, ""},
		{`["\u00e9\ud83d\ude00", "\\", "\"", "\t"]`, `{"\u0061b":{"c":[null,true,false]}}`, "caf\u00e9 \u2028"},
		{`[]`, `{}`, strings.Repeat("x", 1000)},
		{`[[[[[[[[[[1]]]]]]]]]]`, `{"a":{"b":{"c":{}}}}`, " "},
	} {
		f.Add([]byte(c[0]), []byte(c[1]), c[2])
	}
	f.Fuzz(func(t *testing.T, args, kwargs []byte, description string) {
		desc, _ := json.Marshal(description) // invalid UTF-8 becomes U+FFFD: what is sent
		json.Unmarshal(desc, &description)
		body := `{"func":"testkit.echo","eta":3600,"args":` + string(args) + `,"kwargs":` + string(kwargs) + `,"description":` + string(desc) + `}`
		req := httptest.NewRequest("POST", "/v1/jobs", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tokA)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		s.n.Handler.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("POST %s: %d %s", body, rec.Code, rec.Body.Bytes())
		}
		if rec.Code != 201 {
			return // refused, naming what: the other fuzz target's concern
		}
		var created struct{ UUID string }
		json.Unmarshal(rec.Body.Bytes(), &created)
		req = httptest.NewRequest("GET", "/v1/jobs/"+created.UUID, nil)
		req.Header.Set("Authorization", "Bearer "+tokA)
		rec = httptest.NewRecorder()
		s.n.Handler.ServeHTTP(rec, req)
		var got struct {
			Args        json.RawMessage `json:"args"`
			Kwargs      json.RawMessage `json:"kwargs"`
			Description string          `json:"description"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatalf("GET: %d %s: %v", rec.Code, rec.Body.Bytes(), err)
		}
		for _, c := range []struct {
			name      string
			sent, got []byte
		}{{"args", args, got.Args}, {"kwargs", kwargs, got.Kwargs}} {
			if !sameJSON(t, c.sent, c.got) {
				t.Fatalf("%s sent %s, read back %s", c.name, c.sent, c.got)
			}
		}
		if got.Description != description {
			t.Fatalf("description sent %q, read back %q", description, got.Description)
		}
	})
}

// sameJSON compares two JSON documents as values: numbers as exact
// rationals, objects as sets of keys.
func sameJSON(t *testing.T, a, b []byte) bool {
	va, vb := decodeExact(t, a), decodeExact(t, b)
	return reflect.DeepEqual(va, vb)
}

func decodeExact(t *testing.T, b []byte) any {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return exactNumbers(v)
}

// exactNumbers turns each json.Number into its exact value's text, so
// that 1E2 and 100, or -0 and 0, compare equal, and 2^53+1 does not
// equal 2^53.
func exactNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		r, ok := new(big.Rat).SetString(string(x))
		if !ok {
			return "unreadable number " + string(x)
		}
		return r.RatString()
	case []any:
		for i := range x {
			x[i] = exactNumbers(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = exactNumbers(x[k])
		}
	}
	return v
}
