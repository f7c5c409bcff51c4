// Package storetest is the conformance suite every store.Store passes.
package storetest

import (
	"context"
	"errors"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// Run runs every case on a fresh store from open.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	for _, c := range []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"JobLifecycleDedupAndPaging", lifecycle},
		{"ManualActionsFollowTheStateTable", manualActions},
		{"ConcurrentClaimsNeverShareAJob", concurrentClaims},
		{"ClaimOrder", claimOrder},
		{"CompleteOnlyByTheHolder", completeOnlyByTheHolder},
		{"GraphsPromoteHoldAndCascade", graphs},
		{"ReapExpiredLeases", reap},
		{"AStaleReportNeverHidesTheCurrentOne", aStaleReportNeverHidesTheCurrentOne},
		{"AStartItsWorkerNeverReceivedIsDisowned", aStartItsWorkerNeverReceivedIsDisowned},
		{"VacuumKeepsFailedAndRecent", vacuum},
		{"EventsAfterWrites", events},
		{"SubSecondTimestamps", timestamps},
		{"IdentityKeyBlocksOnlyWhileActive", dedupOnlyWhileActive},
		{"EnqueueIsConditionalOnVersion", enqueueIsConditionalOnVersion},
		{"ListFiltersNewestFirstAndPaging", listFiltersAndPaging},
		{"AListOfOneStateFindsEveryJobInIt", aListOfOneStateFindsEveryJobInIt},
		{"RunningCountsPerChannelAndTenant", runningCountsPerChannelAndTenant},
		{"EventAfterCompletion", eventsAfterCompletion},
		{"FinishedJobsRecordWhatHappened", finishedJobsRecordWhatHappened},
		{"RequeueWaitsForParents", requeueWaitsForParents},
		{"PatchOnlyBeforeStart", patchBeforeStart},
		{"VacuumedParentCountsAsDone", vacuumedParentCountsAsDone},
		{"AJobWaitingForAVacuumedParentIsSettled", aJobWaitingForAVacuumedParentIsSettled},
		{"RunOrderBreaksTiesBySeq", runOrderBreaksTiesBySeq},
		{"CyclesAreRefused", cyclesAreRefused},
		{"RetryBudget", retryBudget},
		{"StartTakesPickedJobsStraightToStarted", startTakesPickedJobsStraightToStarted},
		{"FinishedEventsNameTheJobs", finishedEventsNameTheJobs},
		{"DroppedEventsBringAResync", droppedEventsBringAResync},
		{"AttemptsAreRecordedHoweverTheyEnd", attemptsAreRecordedHoweverTheyEnd},
		{"SilentSuccessIsListedAndSurvivesARequeue", silentSuccessIsListedAndSurvivesARequeue},
		{"NodesAnnounceThemselves", nodesAnnounceThemselves},
		{"PendingEventsNameTheJobs", pendingEventsNameTheJobs},
		{"BadTextIsRefusedInEveryField", badTextIsRefusedInEveryField},
		{"NumbersAreCheckedAtTheirBoundaries", numbersAreCheckedAtTheirBoundaries},
		{"HostileLookupsFindNothing", hostileLookupsFindNothing},
		{"PluginReportsAreMendedNotLost", pluginReportsAreMendedNotLost},
		{"IllegalOutcomesAreRefused", illegalOutcomesAreRefused},
		{"PagesAreBoundedInBytes", pagesAreBoundedInBytes},
		{"AWorkerThatLetsGoIsTakenBackAtOnce", aWorkerThatLetsGoIsTakenBackAtOnce},
		{"QuotasAreCheckedWithTheInsert", quotasAreCheckedWithTheInsert},
		{"SchedulesAreKeptPerTenant", schedulesAreKeptPerTenant},
		{"ADueTimeFiresOnce", aDueTimeFiresOnce},
		{"FiringsTogetherAreEachAsAlone", firingsTogetherAreEachAsAlone},
		{"ScheduleChangesRestartTheCount", changesRestartTheCount},
		{"BadSchedulesAreRefused", badSchedulesAreRefused},
		{"AFiringFindingItsKeyTakenStillCounts", aFiringFindingItsKeyTakenStillCounts},
		{"ATenantsSchedulesAreBoundedByMaxSchedules", aTenantsSchedulesAreBoundedByMaxSchedules},
		{"AFiringObeysItsTenantsQuota", aFiringObeysItsTenantsQuota},
		{"SchedulesArePagedByTenantAndName", schedulesArePagedByTenantAndName},
		{"TheLeaderReadsOnlySchedulesThatMayBeDue", theLeaderReadsOnlySchedulesThatMayBeDue},
		{"CancelStartedJob", cancelStartedJob},
		{"OperatorFilters", operatorFilters},
		{"ChannelOverrides", channelOverrides},
		{"ThrottledChannelsKeepTheirLastHandOver", throttledChannelsKeepTheirLastHandOver},
		{"AFinishedEventNamesTheHandOverThatEnded", aFinishedEventNamesTheHandOverThatEnded},
		{"ActOnMany", actOnMany},
		{"ProgressOfARunningJob", progressOfARunningJob},
		{"TheSchedulerReadsWhatIsDue", theSchedulerReadsWhatIsDue},
		{"GroupCommitRefusesEachRequestAlone", groupCommitRefusesEachRequestAlone},
		{"GroupCommitBulkConflictFailsAlone", groupCommitBulkConflictFailsAlone},
		{"ABatchKeepsEachJobsOwnValues", aBatchKeepsEachJobsOwnValues},
		{"APlainGroupIsCountedAndAnnouncedWhole", aPlainGroupIsCountedAndAnnouncedWhole},
		{"AnnouncedJobsAreWhatPendingReads", announcedJobsAreWhatPendingReads},
		{"GroupCommitQuotasStayExact", groupCommitQuotasStayExact},
		{"GroupCommitKeysNeverDeadlock", groupCommitKeysNeverDeadlock},
		{"ActionsInOppositeOrdersNeverFail", actionsInOppositeOrdersNeverFail},
		{"TakenUUIDsAreAConflictInAnyOrder", takenUUIDsAreAConflictInAnyOrder},
		{"AChildStoredAsItsParentsEndIsSettled", aChildStoredAsItsParentsEndIsSettled},
		{"TheRulesHoldWhateverWritersMeet", theRulesHoldWhateverWritersMeet},
		{"IdentityKeysHoldWhateverWritersMeet", identityKeysHoldWhateverWritersMeet},
		{"RecordsAreKeptWithTheirAttemptAndLeaveWithTheirJob", recordsAreKeptWithTheirAttemptAndLeaveWithTheirJob},
		{"ARecordOfAnAttemptTakenBackIsNotKept", aRecordOfAnAttemptTakenBackIsNotKept},
		{"AttemptsKeepTheirUsage", attemptsKeepTheirUsage},
		{"UsageAggregateSumsPerTenantAndFunction", usageAggregateSumsPerTenantAndFunction},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := open(t)
			c.fn(t, s)
			if !t.Failed() {
				countsMatchTheJobs(t, s)
			}
		})
	}
}

