package testkit_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/host"
)

// newHost serves the committed testkit.wasm from a fresh plugins folder.
func newHost(t *testing.T) *host.Host {
	t.Helper()
	wasm, err := os.ReadFile("testkit.wasm")
	if err != nil {
		t.Fatalf("testkit.wasm must be committed next to its source (make plugins): %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "testkit.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	// The compilation cache goes to a temporary folder: the default,
	// data/wasm-cache, is relative and would land in the source tree.
	cfg := host.Config{PluginsDir: dir, CacheDir: t.TempDir(), Timeout: abi.Duration(2 * time.Second)}.WithDefaults()
	h, err := host.New(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })
	return h
}

func run(t *testing.T, h *host.Host, fn, args, kwargs string, attempt int) abi.Outcome {
	t.Helper()
	job := &abi.Job{UUID: "j-" + fn, Tenant: "default", Func: "testkit." + fn, Args: json.RawMessage(args),
		Kwargs: json.RawMessage(kwargs), Context: json.RawMessage(`{}`), Channel: "root", Retry: attempt, Attempt: attempt, MaxRetries: 5}
	return h.Run(context.Background(), job)
}

func TestTestkitFunctions(t *testing.T) {
	h := newHost(t)

	t.Run("echo returns its input byte for byte", func(t *testing.T) {
		o := run(t, h, "echo", `[1,"é"]`, `{"a":true}`, 1)
		if o.Kind != abi.OutcomeDone || !strings.Contains(string(o.Result), `"args":[1,"é"]`) {
			t.Fatalf("%+v", o)
		}
	})
	t.Run("sleep sleeps kwargs.ms and reports host timestamps", func(t *testing.T) {
		o := run(t, h, "sleep", `[]`, `{"ms":30}`, 1)
		var r struct{ StartedNS, EndedNS int64 }
		if o.Kind != abi.OutcomeDone {
			t.Fatalf("%+v", o)
		}
		var m map[string]any
		json.Unmarshal(o.Result, &m)
		r.StartedNS, r.EndedNS = int64(m["started_ns"].(float64)), int64(m["ended_ns"].(float64))
		if d := time.Duration(r.EndedNS - r.StartedNS); d < 30*time.Millisecond {
			t.Fatalf("slept %v", d)
		}
	})
	t.Run("retry asks for a retry with its seconds and ignore flag", func(t *testing.T) {
		o := run(t, h, "retry", `[]`, `{"seconds":7,"ignore_retry":true}`, 1)
		if o.Kind != abi.OutcomeRetry || o.RetryAfter != 7*time.Second || !o.IgnoreRetry {
			t.Fatalf("%+v", o)
		}
	})
	t.Run("a retry asked past 100 years waits 100 years, the bound of a retry pattern", func(t *testing.T) {
		// 2^40 s and more overflow time.Duration; 100 years and a second
		// do not, and are as much a mistake.
		for _, s := range []string{"1099511627776", "1e30", "3153600001"} {
			o := run(t, h, "retry", `[]`, `{"seconds":`+s+`}`, 1)
			if o.Kind != abi.OutcomeRetry || o.RetryAfter != abi.MaxRetryDelay*time.Second {
				t.Errorf("seconds %s: retry after %v, want %v: %+v", s, o.RetryAfter, abi.MaxRetryDelay*time.Second, o)
			}
		}
		if o := run(t, h, "retry", `[]`, `{"seconds":-1099511627776}`, 1); o.Kind != abi.OutcomeRetry || o.RetryAfter != 0 {
			t.Errorf("negative seconds must leave the delay to the pattern: %+v", o)
		}
	})
	t.Run("fail is a guest error carrying the message", func(t *testing.T) {
		o := run(t, h, "fail", `[]`, `{"message":"boom"}`, 1)
		if o.Kind != abi.OutcomeFailed || !strings.Contains(o.ExcMessage, "boom") {
			t.Fatalf("%+v", o)
		}
	})
	t.Run("fail_final is a final failure", func(t *testing.T) {
		o := run(t, h, "fail_final", `[]`, `{"message":"bad account"}`, 1)
		if o.Kind != abi.OutcomeFailed || o.ExcName != abi.ExcFailed || !strings.Contains(o.ExcMessage, "bad account") {
			t.Fatalf("%+v", o)
		}
	})
	t.Run("noop is done with a null result", func(t *testing.T) {
		o := run(t, h, "noop", `[1]`, `{}`, 1)
		if o.Kind != abi.OutcomeDone || string(o.Result) != "null" {
			t.Fatalf("noop: %+v, want done with the result null", o)
		}
	})

	t.Run("nothing_to_do", func(t *testing.T) {
		if o := run(t, h, "nothing_to_do", `[]`, `{}`, 1); o.Kind != abi.OutcomeNothingToDo {
			t.Fatalf("%+v", o)
		}
	})
	t.Run("script follows the step of the attempt, the last repeating", func(t *testing.T) {
		steps := `["retry:3","retry_ignore:2","fail:oops","final:gone","ok"]`
		want := []abi.OutcomeKind{abi.OutcomeRetry, abi.OutcomeRetry, abi.OutcomeFailed, abi.OutcomeFailed, abi.OutcomeDone, abi.OutcomeDone}
		for k, w := range want {
			o := run(t, h, "script", steps, `{}`, k+1)
			if o.Kind != w {
				t.Fatalf("attempt %d: got %+v, want %s", k+1, o, w)
			}
			if k == 1 && !o.IgnoreRetry {
				t.Fatalf("retry_ignore did not set ignore_retry: %+v", o)
			}
			if len(o.Logs) == 0 {
				t.Fatalf("attempt %d: no log line captured", k+1)
			}
		}
	})
	t.Run("script hang is stopped by the timeout", func(t *testing.T) {
		o := run(t, h, "script", `["hang"]`, `{}`, 1)
		if o.Kind != abi.OutcomeSandbox || o.ExcName != abi.ExcTimeout {
			t.Fatalf("%+v", o)
		}
	})
}
