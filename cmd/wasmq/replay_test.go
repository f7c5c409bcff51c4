package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/host"
)

const flakyDir = "../../plugins/examples/replay"

// recordedFlaky runs flaky.quote against a quote service in an outage, on
// a host allowed to reach it, and returns the failed attempt's record.
func recordedFlaky(t *testing.T) *abi.Record {
	t.Helper()
	quotes := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "outage") }))
	defer quotes.Close()
	dir := t.TempDir()
	wasm, err := os.ReadFile(filepath.Join(flakyDir, "flaky.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "flaky.wasm"), wasm, 0o644)
	os.WriteFile(filepath.Join(dir, "flaky.toml"), []byte(fmt.Sprintf("[functions.quote]\nallowed_hosts = [%q]\n", strings.TrimPrefix(quotes.URL, "http://"))), 0o644)
	h, err := host.New(host.Config{PluginsDir: dir, CacheDir: filepath.Join(dir, "cache")}, zerolog.Nop(), host.WithAllowLoopback())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	out := h.Run(context.Background(), &abi.Job{UUID: "6f1c1a3e-8c43-4c0e-9d53-00000000000a", Tenant: "default", Func: "flaky.quote",
		Attempt: 1, Args: json.RawMessage(fmt.Sprintf("[%q]", quotes.URL+"/quote"))})
	if out.Kind != abi.OutcomeFailed || out.Record == nil {
		t.Fatalf("recorded attempt: %+v", out)
	}
	return out.Record
}

// serveRecord answers the two record routes of the API for rec.
func serveRecord(t *testing.T, rec *abi.Record) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	base := "/v1/jobs/" + rec.JobUUID + "/attempts/1/record"
	mux.HandleFunc("GET "+base, func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(rec) })
	mux.HandleFunc("GET "+base+"/module", func(w http.ResponseWriter, r *http.Request) { w.Write(rec.Wasm) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func replayExit(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	err := run(append([]string{"replay"}, args...), &out)
	var ex exitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ex):
		return out.String(), int(ex)
	}
	t.Fatalf("replay %v: %v", args, err)
	return "", 0
}

func TestReplayExitsZeroWhenTheAttemptEndsAsRecordedAndOneWhenNot(t *testing.T) {
	rec := recordedFlaky(t)
	srv := serveRecord(t, rec)
	id := rec.JobUUID

	out, code := replayExit(t, id, "--attempt", "1", "--url", srv.URL)
	if code != 0 || !strings.Contains(out, "same outcome") || !strings.Contains(out, rec.Outcome.ExcMessage[:60]) {
		t.Fatalf("the recorded module: exit %d\n%s", code, out)
	}
	out, code = replayExit(t, id, "--attempt", "1", "--url", srv.URL, "--plugin", filepath.Join(flakyDir, "flaky_fixed.wasm"), "--json")
	var res struct {
		Same     bool        `json:"same"`
		Replayed abi.Outcome `json:"replayed"`
	}
	if code != 1 || json.Unmarshal([]byte(out), &res) != nil || res.Same || res.Replayed.Kind != abi.OutcomeDone {
		t.Fatalf("the fixed build: exit %d\n%s", code, out)
	}

	// The input asks another URL: the request is not on the tape.
	rec.Input = bytes.Replace(rec.Input, []byte("/quote"), []byte("/other"), 1)
	out, code = replayExit(t, id, "--attempt", "1", "--url", srv.URL)
	if code != 1 || !strings.Contains(out, "first divergence") || !strings.Contains(out, "/other") || !strings.Contains(out, abi.ExcReplayDiverged) {
		t.Fatalf("a diverging replay: exit %d\n%s", code, out)
	}
	for _, bad := range [][]string{{}, {"not-a-uuid"}, {id, "--attempt", "-1"}, {id, "--attempt", "2", "--url", srv.URL}} {
		if _, code := replayExit(t, append(bad, "--url", srv.URL)...); code != 2 {
			t.Errorf("replay %v: exit %d, want 2", bad, code)
		}
	}
}

// TestReplayThroughARealServer: a real `wasmq serve` records the failed
// attempt; the plugin file is removed and the node reloads; `wasmq
// replay` still runs the attempt from the record and its kept module.
func TestReplayThroughARealServer(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "wasmq")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	plugins := filepath.Join(dir, "plugins")
	os.MkdirAll(plugins, 0o755)
	wasm, err := os.ReadFile(filepath.Join(flakyDir, "flaky.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(plugins, "flaky.wasm"), wasm, 0o644)
	kit, err := os.ReadFile("../../plugins/examples/testkit/testkit.wasm")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(plugins, "testkit.wasm"), kit, 0o644)
	// The node may not dial loopback: the request is refused at the dial,
	// an answer the tape keeps like any other.
	os.WriteFile(filepath.Join(plugins, "flaky.toml"), []byte("[functions.quote]\nallowed_hosts = [\"127.0.0.1:9\"]\n"), 0o644)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	cfg := filepath.Join(dir, "wasmq.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("[server]\nlisten = %q\n[store]\npath = %q\n[host]\nplugins_dir = %q\ncache_dir = %q\nreload_interval = \"100ms\"\n",
		addr, filepath.Join(dir, "db", "wasmq.db"), plugins, filepath.Join(dir, "cache"))), 0o644)
	wasmq := func(args ...string) (string, int) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "WASMQ_URL=http://"+addr)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	srv := exec.Command(bin, "serve", "--config", cfg)
	logf, _ := os.Create(filepath.Join(dir, "serve.log"))
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		srv.Process.Signal(syscall.SIGTERM)
		srv.Wait()
	}()
	deadline := time.Now().Add(60 * time.Second)
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for !ok() {
			if time.Now().After(deadline) {
				b, _ := os.ReadFile(filepath.Join(dir, "serve.log"))
				t.Fatalf("%s: %s", what, b)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("ready", func() bool {
		res, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			res.Body.Close()
		}
		return err == nil && res.StatusCode == 200
	})
	out, code := wasmq("enqueue", "flaky.quote", "--args", `["http://127.0.0.1:9/quote"]`, "--max-retries", "0")
	if code != 0 {
		t.Fatalf("enqueue: %d %s", code, out)
	}
	id := strings.TrimSpace(out)
	waitFor("the job fails", func() bool { out, _ := wasmq("jobs", "show", id); return strings.Contains(out, "failed") })

	os.Remove(filepath.Join(plugins, "flaky.wasm"))
	waitFor("the plugin is gone", func() bool { out, _ := wasmq("plugins", "list"); return !strings.Contains(out, "flaky") })

	out, code = wasmq("replay", id)
	if code != 0 || !strings.Contains(out, "same outcome") || !strings.Contains(out, "refusing to dial") {
		t.Fatalf("replay of a removed plugin's record: exit %d\n%s", code, out)
	}
	if out, code = wasmq("replay", id, "--plugin", filepath.Join(flakyDir, "flaky_fixed.wasm")); code != 0 {
		t.Fatalf("the fixed build, refused the same dial from the tape: exit %d\n%s", code, out)
	}
	done, _ := wasmq("enqueue", "testkit.echo")
	done = strings.TrimSpace(done)
	waitFor("echo done", func() bool { out, _ := wasmq("jobs", "show", done); return strings.Contains(out, "done") })
	if out, code := wasmq("replay", done); code != 2 || !strings.Contains(out, "404") {
		t.Fatalf("a done job under the default policy has no record: exit %d\n%s", code, out)
	}
}