// CountsByKey flattens Counts to "channel state" → n, for comparisons.
func CountsByKey(counts []store.ChannelCount) map[string]int {
	out := map[string]int{}
	for _, cc := range counts {
		for st, n := range cc.Counts {
			out[cc.Channel+" "+string(st)] = n
		}
	}
	return out
}

// countsMatchTheJobs: whatever a case did, Counts (which a store may keep
// apart from the jobs, as PostgreSQL does) agrees with the jobs as listed,
// for every tenant and for each one.
func countsMatchTheJobs(t *testing.T, s store.Store) {
	t.Helper()
	ctx := context.Background()
	truth := map[string]map[string]int{"": {}}
	f := store.Filter{Limit: 1000}
	for {
		page, err := s.List(ctx, f)
		if err != nil {
			t.Fatalf("list every job: %v", err)
		}
		for _, j := range page.Jobs {
			if truth[j.Tenant] == nil {
				truth[j.Tenant] = map[string]int{}
			}
			key := j.Channel + " " + string(j.State)
			truth[""][key]++
			truth[j.Tenant][key]++
		}
		if page.NextCursor == "" {
			break
		}
		f.Cursor = page.NextCursor
	}
	for tenant, want := range truth {
		counts, err := s.Counts(ctx, tenant)
		if err != nil {
			t.Fatalf("counts of tenant %q: %v", tenant, err)
		}
		got := CountsByKey(counts)
		if !maps.Equal(got, want) {
			t.Fatalf("Counts(%q) = %v, but the jobs are %v", tenant, got, want)
		}
	}
}

