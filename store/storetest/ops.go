package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// A started job may be cancelled: the attempt that ran is recorded as
// cancelled, a finished event names the job (every node's runner
// interrupts it on that), the worker's late report applies to nothing,
// and waiting dependents are cancelled.
func cancelStartedJob(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := nj("t")
	kid := nj("t")
	kid.DependsOn = []string{p.UUID}
	insert(t, s, p, kid)
	started := start(t, s, "w", time.Minute)
	if len(started) != 1 || started[0].UUID != p.UUID {
		t.Fatalf("started %v", started)
	}
	ch, err := s.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // let a LISTEN settle
	j, err := s.Cancel(ctx, "t", p.UUID)
	if err != nil || j.State != abi.StateCancelled || j.WorkerID != "" || j.DateCancelled == nil {
		t.Fatalf("cancel of a started job: %+v %v", j, err)
	}
	for named := false; !named; {
		select {
		case e := <-ch:
			if e.Kind == store.EventFinished && (e.UUIDs == nil || contains(e.UUIDs, p.UUID)) {
				named = true
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no finished event names the cancelled job")
		}
	}
	late := store.Completion{UUID: p.UUID, WorkerID: "w", Attempt: started[0].Attempt, To: abi.StatePending,
		Cause: abi.CauseShutdown, UncountRetry: true}
	if ap := must(s.Complete(ctx, []store.Completion{late})); len(ap) != 0 {
		t.Fatalf("the worker's report after the cancel applied: %v", ap)
	}
	if got := get(t, s, p.UUID); got.State != abi.StateCancelled {
		t.Fatalf("after the worker's report: %s", got.State)
	}
	if got := get(t, s, kid.UUID); got.State != abi.StateCancelled {
		t.Fatalf("dependent %s, want cancelled", got.State)
	}
	at := must(s.Attempts(ctx, "t", p.UUID))
	if len(at) != 1 || at[0].Outcome != "cancelled" || at[0].ExcName != abi.ExcCancelled || at[0].Ended == nil || at[0].WorkerID != "w" {
		t.Fatalf("attempts %+v", at)
	}
	// Another tenant cannot cancel it, running or not.
	other := insert(t, s, nj("t"))[0]
	start(t, s, "w", time.Minute)
	if _, err := s.Cancel(ctx, "u", other.UUID); err == nil {
		t.Fatal("another tenant cancelled a running job")
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// The filters operators need: by user, model, creation and end dates,
// and by a value inside args or kwargs, the same on every store, each
// bounded to the tenant.
func operatorFilters(t *testing.T, s store.Store) {
	ctx := context.Background()
	mk := func(user, model, args, kwargs string) store.NewJob {
		j := nj("t")
		j.UserID, j.ModelName, j.Args, j.Kwargs = user, model, json.RawMessage(args), json.RawMessage(kwargs)
		return j
	}
	a := mk("alice", "sale.order", `[42, "SO042", true, null, 1.5]`, `{"partner_id": 7, "lang": "fr", "flag": false}`)
	b := mk("bob", "sale.order", `[43, "SO043", [42]]`, `{"partner_id": 8, "nested": {"partner_id": 7}}`)
	c := mk("alice", "account.move", `["42"]`, `{"partner_id": "7", "lang": "en"}`)
	stranger := mk("alice", "sale.order", `[42]`, `{"partner_id": 7}`)
	stranger.Tenant = "u"
	insert(t, s, a, b, c, stranger)
	ids := func(f store.Filter) []string {
		t.Helper()
		f.Tenant = "t"
		p, err := s.List(ctx, f)
		if err != nil {
			t.Fatalf("%+v: %v", f, err)
		}
		var out []string
		for _, j := range p.Jobs {
			out = append(out, map[string]string{a.UUID: "a", b.UUID: "b", c.UUID: "c"}[j.UUID])
		}
		sort.Strings(out)
		return out
	}
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	for _, c := range []struct {
		name string
		f    store.Filter
		want string
	}{
		{"user", store.Filter{UserID: "alice"}, "a c"},
		{"model", store.Filter{ModelName: "sale.order"}, "a b"},
		{"user and model", store.Filter{UserID: "alice", ModelName: "sale.order"}, "a"},
		{"an arg, a number", store.Filter{ArgsHas: raw(`42`)}, "a"},
		{"an arg, the same number written otherwise", store.Filter{ArgsHas: raw(`42.0`)}, "a"},
		{"an arg, a string", store.Filter{ArgsHas: raw(`"42"`)}, "c"},
		{"an arg, true", store.Filter{ArgsHas: raw(`true`)}, "a"},
		{"an arg, null", store.Filter{ArgsHas: raw(`null`)}, "a"},
		{"an arg, a fraction", store.Filter{ArgsHas: raw(`1.5`)}, "a"},
		{"a kwarg, a number (not the string, not nested)", store.Filter{KwargsHas: map[string]json.RawMessage{"partner_id": raw(`7`)}}, "a"},
		{"a kwarg, a string", store.Filter{KwargsHas: map[string]json.RawMessage{"partner_id": raw(`"7"`)}}, "c"},
		{"two kwargs", store.Filter{KwargsHas: map[string]json.RawMessage{"partner_id": raw(`7`), "lang": raw(`"fr"`)}}, "a"},
		{"two kwargs, one off", store.Filter{KwargsHas: map[string]json.RawMessage{"partner_id": raw(`7`), "lang": raw(`"en"`)}}, ""},
		{"a kwarg false", store.Filter{KwargsHas: map[string]json.RawMessage{"flag": raw(`false`)}}, "a"},
		{"a kwarg absent", store.Filter{KwargsHas: map[string]json.RawMessage{"nope": raw(`null`)}}, ""},
	} {
		if got := strings.Join(ids(c.f), " "); got != c.want {
			t.Errorf("%s: got [%s], want [%s]", c.name, got, c.want)
		}
	}
	// Dates: created in a window; ended (done or cancelled) in a window.
	created := get(t, s, a.UUID).DateCreated
	if got := ids(store.Filter{CreatedAfter: ptr(created.Add(-time.Second)), CreatedBefore: ptr(created.Add(time.Hour))}); len(got) != 3 {
		t.Errorf("created in the window: %v", got)
	}
	if got := ids(store.Filter{CreatedAfter: ptr(created.Add(time.Hour))}); len(got) != 0 {
		t.Errorf("created after an hour from now: %v", got)
	}
	if got := ids(store.Filter{CreatedBefore: ptr(created.Add(-time.Hour))}); len(got) != 0 {
		t.Errorf("created before an hour ago: %v", got)
	}
	before := time.Now().Add(-time.Second)
	if _, err := s.Cancel(ctx, "t", b.UUID); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ids(store.Filter{EndedAfter: &before}), " "); got != "b" {
		t.Errorf("ended after: [%s], want [b]", got)
	}
	if got := ids(store.Filter{EndedBefore: &before}); len(got) != 0 {
		t.Errorf("ended before: %v, want none", got)
	}
	// What no store keeps, or no filter means, is refused before SQL.
	for _, bad := range []store.Filter{
		{ArgsHas: raw(`[42]`)}, {ArgsHas: raw(`{"a":1}`)}, {ArgsHas: raw(`nope`)},
		{KwargsHas: map[string]json.RawMessage{"k": raw(`{"a":1}`)}}, {KwargsHas: map[string]json.RawMessage{"a\x00": raw(`1`)}},
		{UserID: "a\x00"}, {ModelName: "\xff"},
		{CreatedAfter: ptr(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC))},
	} {
		bad.Tenant = "t"
		if _, err := s.List(ctx, bad); !errors.Is(err, abi.ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", bad, err)
		}
	}
}

// Channel overrides are stored, replaced, deleted when empty, refused
// when no scheduler could apply them, and announced to every node.
func channelOverrides(t *testing.T, s store.Store) {
	ctx := context.Background()
	ch := subscribe(t, s)
	if got := must(s.ChannelOverrides(ctx)); len(got) != 0 {
		t.Fatalf("a new store has overrides: %v", got)
	}
	if err := s.SetChannelOverride(ctx, abi.ChannelOverride{Channel: "root.mail", Paused: ptr(true), Capacity: ptr(3), Throttle: ptr(0.5)}); err != nil {
		t.Fatal(err)
	}
	for {
		if e := next(t, ch, "event after an override"); e.Kind == store.EventChannels {
			break
		}
	}
	if err := s.SetChannelOverride(ctx, abi.ChannelOverride{Channel: "root", Capacity: ptr(2)}); err != nil {
		t.Fatal(err)
	}
	got := must(s.ChannelOverrides(ctx))
	if len(got) != 2 || got[0].Channel != "root" || *got[0].Capacity != 2 || got[0].Paused != nil || got[0].Throttle != nil ||
		got[1].Channel != "root.mail" || !*got[1].Paused || *got[1].Capacity != 3 || *got[1].Throttle != 0.5 {
		t.Fatalf("overrides %+v", got)
	}
	if err := s.SetChannelOverride(ctx, abi.ChannelOverride{Channel: "root.mail", Paused: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetChannelOverride(ctx, abi.ChannelOverride{Channel: "root"}); err != nil {
		t.Fatal(err)
	}
	got = must(s.ChannelOverrides(ctx))
	if len(got) != 1 || got[0].Channel != "root.mail" || *got[0].Paused || got[0].Capacity != nil {
		t.Fatalf("after a replace and a delete: %+v", got)
	}
	for _, bad := range []abi.ChannelOverride{
		{Channel: "mail", Paused: ptr(true)}, {Channel: "root.a\x00"}, {Channel: ""},
		{Channel: "root", Capacity: ptr(0)}, {Channel: "root", Capacity: ptr(abi.MaxChannelCapacity + 1)},
		{Channel: "root", Throttle: ptr(-1.0)}, {Channel: "root", Throttle: ptr(math.NaN())},
		{Channel: "root", Throttle: ptr(float64(abi.MaxThrottleSeconds + 1))},
	} {
		if err := s.SetChannelOverride(ctx, bad); !errors.Is(err, abi.ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", bad, err)
		}
	}
}

// A throttled channel's last hand-over is kept for the next leader: the
// latest of those marked, whatever order they come in.
func throttledChannelsKeepTheirLastHandOver(t *testing.T, s store.Store) {
	ctx := context.Background()
	if got := must(s.ChannelStarts(ctx)); len(got) != 0 {
		t.Fatalf("a new store has channel starts: %v", got)
	}
	t0 := time.Now().UTC().Truncate(time.Microsecond)
	if err := s.MarkChannelStarts(ctx, map[string]time.Time{"root.mail": t0, "root.sms": t0.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkChannelStarts(ctx, map[string]time.Time{"root.mail": t0.Add(2 * time.Second), "root.sms": t0}); err != nil {
		t.Fatal(err)
	}
	got := must(s.ChannelStarts(ctx))
	if len(got) != 2 || !got["root.mail"].Equal(t0.Add(2*time.Second)) || !got["root.sms"].Equal(t0.Add(time.Second)) {
		t.Fatalf("channel starts %v, want root.mail at t0+2s and root.sms at t0+1s (t0 %v)", got, t0)
	}
	if err := s.MarkChannelStarts(ctx, map[string]time.Time{"mail\x00": t0}); !errors.Is(err, abi.ErrInvalid) {
		t.Fatalf("a channel named with a NUL: %v, want ErrInvalid", err)
	}
}

// A finished event names each hand-over that ended by a version the job
// had while it ran, the one its start returned: an outcome's, an
// action's and a reap's alike. A scheduler that handed the job over
// again since tells the event is not about the new hand-over by it.
func aFinishedEventNamesTheHandOverThatEnded(t *testing.T, s store.Store) {
	ctx := context.Background()
	var ids []string
	for _, j := range insert(t, s, nj("t"), nj("t"), nj("t")) {
		ids = append(ids, j.UUID)
	}
	ch := subscribe(t, s)
	started := must(s.Start(ctx, must(s.Pending(ctx, ids)), "w1", time.Now().Add(time.Minute)))
	if len(started) != 3 {
		t.Fatalf("started %d of 3", len(started))
	}
	version := map[string]int64{}
	for _, j := range started {
		if j.Version == 0 {
			t.Fatalf("a started job %s has no version", j.UUID)
		}
		version[j.UUID] = j.Version
	}
	finished := func(what string) map[string]int64 {
		t.Helper()
		for {
			e := next(t, ch, "finished event after "+what)
			if e.Kind != store.EventFinished || len(e.UUIDs) == 0 {
				continue
			}
			if len(e.Versions) != len(e.UUIDs) {
				t.Fatalf("%s: event names %d jobs and %d versions", what, len(e.UUIDs), len(e.Versions))
			}
			out := map[string]int64{}
			for i, id := range e.UUIDs {
				out[id] = e.Versions[i]
			}
			return out
		}
	}
	a, b, c := started[0], started[1], started[2]
	must(s.Complete(ctx, []store.Completion{{UUID: a.UUID, WorkerID: "w1", Attempt: a.Attempt, Version: a.Version,
		To: abi.StatePending, Cause: abi.CauseRetry, ExcName: "E"}}))
	if got := finished("an outcome"); got[a.UUID] != version[a.UUID] {
		t.Fatalf("an outcome's event: %v, want %s at %d", got, a.UUID, version[a.UUID])
	}
	must(s.Cancel(ctx, "", b.UUID))
	if got := finished("a cancel"); got[b.UUID] != version[b.UUID] {
		t.Fatalf("a cancel's event: %v, want %s at %d", got, b.UUID, version[b.UUID])
	}
	must(s.ReapExpired(ctx, time.Now().Add(2*time.Minute), nil))
	if got := finished("a reap"); got[c.UUID] != version[c.UUID] {
		t.Fatalf("a reap's event: %v, want %s at %d", got, c.UUID, version[c.UUID])
	}
	// The retried job's next hand-over reads a later version.
	again := must(s.Pending(ctx, []string{a.UUID}))
	if len(again) != 1 || again[0].Version <= version[a.UUID] {
		t.Fatalf("the retried job reads %+v, want a version after %d", again, version[a.UUID])
	}
}

// Act moves many jobs at once by the per-job rules: another tenant's and
// those in a state the action does not apply to are skipped, a cancel
// cascades (a dependent listed after its parent is then skipped), and a
// started job cancelled has its attempt recorded.
func actOnMany(t *testing.T, s store.Store) {
	ctx := context.Background()
	runningJob := insert(t, s, nj("t"))[0]
	start(t, s, "w", time.Minute)
	p, kid, pend := nj("t"), nj("t"), nj("t")
	p.ETA = ptr(time.Now().Add(time.Hour))
	kid.DependsOn = []string{p.UUID}
	pend.ETA = p.ETA
	theirs := nj("u")
	theirs.ETA = p.ETA
	insert(t, s, p, kid, pend, theirs)
	done := insert(t, s, nj("t"))[0]
	if _, err := s.SetDone(ctx, "t", done.UUID, nil); err != nil {
		t.Fatal(err)
	}
	ids := []string{runningJob.UUID, p.UUID, kid.UUID, pend.UUID, theirs.UUID, done.UUID, "no-such-job", "bad\x00"}
	changed, err := s.Act(ctx, "t", abi.CauseCancel, ids)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(changed)
	want := []string{runningJob.UUID, p.UUID, pend.UUID}
	sort.Strings(want)
	if strings.Join(changed, ",") != strings.Join(want, ",") {
		t.Fatalf("changed %v, want %v", changed, want)
	}
	for id, st := range map[string]abi.State{runningJob.UUID: abi.StateCancelled, kid.UUID: abi.StateCancelled,
		theirs.UUID: abi.StatePending, done.UUID: abi.StateDone} {
		if got := get(t, s, id).State; got != st {
			t.Errorf("%s: %s, want %s", id, got, st)
		}
	}
	if at := must(s.Attempts(ctx, "t", runningJob.UUID)); len(at) != 1 || at[0].Outcome != "cancelled" {
		t.Errorf("the running job's attempt: %+v", at)
	}
	if changed := must(s.Act(ctx, "t", abi.CauseRequeue, ids)); len(changed) != 5 {
		t.Errorf("requeue changed %d, want the tenant's 5 jobs", len(changed))
	}
	if _, err := s.Act(ctx, "t", abi.CauseStart, ids); !errors.Is(err, abi.ErrInvalid) {
		t.Errorf("act with a cause that is no manual action: %v", err)
	}
}

// A running job's progress is kept while its worker holds it, shown by
// Get and List, refused out of range, and ignored from anyone else.
func progressOfARunningJob(t *testing.T, s store.Store) {
	ctx := context.Background()
	insert(t, s, nj("t"))
	j := start(t, s, "w", time.Minute)[0]
	if got := get(t, s, j.UUID); got.Progress != nil {
		t.Fatalf("a job that reported nothing has progress %+v", got.Progress)
	}
	at := time.Now().UTC().Truncate(time.Microsecond)
	if err := s.SetProgress(ctx, j.UUID, "w", j.Attempt, abi.Progress{Percent: 40, Message: "lines 400/1000", Updated: at}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetProgress(ctx, j.UUID, "w", j.Attempt, abi.Progress{Percent: 45, Message: "lines 450/1000 é", Updated: at}); err != nil {
		t.Fatal(err)
	}
	// Another worker, an older attempt: nothing changes.
	s.SetProgress(ctx, j.UUID, "other", j.Attempt, abi.Progress{Percent: 99, Updated: at})
	s.SetProgress(ctx, j.UUID, "w", j.Attempt-1, abi.Progress{Percent: 98, Updated: at})
	p := get(t, s, j.UUID).Progress
	if p == nil || p.Percent != 45 || p.Message != "lines 450/1000 é" || !p.Updated.Equal(at) {
		t.Fatalf("progress %+v", p)
	}
	page := must(s.List(ctx, store.Filter{Tenant: "t"}))
	if len(page.Jobs) != 1 || page.Jobs[0].Progress == nil || page.Jobs[0].Progress.Percent != 45 {
		t.Fatalf("listed %+v", page.Jobs)
	}
	for _, bad := range []abi.Progress{{Percent: -1, Updated: at}, {Percent: 101, Updated: at},
		{Percent: 1, Message: strings.Repeat("x", abi.MaxProgressMessage+1), Updated: at},
		{Percent: 1, Message: "a\x00", Updated: at}, {Percent: 1, Message: "\xff", Updated: at}, {Percent: 1}} {
		if err := s.SetProgress(ctx, j.UUID, "w", j.Attempt, bad); !errors.Is(err, abi.ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", bad, err)
		}
	}
	complete(t, s, j, abi.StateDone, abi.CauseDone)
	s.SetProgress(ctx, j.UUID, "w", j.Attempt, abi.Progress{Percent: 1, Updated: at})
	if p := get(t, s, j.UUID).Progress; p == nil || p.Percent != 45 {
		t.Fatalf("a report after the end changed the progress: %+v", p)
	}
	if n := must(s.Vacuum(ctx, "root", time.Now().Add(time.Hour))); n != 1 {
		t.Fatalf("vacuum deleted %d jobs", n)
	}
}
