package api

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"
)

//go:embed openapi.json
var openapi []byte

// queryParams is, per operation of the document ("POST /v1/jobs"), the
// query parameters it takes: the document is the one list, which the
// route wrapper enforces and the contract tests hold the server to.
// Read here rather than with api/contract, which would bring its JSON
// Schema validator into the server for a list of names; a test holds
// this reading to the checker's.
var queryParams = sync.OnceValue(func() map[string]map[string]bool {
	type param struct {
		Ref  string `json:"$ref"`
		Name string `json:"name"`
		In   string `json:"in"`
	}
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Parameters map[string]param `json:"parameters"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openapi, &doc); err != nil {
		panic(fmt.Sprintf("api: the embedded OpenAPI document: %v", err))
	}
	query := func(raw json.RawMessage) []string {
		var o struct{ Parameters []param }
		json.Unmarshal(raw, &o)
		var names []string
		for _, p := range o.Parameters {
			if p.Ref != "" {
				p = doc.Components.Parameters[path.Base(p.Ref)]
			}
			if p.In == "query" {
				names = append(names, p.Name)
			}
		}
		return names
	}
	out := map[string]map[string]bool{}
	for p, ops := range doc.Paths {
		common := query(ops["parameters"])
		for method, op := range ops {
			if method == "parameters" {
				continue
			}
			set := map[string]bool{}
			for _, n := range append(query(op), common...) {
				set[n] = true
			}
			out[strings.ToUpper(method)+" "+p] = set
		}
	}
	return out
})

// allowedQuery is the query parameters of a route's pattern. A route
// whose last segment is a wildcard serves the document's actions on it
// ("POST /v1/schedules/{name}" serves ".../{name}:pause", ":run"...): it
// takes what any of them takes. A route the document does not describe
// is a programming error, found by the first test that starts a server.
func allowedQuery(pattern string) map[string]bool {
	method, p, _ := strings.Cut(pattern, " ")
	dir, last := path.Split(p)
	set := map[string]bool{}
	found := false
	for op, params := range queryParams() {
		m, dp, _ := strings.Cut(op, " ")
		if m != method {
			continue
		}
		ddir, dlast := path.Split(dp)
		action := strings.HasPrefix(last, "{") && ddir == dir && strings.HasPrefix(dlast, "{") && strings.Contains(dlast, "}:")
		if dp != p && !action {
			continue
		}
		found = true
		for n := range params {
			set[n] = true
		}
	}
	if !found {
		panic("api: route " + pattern + " is not in the OpenAPI document")
	}
	return set
}

// names lists a parameter set for a message.
func names(set map[string]bool) string {
	if len(set) == 0 {
		return "none"
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}
