package e2e

import (
	"net/http"
	"os"
	"sync"
	"testing"

	"github.com/wasmq/wasmq/api/contract"
)

var (
	contractOnce sync.Once
	contractC    *contract.Checker
	contractErr  error
)

// checked wraps a node's handler so every exchange of the end-to-end
// tests — the UI's own requests in Chromium included — is checked
// against the OpenAPI document (docs/api.md).
func checked(t *testing.T, h http.Handler) http.Handler {
	t.Helper()
	contractOnce.Do(func() {
		b, err := os.ReadFile("../api/openapi.json")
		if err != nil {
			contractErr = err
			return
		}
		contractC, contractErr = contract.Load(b)
	})
	if contractErr != nil {
		t.Fatalf("api/openapi.json: %v", contractErr)
	}
	return contractC.Middleware(t, h)
}
