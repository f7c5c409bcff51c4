package api

import (
	"sort"
	"testing"

	"github.com/wasmq/wasmq/api/contract"
)

// The query parameters the list and bulk routes accept (listParams) are
// the ones the document declares for them: a filter added to one is
// added to the other.
func TestTheListFiltersAreTheDocumentedParameters(t *testing.T) {
	c, err := contract.Load(openapi)
	if err != nil {
		t.Fatal(err)
	}
	want := func(bulk bool) []string {
		var out []string
		for k := range listParams {
			if bulk && (k == "limit" || k == "cursor") {
				continue
			}
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	for _, tc := range []struct {
		op   string
		bulk bool
	}{{"GET /v1/jobs", false}, {"POST /v1/jobs:requeue", true}, {"POST /v1/jobs:cancel", true}, {"POST /v1/jobs:done", true}} {
		var op *contract.Operation
		for _, o := range c.Operations() {
			if o.String() == tc.op {
				op = o
			}
		}
		if op == nil {
			t.Fatalf("%s is not in the document", tc.op)
		}
		got := op.QueryParameters()
		if w := want(tc.bulk); !equal(got, w) {
			t.Errorf("%s: the document declares %v, the server accepts %v", tc.op, got, w)
		}
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
