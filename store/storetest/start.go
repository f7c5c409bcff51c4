package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// startTakesPickedJobsStraightToStarted: Start is Enqueue then Claim for
// the jobs the leader picked, conditional on their version like Enqueue.
func startTakesPickedJobsStraightToStarted(t *testing.T, s store.Store) {
	ctx := context.Background()
	p := nj("t")
	a, b, stale := nj("t"), nj("t"), nj("t")
	a.DependsOn = []string{p.UUID}
	a.Priority = 1
	insert(t, s, p)
	pj := start(t, s, "w", time.Minute)[0]
	complete(t, s, pj, abi.StateDone, abi.CauseDone) // a's parent is done: a is pending
	insert(t, s, a, b, stale)
	cands := must(s.PendingSince(ctx, 0, 10))
	if len(cands) != 3 {
		t.Fatalf("candidates %+v", cands)
	}
	if _, err := s.Update(ctx, "t", stale.UUID, store.Patch{Priority: ptr(2)}); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	got := must(s.Start(ctx, cands, "node-1", time.Now().Add(time.Minute)))
	if len(got) != 2 || got[0].UUID != a.UUID || got[1].UUID != b.UUID {
		t.Fatalf("started %v, want [a b] in run order (the changed job stays pending)", uuids(got))
	}
	for _, j := range got {
		if j.State != abi.StateStarted || j.WorkerID != "node-1" || j.Attempt != 1 || j.Retry != 1 ||
			j.DateEnqueued == nil || j.DateStarted == nil || j.DateStarted.Before(before.Add(-time.Second)) ||
			j.DateStarted.Before(*j.DateEnqueued) || j.LeaseUntil == nil {
			t.Fatalf("started job %+v", j)
		}
	}
	if at := must(s.Attempts(ctx, "t", a.UUID)); len(at) != 1 || at[0].WorkerID != "node-1" || at[0].Ended != nil {
		t.Fatalf("attempts of a started job %+v", at)
	}
	if g := get(t, s, stale.UUID); g.State != abi.StatePending {
		t.Fatalf("the changed job is %s", g.State)
	}
	if again := must(s.Start(ctx, cands, "node-2", time.Now().Add(time.Minute))); len(again) != 0 {
		t.Fatalf("started twice: %v", uuids(again))
	}
	if cl := must(s.Claim(ctx, "node-2", 10, time.Now().Add(time.Minute))); len(cl) != 0 {
		t.Fatalf("another worker claimed started jobs %v", uuids(cl))
	}
	running := must(s.Running(ctx))
	var ids []string
	for _, r := range running {
		if r.Channel != "root" || r.Tenant != "t" {
			t.Fatalf("running %+v", r)
		}
		ids = append(ids, r.UUID)
	}
	slices.Sort(ids)
	want := []string{a.UUID, b.UUID}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("running %v, want %v", ids, want)
	}
	complete(t, s, got[1], abi.StateDone, abi.CauseDone)
	if g := get(t, s, b.UUID); g.State != abi.StateDone || g.ExecTime == nil {
		t.Fatalf("completed job %+v", g)
	}
}

// finishedEventsNameTheJobs: the scheduler follows running jobs through
// the uuids of EventFinished, even for batches larger than one
// notification holds.
func finishedEventsNameTheJobs(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var jobs []store.NewJob
	for i := 0; i < 400; i++ {
		jobs = append(jobs, nj("t"))
	}
	insert(t, s, jobs...)
	started := start(t, s, "w", time.Minute)
	ch, err := s.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // let a LISTEN settle
	var cs []store.Completion
	for _, j := range started {
		cs = append(cs, store.Completion{UUID: j.UUID, WorkerID: j.WorkerID, Attempt: j.Attempt, To: abi.StateDone, Cause: abi.CauseDone})
	}
	if ap := must(s.Complete(ctx, cs)); len(ap) != 400 {
		t.Fatalf("%d of 400 applied", len(ap))
	}
	left := map[string]bool{}
	for _, j := range started {
		left[j.UUID] = true
	}
	untilNamed(t, ch, store.EventFinished, left, "finished jobs")
}

