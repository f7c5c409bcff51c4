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

// okArgs and the steps below are testkit.script steps: step k runs on
// attempt k, the last one repeating (plugins/examples/testkit/README.md).
var okArgs = []string{"ok"}

func failFirstJob(desc string) map[string]any {
	return map[string]any{"func": "testkit.script", "args": []string{"fail:boom", "ok"}, "description": desc}
}

// startServer starts the server the browser tests drive.
//
// STAND-IN: the api/, runner/ and store/sqlite packages did not exist when
// this suite was written, so it serves the UI over mockAPI, an in-memory
// implementation of the HTTP contract (docs/ui.md, "API used"). To run the
// acceptance tests against the real thing, replace the body with: a SQLite
// store in t.TempDir(), host.New over plugins/examples/testkit, a runner,
// the api handler (which mounts ui.Handler() at "/") on httptest.NewServer,
// tenants "acme" (TokenA) and "globex" (TokenB) plus an admin token. The
// tests only use the HTTP contract, so nothing else changes.
func startServer(t *testing.T) *server {
	m := &mockAPI{jobs: map[string]*abi.Job{}, attempts: map[string][]abi.Attempt{},
		tokens: map[string]string{"tok-admin": "", "tok-a": "acme", "tok-b": "globex"}}
	srv := httptest.NewServer(m.handler())
	t.Cleanup(srv.Close)
	return &server{URL: srv.URL, Admin: "tok-admin", TokenA: "tok-a", TokenB: "tok-b"}
}

// seedScreenshots serves realistic jobs for the screenshots. STAND-IN like
// startServer: the seeded mock, until the real server can run testkit jobs.
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