func nj(tenant string) store.NewJob {
	return store.NewJob{UUID: uuid.NewString(), Tenant: tenant, Func: "testkit.echo", Channel: "root", Priority: 10, MaxRetries: 5}
}

func lifecycle(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, b := nj("t"), nj("t")
	b.DependsOn = []string{a.UUID}
	ins, err := s.Insert(ctx, []store.NewJob{a, b})
	if err != nil {
		t.Fatal(err)
	}
	if ins[0].Job.State != abi.StatePending || ins[1].Job.State != abi.StateWaitDependencies || ins[1].Job.DependsOn[0] != a.UUID {
		t.Fatalf("states %+v", ins)
	}
	c, _ := s.PendingSince(ctx, 0, 10)
	if len(c) != 1 {
		t.Fatalf("cands %d", len(c))
	}
	moved, err := s.Enqueue(ctx, c, time.Now().Add(time.Minute))
	if err != nil || len(moved) != 1 {
		t.Fatal(moved, err)
	}
	cl, err := s.Claim(ctx, "w1", 10, time.Now().Add(time.Minute))
	if err != nil || len(cl) != 1 || cl[0].Retry != 1 || cl[0].Attempt != 1 {
		t.Fatal(cl, err)
	}
	ap, err := s.Complete(ctx, []store.Completion{{UUID: a.UUID, WorkerID: "w1", Attempt: 1, To: abi.StateDone, Cause: abi.CauseDone, Result: []byte(`{"x":1}`)}})
	if err != nil || len(ap) != 1 {
		t.Fatal(ap, err)
	}
	jb, _ := s.Get(ctx, "t", b.UUID)
	if jb.State != abi.StatePending {
		t.Fatalf("child %s", jb.State)
	}
	ja, _ := s.Get(ctx, "", a.UUID)
	if ja.ExecTime == nil || string(ja.Result) != `{"x":1}` {
		t.Fatalf("%+v", ja)
	}
	if _, err := s.Get(ctx, "other", a.UUID); !errors.Is(err, abi.ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := s.Cancel(ctx, "t", a.UUID); !errors.Is(err, abi.ErrIllegalTransition) {
		t.Fatal(err)
	}
	if j, err := s.Requeue(ctx, "t", a.UUID); err != nil || j.State != abi.StatePending || j.Retry != 0 {
		t.Fatal(j, err)
	}
	at, err := s.Attempts(ctx, "t", a.UUID)
	if err != nil || len(at) != 1 || at[0].Outcome != "done" {
		t.Fatal(at, err)
	}
	// dedup under concurrency
	var wg sync.WaitGroup
	var mu sync.Mutex
	created := 0
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j := nj("t")
			j.IdentityKey = "k"
			r, err := s.Insert(ctx, []store.NewJob{j})
			if err != nil {
				t.Error(err)
				return
			}
			if !r[0].Deduplicated {
				mu.Lock()
				created++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if created != 1 {
		t.Fatalf("created %d", created)
	}
	p, err := s.List(ctx, store.Filter{Tenant: "t", Limit: 2})
	if err != nil || len(p.Jobs) != 2 || p.NextCursor == "" {
		t.Fatal(p, err)
	}
	p2, err := s.List(ctx, store.Filter{Tenant: "t", Limit: 2, Cursor: p.NextCursor})
	if err != nil || len(p2.Jobs) != 1 || p2.NextCursor != "" {
		t.Fatal(len(p2.Jobs), err)
	}
}

func insert(t *testing.T, s store.Store, jobs ...store.NewJob) []abi.Job {
	t.Helper()
	ins, err := s.Insert(context.Background(), jobs)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]abi.Job, len(ins))
	for i, x := range ins {
		out[i] = x.Job
	}
	return out
}

