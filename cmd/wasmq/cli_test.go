package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wasmq/wasmq/store/sqlite"
)

// TestNewcomerPathWithARealServer builds wasmq, starts `wasmq serve` as a
// process on the embedded store, and drives it with the client commands.
func TestNewcomerPathWithARealServer(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "wasmq")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	plugins, _ := filepath.Abs("../../plugins/enabled")
	cfg := filepath.Join(dir, "wasmq.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`[server]
listen = %q
[store]
path = %q
[runner]
channels = "root:2,mail:1:sequential"
usage_flush = "100ms"
[host]
plugins_dir = %q
cache_dir = %q
`, addr, filepath.Join(dir, "db", "wasmq.db"), plugins, filepath.Join(dir, "cache"))), 0o644)

	wasmq := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "WASMQ_URL=http://"+addr)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := wasmq("config", "check", cfg); err != nil || !strings.Contains(out, "OK") {
		t.Fatalf("config check: %v %s", err, out)
	}
	if out, err := wasmq("migrate", "--config", cfg); err != nil || !strings.Contains(out, fmt.Sprintf("%d migration(s) applied", sqlite.SchemaVersion)) {
		t.Fatalf("migrate: %v %s", err, out)
	}
	if out, err := wasmq("migrate", "--config", cfg); err != nil || !strings.Contains(out, "0 migration(s) applied") {
		t.Fatalf("migrate twice: %v %s", err, out)
	}

	srv := exec.Command(bin, "serve", "--config", cfg)
	logf, _ := os.Create(filepath.Join(dir, "serve.log"))
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		srv.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- srv.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve did not stop cleanly on SIGTERM: %v", err)
			}
		case <-time.After(15 * time.Second):
			srv.Process.Kill()
			t.Error("serve did not stop within 15s of SIGTERM")
		}
	}()
	// A first start compiles every plugin (no cache yet): the Go example
	// alone took 15 s on a loaded 2-core machine.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "serve.log"))
			t.Fatalf("server did not listen: %s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}

	out, err := wasmq("enqueue", "testkit.echo", "--args", "[1,2]")
	if err != nil {
		t.Fatalf("enqueue: %v %s", err, out)
	}
	id := strings.TrimSpace(out)
	for {
		out, err = wasmq("jobs", "show", id)
		if err == nil && strings.Contains(out, "state:        done") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs show: %v %s", err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(out, `"args":[1,2]`) {
		t.Fatalf("result missing from jobs show: %s", out)
	}
	if !strings.Contains(out, "usage:") || !strings.Contains(out, "fuel ") {
		t.Fatalf("the attempt's usage missing from jobs show: %s", out)
	}
	// The usage aggregate has the job within a flush.
	for {
		out, err = wasmq("usage", "--from", "1h")
		if err == nil && strings.Contains(out, "testkit.echo") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("usage: %v %s", err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out, err := wasmq("usage", "--from", "yesterday"); err == nil || !strings.Contains(out, "--from") {
		t.Fatalf("usage with a bad --from: %v %s", err, out)
	}

	// Every client command's --json output parses.
	for _, args := range [][]string{
		{"enqueue", "testkit.echo", "--kwargs", `{"a":1}`, "--priority", "3", "--channel", "mail", "--eta", "60", "--json"},
		{"jobs", "list", "--json"},
		{"jobs", "show", id, "--json"},
		{"usage", "--json"},
		{"channels", "--json"},
		{"plugins", "list", "--json"},
		{"run", "testkit.echo", "--args", "[3]", "--config", cfg, "--json"},
	} {
		out, err := wasmq(args...)
		if err != nil {
			t.Fatalf("%v: %v %s", args, err, out)
		}
		var v any
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("%v: --json output does not parse: %v\n%s", args, err, out)
		}
	}
	var listed struct {
		Jobs []struct{ UUID, State, Channel string } `json:"jobs"`
	}
	out, _ = wasmq("jobs", "list", "--state", "pending", "--json")
	json.Unmarshal([]byte(out), &listed)
	if len(listed.Jobs) != 1 || listed.Jobs[0].Channel != "root.mail" {
		t.Fatalf("pending jobs: %s", out)
	}
	if out, err := wasmq("jobs", "cancel", listed.Jobs[0].UUID, "--json"); err != nil || !strings.Contains(out, `"state":"cancelled"`) {
		t.Fatalf("cancel: %v %s", err, out)
	}
	// Errors: one line, non-zero exit.
	out, err = wasmq("jobs", "cancel", listed.Jobs[0].UUID)
	if err == nil || !strings.Contains(out, "409") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("cancel twice: %v %q", err, out)
	}
	if out, err := wasmq("enqueue", "testkit.nope"); err == nil || !strings.Contains(out, "echo") {
		t.Fatalf("unknown function: %v %q", err, out)
	}
	if out, err := wasmq("plugins", "check", "../../plugins/examples/testkit/testkit.wasm"); err != nil || !strings.Contains(out, "OK") {
		t.Fatalf("plugins check: %v %s", err, out)
	}
	bad := filepath.Join(dir, "bad.wasm")
	os.WriteFile(bad, []byte("nope"), 0o644)
	if out, err := wasmq("plugins", "check", bad); err == nil || !strings.Contains(out, "bad.wasm") {
		t.Fatalf("plugins check of garbage: %v %s", err, out)
	}
}
