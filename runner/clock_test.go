package runner_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/runner"
	"github.com/wasmq/wasmq/store"
)

// skewed is the store as a node whose clock is off sees it: the store's
// clock, read back, is skew behind the node's.
type skewed struct {
	store.Store
	mu   sync.Mutex
	skew time.Duration
}

func (s *skewed) set(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.skew = d
}

func (s *skewed) Clock(ctx context.Context) (time.Time, error) {
	t, err := s.Store.Clock(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	return t.Add(-s.skew), err
}

var offsetNamed = regexp.MustCompile(`: (-?[0-9.a-zµ]+) from the store's`)

func withMaxClockOffset(d time.Duration) func(*runner.Config) {
	return func(c *runner.Config) { c.MaxClockOffset = abi.Duration(d) }
}

// A node whose clock is further from the store's than max_clock_offset
// does not start, and says by how much: the leases, etas and dates it
// would write with that clock, the other nodes read with theirs (a leader
// ahead takes running jobs back and runs them twice). Within the bound,
// ahead or behind, it runs.
func TestANodeWhoseClockIsOffDoesNotStart(t *testing.T) {
	st := newStore(t)
	ids := add(t, st, spec{name: "a"})
	for _, skew := range []time.Duration{30 * time.Second, -30 * time.Second} {
		cfg := runner.Config{Channels: "root:2", NodeID: "skewed", Lease: abi.Duration(3 * time.Second),
			MaxClockOffset: abi.Duration(500 * time.Millisecond)}
		r, err := runner.New(cfg, &skewed{Store: st, skew: skew}, newHost(t), zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		err = r.Start(context.Background())
		if !errors.Is(err, runner.ErrClockOffset) || !strings.Contains(err.Error(), "runner.max_clock_offset 500ms") {
			t.Fatalf("start %s off: %v, want ErrClockOffset naming the key", skew, err)
		}
		// The offset named is the skew, give or take the read's round trip.
		m := offsetNamed.FindStringSubmatch(err.Error())
		if m == nil {
			t.Fatalf("start %s off: %v names no offset", skew, err)
		}
		if said, perr := time.ParseDuration(m[1]); perr != nil || (said-skew).Abs() > time.Second {
			t.Fatalf("start %s off: %v names %s", skew, err, m[1])
		}
		r.Stop(context.Background())
	}
	time.Sleep(300 * time.Millisecond)
	if s := get(t, st, ids["a"]).State; s != abi.StatePending {
		t.Fatalf("the job is %s: a node whose clock is off took it", s)
	}
	start(t, "root:2", &skewed{Store: st, skew: 300 * time.Millisecond}, withMaxClockOffset(500*time.Millisecond))
	start(t, "root:2", &skewed{Store: st, skew: -300 * time.Millisecond}, withMaxClockOffset(500*time.Millisecond))
	waitState(t, st, 10*time.Second, abi.StateDone, ids["a"])
}

// A node whose clock goes off while it runs stops taking jobs and stops
// (Fatal) within a renewal period (lease/3).
func TestANodeWhoseClockGoesOffStops(t *testing.T) {
	st := newStore(t)
	sk := &skewed{Store: st}
	n := start(t, "root:2", sk, withMaxClockOffset(500*time.Millisecond))
	before := add(t, st, spec{name: "before"})
	waitState(t, st, 10*time.Second, abi.StateDone, before["before"])
	sk.set(-20 * time.Second)
	select {
	case err := <-n.r.Fatal():
		if !errors.Is(err, runner.ErrClockOffset) {
			t.Fatalf("Fatal: %v, want ErrClockOffset", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("a node 20s off ran on for a lease (3s)")
	}
	after := add(t, st, spec{name: "after"})
	time.Sleep(1500 * time.Millisecond)
	if s := get(t, st, after["after"]).State; s != abi.StatePending {
		t.Errorf("a job added after the stop is %s: the node whose clock is off took it", s)
	}
}
