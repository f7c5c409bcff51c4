package host

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/wasmq/wasmq/abi"
)

const (
	flakyWasm = examplesDir + "/replay/flaky.wasm"
	fixedWasm = examplesDir + "/replay/flaky_fixed.wasm"
)

// quoteServer answers "outage" and counts the requests it got.
func quoteServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("X-Seen-Nonce", r.Header.Get("X-Nonce"))
		fmt.Fprint(w, "outage\n")
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// flakyHost serves flaky.wasm to tenant acme, allowed to reach srv, with
// the given sidecar record policy ("" for none) and host config changes.
func flakyHost(t *testing.T, srv *httptest.Server, record string, change func(*Config)) (*Host, string) {
	t.Helper()
	dir := t.TempDir()
	copyFile(t, flakyWasm, filepath.Join(dir, "flaky.wasm"))
	side := fmt.Sprintf("[functions.quote]\nallowed_hosts = [%q]\n", strings.TrimPrefix(srv.URL, "http://"))
	if record != "" {
		side += fmt.Sprintf("record = %q\n", record)
	}
	if err := os.WriteFile(filepath.Join(dir, "flaky.toml"), []byte(side), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(dir)
	cfg.MemoryLimit = 256 << 20 // a Go plugin starts at several MiB
	if change != nil {
		change(&cfg)
	}
	return newTestHost(t, cfg, WithAllowLoopback()), dir
}

func quoteJob(srv *httptest.Server) *abi.Job {
	j := job("flaky.quote")
	j.Args = json.RawMessage(fmt.Sprintf("[%q]", srv.URL+"/quote"))
	return j
}

// replayHost is what `wasmq replay` runs: no plugins, no loopback.
func replayHost(t *testing.T) *Host {
	t.Helper()
	cfg := testConfig(t.TempDir())
	cfg.MemoryLimit = 256 << 20
	return newTestHost(t, cfg)
}

func tapeFns(tape []abi.TapeEntry) []string {
	var out []string
	for _, e := range tape {
		if e.Fn != abi.TapeNanotime {
			out = append(out, e.Fn)
		}
	}
	return out
}

func TestAFailedAttemptIsReplayedExactlyWithoutNetwork(t *testing.T) {
	srv, hits := quoteServer(t)
	h, dir := flakyHost(t, srv, "", nil)
	out := run(t, h, quoteJob(srv))
	if out.Kind != abi.OutcomeFailed || out.ExcName != abi.ExcFailed || !strings.Contains(out.ExcMessage, `"outage"`) {
		t.Fatalf("attempt: %+v", out)
	}
	rec := out.Record
	if rec == nil {
		t.Fatal("a failed attempt under the default policy kept no record")
	}
	if !rec.Complete || rec.PluginSHA256 != out.PluginSHA256 || len(rec.Wasm) == 0 || !strings.Contains(string(rec.Input), `"deadline"`) {
		t.Fatalf("record: complete %v, sha %s (outcome's %s), %d wasm bytes, input %s", rec.Complete, rec.PluginSHA256, out.PluginSHA256, len(rec.Wasm), rec.Input)
	}
	want := []string{abi.TapeWalltime, abi.TapeRandom, abi.TapeHTTP, abi.HostNow}
	if got := tapeFns(rec.Tape); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("tape %v, want %v", got, want)
	}
	if !SameOutcome(rec.Outcome, out) {
		t.Fatalf("recorded outcome %+v differs from the attempt's %+v", rec.Outcome, out)
	}

	// The world is gone: the server, the plugin file. The record alone
	// replays, on a host that may not even reach loopback.
	srv.Close()
	os.Remove(filepath.Join(dir, "flaky.wasm"))
	h.Rescan()
	before := hits.Load()
	r, err := replayHost(t).Replay(context.Background(), rec, rec.Wasm, true)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Same(rec.Outcome, true) || r.Outcome.ExcMessage != out.ExcMessage {
		t.Fatalf("replay: %+v (divergence %v, %d unused), recorded %+v", r.Outcome, r.Divergence, r.Unused, rec.Outcome)
	}
	if r.Used != len(want) || hits.Load() != before {
		t.Fatalf("replay used %d tape entries and made %d requests", r.Used, hits.Load()-before)
	}
}

func TestAFixedBuildSucceedsOnTheRecordOfTheFailure(t *testing.T) {
	srv, _ := quoteServer(t)
	h, _ := flakyHost(t, srv, "", nil)
	rec := run(t, h, quoteJob(srv)).Record
	srv.Close()
	fixed, err := os.ReadFile(fixedWasm)
	if err != nil {
		t.Fatal(err)
	}
	rh := replayHost(t)
	if _, err := rh.Replay(context.Background(), rec, fixed, true); err == nil {
		t.Fatal("a strict replay ran a module whose digest is not the record's")
	}
	r, err := rh.Replay(context.Background(), rec, fixed, false)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Fallback bool   `json:"fallback"`
		Nonce    string `json:"nonce"`
	}
	if r.Outcome.Kind != abi.OutcomeDone || json.Unmarshal(r.Outcome.Result, &res) != nil || !res.Fallback {
		t.Fatalf("fixed build: %+v", r.Outcome)
	}
	// The nonce came from the tape: the failure's message shows it.
	if !strings.Contains(rec.Outcome.ExcMessage, "nonce="+res.Nonce) || r.Divergence != nil {
		t.Fatalf("nonce %s not the recorded one (%s); divergence %v", res.Nonce, rec.Outcome.ExcMessage, r.Divergence)
	}
}