// untilNamed waits until events of kind have named every job of want
// (it takes them out), failing after 5 s; an event of kind that names no
// job fails at once.
func untilNamed(t *testing.T, ch <-chan store.Event, kind store.EventKind, want map[string]bool, what string) {
	t.Helper()
	for deadline := time.After(5 * time.Second); len(want) > 0; {
		select {
		case e := <-ch:
			if e.Kind != kind {
				continue
			}
			if e.UUIDs == nil {
				t.Fatalf("a %s event without uuids: %+v", kind, e)
			}
			for _, id := range e.UUIDs {
				delete(want, id)
			}
		case <-deadline:
			t.Fatalf("%d %s never named in an event", len(want), what)
		}
	}
}

// droppedEventsBringAResync: a subscriber that falls behind loses events,
// and learns it: the next event it gets is a resync.
func droppedEventsBringAResync(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := s.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // let a LISTEN settle
	for i := 0; i < cap(ch)+50; i++ {
		insert(t, s, nj("t")) // one event each; nobody reads
	}
	time.Sleep(200 * time.Millisecond) // the last notifications arrive
	for len(ch) > 0 {
		<-ch
	}
	insert(t, s, nj("t"))
	if e := next(t, ch, "an event after the overflow"); e.Kind != store.EventChanged || e.Channels != nil || e.UUIDs != nil {
		t.Fatalf("after dropped events the first event is %+v, want a resync", e)
	}
	if e := next(t, ch, "the insert's own event"); e.Kind != store.EventPending {
		t.Fatalf("then %+v, want the insert's event", e)
	}
}

// subscribe listens to s until the test ends.
func subscribe(t *testing.T, s store.Store) <-chan store.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := s.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // let a LISTEN settle
	return ch
}

// next is the next event, within 5 s.
func next(t *testing.T, ch <-chan store.Event, what string) store.Event {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s within 5 s", what)
		return store.Event{}
	}
}

// attemptsAreRecordedHoweverTheyEnd: the running attempt is listed while
// it runs, and recorded when it ends: reported by its worker, found dead,
// or cut off by a requeue.
func attemptsAreRecordedHoweverTheyEnd(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, b := nj("t"), nj("t")
	insert(t, s, a, b)
	started := start(t, s, "w", time.Minute)
	if len(started) != 2 {
		t.Fatalf("started %d", len(started))
	}
	at := must(s.Attempts(ctx, "t", a.UUID))
	if len(at) != 1 || at[0].Attempt != 1 || at[0].WorkerID != "w" || at[0].Ended != nil || at[0].Outcome != "" || at[0].Started.IsZero() {
		t.Fatalf("the running attempt %+v", at)
	}
	if _, err := s.Requeue(ctx, "t", a.UUID); err != nil {
		t.Fatal(err)
	}
	at = must(s.Attempts(ctx, "t", a.UUID))
	if len(at) != 1 || at[0].Outcome != "requeued" || at[0].Ended == nil {
		t.Fatalf("the attempt cut off by a requeue %+v", at)
	}
	var jb abi.Job
	for _, j := range started {
		if j.UUID == b.UUID {
			jb = j
		}
	}
	if ap := must(s.Complete(ctx, []store.Completion{{UUID: b.UUID, WorkerID: "w", Attempt: jb.Attempt, To: abi.StatePending,
		Cause: abi.CauseRetry, ExcName: "RetryableJobError", ExcMessage: "later"}})); len(ap) != 1 {
		t.Fatal("retry not applied")
	}
	again := start(t, s, "w2", time.Millisecond) // a's second run and b's retry
	if len(again) != 2 {
		t.Fatalf("restarted %d", len(again))
	}
	time.Sleep(20 * time.Millisecond)
	if r := must(s.ReapExpired(ctx, time.Now(), nil)); len(r) != 2 {
		t.Fatalf("reaped %+v", r)
	}
	at = must(s.Attempts(ctx, "t", b.UUID))
	if len(at) != 2 || at[0].Outcome != "retry" || at[0].ExcMessage != "later" || at[0].Ended == nil ||
		at[1].Attempt != 2 || at[1].WorkerID != "w2" || at[1].Outcome != "dead" || at[1].ExcName != abi.ExcJobFoundDead || at[1].Ended == nil {
		t.Fatalf("attempts of a retried then dead job %+v", at)
	}
}

