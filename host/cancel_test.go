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