func TestAReplayStopsAtTheFirstCallTheTapeDoesNotHold(t *testing.T) {
	srv, _ := quoteServer(t)
	h, _ := flakyHost(t, srv, "", nil)
	rec := run(t, h, quoteJob(srv)).Record
	srv.Close()
	// The same record, but asking another URL: the request is not the
	// recorded one.
	rec.Input = []byte(strings.Replace(string(rec.Input), "/quote", "/other", 1))
	r, err := replayHost(t).Replay(context.Background(), rec, rec.Wasm, true)
	if err != nil {
		t.Fatal(err)
	}
	// walltime, random, then the request: the third call.
	if r.Outcome.ExcName != abi.ExcReplayDiverged || r.Divergence == nil || r.Divergence.Index != 3 || r.Divergence.Got.Fn != abi.TapeHTTP ||
		!strings.Contains(r.Divergence.Got.Args, "/other") || r.Divergence.Want == nil || !strings.Contains(r.Divergence.Want.Args, "/quote") {
		t.Fatalf("replay: %+v, divergence %+v", r.Outcome, r.Divergence)
	}
	if r.Same(rec.Outcome, true) {
		t.Fatal("a diverged replay is the same")
	}

	// A new build past the divergence: HTTP is refused, not made.
	fixed, _ := os.ReadFile(fixedWasm)
	r, err = replayHost(t).Replay(context.Background(), rec, fixed, false)
	if err != nil {
		t.Fatal(err)
	}
	if r.Outcome.ExcName != abi.ExcHTTPDenied || !strings.Contains(r.Outcome.ExcMessage, "not on the tape") || r.Divergence == nil {
		t.Fatalf("new build off the tape: %+v, divergence %v", r.Outcome, r.Divergence)
	}
}

func TestTheRecordingPolicyChoosesWhichAttemptsKeepARecord(t *testing.T) {
	srv, _ := quoteServer(t)
	okSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "42") }))
	defer okSrv.Close()
	for _, tc := range []struct {
		name, sidecar, host, tenant string
		failed, done                bool
	}{
		{"default", "", "", "", true, false},
		{"function off", "off", "", "", false, false},
		{"function all", "all", "", "", true, true},
		{"host off", "", "off", "", false, false},
		{"tenant over function", "all", "", "off", false, false},
		{"tenant all", "off", "", "all", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, dir := flakyHost(t, srv, tc.sidecar, func(c *Config) {
				c.Record = tc.host
				if tc.tenant != "" {
					c.TenantRecord = map[string]string{"acme": tc.tenant}
				}
			})
			// okSrv too is allowed: the sidecar names both.
			side, _ := os.ReadFile(filepath.Join(dir, "flaky.toml"))
			side = []byte(strings.Replace(string(side), "allowed_hosts = [", fmt.Sprintf("allowed_hosts = [%q, ", strings.TrimPrefix(okSrv.URL, "http://")), 1))
			os.WriteFile(filepath.Join(dir, "flaky.toml"), side, 0o644)
			h.Rescan()
			failed := run(t, h, quoteJob(srv))
			done := run(t, h, quoteJob(okSrv))
			if failed.Kind != abi.OutcomeFailed || done.Kind != abi.OutcomeDone {
				t.Fatalf("outcomes %s %s %s", failed.Kind, failed.ExcMessage, done.Kind)
			}
			if (failed.Record != nil) != tc.failed || (done.Record != nil) != tc.done {
				t.Fatalf("records: failed %v, done %v; want %v, %v", failed.Record != nil, done.Record != nil, tc.failed, tc.done)
			}
		})
	}
}

func TestAnOversizedTapeMarksTheRecordIncompleteAndTheJobEndsAsItWould(t *testing.T) {
	srv, _ := quoteServer(t)
	h, _ := flakyHost(t, srv, "", func(c *Config) { c.RecordMaxBytes = 40 })
	out := run(t, h, quoteJob(srv))
	if out.Kind != abi.OutcomeFailed || out.ExcName != abi.ExcFailed || !strings.Contains(out.ExcMessage, `"outage"`) {
		t.Fatalf("attempt: %+v", out)
	}
	rec := out.Record
	if rec == nil || rec.Complete || rec.Size-len(rec.Input) > 40 {
		t.Fatalf("record: %+v", rec)
	}
	for _, e := range rec.Tape {
		if e.Fn == abi.TapeHTTP {
			t.Fatal("the response is on a tape capped at 40 bytes")
		}
	}
	// Past the tape's end the replay is off the tape, not diverged: HTTP
	// is refused.
	srv.Close()
	r, err := replayHost(t).Replay(context.Background(), rec, rec.Wasm, true)
	if err != nil {
		t.Fatal(err)
	}
	if r.Divergence != nil || r.Outcome.ExcName != abi.ExcHTTPDenied {
		t.Fatalf("replay of an incomplete record: %+v, divergence %v", r.Outcome, r.Divergence)
	}
}

