package api_test

import (
	"os"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/wasmq/wasmq/api/contract"
)

var (
	checkerOnce sync.Once
	checker     *contract.Checker
	checkerErr  error
)

// openapiChecker is the contract of api/openapi.json, loaded once.
func openapiChecker(t testing.TB) *contract.Checker {
	t.Helper()
	checkerOnce.Do(func() {
		b, err := os.ReadFile("openapi.json")
		if err != nil {
			checkerErr = err
			return
		}
		checker, checkerErr = contract.Load(b)
	})
	if checkerErr != nil {
		t.Fatalf("api/openapi.json: %v", checkerErr)
	}
	return checker
}

// routeOperations are the documented operations behind a registered
// pattern whose handler cuts an action from the last segment (a
// wildcard is a whole segment in http.ServeMux).
var routeOperations = map[string][]string{
	"POST /v1/schedules/{name}":  {"POST /v1/schedules/{name}:pause", "POST /v1/schedules/{name}:resume", "POST /v1/schedules/{name}:run"},
	"POST /v1/channels/{action}": {"POST /v1/channels/{name}:pause", "POST /v1/channels/{name}:resume"},
	"/v1/":                       nil, // the catch-all 404 of unknown routes
	"/":                          nil, // the web UI
}

// Every route the server registers (read from the registrations, as the
// isolation matrix does) is an operation of the document, and every
// operation of the document is a route: neither drifts from the other.
func TestEveryRouteIsInTheOpenAPIDocument(t *testing.T) {
	documented := map[string]bool{}
	for _, op := range openapiChecker(t).Operations() {
		documented[op.String()] = false
	}
	for _, r := range routes(t) {
		ops, special := routeOperations[r]
		if !special {
			ops = []string{normalizePattern(r)}
		}
		for _, op := range ops {
			if _, ok := documented[op]; !ok {
				t.Errorf("route %q: %s is not in api/openapi.json", r, op)
				continue
			}
			documented[op] = true
		}
	}
	var extra []string
	for op, routed := range documented {
		if !routed {
			extra = append(extra, op)
		}
	}
	sort.Strings(extra)
	for _, op := range extra {
		t.Errorf("api/openapi.json documents %s, which no route serves", op)
	}
}

// normalizePattern makes "GET /v1/jobs/{uuid}" of a ServeMux pattern the
// document's "GET /v1/jobs/{uuid}" ({x...} wildcards lose their dots).
func normalizePattern(p string) string {
	return strings.ReplaceAll(p, "...}", "}")
}

// The document the server serves is the checked one, and says 3.1.
func TestTheServerServesTheOpenAPIDocument(t *testing.T) {
	s := start(t)
	r := s.do("GET", "/v1/openapi.json", "", nil)
	want, _ := os.ReadFile("openapi.json")
	if r.status != 200 || string(r.body) != string(want) || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /v1/openapi.json: %d %s, %d bytes (want %d)", r.status, r.header.Get("Content-Type"), len(r.body), len(want))
	}
	if v := r.json(t)["openapi"]; v != "3.1.0" {
		t.Fatalf("openapi = %v, want 3.1.0", v)
	}
}
