package storetest

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// theSchedulerReadsWhatIsDue: the scheduler holds only the jobs due
// within its horizon (and every job of a sequential channel). PendingDue
// is the incremental read narrowed to those, PendingByETA reads them by
// eta (the start-up read, then each slice of time coming within the
// horizon), PendingHigh is where the incremental reads start after it.
func theSchedulerReadsWhatIsDue(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	at := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
	soon, past, later, latest, seqLater := nj("t"), nj("t"), nj("t"), nj("t"), nj("t")
	none1, none2 := nj("t"), nj("t")
	soon.ETA, past.ETA, later.ETA, latest.ETA, seqLater.ETA = at(5*time.Minute), at(-time.Minute), at(time.Hour), at(2*time.Hour), at(90*time.Minute)
	seqLater.Channel = "root.seq"
	insert(t, s, none1, later, soon, past, latest, seqLater, none2)
	names := func(cs []store.Candidate) []string {
		byID := map[string]string{none1.UUID: "none1", none2.UUID: "none2", soon.UUID: "soon", past.UUID: "past",
			later.UUID: "later", latest.UUID: "latest", seqLater.UUID: "seqLater"}
		out := make([]string, len(cs))
		for i, c := range cs {
			out[i] = byID[c.UUID]
		}
		return out
	}
	all := must(s.PendingSince(ctx, 0, 100))
	version := map[string]int64{}
	var high int64
	for _, c := range all {
		version[names([]store.Candidate{c})[0]] = c.Version
		high = max(high, c.Version)
	}
	if got := must(s.PendingHigh(ctx)); got != high {
		t.Fatalf("PendingHigh = %d, want %d, the highest pending version", got, high)
	}
	byVersion := func(want ...string) []string {
		slices.SortFunc(want, func(a, b string) int { return int(version[a] - version[b]) })
		return want
	}

	// Incremental: due by the horizon, or in a listed channel.
	horizon := now.Add(10 * time.Minute)
	if got, want := names(must(s.PendingDue(ctx, 0, horizon, nil, 100))), byVersion("none1", "none2", "soon", "past"); !slices.Equal(got, want) {
		t.Fatalf("PendingDue(horizon +10m) = %v, want %v (by version; the later jobs stay in the store)", got, want)
	}
	if got, want := names(must(s.PendingDue(ctx, 0, horizon, []string{"root.seq"}, 100))), byVersion("none1", "none2", "soon", "past", "seqLater"); !slices.Equal(got, want) {
		t.Fatalf("PendingDue(horizon +10m, root.seq) = %v, want %v", got, want)
	}
	first := byVersion("none1", "none2", "soon", "past")[0]
	if got := names(must(s.PendingDue(ctx, version[first], horizon, nil, 100))); slices.Contains(got, first) || len(got) != 3 {
		t.Fatalf("PendingDue after %s's version = %v, want the three others", first, got)
	}
	if got := must(s.PendingDue(ctx, high, now.Add(24*time.Hour), nil, 100)); len(got) != 0 {
		t.Fatalf("PendingDue after the highest version = %v, want nothing", names(got))
	}
	if got := names(must(s.PendingDue(ctx, 0, time.Time{}, []string{"root.seq"}, 100))); !slices.Equal(got, byVersion("none1", "none2", "seqLater")) {
		t.Fatalf("PendingDue(no horizon, root.seq) = %v, want the jobs with no eta and root.seq's", got)
	}

	// By eta: no eta first (by version), then by eta; in pages.
	want := append(byVersion("none1", "none2"), "past", "soon", "later", "seqLater")
	until := now.Add(100 * time.Minute)
	if got := names(must(s.PendingByETA(ctx, store.ETACursor{}, until, 100))); !slices.Equal(got, want) {
		t.Fatalf("PendingByETA(start, +100m) = %v, want %v", got, want)
	}
	var paged []store.Candidate
	for cur := (store.ETACursor{}); ; {
		page := must(s.PendingByETA(ctx, cur, until, 2))
		paged = append(paged, page...)
		if len(page) < 2 {
			break
		}
		cur = page[len(page)-1].After()
		if len(paged) > 10 {
			t.Fatalf("paging does not end: %v", names(paged))
		}
	}
	if got := names(paged); !slices.Equal(got, want) {
		t.Fatalf("PendingByETA in pages of 2 = %v, want %v", got, want)
	}
	// The slice of time (+10m, +3h] a horizon moving on brings.
	window := must(s.PendingByETA(ctx, store.ETACursor{ETA: &horizon, Version: math.MaxInt64}, now.Add(3*time.Hour), 100))
	if got := names(window); !slices.Equal(got, []string{"later", "seqLater", "latest"}) {
		t.Fatalf("PendingByETA(after +10m, until +3h) = %v, want later, seqLater, latest", got)
	}
	if got := must(s.PendingByETA(ctx, store.ETACursor{ETA: at(3 * time.Hour), Version: math.MaxInt64}, now.Add(24*time.Hour), 100)); len(got) != 0 {
		t.Fatalf("PendingByETA past the last eta = %v, want nothing", names(got))
	}
	// An eta exactly at until is due by it; the next window starts after it.
	if got := names(must(s.PendingByETA(ctx, store.ETACursor{ETA: at(5 * time.Minute), Version: math.MaxInt64}, *later.ETA, 100))); !slices.Equal(got, []string{"later"}) {
		t.Fatalf("PendingByETA(after soon's eta, until later's) = %v, want later", got)
	}

	// Jobs that leave pending leave these reads; a changed job shows at
	// its new version.
	cands := must(s.PendingSince(ctx, 0, 100))
	started := must(s.Start(ctx, slices.DeleteFunc(cands, func(c store.Candidate) bool { return c.UUID != past.UUID }), "w", time.Now().Add(time.Minute)))
	if len(started) != 1 {
		t.Fatalf("started %v, want past", uuids(started))
	}
	if _, err := s.Cancel(ctx, "t", soon.UUID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, "t", latest.UUID, store.Patch{ETA: ptr((*time.Time)(nil))}); err != nil {
		t.Fatal(err)
	}
	got := must(s.PendingByETA(ctx, store.ETACursor{}, until, 100))
	current := map[string]int64{}
	for _, c := range got {
		if j := get(t, s, c.UUID); j.State == abi.StatePending {
			current[names([]store.Candidate{c})[0]] = max(current[names([]store.Candidate{c})[0]], c.Version)
		}
	}
	if _, ok := current["past"]; ok {
		t.Fatal("PendingByETA still returns the started job")
	}
	if _, ok := current["soon"]; ok {
		t.Fatal("PendingByETA still returns the cancelled job")
	}
	if v, ok := current["latest"]; !ok || v <= version["latest"] {
		t.Fatalf("PendingByETA after latest's eta was cleared: %v, want latest at a new version among the jobs with no eta", names(got))
	}
	if high2 := must(s.PendingHigh(ctx)); high2 <= high {
		t.Fatalf("PendingHigh after a patch = %d, want above %d", high2, high)
	}
}
