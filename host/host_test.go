package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/wasmq/wasmq/abi"
)

// testCacheDir is shared by every test host so a module is compiled once
// per machine, not once per test (the Go example plugin takes ~1.3 s).
var testCacheDir = filepath.Join(os.TempDir(), "wasmq-host-test-cache")

// testTimeout is the tests' default timeout: long enough that a guest
// meant to hit a memory or table limit reaches it first, also under the
// race detector (ten times slower) on a loaded machine. Tests of the
// timeout itself set their own.
var testTimeout = map[bool]time.Duration{false: 2 * time.Second, true: 10 * time.Second}[raceEnabled]

func testConfig(dir string) Config {
	return Config{
		PluginsDir:  dir,
		CacheDir:    testCacheDir,
		Timeout:     abi.Duration(testTimeout),
		MemoryLimit: 16 << 20,
		MaxInput:    64 << 10,
		MaxOutput:   1 << 20,
	}
}

func newTestHost(t testing.TB, cfg Config, opts ...Option) *Host {
	t.Helper()
	h, err := New(cfg, zerolog.Nop(), append([]Option{withoutReload()}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h
}

func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t testing.TB, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// kitHost is a host whose plugins_dir holds testdata/kit.wasm as "kit".
func kitHost(t testing.TB, sidecar string, opts ...Option) (*Host, string) {
	t.Helper()
	dir := t.TempDir()
	copyFile(t, "testdata/kit.wasm", filepath.Join(dir, "kit.wasm"))
	if sidecar != "" {
		writeFile(t, filepath.Join(dir, "kit.toml"), sidecar)
	}
	return newTestHost(t, testConfig(dir), opts...), dir
}

var jobSeq atomic.Int64

func job(fn string) *abi.Job {
	return &abi.Job{
		UUID:   fmt.Sprintf("00000000-0000-4000-8000-%012d", jobSeq.Add(1)),
		Tenant: "acme", Func: fn, Channel: "root", Priority: 10, MaxRetries: 5, Retry: 1, Attempt: 1,
		Args: json.RawMessage(`[1,"two"]`), Kwargs: json.RawMessage(`{"k":true}`),
		Context: json.RawMessage(`{"user":"alice","records":[3,4],"lang":"fr"}`),
	}
}

func run(t testing.TB, h *Host, j *abi.Job) abi.Outcome {
	t.Helper()
	return h.Run(context.Background(), j)
}

func TestEchoReceivesTheInputDocument(t *testing.T) {
	h, _ := kitHost(t, "")
	j := job("kit.echo")
	j.Retry, j.Attempt, j.MaxRetries = 2, 3, 7
	out := run(t, h, j)
	if out.Kind != abi.OutcomeDone {
		t.Fatalf("outcome %+v", out)
	}
	var doc struct {
		Args    []any          `json:"args"`
		Kwargs  map[string]any `json:"kwargs"`
		Context map[string]any `json:"context"`
	}
	if err := json.Unmarshal(out.Result, &doc); err != nil {
		t.Fatalf("result %s: %v", out.Result, err)
	}
	if len(doc.Args) != 2 || doc.Kwargs["k"] != true {
		t.Errorf("args/kwargs lost: %s", out.Result)
	}
	want := map[string]any{"job_uuid": j.UUID, "tenant": "acme", "user": "alice", "channel": "root",
		"retry": 2.0, "attempt": 3.0, "max_retries": 7.0, "priority": 10.0, "lang": "fr", "model": ""}
	for k, v := range want {
		if doc.Context[k] != v {
			t.Errorf("context.%s = %v, want %v", k, doc.Context[k], v)
		}
	}
	if r, _ := doc.Context["records"].([]any); len(r) != 2 {
		t.Errorf("context.records = %v", doc.Context["records"])
	}
	dl, err := time.Parse(time.RFC3339Nano, doc.Context["deadline"].(string))
	if err != nil || dl.Before(time.Now()) || dl.After(time.Now().Add(testTimeout+time.Second)) {
		t.Errorf("context.deadline = %v (%v), want about now + %s", doc.Context["deadline"], err, testTimeout)
	}
	if out.PluginSHA256 != h.Modules("")[0].SHA256 || len(out.PluginSHA256) != 64 {
		t.Errorf("plugin_sha256 = %q", out.PluginSHA256)
	}
}

func TestOutcomesOfTheKit(t *testing.T) {
	h, _ := kitHost(t, "")
	cases := []struct {
		fn    string
		kind  abi.OutcomeKind
		exc   string
		check func(t *testing.T, o abi.Outcome)
	}{
		{"text", abi.OutcomeDone, "", func(t *testing.T, o abi.Outcome) {
			if string(o.Result) != `"boom"` {
				t.Errorf("non-JSON output must be stored as a JSON string, got %s", o.Result)
			}
		}},
		{"version", abi.OutcomeDone, "", func(t *testing.T, o abi.Outcome) {
			if string(o.Result) != `"v1"` {
				t.Errorf("result %s", o.Result)
			}
		}},
		{"error", abi.OutcomeFailed, abi.ExcError, func(t *testing.T, o abi.Outcome) {
			if o.ExcMessage != "boom" {
				t.Errorf("exc_message %q, want the error_set text", o.ExcMessage)
			}
		}},
		{"retry", abi.OutcomeRetry, "", func(t *testing.T, o abi.Outcome) {
			if o.RetryAfter != 7*time.Second || !o.IgnoreRetry || o.Reason != "boom" {
				t.Errorf("retry %+v", o)
			}
		}},
		{"fail", abi.OutcomeFailed, abi.ExcFailed, func(t *testing.T, o abi.Outcome) {
			if o.ExcMessage != "boom" {
				t.Errorf("message %q", o.ExcMessage)
			}
		}},
		{"nothing", abi.OutcomeNothingToDo, "", func(t *testing.T, o abi.Outcome) {
			if o.Reason != "boom" {
				t.Errorf("reason %q", o.Reason)
			}
		}},
		{"control", abi.OutcomeRetry, "", func(t *testing.T, o abi.Outcome) {
			if o.RetryAfter != 7*time.Second || o.IgnoreRetry || o.Reason != "busy" {
				t.Errorf("control retry %+v", o)
			}
		}},
		{"logs", abi.OutcomeDone, "", func(t *testing.T, o abi.Outcome) {
			if len(o.Logs) != 2 || o.Logs[0].Level != "info" || o.Logs[1].Level != "warn" || o.Logs[1].Message != "boom" {
				t.Errorf("logs %+v", o.Logs)
			}
		}},
		{"now", abi.OutcomeDone, "", nil},
		{"enqueue", abi.OutcomeDone, "", func(t *testing.T, o abi.Outcome) {
			if !strings.Contains(string(o.Result), `"error"`) {
				t.Errorf("without an enqueuer the answer must be an error, got %s", o.Result)
			}
		}},
		{"trap", abi.OutcomeSandbox, abi.ExcTrap, func(t *testing.T, o abi.Outcome) {
			if !strings.Contains(o.ExcMessage, "unreachable") || !strings.Contains(o.ExcInfo, "wasm stack trace") {
				t.Errorf("trap message %q info %q", o.ExcMessage, o.ExcInfo)
			}
		}},
		{"exit", abi.OutcomeSandbox, abi.ExcExit, func(t *testing.T, o abi.Outcome) {
			if !strings.Contains(o.ExcMessage, "code 3") {
				t.Errorf("message %q", o.ExcMessage)
			}
		}},
		{"huge", abi.OutcomeSandbox, abi.ExcOutputTooLarge, nil},
		{"membomb", abi.OutcomeSandbox, abi.ExcMemoryLimit, nil},
		{"kernelbomb", abi.OutcomeSandbox, abi.ExcMemoryLimit, nil},
		{"missing", abi.OutcomeFailed, abi.ExcPluginNotFound, func(t *testing.T, o abi.Outcome) {
			if !strings.Contains(o.ExcMessage, "echo") {
				t.Errorf("message must list the exports: %q", o.ExcMessage)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.fn, func(t *testing.T) {
			o := run(t, h, job("kit."+c.fn))
			if o.Kind != c.kind || o.ExcName != c.exc {
				t.Fatalf("got %s %s %q, want %s %s", o.Kind, o.ExcName, o.ExcMessage, c.kind, c.exc)
			}
			if c.check != nil {
				c.check(t, o)
			}
		})
	}
}

// Hostile guests end with their sandbox failure within the timeout plus a
// margin, while the host keeps serving other jobs.
func TestHostileGuestsAreStoppedWhileOthersRun(t *testing.T) {
	h, _ := kitHost(t, `
[functions.loop]
timeout = "300ms"
[functions.recurse]
timeout = "300ms"
[functions.sleep]
timeout = "300ms"
[functions.membomb]
memory_limit = "8MiB"
`)
	cases := map[string]string{
		"loop": abi.ExcTimeout, "recurse": abi.ExcTimeout, "sleep": abi.ExcTimeout,
		"membomb": abi.ExcMemoryLimit, "trap": abi.ExcTrap, "exit": abi.ExcExit, "huge": abi.ExcOutputTooLarge,
	}
	stop := make(chan struct{})
	echoes := make(chan error, 1)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				if n == 0 {
					echoes <- errors.New("no echo job completed")
				}
				close(echoes)
				return
			default:
			}
			if o := run(t, h, job("kit.echo")); o.Kind != abi.OutcomeDone {
				echoes <- errors.New("echo failed: " + o.ExcMessage)
				close(echoes)
				return
			}
			n++
		}
	}()
	var wg sync.WaitGroup
	for fn, exc := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			o := run(t, h, job("kit."+fn))
			took := time.Since(start)
			if o.Kind != abi.OutcomeSandbox || o.ExcName != exc {
				t.Errorf("%s: got %s %s %q, want %s", fn, o.Kind, o.ExcName, o.ExcMessage, exc)
			}
			if took > 300*time.Millisecond+1500*time.Millisecond {
				t.Errorf("%s took %s, want within the timeout plus a margin", fn, took)
			}
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-echoes; err != nil {
		t.Error(err)
	}
}

func TestRetryOnTurnsTimeoutsIntoRetries(t *testing.T) {
	h, _ := kitHost(t, `
[functions.sleep]
timeout = "100ms"
retry_on = ["wasmq.Timeout"]
`)
	o := run(t, h, job("kit.sleep"))
	if o.Kind != abi.OutcomeRetry || o.ExcName != abi.ExcTimeout {
		t.Fatalf("got %+v", o)
	}
}

func TestOversizedInputIsAClearFailure(t *testing.T) {
	h, _ := kitHost(t, "")
	j := job("kit.echo")
	j.Args = json.RawMessage(`["` + strings.Repeat("x", 70<<10) + `"]`)
	o := run(t, h, j)
	if o.Kind != abi.OutcomeSandbox || o.ExcName != abi.ExcInputTooLarge {
		t.Fatalf("got %s %s", o.Kind, o.ExcName)
	}
}

func TestCallerCancelIsInterruptedNotTimeout(t *testing.T) {
	h, _ := kitHost(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	o := h.Run(ctx, job("kit.sleep"))
	if o.Kind != abi.OutcomeInterrupted {
		t.Fatalf("got %s %s", o.Kind, o.ExcName)
	}
}

// The countdown also watches the caller's context: a guest that never
// calls out (a loop, a recursion) is interrupted when the caller cancels.
func TestCallerCancelInterruptsAGuestThatNeverCallsOut(t *testing.T) {
	h, _ := kitHost(t, "")
	for _, fn := range []string{"kit.loop", "kit.recurse"} {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		o := h.Run(ctx, job(fn))
		if o.Kind != abi.OutcomeInterrupted {
			t.Errorf("%s: got %s %s", fn, o.Kind, o.ExcName)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("%s: interrupted after %s, want about 100ms", fn, took)
		}
		cancel()
	}
}

// A start function or an _initialize that never ends is stopped at the
// job's deadline, like the call itself.
func TestEndlessInitializationIsATimeout(t *testing.T) {
	dir := t.TempDir()
	for _, m := range []string{"startloop", "initloop"} {
		copyFile(t, "testdata/"+m+".wasm", filepath.Join(dir, m+".wasm"))
		writeFile(t, filepath.Join(dir, m+".toml"), "[functions.run]\ntimeout = \"200ms\"\n")
	}
	for _, iso := range []string{IsolationFresh, IsolationPooled} {
		cfg := testConfig(dir)
		cfg.Isolation = iso
		h := newTestHost(t, cfg)
		for _, m := range []string{"startloop", "initloop"} {
			start := time.Now()
			if o := run(t, h, job(m+".run")); o.Kind != abi.OutcomeSandbox || o.ExcName != abi.ExcTimeout {
				t.Errorf("%s %s: got %s %s %q", iso, m, o.Kind, o.ExcName, o.ExcMessage)
			}
			if took := time.Since(start); took > time.Second {
				t.Errorf("%s %s: stopped after %s, want about 200ms", iso, m, took)
			}
		}
	}
}

func TestEnqueuerReceivesChildRequests(t *testing.T) {
	var got []byte
	var parent string
	h, _ := kitHost(t, "[config]\nchild = '{\"func\":\"kit.echo\"}'\n", WithEnqueuer(func(ctx context.Context, p *abi.Job, req []byte) (string, error) {
		got, parent = req, p.UUID
		return "child-uuid", nil
	}))
	j := job("kit.enqueue")
	o := run(t, h, j)
	if o.Kind != abi.OutcomeDone || string(o.Result) != `{"uuid":"child-uuid"}` {
		t.Fatalf("got %s %s", o.Kind, o.Result)
	}
	if string(got) != `{"func":"kit.echo"}` || parent != j.UUID {
		t.Errorf("enqueuer got %s from %s", got, parent)
	}
}

func TestPooledInstancesAreReusedPerTenantOnly(t *testing.T) {
	h, _ := kitHost(t, "")
	a, b := job("kit.echo"), job("kit.echo")
	b.Tenant = "other"
	for i := 0; i < 3; i++ {
		run(t, h, a)
		run(t, h, b)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	code := h.mods[modKey{"", "kit"}].code
	if len(code.pools["acme"]) != 1 || len(code.pools["other"]) != 1 {
		t.Fatalf("pools %v", code.pools)
	}
	if code.pools["acme"][0] == code.pools["other"][0] || code.pools["acme"][0].uses != 3 {
		t.Errorf("instance shared across tenants or not reused")
	}
}

func TestFreshIsolationKeepsNoInstance(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, "testdata/kit.wasm", filepath.Join(dir, "kit.wasm"))
	cfg := testConfig(dir)
	cfg.TenantIsolation = map[string]string{"acme": IsolationFresh}
	h := newTestHost(t, cfg)
	if o := run(t, h, job("kit.echo")); o.Kind != abi.OutcomeDone {
		t.Fatal(o)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := len(h.mods[modKey{"", "kit"}].code.pools["acme"]); n != 0 {
		t.Errorf("%d pooled instances in fresh mode", n)
	}
}

func TestSandboxFailureDiscardsTheInstance(t *testing.T) {
	h, _ := kitHost(t, "")
	run(t, h, job("kit.echo"))
	run(t, h, job("kit.trap"))
	h.mu.Lock()
	n := len(h.mods[modKey{"", "kit"}].code.pools["acme"])
	h.mu.Unlock()
	if n != 0 {
		t.Fatalf("a trapped instance went back to the pool")
	}
}

func testLogger(t testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
}

func TestLogLinesAreCappedPerAttempt(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, "testdata/kit.wasm", filepath.Join(dir, "kit.wasm"))
	cfg := testConfig(dir)
	cfg.MaxLogLines = 1
	h := newTestHost(t, cfg)
	o := run(t, h, job("kit.logs"))
	if len(o.Logs) != 2 || o.Logs[0].Message != "boom" || !strings.Contains(o.Logs[1].Message, "1 more log lines dropped") {
		t.Fatalf("logs %+v", o.Logs)
	}
}

func TestInstancesAreRecycledAfterMaxUses(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, "testdata/kit.wasm", filepath.Join(dir, "kit.wasm"))
	cfg := testConfig(dir)
	cfg.MaxUses = 2
	h := newTestHost(t, cfg)
	pooled := func() *instance {
		h.mu.Lock()
		defer h.mu.Unlock()
		if p := h.mods[modKey{"", "kit"}].code.pools["acme"]; len(p) == 1 {
			return p[0]
		}
		return nil
	}
	run(t, h, job("kit.echo"))
	first := pooled()
	run(t, h, job("kit.echo"))
	if first == nil || pooled() != nil {
		t.Fatalf("the instance was not dropped after its second use")
	}
	run(t, h, job("kit.echo"))
	if p := pooled(); p == nil || p == first {
		t.Fatalf("no fresh instance after recycling")
	}
	h.SetPoolSize(0)
	run(t, h, job("kit.echo"))
}

func TestInputDocumentEscapesStrings(t *testing.T) {
	j := job("kit.echo")
	j.UUID, j.Tenant, j.UserID = "a\"b\\c\n\x01", "t\u00e9", "\xff"
	b, err := appendInputDocument(nil, j, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Context map[string]any }
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if doc.Context["job_uuid"] != j.UUID || doc.Context["tenant"] != j.Tenant || doc.Context["user"] != "\ufffd" {
		t.Errorf("context %v", doc.Context)
	}
}

func TestCloseInterruptsJobsStillRunningAfterItsDeadline(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, "testdata/kit.wasm", filepath.Join(dir, "kit.wasm"))
	h, err := New(testConfig(dir), testLogger(t), withoutReload())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan abi.Outcome, 1)
	go func() { done <- h.Run(context.Background(), job("kit.sleep")) }()
	waitFor(t, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.mods[modKey{"", "kit"}].code.active == 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := h.Close(ctx); err == nil {
		t.Errorf("Close returned nil while a job outlived its context")
	}
	if o := <-done; o.Kind != abi.OutcomeInterrupted {
		t.Errorf("got %s %s %q", o.Kind, o.ExcName, o.ExcMessage)
	}
	if h.Ready() {
		t.Errorf("a closed host is ready")
	}
}