// silentSuccessIsListedAndSurvivesARequeue: a done attempt without logs
// is listed like any other, and is still there after the job is requeued
// and run again.
func silentSuccessIsListedAndSurvivesARequeue(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := nj("t")
	insert(t, s, a)
	j := start(t, s, "w", time.Minute)[0]
	if ap := must(s.Complete(ctx, []store.Completion{{UUID: a.UUID, WorkerID: "w", Attempt: j.Attempt, To: abi.StateDone,
		Cause: abi.CauseDone, PluginSHA256: "sha-1"}})); len(ap) != 1 {
		t.Fatal("not applied")
	}
	done := get(t, s, a.UUID)
	at := must(s.Attempts(ctx, "t", a.UUID))
	if len(at) != 1 || at[0].Attempt != 1 || at[0].Outcome != "done" || at[0].WorkerID != "w" || at[0].PluginSHA256 != "sha-1" ||
		at[0].Ended == nil || !at[0].Ended.Equal(*done.DateDone) || !at[0].Started.Equal(*done.DateStarted) {
		t.Fatalf("the silent successful attempt %+v", at)
	}
	if _, err := s.Requeue(ctx, "t", a.UUID); err != nil {
		t.Fatal(err)
	}
	j = start(t, s, "w2", time.Minute)[0]
	complete(t, s, j, abi.StateDone, abi.CauseDone)
	at = must(s.Attempts(ctx, "t", a.UUID))
	if len(at) != 2 || at[0].Outcome != "done" || at[0].WorkerID != "w" || at[0].Ended == nil ||
		at[1].Attempt != 2 || at[1].WorkerID != "w2" || at[1].Outcome != "done" {
		t.Fatalf("attempts after a requeue and a second run %+v", at)
	}
}

// nodesAnnounceThemselves: every subscriber hears an announcement.
func nodesAnnounceThemselves(t *testing.T, s store.Store) {
	ch := subscribe(t, s)
	if err := s.Announce(context.Background(), "node-7"); err != nil {
		t.Fatal(err)
	}
	if e := next(t, ch, "announcement"); e.Kind != store.EventNode || e.Node != "node-7" {
		t.Fatalf("event %+v after an announcement", e)
	}
}

// pendingEventsNameTheJobs: an EventPending names the jobs that became
// pending, and Pending reads exactly those still pending.
func pendingEventsNameTheJobs(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := must(s.Subscribe(ctx))
	time.Sleep(50 * time.Millisecond) // let a LISTEN settle
	a, b := nj("t"), nj("t")
	insert(t, s, a, b)
	named := map[string]bool{}
	for deadline := time.After(5 * time.Second); len(named) < 2; {
		select {
		case e := <-ch:
			if e.Kind == store.EventPending {
				for _, id := range e.UUIDs {
					named[id] = true
				}
			}
		case <-deadline:
			t.Fatalf("pending events named %v, want both inserted jobs", named)
		}
	}
	if !named[a.UUID] || !named[b.UUID] {
		t.Fatalf("pending events named %v", named)
	}
	if _, err := s.Cancel(ctx, "t", b.UUID); err != nil {
		t.Fatal(err)
	}
	got := must(s.Pending(ctx, []string{a.UUID, b.UUID, "no-such-job"}))
	if len(got) != 1 || got[0].UUID != a.UUID || got[0].Version == 0 || got[0].Channel != "root" || got[0].Tenant != "t" {
		t.Fatalf("pending among a, cancelled b and an unknown uuid: %+v", got)
	}
}

func uuids(js []abi.Job) []string {
	out := make([]string, len(js))
	for i, j := range js {
		out[i] = j.UUID
	}
	return out
}
