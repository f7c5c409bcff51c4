package e2e

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/config"
	wserver "github.com/wasmq/wasmq/server"
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

// startServer starts the real server in-process: SQLite store in a temp
// dir, host with plugins/examples/testkit/testkit.wasm, runner, API and UI,
// with tenants "acme" (TokenA) and "globex" (TokenB) and an admin token.
func startServer(t *testing.T) *server {
	t.Helper()
	dir := t.TempDir()
	plugins := filepath.Join(dir, "plugins")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	wasm, err := os.ReadFile(filepath.Join("..", "plugins", "examples", "testkit", "testkit.wasm"))
	if err != nil {
		t.Fatalf("testkit plugin: %v (run make plugins)", err)
	}
	if err := os.WriteFile(filepath.Join(plugins, "testkit.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	s := &server{Admin: "admin-token-0123456789", TokenA: "acme-token-0123456789", TokenB: "globex-token-0123456789"}
	toml := fmt.Sprintf(`
[server]
listen = "127.0.0.1:0"
admin_token = %q
[store]
driver = "sqlite"
path = %q
[runner]
channels = "root:4"
[host]
plugins_dir = %q
cache_dir = %q
[[tenants]]
name = "acme"
token = %q
[[tenants]]
name = "globex"
token = %q
`, s.Admin, filepath.Join(dir, "wasmq.db"), plugins, filepath.Join(dir, "cache"), s.TokenA, s.TokenB)
	_, s.URL = serveConfig(t, dir, toml)
	return s
}

// serveConfig starts a node from the config text toml (written into
// dir), serves its API and UI through the OpenAPI checker, and stops it
// when the test ends.
func serveConfig(t *testing.T, dir, toml string) (*wserver.Node, string) {
	t.Helper()
	cfgPath := filepath.Join(dir, "wasmq.toml")
	if err := os.WriteFile(cfgPath, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	node, err := wserver.New(ctx, cfg, zerolog.Nop())
	if err != nil {
		cancel()
		t.Fatalf("start wasmq: %v", err)
	}
	if err := node.Start(ctx); err != nil {
		cancel()
		t.Fatalf("start runner: %v", err)
	}
	srv := httptest.NewServer(checked(t, node.Handler))
	t.Cleanup(func() {
		srv.Close()
		cancel()
		sctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
		defer stop()
		_ = node.Close(sctx)
	})
	return node, srv.URL
}

// seedScreenshots fills a real server with realistic jobs of the testkit
// plugin: done, failed, postponed, running and a graph with a failure.
func seedScreenshots(t *testing.T) (base, token, jobUUID string) {
	t.Setenv("WASMQ_CHANNELS", "root:6,mail:2,invoices:1:sequential,import:2,reports:1:paused")
	s := startServer(t)
	tok := s.TokenA
	ctxOf := func(model string, ids ...int) map[string]any {
		return map[string]any{"user": "alice", "model": model, "records": ids}
	}
	mk := func(desc, ch string, steps []string, extra map[string]any) abi.Job {
		b := map[string]any{"func": "testkit.script", "args": steps, "description": desc, "channel": ch,
			"context": ctxOf("res.partner", 7, 8)}
		for k, v := range extra {
			b[k] = v
		}
		return createJob(t, s.URL, tok, b)
	}
	for i := 0; i < 4; i++ {
		mk(fmt.Sprintf("Send welcome mail to partner %d", 40+i), "root.mail", []string{"ok:120"}, nil)
		mk(fmt.Sprintf("Render invoice INV/2026/%04d", 190+i), "root.invoices", []string{"ok:80"}, map[string]any{"context": ctxOf("account.move", 190+i)})
	}
	mk("Send reminder to partner 51", "root.mail", []string{"fail:550 mailbox unavailable"}, nil)
	mk("Daily sales report", "root.reports", []string{"ok"}, nil)
	mk("Weekly digest", "root.mail", []string{"ok"}, map[string]any{"eta": 3600})
	mk("Resync CRM partner 7", "root", []string{"retry:600", "ok"}, nil)
	mk("Long export", "root", []string{"ok:20000"}, nil)
	var batch struct{ Jobs []abi.Job }
	step := func(ref, desc string, steps []string, deps ...string) map[string]any {
		return map[string]any{"ref": ref, "func": "testkit.script", "args": steps, "description": desc, "channel": "root.import",
			"depends_on": deps, "context": ctxOf("res.partner", 7)}
	}
	call(t, s.URL, tok, "POST", "/v1/jobs:batch", map[string]any{"jobs": []map[string]any{
		step("fetch", "Fetch partners.csv", []string{"ok:150"}),
		step("p1", "Parse chunk 1", []string{"ok:100"}, "fetch"),
		step("p2", "Parse chunk 2", []string{"fail:bad UTF-8 at line 1840"}, "fetch"),
		step("p3", "Parse chunk 3", []string{"ok:100"}, "fetch"),
		step("commit", "Commit import", []string{"ok"}, "p1", "p2", "p3"),
	}}, 201, &batch)
	jobUUID = batch.Jobs[2].UUID
	for _, sc := range []map[string]any{
		{"name": "nightly-sales-report", "cron": "0 3 * * *", "timezone": "Europe/Brussels", "func": "testkit.script",
			"args": []string{"ok"}, "channel": "root.reports", "description": "Daily sales report"},
		{"name": "crm-sync", "cron": "*/15 * * * 1-5", "timezone": "Europe/Brussels", "func": "testkit.script",
			"args": []string{"ok"}, "description": "Resync CRM partners", "identity_key": "crm-sync"},
		{"name": "invoice-reminders", "cron": "0 9 * * 1", "func": "testkit.script", "args": []string{"ok"},
			"channel": "root.mail", "missed_runs": "catch_up", "catch_up_max": 4, "paused": true},
		{"name": "heartbeat", "cron": "@every 30s", "func": "testkit.script", "args": []string{"ok"}},
	} {
		call(t, s.URL, tok, "POST", "/v1/schedules", sc, 201, nil)
	}
	var run abi.Job
	call(t, s.URL, tok, "POST", "/v1/schedules/crm-sync:run", nil, 201, &run)
	waitState(t, s.URL, tok, jobUUID, abi.StateFailed, 20*time.Second)
	waitState(t, s.URL, tok, run.UUID, abi.StateDone, 20*time.Second)
	return s.URL, tok, jobUUID
}