// A module whose memory starts over the limit is refused at load (it could
// never run), never instantiated; limits_test.go has the other cases.
func TestHugeInitialMemoryIsRefusedNotAllocated(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, "testdata/bigmem.wasm", filepath.Join(dir, "bigmem.wasm"))
	copyFile(t, "testdata/bigmem_exported.wasm", filepath.Join(dir, "bigmem_exported.wasm"))
	copyFile(t, "testdata/kit.wasm", filepath.Join(dir, "kit.wasm"))
	h := newTestHost(t, testConfig(dir))
	for _, m := range []string{"bigmem", "bigmem_exported"} {
		if o := run(t, h, job(m+".run")); o.Kind != abi.OutcomeFailed || o.ExcName != abi.ExcPluginInvalid ||
			!strings.Contains(o.ExcMessage, "over host.memory_limit") {
			t.Errorf("%s: got %s %s %q", m, o.Kind, o.ExcName, o.ExcMessage)
		}
	}
	if o := run(t, h, job("kit.echo")); o.Kind != abi.OutcomeDone {
		t.Errorf("the host stopped serving: %+v", o)
	}
}

// Linear memories are recycled between instances: a fresh instance must
// still see only zeroes, in its initial pages and in those it grows.
func TestFreshInstancesStartWithZeroedMemory(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, "testdata/scribble.wasm", filepath.Join(dir, "scribble.wasm"))
	cfg := testConfig(dir)
	cfg.Isolation = IsolationFresh
	h := newTestHost(t, cfg)
	for i := 0; i < 20; i++ {
		if o := run(t, h, job("scribble.run")); o.Kind != abi.OutcomeDone {
			t.Fatalf("run %d: %s %s %q", i, o.Kind, o.ExcName, o.ExcMessage)
		}
	}
}

