package e2e

import (
	"net/http/httptest"

	"github.com/wasmq/wasmq/abi"
	"testing"
)

// server is a running wasmq with two tenants.
type server struct {
	URL                   string
	Admin, TokenA, TokenB string
}

const okFunc = "testkit.script"

var okArgs = []any{[]string{"ok"}}

func failFirstJob(desc string) map[string]any {
	return map[string]any{"func": "testkit.script", "args": []any{[]string{"fail:boom", "ok"}}, "description": desc}
}

// startServer: TEMPORARY mock until the api package lands.
func startServer(t *testing.T) *server {
	m := &mockAPI{jobs: map[string]*abi.Job{}, attempts: map[string][]abi.Attempt{},
		tokens: map[string]string{"tok-admin": "", "tok-a": "acme", "tok-b": "globex"}}
	srv := httptest.NewServer(m.handler())
	t.Cleanup(srv.Close)
	return &server{URL: srv.URL, Admin: "tok-admin", TokenA: "tok-a", TokenB: "tok-b"}
}

// seedScreenshots: TEMPORARY, from the mock until the real server lands.
func seedScreenshots(t *testing.T) (base, token, jobUUID string) {
	m := seedMock()
	srv := httptest.NewServer(m.handler())
	t.Cleanup(srv.Close)
	for _, j := range m.jobs {
		if j.Func == "import.parse" && j.State == "failed" {
			jobUUID = j.UUID
		}
	}
	return srv.URL, "", jobUUID
}
