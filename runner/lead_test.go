package runner_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/runner"
	"github.com/wasmq/wasmq/store"
)

// stalledLead is a store whose lead checks can be held, as a leader
// frozen between two checks meets them: while stalled, a check waits
// until released.
type stalledLead struct {
	store.Store
	stalled  atomic.Bool
	released chan struct{}
}

func (s *stalledLead) TryLead(ctx context.Context, nodeID string, hold time.Duration) (bool, error) {
	if s.stalled.Load() {
		select {
		case <-s.released:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	return s.Store.TryLead(ctx, nodeID, hold)
}

// The lead is a lease: the store lets another node lead once this one
// has been silent for a lease. So a leader whose last confirmation is
// older than three quarters of a lease starts nothing more, even though
// it was never told it lost the lead, until the store confirms it again.
func TestALeaderActsOnlyOnARecentlyConfirmedLead(t *testing.T) {
	st := &stalledLead{Store: newStore(t), released: make(chan struct{})}
	const lease = time.Second
	n := start(t, "root:4", st, func(c *runner.Config) { c.Lease = abi.Duration(lease) })
	first := add(t, st, spec{name: "first"})
	waitState(t, st, 5*time.Second, abi.StateDone, first["first"])

	st.stalled.Store(true)
	time.Sleep(lease) // past three quarters of a lease from the last confirmation
	held := add(t, st, spec{name: "held"})
	time.Sleep(lease)
	if j := get(t, st, held["held"]); j.State != abi.StatePending {
		t.Fatalf("a job enqueued %v after the lead was last confirmed is %s, want pending: the leader acted on a lead another node may hold", lease, j.State)
	}
	if !n.r.Stats().Leader {
		t.Fatal("the runner says it no longer leads: the test would not show that it holds back")
	}

	st.stalled.Store(false)
	close(st.released)
	waitState(t, st, 5*time.Second, abi.StateDone, held["held"])
}