func get(t *testing.T, s store.Store, id string) abi.Job {
	t.Helper()
	j, err := s.Get(context.Background(), "", id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// start moves every pending job whose eta has come to started for worker
// w, as the scheduler and a worker would.
func start(t *testing.T, s store.Store, w string, lease time.Duration) []abi.Job {
	t.Helper()
	ctx := context.Background()
	all, err := s.PendingSince(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var c []store.Candidate
	for _, x := range all {
		if x.ETA == nil || !x.ETA.After(time.Now()) {
			c = append(c, x)
		}
	}
	if _, err := s.Enqueue(ctx, c, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	cl, err := s.Claim(ctx, w, 1000, time.Now().Add(lease))
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func complete(t *testing.T, s store.Store, j abi.Job, to abi.State, cause abi.Cause) {
	t.Helper()
	ap, err := s.Complete(context.Background(), []store.Completion{{UUID: j.UUID, WorkerID: j.WorkerID, Attempt: j.Attempt, To: to, Cause: cause}})
	if err != nil || len(ap) != 1 {
		t.Fatalf("complete %s → %s: %v %v", j.UUID, to, ap, err)
	}
}

func manualActions(t *testing.T, s store.Store) {
	ctx := context.Background()
	type action struct {
		cause abi.Cause
		do    func(id string) (abi.Job, error)
	}
	actions := []action{
		{abi.CauseRequeue, func(id string) (abi.Job, error) { return s.Requeue(ctx, "t", id) }},
		{abi.CauseSetDone, func(id string) (abi.Job, error) { return s.SetDone(ctx, "t", id, nil) }},
		{abi.CauseCancel, func(id string) (abi.Job, error) { return s.Cancel(ctx, "t", id) }},
	}
	// make builds a job in the given state.
	make := func(st abi.State) abi.Job {
		switch st {
		case abi.StateWaitDependencies:
			p := nj("t")
			p.ETA = ptr(time.Now().Add(time.Hour))
			c := nj("t")
			c.DependsOn = []string{p.UUID}
			return insert(t, s, p, c)[1]
		case abi.StatePending:
			j := nj("t")
			j.ETA = ptr(time.Now().Add(time.Hour))
			return insert(t, s, j)[0]
		}
		j := insert(t, s, nj("t"))[0]
		cands, _ := s.PendingSince(ctx, 0, 10000)
		for _, c := range cands {
			if c.UUID == j.UUID {
				s.Enqueue(ctx, []store.Candidate{c}, time.Now().Add(time.Minute))
			}
		}
		if st == abi.StateEnqueued {
			return get(t, s, j.UUID)
		}
		var claimed abi.Job
		for _, c := range must(s.Claim(ctx, "w", 100, time.Now().Add(time.Minute))) {
			if c.UUID == j.UUID {
				claimed = c
			}
		}
		switch st {
		case abi.StateDone:
			complete(t, s, claimed, abi.StateDone, abi.CauseDone)
		case abi.StateFailed:
			complete(t, s, claimed, abi.StateFailed, abi.CauseFail)
		case abi.StateCancelled:
			complete(t, s, claimed, abi.StateFailed, abi.CauseFail)
			if _, err := s.Cancel(ctx, "t", j.UUID); err != nil {
				t.Fatal(err)
			}
		}
		return get(t, s, j.UUID)
	}
	for _, st := range abi.States {
		for _, a := range actions {
			j := make(st)
			if j.State != st {
				t.Fatalf("fixture for %s is %s", st, j.State)
			}
			got, err := a.do(j.UUID)
			if abi.CanApply(a.cause, st) {
				if err != nil {
					t.Errorf("%s on a %s job: %v", a.cause, st, err)
				} else if got.State == st && a.cause != abi.CauseRequeue {
					t.Errorf("%s on a %s job left it %s", a.cause, st, got.State)
				}
			} else if !errors.Is(err, abi.ErrIllegalTransition) {
				t.Errorf("%s on a %s job: %v, want ErrIllegalTransition", a.cause, st, err)
			}
		}
	}
	// Requeue resets the counters; set done says it was by hand.
	j := make(abi.StateFailed)
	r, _ := s.Requeue(ctx, "t", j.UUID)
	if r.State != abi.StatePending || r.Retry != 0 || r.ExcName != "" || r.DateStarted != nil || r.Attempt != 1 {
		t.Fatalf("requeued: %+v", r)
	}
	d, _ := s.SetDone(ctx, "t", make(abi.StatePending).UUID, nil)
	if d.DateDone == nil || len(d.Result) == 0 {
		t.Fatalf("set done: %+v", d)
	}
	// Patch only before start.
	if _, err := s.Update(ctx, "t", make(abi.StateStarted).UUID, store.Patch{Priority: ptr(1)}); !errors.Is(err, abi.ErrIllegalTransition) {
		t.Fatalf("patch started: %v", err)
	}
	p, err := s.Update(ctx, "t", make(abi.StateFailed).UUID, store.Patch{Priority: ptr(1), Channel: ptr("root.x")})
	if err != nil || p.Priority != 1 || p.Channel != "root.x" {
		t.Fatalf("patch failed job: %+v %v", p, err)
	}
	if _, err := s.Update(ctx, "other", p.UUID, store.Patch{Priority: ptr(2)}); !errors.Is(err, abi.ErrNotFound) {
		t.Fatalf("patch by another tenant: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func concurrentClaims(t *testing.T, s store.Store) {
	var jobs []store.NewJob
	for i := 0; i < 200; i++ {
		jobs = append(jobs, nj("t"))
	}
	insert(t, s, jobs...)
	ctx := context.Background()
	s.Enqueue(ctx, must(s.PendingSince(ctx, 0, 1000)), time.Now().Add(time.Minute))
	var mu sync.Mutex
	seen := map[string]string{}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				cl, err := s.Claim(ctx, "w"+string(rune('a'+w)), 7, time.Now().Add(time.Minute))
				if err != nil {
					t.Error(err)
					return
				}
				if len(cl) == 0 {
					return
				}
				mu.Lock()
				for _, j := range cl {
					if prev, dup := seen[j.UUID]; dup {
						t.Errorf("job %s claimed by %s and %s", j.UUID, prev, j.WorkerID)
					}
					seen[j.UUID] = j.WorkerID
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != 200 {
		t.Fatalf("%d of 200 jobs claimed", len(seen))
	}
}

func claimOrder(t *testing.T, s store.Store) {
	exp := time.Now().Add(time.Hour)
	a, b, c, d := nj("t"), nj("t"), nj("t"), nj("t")
	a.Priority, b.Priority, c.Priority, d.Priority = 10, 5, 10, 10
	d.ExpectedAt = &exp
	insert(t, s, a)
	insert(t, s, b)
	insert(t, s, c)
	insert(t, s, d)
	cl := start(t, s, "w", time.Minute)
	var got []string
	for _, j := range cl {
		got = append(got, j.UUID)
	}
	want := []string{b.UUID, d.UUID, a.UUID, c.UUID}
	for i := range want {
		if i >= len(got) || got[i] != want[i] {
			t.Fatalf("claim order %v, want %v (priority, expected_at, created)", got, want)
		}
	}
	// Future etas are pending candidates too, but never claimed before enqueue.
	f := nj("t")
	f.ETA = ptr(time.Now().Add(time.Hour))
	insert(t, s, f)
	if cl, _ := s.Claim(context.Background(), "w", 10, time.Now().Add(time.Minute)); len(cl) != 0 {
		t.Fatal("claimed a job that was never enqueued")
	}
	found := false
	for _, c := range must(s.PendingSince(context.Background(), 0, 1000)) {
		found = found || c.UUID == f.UUID
	}
	if !found {
		t.Fatal("a pending job with a future eta is not a scheduler candidate")
	}
}

func completeOnlyByTheHolder(t *testing.T, s store.Store) {
	j := insert(t, s, nj("t"))[0]
	cl := start(t, s, "w1", time.Minute)[0]
	ctx := context.Background()
	ap, _ := s.Complete(ctx, []store.Completion{{UUID: j.UUID, WorkerID: "w2", Attempt: cl.Attempt, To: abi.StateDone, Cause: abi.CauseDone}})
	if len(ap) != 0 {
		t.Fatal("a completion from another worker was applied")
	}
	ap, _ = s.Complete(ctx, []store.Completion{{UUID: j.UUID, WorkerID: "w1", Attempt: cl.Attempt + 1, To: abi.StateDone, Cause: abi.CauseDone}})
	if len(ap) != 0 {
		t.Fatal("a completion of another attempt was applied")
	}
	eta := time.Now().Add(time.Minute)
	ap, _ = s.Complete(ctx, []store.Completion{{UUID: j.UUID, WorkerID: "w1", Attempt: cl.Attempt, To: abi.StatePending, Cause: abi.CauseRetry, ETA: &eta, UncountRetry: true, Result: []byte(`"later"`)}})
	if len(ap) != 1 {
		t.Fatal("the holder's completion was not applied")
	}
	if g := get(t, s, j.UUID); g.State != abi.StatePending || g.Retry != 0 || g.Attempt != 1 || g.ETA == nil {
		t.Fatalf("after an ignored retry: %+v", g)
	}
}

func graphs(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, b := nj("t"), nj("t")
	c := nj("t")
	c.DependsOn = []string{a.UUID, b.UUID}
	d := nj("t")
	d.DependsOn = []string{c.UUID}
	insert(t, s, a, b, c, d)
	cl := start(t, s, "w", time.Minute)
	byID := map[string]abi.Job{}
	for _, j := range cl {
		byID[j.UUID] = j
	}
	complete(t, s, byID[a.UUID], abi.StateDone, abi.CauseDone)
	if get(t, s, c.UUID).State != abi.StateWaitDependencies {
		t.Fatal("fan-in promoted with a parent still running")
	}
	complete(t, s, byID[b.UUID], abi.StateFailed, abi.CauseFail)
	if get(t, s, c.UUID).State != abi.StateWaitDependencies {
		t.Fatal("a failed parent did not hold its dependent")
	}
	if _, err := s.SetDone(ctx, "t", b.UUID, nil); err != nil {
		t.Fatal(err)
	}
	if get(t, s, c.UUID).State != abi.StatePending || get(t, s, d.UUID).State != abi.StateWaitDependencies {
		t.Fatal("set done did not promote exactly the next level")
	}
	// Transitive cancel.
	p, q, r := nj("t"), nj("t"), nj("t")
	p.ETA = ptr(time.Now().Add(time.Hour))
	q.DependsOn, r.DependsOn = []string{p.UUID}, []string{q.UUID}
	insert(t, s, p, q, r)
	s.Cancel(ctx, "t", p.UUID)
	if get(t, s, q.UUID).State != abi.StateCancelled || get(t, s, r.UUID).State != abi.StateCancelled {
		t.Fatal("cancel did not cascade")
	}
	// A new child of a cancelled parent is cancelled; of a done one, pending.
	x := nj("t")
	x.DependsOn = []string{p.UUID}
	y := nj("t")
	y.DependsOn = []string{a.UUID}
	got := insert(t, s, x, y)
	if got[0].State != abi.StateCancelled || got[1].State != abi.StatePending {
		t.Fatalf("children of cancelled/done parents: %s %s", got[0].State, got[1].State)
	}
	// Dependencies on unknown or other tenants' jobs refuse the whole batch.
	before := len(must(s.List(ctx, store.Filter{Limit: 1000})).Jobs)
	ok, bad := nj("t"), nj("t")
	bad.DependsOn = []string{uuid.NewString()}
	if _, err := s.Insert(ctx, []store.NewJob{ok, bad}); !errors.Is(err, abi.ErrInvalid) {
		t.Fatalf("unknown dependency: %v", err)
	}
	other := nj("someone-else")
	other.DependsOn = []string{a.UUID}
	if _, err := s.Insert(ctx, []store.NewJob{other}); !errors.Is(err, abi.ErrInvalid) {
		t.Fatalf("dependency across tenants: %v", err)
	}
	if after := len(must(s.List(ctx, store.Filter{Limit: 1000})).Jobs); after != before {
		t.Fatalf("a refused batch stored %d jobs", after-before)
	}
}

func reap(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, b := nj("t"), nj("t")
	b.MaxRetries = 1
	insert(t, s, a, b)
	start(t, s, "dead", 50*time.Millisecond)
	e := insert(t, s, nj("t"))[0]
	s.Enqueue(ctx, must(s.PendingSince(ctx, 0, 1000)), time.Now().Add(50*time.Millisecond))
	if held, err := s.RenewLeases(ctx, "alive", time.Now().Add(time.Minute)); err != nil || len(held) != 0 {
		t.Fatalf("renewed the leases of another worker: %v %v", held, err)
	}
	got, err := s.ReapExpired(ctx, time.Now().Add(time.Second), nil)
	if err != nil || len(got) != 3 {
		t.Fatalf("reaped %v %v", got, err)
	}
	if j := get(t, s, a.UUID); j.State != abi.StatePending || j.Retry != 1 || j.WorkerID != "" {
		t.Fatalf("dead job with budget: %+v", j)
	}
	if j := get(t, s, b.UUID); j.State != abi.StateFailed || j.ExcName != abi.ExcJobFoundDead {
		t.Fatalf("dead job without budget: %s %s", j.State, j.ExcName)
	}
	if j := get(t, s, e.UUID); j.State != abi.StatePending {
		t.Fatalf("orphaned enqueued job: %s", j.State)
	}
	// A renewed lease is not reaped, and reads as renewed.
	alive := start(t, s, "alive", 50*time.Millisecond)
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
	held := must(s.RenewLeases(ctx, "alive", until))
	if len(held) != len(alive) {
		t.Fatalf("renewed %v, want the %d jobs started", held, len(alive))
	}
	for i, h := range held {
		if j := get(t, s, h.UUID); j.WorkerID != "alive" || j.Attempt != h.Attempt {
			t.Fatalf("renewal %d names %+v, which is %s's attempt %d", i, h, j.WorkerID, j.Attempt)
		}
	}
	if j := get(t, s, alive[0].UUID); j.LeaseUntil == nil || !j.LeaseUntil.Equal(until) {
		t.Fatalf("a renewed job's lease reads %v, want %v", j.LeaseUntil, until)
	}
	if got, _ := s.ReapExpired(ctx, time.Now().Add(time.Second), nil); len(got) != 0 {
		t.Fatalf("reaped renewed jobs: %v", got)
	}
}

// A worker whose outcomes wait out a long outage may send, in one batch,
// the report of an attempt the reaper took back meanwhile and the report
// of the job's next attempt, which it ran after the outage under the same
// worker. The stale one applies to nothing; the current one ends the job,
// in whichever order the batch holds them (the first-wins rule once kept
// the stale one and left the job started for good, its lease renewed).
func aStaleReportNeverHidesTheCurrentOne(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, staleFirst := range []bool{true, false} {
		j := insert(t, s, nj("t"))[0]
		first := start(t, s, "w/1", 10*time.Millisecond)
		if len(first) != 1 || first[0].UUID != j.UUID {
			t.Fatalf("started %v, want %s", uuids(first), j.UUID)
		}
		if got := must(s.ReapExpired(ctx, time.Now().Add(time.Second), nil)); len(got) != 1 {
			t.Fatalf("reaped %v, want the expired attempt", got)
		}
		second := start(t, s, "w/1", time.Minute)
		if len(second) != 1 || second[0].Attempt != first[0].Attempt+1 {
			t.Fatalf("second start %+v, want attempt %d", second, first[0].Attempt+1)
		}
		stale := store.Completion{UUID: j.UUID, WorkerID: "w/1", Attempt: first[0].Attempt, To: abi.StateFailed, Cause: abi.CauseFail, ExcName: "Stale"}
		current := store.Completion{UUID: j.UUID, WorkerID: "w/1", Attempt: second[0].Attempt, To: abi.StateDone, Cause: abi.CauseDone}
		batch := []store.Completion{stale, current}
		if !staleFirst {
			batch = []store.Completion{current, stale}
		}
		applied := must(s.Complete(ctx, batch))
		if len(applied) != 1 || applied[0] != j.UUID {
			t.Fatalf("stale first %v: applied %v, want the current attempt's report", staleFirst, applied)
		}
		if got := get(t, s, j.UUID); got.State != abi.StateDone || got.Attempt != second[0].Attempt {
			t.Fatalf("stale first %v: the job is %s at attempt %d, want done at %d", staleFirst, got.State, got.Attempt, second[0].Attempt)
		}
	}
}

// A start can commit while its answer is lost with the connection: the
// store says the worker runs a job its process never received, and the
// worker's renewals would keep it started for good. The worker disowns
// it: only that worker's job at that attempt goes back to pending, its
// retry uncounted (no code ran), its attempt recorded as lost.
func aStartItsWorkerNeverReceivedIsDisowned(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, b := nj("t"), nj("t")
	insert(t, s, a, b)
	started := start(t, s, "w/1", time.Minute)
	if len(started) != 2 {
		t.Fatalf("started %v, want two", uuids(started))
	}
	attempt := started[0].Attempt
	if got := must(s.Disown(ctx, "w/2", []store.Held{{UUID: a.UUID, Attempt: attempt}})); len(got) != 0 {
		t.Fatalf("another worker disowned %v", got)
	}
	got := must(s.Disown(ctx, "w/1", []store.Held{{UUID: a.UUID, Attempt: attempt}, {UUID: b.UUID, Attempt: attempt + 1}, {UUID: nj("t").UUID, Attempt: 1}}))
	if len(got) != 1 || got[0].UUID != a.UUID || got[0].State != abi.StatePending {
		t.Fatalf("disowned %+v, want only %s (the other is at another attempt, the third unknown)", got, a.UUID)
	}
	if j := get(t, s, a.UUID); j.State != abi.StatePending || j.Retry != 0 || j.WorkerID != "" || j.LeaseUntil != nil {
		t.Fatalf("a disowned job: %s retry %d worker %q lease %v; want pending, retry 0, no worker or lease", j.State, j.Retry, j.WorkerID, j.LeaseUntil)
	}
	at := must(s.Attempts(ctx, "t", a.UUID))
	if len(at) != 1 || at[0].Outcome != "dead" || at[0].Attempt != attempt {
		t.Fatalf("the disowned attempt is recorded as %+v", at)
	}
	if held := must(s.RenewLeases(ctx, "w/1", time.Now().Add(time.Minute))); len(held) != 1 || held[0].UUID != b.UUID {
		t.Fatalf("after disowning, w/1 renews %v, want only %s", held, b.UUID)
	}
	if again := start(t, s, "w/2", time.Minute); len(again) != 1 || again[0].UUID != a.UUID || again[0].Attempt != attempt+1 {
		t.Fatalf("the disowned job starts again as %+v", again)
	}
}

func vacuum(t *testing.T, s store.Store) {
	ctx := context.Background()
	d, f, c := nj("t"), nj("t"), nj("t")
	f.Channel, d.Channel = "root", "root"
	c.Channel = "root.sub"
	c.ETA = ptr(time.Now().Add(time.Hour))
	insert(t, s, d, f, c)
	s.Cancel(ctx, "t", c.UUID)
	for _, j := range start(t, s, "w", time.Minute) {
		if j.UUID == d.UUID {
			complete(t, s, j, abi.StateDone, abi.CauseDone)
		} else {
			complete(t, s, j, abi.StateFailed, abi.CauseFail)
		}
	}
	if n, _ := s.Vacuum(ctx, "root", time.Now().Add(-time.Hour)); n != 0 {
		t.Fatalf("vacuumed %d recent jobs", n)
	}
	if n, _ := s.Vacuum(ctx, "root", time.Now().Add(time.Second)); n != 1 {
		t.Fatalf("vacuumed %d in root, want the done job only", n)
	}
	if n, _ := s.Vacuum(ctx, "root.sub", time.Now().Add(time.Second)); n != 1 {
		t.Fatalf("vacuumed %d in root.sub, want the cancelled job", n)
	}
	if _, err := s.Get(ctx, "", f.UUID); err != nil {
		t.Fatal("a failed job was vacuumed")
	}
	counts := must(s.Counts(ctx, "t"))
	if len(counts) != 1 || counts[0].Counts[abi.StateFailed] != 1 {
		t.Fatalf("counts %+v", counts)
	}
	if fc := must(s.FailedChannels(ctx)); fc["root"] != 1 {
		t.Fatalf("failed channels %v", fc)
	}
}

func events(t *testing.T, s store.Store) {
	ch := subscribe(t, s)
	insert(t, s, nj("t"))
	if e := next(t, ch, "event after an insert"); e.Kind != store.EventPending {
		t.Fatalf("event %+v after insert", e)
	}
}

func timestamps(t *testing.T, s store.Store) {
	eta := time.Date(2030, 1, 2, 3, 4, 5, 123456000, time.UTC)
	j := nj("t")
	j.ETA = &eta
	got := insert(t, s, j)[0]
	if !got.ETA.Equal(eta) || got.DateCreated.Nanosecond()%1000 != 0 {
		t.Fatalf("eta %v, want %v", got.ETA, eta)
	}
	if get(t, s, j.UUID).DateCreated.Nanosecond() == 0 {
		t.Fatal("date_created lost its sub-second part")
	}
}
