package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// dedupOnlyWhileActive: a job blocks its identity key in
// wait_dependencies, pending and enqueued, and stops blocking once started
// or finished; keys are per tenant.
func dedupOnlyWhileActive(t *testing.T, s store.Store) {
	ctx := context.Background()
	keyed := func(tenant, key string) store.NewJob {
		j := nj(tenant)
		j.IdentityKey = key
		return j
	}
	mustDedup := func(key, want string) {
		t.Helper()
		r, err := s.Insert(ctx, []store.NewJob{keyed("t", key)})
		if err != nil || !r[0].Deduplicated || r[0].Job.UUID != want {
			t.Fatalf("key %s: %+v %v, want the existing job %s", key, r, err, want)
		}
	}
	mustCreate := func(key string) abi.Job {
		t.Helper()
		r, err := s.Insert(ctx, []store.NewJob{keyed("t", key)})
		if err != nil || r[0].Deduplicated {
			t.Fatalf("key %s: %+v %v, want a new job", key, r, err)
		}
		return r[0].Job
	}

	// One batch with the key twice stores the first only.
	r, err := s.Insert(ctx, []store.NewJob{keyed("t", "k"), keyed("t", "k")})
	if err != nil || r[0].Deduplicated || !r[1].Deduplicated || r[1].Job.UUID != r[0].Job.UUID {
		t.Fatalf("same key twice in a batch: %+v %v", r, err)
	}
	first := r[0].Job
	mustDedup("k", first.UUID) // pending
	if r, err := s.Insert(ctx, []store.NewJob{keyed("other", "k")}); err != nil || r[0].Deduplicated {
		t.Fatalf("another tenant's key deduplicated: %+v %v", r, err)
	}
	moved := must(s.Enqueue(ctx, must(s.PendingSince(ctx, 0, 1000)), time.Now().Add(time.Minute)))
	if len(moved) != 2 {
		t.Fatalf("enqueued %d", len(moved))
	}
	mustDedup("k", first.UUID) // enqueued
	var claimed abi.Job
	for _, j := range must(s.Claim(ctx, "w", 10, time.Now().Add(time.Minute))) {
		if j.UUID == first.UUID {
			claimed = j
		}
	}
	second := mustCreate("k") // started does not block
	mustDedup("k", second.UUID)
	complete(t, s, claimed, abi.StateDone, abi.CauseDone)
	if _, err := s.Cancel(ctx, "t", second.UUID); err != nil {
		t.Fatal(err)
	}
	third := mustCreate("k") // done and cancelled do not block

	// wait_dependencies blocks.
	parent := nj("t")
	parent.ETA = ptr(time.Now().Add(time.Hour))
	child := keyed("t", "w")
	child.DependsOn = []string{parent.UUID}
	got := insert(t, s, parent, child)
	if got[1].State != abi.StateWaitDependencies {
		t.Fatalf("child is %s", got[1].State)
	}
	mustDedup("w", got[1].UUID)

	// Failed does not block; requeueing a failed job back under a taken key
	// is refused rather than making two active jobs with one key.
	if _, err := s.Cancel(ctx, "t", third.UUID); err != nil {
		t.Fatal(err)
	}
	f := mustCreate("f")
	for _, j := range start(t, s, "w2", time.Minute) {
		if j.UUID == f.UUID {
			complete(t, s, j, abi.StateFailed, abi.CauseFail)
		}
	}
	if get(t, s, f.UUID).State != abi.StateFailed {
		t.Fatal("fixture not failed")
	}
	g := mustCreate("f")
	requeueUnderTakenKey(t, s, f, g)

	// A started job that goes back to pending (retry, dead worker) while a
	// newer job holds its key must not be stuck: the store keeps both.
	for _, viaReaper := range []bool{false, true} {
		key := fmt.Sprintf("r%v", viaReaper)
		old := mustCreate(key)
		var held abi.Job
		for _, j := range start(t, s, "w3", 50*time.Millisecond) {
			if j.UUID == old.UUID {
				held = j
			}
		}
		newer := mustCreate(key)
		if viaReaper {
			if got, err := s.ReapExpired(ctx, time.Now().Add(time.Second), nil); err != nil || len(got) == 0 {
				t.Fatalf("reap under a taken key: %v %v", got, err)
			}
		} else {
			ap, err := s.Complete(ctx, []store.Completion{{UUID: held.UUID, WorkerID: "w3", Attempt: held.Attempt, To: abi.StatePending, Cause: abi.CauseRetry}})
			if err != nil || len(ap) != 1 {
				t.Fatalf("retry under a taken key: %v %v", ap, err)
			}
		}
		if g := get(t, s, old.UUID); g.State != abi.StatePending {
			t.Fatalf("retried job is %s", g.State)
		}
		r := must(s.Insert(ctx, []store.NewJob{keyed("t", key)}))
		if !r[0].Deduplicated {
			t.Fatal("a key held by two pending jobs did not deduplicate")
		}
		// The newer job leaves; the retried one still blocks the key.
		if _, err := s.Cancel(ctx, "t", newer.UUID); err != nil {
			t.Fatal(err)
		}
		if r := must(s.Insert(ctx, []store.NewJob{keyed("t", key)})); !r[0].Deduplicated || r[0].Job.UUID != old.UUID {
			t.Fatalf("the retried pending job does not block its key: %+v", r[0])
		}
		if _, err := s.Cancel(ctx, "t", old.UUID); err != nil {
			t.Fatal(err)
		}
	}
}