func TestConcurrentJobsNeverMixOutputs(t *testing.T) {
	h, _ := kitHost(t, "")
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				j := job("kit.echo")
				j.Tenant = []string{"acme", "other"}[g%2]
				j.Args = json.RawMessage(fmt.Sprintf(`[%d,%d]`, g, i))
				o := h.Run(context.Background(), j)
				var doc struct {
					Args    []int          `json:"args"`
					Context map[string]any `json:"context"`
				}
				if err := json.Unmarshal(o.Result, &doc); err != nil || len(doc.Args) != 2 || doc.Args[0] != g || doc.Args[1] != i ||
					doc.Context["job_uuid"] != j.UUID || doc.Context["tenant"] != j.Tenant {
					t.Errorf("job %s got %s (%v)", j.UUID, o.Result, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// A host function whose answer does not fit the kernel arena ends the
// attempt: the offset 0 it returned told the guest "no value", and kit's
// enqueue then sent an empty request as its child.
func TestAnAnswerThatDoesNotFitEndsTheAttempt(t *testing.T) {
	called := false
	big := strings.Repeat("x", 64<<10) // the largest config value, over a kernel arena of 64 KiB with the input in it
	h, _ := kitHost(t, "[config]\nchild = '"+big+"'\n[functions.enqueue]\nmemory_limit = \"64KiB\"\n",
		WithEnqueuer(func(ctx context.Context, p *abi.Job, req []byte) (string, error) {
			called = true
			return "child-uuid", nil
		}))
	o := run(t, h, job("kit.enqueue"))
	if o.Kind != abi.OutcomeSandbox || o.ExcName != abi.ExcMemoryLimit || !strings.Contains(o.ExcMessage, "config_get: its answer of 65536 bytes does not fit kernel memory") {
		t.Fatalf("got %s %s %q", o.Kind, o.ExcName, o.ExcMessage)
	}
	if called {
		t.Error("the guest went on without its config and enqueued a child")
	}
}
