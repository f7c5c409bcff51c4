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

// The operator's commands against a real server: channels paused,
// resumed and set at run time; jobs listed by the new filters and acted
// on in bulk.
func TestOperatorCommands(t *testing.T) {
	bin := buildWasmq(t)
	n := startNodeWith(t, bin, filepath.Join(t.TempDir(), "wasmq.db"), "ops", "")
	wasmq := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "WASMQ_URL="+n.url)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := wasmq(args...)
		if err != nil {
			t.Fatalf("%v: %v %s", args, err, out)
		}
		return out
	}
	if out := must("channels", "pause", "mail"); !strings.Contains(out, "root.mail: paused") || !strings.Contains(out, "set at run time") {
		t.Fatalf("channels pause: %s", out)
	}
	id := strings.TrimSpace(must("enqueue", "testkit.echo", "--channel", "mail", "--context", `{"user":"alice","model":"sale.order"}`))
	time.Sleep(300 * time.Millisecond)
	if out := must("jobs", "show", id); !strings.Contains(out, "pending") {
		t.Fatalf("a job of a paused channel: %s", out)
	}
	if out := must("channels"); !strings.Contains(out, "paused (set at run time)") {
		t.Fatalf("channels: %s", out)
	}
	if out := must("channels", "set", "mail", "--capacity", "3", "--throttle", "0.5"); !strings.Contains(out, "capacity 3, throttle 0.5s") {
		t.Fatalf("channels set: %s", out)
	}
	must("channels", "set", "mail", "--throttle", "config")
	if out := must("channels", "resume", "mail"); !strings.Contains(out, "root.mail: running, capacity 3, throttle 0s") {
		t.Fatalf("channels resume: %s", out)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(must("jobs", "show", id), "done"); {
		if time.Now().After(deadline) {
			t.Fatal("the job of the resumed channel did not run")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Filters and bulk actions.
	for range 3 {
		must("enqueue", "testkit.echo", "--eta", "3600", "--args", `[42]`, "--context", `{"user":"bob"}`)
	}
	must("enqueue", "testkit.echo", "--eta", "3600", "--context", `{"user":"alice"}`)
	var page struct{ Jobs []map[string]any }
	json.Unmarshal([]byte(must("jobs", "list", "--user", "bob", "--args", "42", "--state", "pending", "--json")), &page)
	if len(page.Jobs) != 3 {
		t.Fatalf("jobs list --user bob --args 42: %d jobs", len(page.Jobs))
	}
	json.Unmarshal([]byte(must("jobs", "list", "--model", "sale.order", "--json")), &page)
	if len(page.Jobs) != 1 || page.Jobs[0]["uuid"] != id {
		t.Fatalf("jobs list --model: %v", page.Jobs)
	}
	if out := must("jobs", "cancel", "--all", "--user", "bob"); !strings.Contains(out, "3 jobs matched, 3 changed, 0 skipped") {
		t.Fatalf("bulk cancel: %s", out)
	}
	if out := must("jobs", "cancel", "--all", "--user", "bob"); !strings.Contains(out, "3 jobs matched, 0 changed, 3 skipped") {
		t.Fatalf("bulk cancel again: %s", out)
	}
	json.Unmarshal([]byte(must("jobs", "list", "--state", "pending", "--json")), &page)
	if len(page.Jobs) != 1 {
		t.Fatalf("alice's job should be the one still pending: %v", page.Jobs)
	}

	// Mistakes: one line naming what is wrong, non-zero exit.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"jobs", "list", "--created-after", "yesterday"}, "created_after"},
		{[]string{"jobs", "list", "--kwargs", "[1]"}, "kwargs"},
		{[]string{"jobs", "cancel", "--all", "--ended-before", "soon"}, "ended_before"},
		{[]string{"channels", "set", "mail"}, "usage"},
		{[]string{"channels", "set", "mail", "--capacity", "many"}, "--capacity"},
		{[]string{"channels", "set", "mail", "--capacity", "0"}, "capacity"},
		{[]string{"channels", "stop", "mail"}, "unknown channels command"},
	} {
		out, err := wasmq(c.args...)
		if err == nil || !strings.Contains(out, c.want) || strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Errorf("%v: %v %q, want one line naming %s", c.args, err, out, c.want)
		}
	}
}
