package host

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
)

// A job cancelled while it runs (the runner cancels the attempt's
// context) is interrupted at once, and the instance it ran on is closed,
// never handed to a later job: its memory holds a half-done call.
func TestCancelledAttemptsInstanceIsNeverPooledAgain(t *testing.T) {
	h, _ := kitHost(t, "")
	pool := func() []*instance {
		h.mu.Lock()
		defer h.mu.Unlock()
		return append([]*instance(nil), h.mods[modKey{"", "kit"}].code.pools["acme"]...)
	}
	if o := run(t, h, job("kit.echo")); o.Kind != abi.OutcomeDone {
		t.Fatal(o)
	}
	first := pool()
	if len(first) != 1 {
		t.Fatalf("pool after one job: %d instances", len(first))
	}
	for _, fn := range []string{"kit.loop", "kit.sleep"} {
		ctx, cancel := context.WithCancelCause(context.Background())
		time.AfterFunc(50*time.Millisecond, func() { cancel(errors.New("cancelled by hand")) })
		start := time.Now()
		o := h.Run(ctx, job(fn))
		if o.Kind != abi.OutcomeInterrupted {
			t.Errorf("%s: got %s %s", fn, o.Kind, o.ExcName)
		}
		if took := time.Since(start); took > 50*time.Millisecond+100*time.Millisecond {
			t.Errorf("%s: interrupted %s after the cancel, want under 100ms", fn, took-50*time.Millisecond)
		}
		if p := pool(); len(p) != 0 {
			t.Errorf("%s: the interrupted instance went back to the pool", fn)
		}
	}
	if !first[0].mod.IsClosed() {
		t.Error("the interrupted instance was not closed")
	}
	for range 3 {
		if o := run(t, h, job("kit.echo")); o.Kind != abi.OutcomeDone {
			t.Fatal(o)
		}
		for _, in := range pool() {
			if in == first[0] {
				t.Fatal("the pool handed out the interrupted instance again")
			}
		}
	}
}

// wasmq_progress_v1 hands each report to the runner's reporter: percents
// 0–100 taken, others refused (the guest is told), the message mended,
// since a plugin is untrusted.
func TestProgressReportsReachTheReporter(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, "testdata/progress.wasm", dir+"/progress.wasm")
	h := newTestHost(t, testConfig(dir))
	var got []abi.Progress
	ctx := abi.WithProgress(context.Background(), func(p abi.Progress) { got = append(got, p) })
	if o := h.Run(ctx, job("progress.run")); o.Kind != abi.OutcomeDone {
		t.Fatalf("got %s %s %s", o.Kind, o.ExcName, o.ExcMessage)
	}
	if len(got) != 101 || got[0].Percent != 0 || got[100].Percent != 100 || got[100].Updated.IsZero() {
		t.Fatalf("%d reports, want 0 to 100: %+v", len(got), got)
	}
	if m := got[50].Message; m != "half \uFFFDdone" {
		t.Errorf("the message at 50 is %q, want it mended", m)
	}
	// Without a reporter (the synchronous mode) the reports go nowhere.
	if o := h.Run(context.Background(), job("progress.run")); o.Kind != abi.OutcomeDone {
		t.Fatalf("without a reporter: %s %s", o.Kind, o.ExcMessage)
	}
}