func requeueUnderTakenKey(t *testing.T, s store.Store, f, g abi.Job) {
	t.Helper()
	ctx := context.Background()
	// The failed job is requeued beside the newer one holding its key
	// (docs/semantics.md §5 checks keys on creation only); the key stays blocked.
	if r, err := s.Requeue(ctx, "t", f.UUID); err != nil || r.State != abi.StatePending {
		t.Fatalf("requeue under a taken key: %v", err)
	}
	if _, err := s.Cancel(ctx, "t", g.UUID); err != nil {
		t.Fatal(err)
	}
	r, err := s.Insert(ctx, []store.NewJob{func() store.NewJob { j := nj("t"); j.IdentityKey = "f"; return j }()})
	if err != nil || !r[0].Deduplicated || r[0].Job.UUID != f.UUID {
		t.Fatalf("the requeued job does not block its key: %+v %v", r, err)
	}
	if _, err := s.Cancel(ctx, "t", f.UUID); err != nil {
		t.Fatal(err)
	}
}

// enqueueIsConditionalOnVersion: a job changed after the scheduler read it
// is not enqueued from the stale read; the change shows in PendingSince.
func enqueueIsConditionalOnVersion(t *testing.T, s store.Store) {
	ctx := context.Background()
	j := insert(t, s, nj("t"))[0]
	c := must(s.PendingSince(ctx, 0, 10))
	if len(c) != 1 || c[0].UUID != j.UUID || c[0].Version == 0 {
		t.Fatalf("candidates %+v", c)
	}
	if _, err := s.Update(ctx, "t", j.UUID, store.Patch{Priority: ptr(3)}); err != nil {
		t.Fatal(err)
	}
	if moved := must(s.Enqueue(ctx, c, time.Now().Add(time.Minute))); len(moved) != 0 {
		t.Fatal("a stale candidate was enqueued")
	}
	c2 := must(s.PendingSince(ctx, c[0].Version, 10))
	if len(c2) != 1 || c2[0].Version <= c[0].Version || c2[0].Priority != 3 {
		t.Fatalf("the changed job after version %d: %+v", c[0].Version, c2)
	}
	if moved := must(s.Enqueue(ctx, c2, time.Now().Add(time.Minute))); len(moved) != 1 {
		t.Fatal("the fresh candidate was not enqueued")
	}
	if moved := must(s.Enqueue(ctx, c2, time.Now().Add(time.Minute))); len(moved) != 0 {
		t.Fatal("a job was enqueued twice")
	}
	if g := get(t, s, j.UUID); g.State != abi.StateEnqueued || g.DateEnqueued == nil || g.LeaseUntil == nil {
		t.Fatalf("enqueued job %+v", g)
	}
	if c := must(s.PendingSince(ctx, 0, 10)); len(c) != 0 {
		t.Fatalf("an enqueued job is still a candidate: %+v", c)
	}
}

