package contract_test

import (
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

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