func TestARecordingPolicyOutsideTheThreeIsRefusedNamingTheKey(t *testing.T) {
	cfg := testConfig(t.TempDir()).WithDefaults()
	cfg.Record = "sometimes"
	if err := cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), "host.record:") {
		t.Fatalf("host.record: %v", err)
	}
	cfg.Record, cfg.TenantRecord = "", map[string]string{"acme": "never"}
	if err := cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), "host.tenant_record.acme:") {
		t.Fatalf("tenant: %v", err)
	}
	if _, err := parseSidecar("flaky.toml", []byte("[functions.quote]\nrecord = \"most\"\n")); err == nil || !strings.Contains(err.Error(), "functions.quote.record:") {
		t.Fatalf("sidecar: %v", err)
	}
}

// A tenant's failing attempts keep their records within host.record_rate
// and record_burst; past them the attempt goes on without its record and
// says so in its log, and another tenant's records are kept as before.
func TestRecordsAreKeptWithinTheTenantsRecordRate(t *testing.T) {
	srv, _ := quoteServer(t)
	h, _ := flakyHost(t, srv, "", func(c *Config) {
		c.MaxInput, c.RecordMaxBytes = 1<<10, 1<<10
		c.RecordRate, c.RecordBurst = 1, 2<<10 // a byte a second: the burst alone
	})
	kept, dropped := 0, 0
	for range 10 {
		out := run(t, h, quoteJob(srv))
		if out.Kind != abi.OutcomeFailed {
			t.Fatalf("attempt: %s %s", out.Kind, out.ExcMessage)
		}
		if out.Record != nil {
			kept++
			continue
		}
		dropped++
		if last := out.Logs[len(out.Logs)-1]; last.Level != "warn" || !strings.Contains(last.Message, "was not kept: the tenant's records on this node are over host.record_rate (1 a second) and host.record_burst (2KiB at once)") {
			t.Errorf("an attempt without its record logs %+v", last)
		}
	}
	size := 0
	globex := quoteJob(srv)
	globex.Tenant = "globex"
	if first := run(t, h, globex); first.Record != nil {
		size = first.Record.Size
	} else {
		t.Error("globex's first record was not kept: acme's bucket is acme's")
	}
	// Each record is a few hundred bytes: the 2 KiB burst keeps the first
	// few, and nothing refills it within the test.
	if kept == 0 || dropped == 0 || kept*size > 2<<10 {
		t.Errorf("acme's 10 records: %d kept, %d dropped (%d bytes each); want the first within 2 KiB kept, the rest dropped", kept, dropped, size)
	}
	if n := h.Stats().RecordsDropped; n != uint64(dropped) {
		t.Errorf("Stats().RecordsDropped = %d, want %d", n, dropped)
	}
}

// A tenant's own record_rate and record_burst replace the node's for its
// records only: acme, under a burst too small for two records, keeps one
// and names its own key; globex, under the node's, keeps them all.
func TestATenantsRecordBudgetReplacesTheNodesForItsRecords(t *testing.T) {
	srv, _ := quoteServer(t)
	h, _ := flakyHost(t, srv, "", func(c *Config) {
		c.MaxInput, c.RecordMaxBytes = 1<<10, 1<<10
		c.RecordRate, c.RecordBurst = 1<<20, 64<<20
		c.TenantRecordBudget = map[string]RecordBudget{"acme": {Rate: 1, Burst: 2 << 10}}
	})
	count := func(tenant string) (kept int, last abi.LogLine) {
		for range 10 {
			j := quoteJob(srv)
			j.Tenant = tenant
			out := run(t, h, j)
			if out.Record != nil {
				kept++
				continue
			}
			last = out.Logs[len(out.Logs)-1]
		}
		return kept, last
	}
	kept, last := count("acme")
	if kept == 0 || kept == 10 {
		t.Errorf("acme kept %d of 10 records under its 2 KiB burst; want the first few", kept)
	}
	if !strings.Contains(last.Message, "over the tenant's record_rate (1 a second) and the tenant's record_burst (2KiB at once)") {
		t.Errorf("acme's attempt without its record logs %+v", last)
	}
	if kept, _ := count("globex"); kept != 10 {
		t.Errorf("globex kept %d of 10 records under the node's 64 MiB burst; want all", kept)
	}
}
