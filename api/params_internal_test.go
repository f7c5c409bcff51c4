package api

import (
	"slices"
	"sort"
	"testing"

	"github.com/wasmq/wasmq/api/contract"
)

// The server's reading of the document's query parameters (queryParams,
// which the route wrapper enforces) is the contract checker's, for
// every operation: a parameter added to the document is accepted, and
// only then.
func TestTheServerTakesTheDocumentedQueryParameters(t *testing.T) {
	c, err := contract.Load(openapi)
	if err != nil {
		t.Fatal(err)
	}
	ours := queryParams()
	for _, op := range c.Operations() {
		set, ok := ours[op.String()]
		if !ok {
			t.Errorf("%s: not read from the document", op)
			continue
		}
		got := make([]string, 0, len(set))
		for n := range set {
			got = append(got, n)
		}
		sort.Strings(got)
		if want := op.QueryParameters(); !slices.Equal(got, want) {
			t.Errorf("%s: the server takes %v, the document declares %v", op, got, want)
		}
	}
	if len(ours) != len(c.Operations()) {
		t.Errorf("the server reads %d operations, the checker %d", len(ours), len(c.Operations()))
	}
	// The bulk actions take the list's filters, not its page.
	list, bulk := ours["GET /v1/jobs"], ours["POST /v1/jobs:cancel"]
	for n := range list {
		if bulk[n] == (n == "limit" || n == "cursor") {
			t.Errorf("the bulk cancel and the list disagree on %q", n)
		}
	}
}