// listFiltersAndPaging: newest first, key-set paging that neither repeats
// nor skips jobs even when jobs are inserted between pages.
func listFiltersAndPaging(t *testing.T, s store.Store) {
	ctx := context.Background()
	graph := uuid.NewString()
	var all []string
	for i := range 23 {
		j := nj("t")
		j.Channel = []string{"root", "root.a", "root.a.b", "root.ab"}[i%4]
		if i%5 == 0 {
			j.Func = "mail.send"
			j.GraphUUID = graph
		}
		j.Description = fmt.Sprintf("job number %d", i)
		if i%3 == 0 {
			insert(t, s, j) // some alone, some in batches: seq breaks date ties
			all = append(all, j.UUID)
			continue
		}
		k := nj("t")
		k.Description = "batch mate"
		insert(t, s, j, k)
		all = append(all, j.UUID, k.UUID)
	}
	insert(t, s, nj("stranger"))

	var seen []abi.Job
	cursor := ""
	for pages := 0; ; pages++ {
		p, err := s.List(ctx, store.Filter{Tenant: "t", Limit: 7, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, p.Jobs...)
		if pages == 0 {
			insert(t, s, nj("t")) // newer than every page: must not appear later
		}
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	if len(seen) != len(all) {
		t.Fatalf("paged %d jobs, want %d", len(seen), len(all))
	}
	ids := map[string]bool{}
	for i, j := range seen {
		if ids[j.UUID] {
			t.Fatalf("job %s on two pages", j.UUID)
		}
		ids[j.UUID] = true
		if i > 0 {
			p := seen[i-1]
			if j.DateCreated.After(p.DateCreated) || (j.DateCreated.Equal(p.DateCreated) && j.Seq >= p.Seq) {
				t.Fatalf("not newest first at %d: %v/%d after %v/%d", i, j.DateCreated, j.Seq, p.DateCreated, p.Seq)
			}
		}
	}
	for _, id := range all {
		if !ids[id] {
			t.Fatalf("job %s missing from the pages", id)
		}
	}
	if _, err := s.List(ctx, store.Filter{Cursor: "not a cursor"}); !errors.Is(err, abi.ErrInvalid) {
		t.Fatalf("bad cursor: %v", err)
	}

	count := func(f store.Filter) []abi.Job {
		t.Helper()
		f.Limit = 1000
		return must(s.List(ctx, f)).Jobs
	}
	if n := len(count(store.Filter{})); n != len(all)+2 {
		t.Fatalf("every tenant: %d jobs, want %d", n, len(all)+2)
	}
	if js := count(store.Filter{Tenant: "t", Channel: "root.a"}); len(js) == 0 || anyBut(js, func(j abi.Job) bool { return j.Channel == "root.a" }) {
		t.Fatalf("exact channel: %d jobs", len(js))
	}
	sub := count(store.Filter{Tenant: "t", Channel: "root.a.*"})
	if anyBut(sub, func(j abi.Job) bool { return j.Channel == "root.a" || j.Channel == "root.a.b" }) ||
		!anyBut(sub, func(j abi.Job) bool { return j.Channel != "root.a.b" }) {
		t.Fatalf("channel subtree root.a.*: %v", channels(sub))
	}
	if js := count(store.Filter{Func: "mail.send"}); len(js) != 5 || anyBut(js, func(j abi.Job) bool { return j.Func == "mail.send" }) {
		t.Fatalf("func filter: %d jobs", len(js))
	}
	if js := count(store.Filter{GraphUUID: graph}); len(js) != 5 {
		t.Fatalf("graph filter: %d jobs", len(js))
	}
	if js := count(store.Filter{Query: "number 1"}); len(js) != 11 { // 1, 10..19
		t.Fatalf("query filter: %d jobs", len(js))
	}
	if js := count(store.Filter{Query: seen[3].UUID[:13]}); len(js) != 1 || js[0].UUID != seen[3].UUID {
		t.Fatalf("query by uuid prefix: %d jobs", len(js))
	}
	s.Cancel(ctx, "t", seen[0].UUID)
	if js := count(store.Filter{States: []abi.State{abi.StateCancelled, abi.StateDone}}); len(js) != 1 || js[0].UUID != seen[0].UUID {
		t.Fatalf("state filter: %d jobs", len(js))
	}
	if js := count(store.Filter{Tenant: "nobody"}); js == nil || len(js) != 0 {
		t.Fatalf("empty page: %#v", js)
	}
}

func anyBut(js []abi.Job, ok func(abi.Job) bool) bool {
	for _, j := range js {
		if !ok(j) {
			return true
		}
	}
	return false
}

func channels(js []abi.Job) []string {
	var out []string
	for _, j := range js {
		out = append(out, j.Channel)
	}
	return out
}

// runningCountsPerChannelAndTenant: enqueued and started use capacity.
func runningCountsPerChannelAndTenant(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, b, c, d := nj("t"), nj("t"), nj("u"), nj("u")
	a.Channel, b.Channel = "root.x", "root.x"
	d.ETA = ptr(time.Now().Add(time.Hour))
	insert(t, s, a, b, c, d)
	var ready []store.Candidate
	for _, c := range must(s.PendingSince(ctx, 0, 100)) {
		if c.ETA == nil {
			ready = append(ready, c)
		}
	}
	must(s.Enqueue(ctx, ready, time.Now().Add(time.Minute)))
	if cl := must(s.Claim(ctx, "w", 1, time.Now().Add(time.Minute))); len(cl) != 1 {
		t.Fatal("nothing claimed")
	}
	rc, rt := map[string]int{}, map[string]int{}
	for _, j := range must(s.Running(ctx)) {
		rc[j.Channel]++
		rt[j.Tenant]++
	}
	if rc["root.x"] != 2 || rc["root"] != 1 || len(rc) != 2 {
		t.Fatalf("running per channel %v", rc)
	}
	if rt["t"] != 2 || rt["u"] != 1 || len(rt) != 2 {
		t.Fatalf("running per tenant %v", rt)
	}
	counts := must(s.Counts(ctx, ""))
	total := 0
	for _, cc := range counts {
		for _, n := range cc.Counts {
			total += n
		}
	}
	if total != 4 {
		t.Fatalf("counts %+v", counts)
	}
	if cu := must(s.Counts(ctx, "u")); len(cu) != 1 || cu[0].Channel != "root" || cu[0].Counts[abi.StatePending] != 1 {
		t.Fatalf("counts of tenant u %+v", cu)
	}
}

// eventsAfterCompletion: a completion frees capacity and says so.
func eventsAfterCompletion(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	insert(t, s, nj("t"))
	j := start(t, s, "w", time.Minute)[0]
	ch, err := s.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // let a LISTEN settle
	complete(t, s, j, abi.StateDone, abi.CauseDone)
	deadline := time.After(5 * time.Second)
	for {
		select {
		case e := <-ch:
			if e.Kind == store.EventFinished {
				return
			}
		case <-deadline:
			t.Fatal("no finished event after a completion")
		}
	}
}

// finishedJobsRecordWhatHappened: exec_time, late, exc fields, attempts
// with logs, date_cancelled, the set-done message, requeue clearing.
func finishedJobsRecordWhatHappened(t *testing.T, s store.Store) {
	ctx := context.Background()
	past := time.Now().Add(-time.Minute)
	a, b := nj("t"), nj("t")
	a.ExpectedAt = &past
	insert(t, s, a, b)
	byID := map[string]abi.Job{}
	for _, j := range start(t, s, "w", time.Minute) {
		byID[j.UUID] = j
	}
	ended := time.Now().Add(10 * time.Millisecond)
	logs := []abi.LogLine{{Time: ended, Level: "info", Message: "hello"}}
	ap, err := s.Complete(ctx, []store.Completion{
		{UUID: a.UUID, WorkerID: "w", Attempt: 1, To: abi.StateDone, Cause: abi.CauseDone, Result: []byte(`[1,2]`), Ended: ended, PluginSHA256: "abc", Logs: logs},
		{UUID: b.UUID, WorkerID: "w", Attempt: 1, To: abi.StateFailed, Cause: abi.CauseFail, ExcName: abi.ExcTrap, ExcMessage: "unreachable", ExcInfo: "wasm backtrace", Ended: ended},
	})
	if err != nil || len(ap) != 2 {
		t.Fatalf("complete: %v %v", ap, err)
	}
	ja := get(t, s, a.UUID)
	if ja.State != abi.StateDone || !ja.Late || ja.ExecTime == nil || ja.DateDone == nil || ja.DateStarted == nil {
		t.Fatalf("done job %+v", ja)
	}
	if d := ja.DateDone.Sub(*ja.DateStarted).Seconds(); *ja.ExecTime < d-0.001 || *ja.ExecTime > d+0.001 {
		t.Fatalf("exec_time %v, want date_done - date_started = %v", *ja.ExecTime, d)
	}
	if string(ja.Result) != `[1,2]` || ja.PluginSHA256 != "abc" {
		t.Fatalf("result %s sha %q", ja.Result, ja.PluginSHA256)
	}
	at := must(s.Attempts(ctx, "t", a.UUID))
	if len(at) != 1 || at[0].WorkerID != "w" || at[0].Ended == nil || len(at[0].Logs) != 1 || at[0].Logs[0].Message != "hello" || at[0].PluginSHA256 != "abc" {
		t.Fatalf("attempts %+v", at)
	}
	jb := get(t, s, b.UUID)
	if jb.State != abi.StateFailed || jb.ExcName != abi.ExcTrap || jb.ExcMessage != "unreachable" || jb.ExcInfo != "wasm backtrace" || jb.Late {
		t.Fatalf("failed job %+v", jb)
	}
	if at := must(s.Attempts(ctx, "t", b.UUID)); len(at) != 1 || at[0].ExcName != abi.ExcTrap {
		t.Fatalf("failed attempt %+v", at)
	}
	if _, err := s.Attempts(ctx, "other", b.UUID); !errors.Is(err, abi.ErrNotFound) {
		t.Fatalf("another tenant's attempts: %v", err)
	}
	c, _ := s.Cancel(ctx, "t", b.UUID)
	if c.State != abi.StateCancelled || c.DateCancelled == nil {
		t.Fatalf("cancelled job %+v", c)
	}
	d, err := s.SetDone(ctx, "t", insert(t, s, nj("t"))[0].UUID, nil)
	if err != nil || !strings.Contains(strings.ToLower(string(d.Result)), "manually") {
		t.Fatalf("set done result %s (%v)", d.Result, err)
	}
	r, err := s.Requeue(ctx, "t", a.UUID)
	if err != nil || r.Result != nil && string(r.Result) != "null" || r.DateDone != nil || r.ExecTime != nil || r.WorkerID != "" || r.Late {
		t.Fatalf("requeued job %+v (%v)", r, err)
	}
	if _, err := s.Get(ctx, "t", uuid.NewString()); !errors.Is(err, abi.ErrNotFound) {
		t.Fatalf("unknown job: %v", err)
	}
	if _, err := s.Cancel(ctx, "t", uuid.NewString()); !errors.Is(err, abi.ErrNotFound) {
		t.Fatalf("cancel of an unknown job: %v", err)
	}
}

// requeueWaitsForParents: a requeued child whose parent is not done goes
// back to wait_dependencies.
func requeueWaitsForParents(t *testing.T, s store.Store) {
	ctx := context.Background()
	p := nj("t")
	c := nj("t")
	c.DependsOn = []string{p.UUID}
	insert(t, s, p, c)
	if _, err := s.SetDone(ctx, "t", c.UUID, nil); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Requeue(ctx, "t", c.UUID); err != nil || r.State != abi.StateWaitDependencies {
		t.Fatalf("requeued child of a pending parent: %s %v", r.State, err)
	}
}

// patchBeforeStart: Update applies in wait_dependencies, pending, failed.
func patchBeforeStart(t *testing.T, s store.Store) {
	ctx := context.Background()
	p := nj("t")
	p.ETA = ptr(time.Now().Add(time.Hour))
	c := nj("t")
	c.DependsOn = []string{p.UUID}
	insert(t, s, p, c)
	u, err := s.Update(ctx, "t", c.UUID, store.Patch{Description: ptr("waiting"), MaxRetries: ptr(0)})
	if err != nil || u.Description != "waiting" || u.MaxRetries != 0 || u.State != abi.StateWaitDependencies {
		t.Fatalf("patch waiting job: %+v %v", u, err)
	}
	var noETA *time.Time
	u, err = s.Update(ctx, "t", p.UUID, store.Patch{ETA: &noETA, Priority: ptr(0)})
	if err != nil || u.ETA != nil || u.Priority != 0 || u.State != abi.StatePending {
		t.Fatalf("patch pending job: %+v %v", u, err)
	}
	if _, err := s.Update(ctx, "t", p.UUID, store.Patch{Priority: ptr(-1)}); !errors.Is(err, abi.ErrInvalid) {
		t.Fatalf("negative priority: %v", err)
	}
	if g := get(t, s, p.UUID); g.Priority != 0 {
		t.Fatalf("a refused patch changed the job: %+v", g)
	}
	must(s.Enqueue(ctx, must(s.PendingSince(ctx, 0, 100)), time.Now().Add(time.Minute)))
	if _, err := s.Update(ctx, "t", p.UUID, store.Patch{Priority: ptr(1)}); !errors.Is(err, abi.ErrIllegalTransition) {
		t.Fatalf("patch enqueued job: %v", err)
	}
	if _, err := s.Cancel(ctx, "t", p.UUID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, "t", c.UUID, store.Patch{Priority: ptr(1)}); !errors.Is(err, abi.ErrIllegalTransition) {
		t.Fatalf("patch cancelled job: %v", err)
	}
}

// vacuumedParentCountsAsDone: deleting a done parent does not strand its
// dependents.
func vacuumedParentCountsAsDone(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, b := nj("t"), nj("t")
	a.Channel = "root.old"
	b.ETA = ptr(time.Now().Add(time.Hour))
	c := nj("t")
	c.DependsOn = []string{a.UUID, b.UUID}
	insert(t, s, a, b, c)
	ja := start(t, s, "w", time.Minute)[0]
	complete(t, s, ja, abi.StateDone, abi.CauseDone)
	if n := must(s.Vacuum(ctx, "root.old", time.Now().Add(time.Second))); n != 1 {
		t.Fatalf("vacuumed %d", n)
	}
	if g := get(t, s, c.UUID); g.State != abi.StateWaitDependencies {
		t.Fatalf("child is %s before its last parent ends", g.State)
	}
	if _, err := s.SetDone(ctx, "t", b.UUID, nil); err != nil {
		t.Fatal(err)
	}
	if g := get(t, s, c.UUID); g.State != abi.StatePending {
		t.Fatalf("child of a vacuumed done parent is %s, want pending", g.State)
	}
}

// A job requeued after its parent was cancelled waits for that parent
// (semantics.md, section 7); when the vacuum deletes the parent, it
// counts as done, and the job is settled in the vacuum's transaction:
// nothing else would ever move it.
func aJobWaitingForAVacuumedParentIsSettled(t *testing.T, s store.Store) {
	ctx := context.Background()
	p, c := nj("t"), nj("t")
	p.Channel = "root.old"
	c.DependsOn = []string{p.UUID}
	insert(t, s, p, c)
	must(s.Cancel(ctx, "t", p.UUID))
	if g := get(t, s, c.UUID); g.State != abi.StateCancelled {
		t.Fatalf("the child of a cancelled parent is %s, want cancelled", g.State)
	}
	if j := must(s.Requeue(ctx, "t", c.UUID)); j.State != abi.StateWaitDependencies {
		t.Fatalf("requeued under a cancelled parent, the child is %s, want wait_dependencies", j.State)
	}
	if n := must(s.Vacuum(ctx, "root.old", time.Now().Add(time.Second))); n != 1 {
		t.Fatalf("vacuumed %d", n)
	}
	if g := get(t, s, c.UUID); g.State != abi.StatePending {
		t.Fatalf("the child of a vacuumed parent is %s, want pending", g.State)
	}
}

// runOrderBreaksTiesBySeq: jobs of one batch share date_created.
func runOrderBreaksTiesBySeq(t *testing.T, s store.Store) {
	var batch []store.NewJob
	for range 5 {
		batch = append(batch, nj("t"))
	}
	insert(t, s, batch...)
	cl := start(t, s, "w", time.Minute)
	for i := range batch {
		if i >= len(cl) || cl[i].UUID != batch[i].UUID {
			t.Fatalf("claim %d is not the %d-th inserted job", i, i)
		}
	}
}

// cyclesAreRefused: within a batch a cycle cannot be stored.
func cyclesAreRefused(t *testing.T, s store.Store) {
	a, b := nj("t"), nj("t")
	a.DependsOn, b.DependsOn = []string{b.UUID}, []string{a.UUID}
	if _, err := s.Insert(context.Background(), []store.NewJob{a, b}); !errors.Is(err, abi.ErrInvalid) {
		t.Fatalf("cycle: %v", err)
	}
	c := nj("t")
	c.DependsOn = []string{c.UUID}
	if _, err := s.Insert(context.Background(), []store.NewJob{c}); !errors.Is(err, abi.ErrInvalid) {
		t.Fatalf("self dependency: %v", err)
	}
	if js := must(s.List(context.Background(), store.Filter{})).Jobs; len(js) != 0 {
		t.Fatalf("refused batches stored %d jobs", len(js))
	}
}

// retryBudget: a retry to pending counts, a shutdown does not.
func retryBudget(t *testing.T, s store.Store) {
	ctx := context.Background()
	insert(t, s, nj("t"))
	j := start(t, s, "w", time.Minute)[0]
	ap := must(s.Complete(ctx, []store.Completion{{UUID: j.UUID, WorkerID: "w", Attempt: 1, To: abi.StatePending, Cause: abi.CauseRetry, ExcName: abi.ExcError, ExcMessage: "try later"}}))
	if len(ap) != 1 {
		t.Fatal("retry not applied")
	}
	g := get(t, s, j.UUID)
	if g.State != abi.StatePending || g.Retry != 1 || g.WorkerID != "" || g.ExcMessage != "try later" {
		t.Fatalf("after a retry %+v", g)
	}
	j = start(t, s, "w", time.Minute)[0]
	if j.Retry != 2 || j.Attempt != 2 {
		t.Fatalf("second start retry %d attempt %d", j.Retry, j.Attempt)
	}
	must(s.Complete(ctx, []store.Completion{{UUID: j.UUID, WorkerID: "w", Attempt: 2, To: abi.StatePending, Cause: abi.CauseShutdown, UncountRetry: true}}))
	if g := get(t, s, j.UUID); g.State != abi.StatePending || g.Retry != 1 || g.Attempt != 2 {
		t.Fatalf("after a shutdown retry %d attempt %d state %s", g.Retry, g.Attempt, g.State)
	}
	if at := must(s.Attempts(ctx, "t", j.UUID)); len(at) != 2 || at[0].Attempt != 1 || at[1].Attempt != 2 {
		t.Fatalf("attempts %+v", at)
	}
}
