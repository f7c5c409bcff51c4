package runner

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func TestAWorkerIsGoneOnlyWhenUnheldAtTwoPassesApart(t *testing.T) {
	g := goneWatch{self: "me/1"}
	t0 := time.Unix(1000, 0)
	if gone := g.observe(t0, []string{"a/1", "me/1"}, nil); len(gone) != 0 {
		t.Fatalf("first look: gone %v, want none (a live worker may be holding again)", gone)
	}
	// b holds again between the passes: only a is gone, never this runner.
	if gone := g.observe(t0.Add(time.Second), []string{"a/1", "me/1"}, nil); !slices.Equal(gone, []string{"a/1"}) {
		t.Fatalf("second look: gone %v, want [a/1]", gone)
	}
	if gone := g.observe(t0.Add(1100*time.Millisecond), []string{"b/1"}, nil); len(gone) != 0 {
		t.Fatalf("b first seen: gone %v", gone)
	}
	if gone := g.observe(t0.Add(2100*time.Millisecond), nil, nil); len(gone) != 0 {
		t.Fatalf("b held again: gone %v", gone)
	}
	if gone := g.observe(t0.Add(3100*time.Millisecond), []string{"b/1"}, nil); len(gone) != 0 {
		t.Fatalf("b unheld again starts a new suspicion: gone %v", gone)
	}
}

func TestAfterAStoreErrorEveryWorkerGetsTimeToHoldAgain(t *testing.T) {
	g := goneWatch{self: "me/1"}
	t0 := time.Unix(1000, 0)
	g.observe(t0, []string{"a/1"}, nil)
	// The database restarts: every session ended, every worker is unheld.
	if gone := g.observe(t0.Add(time.Second), nil, errors.New("connection refused")); gone != nil {
		t.Fatalf("gone %v on an error", gone)
	}
	if gone := g.observe(t0.Add(2*time.Second), []string{"a/1", "b/1"}, nil); len(gone) != 0 {
		t.Fatalf("first pass after the error: gone %v", gone)
	}
	if gone := g.observe(t0.Add(3*time.Second), []string{"a/1"}, nil); !slices.Equal(gone, []string{"a/1"}) {
		t.Fatalf("a stayed unheld once the leader was healthy: gone %v, want [a/1]", gone)
	}
	// A failed reap also resets the watch.
	g.failed()
	if gone := g.observe(t0.Add(4*time.Second), []string{"a/1"}, nil); len(gone) != 0 {
		t.Fatalf("after a failed reap: gone %v", gone)
	}
}
