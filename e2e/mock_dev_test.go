package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
)

var callArgs = map[string]string{
	"mailer.send": `(42, "welcome", lang="fr")`, "invoice.render": `("INV/2026/0193", fmt="pdf")`,
	"sync.partner": `(7, full=false)`, "report.daily": `("2026-11-21")`, "import.fetch": `("s3://drop/partners.csv")`,
	"import.parse": `("partners.csv", chunk=2)`, "import.commit": `("partners.csv")`,
}

func seedMock() *mockAPI {
	m := &mockAPI{jobs: map[string]*abi.Job{}, attempts: map[string][]abi.Attempt{}}
	now := time.Now().UTC()
	seq := int64(0)
	add := func(fn, desc, ch string, st abi.State, ago time.Duration, graph string, deps ...string) *abi.Job {
		seq++
		u := fmt.Sprintf("%08x-1c2d-4e5f-8a9b-%012x", 0x3fa2b000+seq*7919, seq*104729)
		j := &abi.Job{UUID: u, Tenant: "acme", Func: fn, Description: desc, Channel: ch, State: st, Priority: 10, MaxRetries: 5,
			Args: json.RawMessage(`[42, "welcome"]`), Kwargs: json.RawMessage(`{"lang": "fr"}`),
			Context:     json.RawMessage(`{"user": "alice", "model": "res.partner", "records": [7, 8]}`),
			FuncString:  fn + callArgs[fn],
			DateCreated: now.Add(-ago), Seq: seq, GraphUUID: graph, DependsOn: deps, ModelName: "res.partner", UserID: "alice"}
		if st == abi.StateDone || st == abi.StateFailed {
			e := 0.0421 * float64(seq)
			j.ExecTime = &e
			t := now.Add(-ago + time.Second)
			j.DateStarted, j.DateDone = &t, &t
			j.Retry, j.Attempt = 1, 1
			j.Result = json.RawMessage(`{"sent": true}`)
			m.attempts[u] = []abi.Attempt{{JobUUID: u, Attempt: 1, WorkerID: "node-a/3", Started: t, Ended: &t, Outcome: string(st),
				Logs: []abi.LogLine{{Time: t, Level: "info", Message: "rendering template welcome/fr"}, {Time: t, Level: "info", Message: "smtp: 250 queued as 4F2A1"}}}}
		}
		if st == abi.StateFailed {
			j.Result = nil
			j.ExcName, j.ExcMessage, j.ExcInfo = "SMTPError", "550 mailbox unavailable", "SMTPError: 550 mailbox unavailable\n  at mailer.send (mailer.wasm+0x1f3a)\n  at deliver (mailer.wasm+0x0c21)"
		}
		m.jobs[u] = j
		return j
	}
	states := []abi.State{abi.StateDone, abi.StateDone, abi.StatePending, abi.StateFailed, abi.StateStarted, abi.StateDone, abi.StateEnqueued, abi.StateCancelled}
	fns := [][3]string{{"mailer.send", "Send the welcome mail", "root.mail"}, {"invoice.render", "Render invoice PDF", "root.invoices"},
		{"sync.partner", "Sync partner to CRM", "root.sync"}, {"report.daily", "Daily sales report", "root"}}
	for i := 0; i < 40; i++ {
		f := fns[i%len(fns)]
		add(f[0], f[1], f[2], states[i%len(states)], time.Duration(40-i)*97*time.Second, "")
	}
	g := "9d1e7c3a-0000-4000-8000-00000000graph"
	a := add("import.fetch", "Fetch CSV", "root.import", abi.StateDone, 300*time.Second, g)
	b1 := add("import.parse", "Parse chunk 1", "root.import", abi.StateDone, 299*time.Second, g, a.UUID)
	b2 := add("import.parse", "Parse chunk 2", "root.import", abi.StateFailed, 299*time.Second, g, a.UUID)
	b3 := add("import.parse", "Parse chunk 3", "root.import", abi.StateStarted, 299*time.Second, g, a.UUID)
	add("import.commit", "Commit import", "root.import", abi.StateWaitDependencies, 298*time.Second, g, b1.UUID, b2.UUID, b3.UUID)
	m.channels = []abi.ChannelStatus{
		{Name: "root", Capacity: 8, Configured: true, Running: 5, Pending: 12},
		{Name: "root.mail", Capacity: 4, Configured: true, Running: 3, Pending: 9, Failed: 1, Throttle: 0.5},
		{Name: "root.invoices", Capacity: 2, Configured: true, Running: 1, Pending: 3},
		{Name: "root.sync", Capacity: 1, Sequential: true, Configured: true, Failed: 1, Blocked: true, Pending: 4},
		{Name: "root.import", Capacity: 2, Configured: true, Running: 1, Paused: false},
		{Name: "root.import.big", Configured: false},
		{Name: "root.reports", Capacity: 1, Configured: true, Paused: true, Pending: 2},
	}
	m.plugins = []map[string]any{
		{"name": "mailer", "sha256": "3b9c0f2e8d7a41c6b5e4f3a2918776655443322110ffeeddccbbaa9988776655", "size": 183211, "exports": []string{"send", "bounce"},
			"functions": map[string]any{"send": map[string]any{"channel": "root.mail", "max_retries": 3, "timeout": "30s", "related_action": "https://erp.example/web#model={model_name}&id={context.records.0}", "retry_pattern": map[string]any{"1": 10, "5": 60}}}},
		{"name": "import", "sha256": "77e1aa9c0f2e8d7a41c6b5e4f3a2918776655443322110ffeeddccbbaa998877", "size": 402113, "exports": []string{"fetch", "parse", "commit"},
			"functions": map[string]any{"parse": map[string]any{"channel": "root.import", "related_action": "https://erp.example/web#model={model_name}&id={context.records.0}"}}},
		{"name": "invoice", "sha256": "aa9c0f2e8d7a41c6b5e4f3a2918776655443322110ffeeddccbbaa9988776601", "size": 1203211, "exports": []string{"render"}},
		{"name": "broken", "size": 2011, "error": "compile: invalid magic number"},
	}
	return m
}

// TestDevMockServer serves the UI over a mock API for manual work:
// WASMQ_UI_MOCK=1 go test ./e2e -run TestDevMockServer -timeout 1h
func TestDevMockServer(t *testing.T) {
	if os.Getenv("WASMQ_UI_MOCK") == "" {
		t.Skip("set WASMQ_UI_MOCK=1 to serve the UI over a mock API on 127.0.0.1:8099")
	}
	t.Log("http://127.0.0.1:8099/")
	_ = http.ListenAndServe("127.0.0.1:8099", seedMock().handler())
}
