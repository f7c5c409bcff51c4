package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSchedulesFromTheCommandLine drives `wasmq schedules` against a
// SQLite node: add, list, pause, run, resume, rm, the refusals, and an
// @every 1s schedule firing once per second on the embedded store.
func TestSchedulesFromTheCommandLine(t *testing.T) {
	bin := buildWasmq(t)
	n := startNodeWith(t, bin, filepath.Join(t.TempDir(), "wasmq.db"), "solo", "")
	wasmq := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "WASMQ_URL="+n.url, "WASMQ_TOKEN=")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	must := func(want string, args ...string) string {
		t.Helper()
		out, err := wasmq(args...)
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("wasmq %v: %v\n%s(want %q)", args, err, out, want)
		}
		return out
	}
	must("nightly", "schedules", "add", "nightly", "0 3 * * *", "testkit.echo", "--timezone", "Europe/Brussels", "--args", `["x"]`, "--priority", "5")
	must("Europe/Brussels", "schedules", "list")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"schedules", "add", "bad", "0 3 * *", "testkit.echo"}, "cron"},
		{[]string{"schedules", "add", "bad", "@daily", "testkit.nope"}, "func"},
		{[]string{"schedules", "add", "bad", "@daily", "testkit.echo", "--timezone", "Moon/Base"}, "timezone"},
		{[]string{"schedules", "add", "nightly", "@daily", "testkit.echo"}, "409"},
		{[]string{"schedules", "pause", "ghost"}, "404"},
		{[]string{"schedules", "explode", "nightly"}, "usage"},
	} {
		out, err := wasmq(c.args...)
		if err == nil || !strings.Contains(out, c.want) || strings.Count(strings.TrimSpace(out), "\n") > 3 {
			t.Errorf("wasmq %v: %v %q, want a failure mentioning %q", c.args, err, out, c.want)
		}
	}
	must("paused", "schedules", "pause", "nightly")
	must("testkit.echo(\"x\")", "schedules", "run", "nightly")
	must("active", "schedules", "resume", "nightly")
	must("deleted nightly", "schedules", "rm", "nightly")

	must("tick", "schedules", "add", "tick", "@every 1s", "testkit.echo")
	deadline := time.Now().Add(15 * time.Second)
	for {
		due := dueTimes(t, n.url)
		if len(due) >= 3 {
			for i := 1; i < len(due); i++ {
				if due[i].Sub(due[i-1]) != time.Second {
					t.Fatalf("due times not one second apart: %v", due)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d jobs of an @every 1s schedule after 15 s", len(due))
		}
		time.Sleep(100 * time.Millisecond)
	}
	must("paused", "schedules", "pause", "tick")
	var listed []map[string]any
	json.Unmarshal([]byte(must("tick", "schedules", "list", "--json")), &listed)
	if len(listed) != 1 || listed[0]["last_job"] == nil {
		t.Fatalf("schedules list --json: %v", listed)
	}
}
