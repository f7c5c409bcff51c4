package storetest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

func sched(tenant, name string) store.Schedule {
	return store.Schedule{Tenant: tenant, Name: name, Cron: "@every 1s", Timezone: "UTC",
		Template: []byte(`{"func":"testkit.echo","args":[1]}`), MissedRuns: store.MissedSkip, Source: store.SourceAPI}
}

func firing(s store.Schedule, due time.Time) store.Firing {
	j := nj(s.Tenant)
	if !due.IsZero() {
		j.ETA = &due
	}
	return store.Firing{Tenant: s.Tenant, Name: s.Name, Version: s.Version, Due: due, Job: j}
}

func fire(t *testing.T, st store.Store, f store.Firing) store.Fired {
	t.Helper()
	out, err := st.FireSchedule(context.Background(), f)
	if err != nil {
		t.Fatalf("fire %s at %v: %v", f.Name, f.Due, err)
	}
	return out
}

func jobCount(t *testing.T, st store.Store, tenant string) int {
	t.Helper()
	p, err := st.List(context.Background(), store.Filter{Tenant: tenant, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(p.Jobs)
}

// schedulesAreKeptPerTenant: a name is unique per tenant, and a tenant
// never reads, changes or removes another's schedule.
func schedulesAreKeptPerTenant(t *testing.T, st store.Store) {
	ctx := context.Background()
	a, err := st.CreateSchedule(ctx, sched("t1", "nightly"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if a.Version != 1 || a.Anchor.IsZero() || a.DateCreated.IsZero() || a.LastJob != "" {
		t.Fatalf("created schedule: %+v", a)
	}
	if _, err := st.CreateSchedule(ctx, sched("t1", "nightly"), 0); !errors.Is(err, abi.ErrConflict) {
		t.Fatalf("a second schedule named nightly in t1: %v, want a conflict", err)
	}
	if _, err := st.CreateSchedule(ctx, sched("t2", "nightly"), 0); err != nil {
		t.Fatalf("t2 may use the name t1 uses: %v", err)
	}
	got, err := st.GetSchedule(ctx, "t1", "nightly")
	if err != nil || got.Cron != "@every 1s" || string(got.Template) != `{"func":"testkit.echo","args":[1]}` || !got.Anchor.Equal(a.Anchor) {
		t.Fatalf("get: %+v, %v", got, err)
	}
	for _, tenant := range []string{"t3", ""} {
		if _, err := st.GetSchedule(ctx, tenant, "nightly"); !errors.Is(err, abi.ErrNotFound) {
			t.Fatalf("tenant %q reads t1's schedule: %v", tenant, err)
		}
		if _, err := st.UpdateSchedule(ctx, tenant, "nightly", func(s *store.Schedule) error { s.Paused = true; return nil }); !errors.Is(err, abi.ErrNotFound) {
			t.Fatalf("tenant %q changes t1's schedule: %v", tenant, err)
		}
		if err := st.DeleteSchedule(ctx, tenant, "nightly"); !errors.Is(err, abi.ErrNotFound) {
			t.Fatalf("tenant %q deletes t1's schedule: %v", tenant, err)
		}
		if _, err := st.FireSchedule(ctx, firing(store.Schedule{Tenant: "t3", Name: "nightly"}, time.Time{})); !errors.Is(err, abi.ErrNotFound) {
			t.Fatalf("t3 runs t1's schedule: %v", err)
		}
	}
	if ss, err := st.ListSchedules(ctx, "t1"); err != nil || len(ss) != 1 || ss[0].Tenant != "t1" {
		t.Fatalf("t1's schedules: %+v, %v", ss, err)
	}
	all, err := st.ListSchedules(ctx, "")
	if err != nil || len(all) != 2 || all[0].Tenant != "t1" || all[1].Tenant != "t2" {
		t.Fatalf("every schedule: %+v, %v", all, err)
	}
	// The leader's pass reads them without their templates, else the same.
	due, _, err := st.DueSchedules(ctx, time.Now().Add(time.Hour))
	if err != nil || len(due) != len(all) {
		t.Fatalf("the schedules due: %+v, %v", due, err)
	}
	for i := range all {
		if len(due[i].Template) != 0 {
			t.Fatalf("DueSchedules read %s/%s's template: %s", due[i].Tenant, due[i].Name, due[i].Template)
		}
		want := all[i]
		want.Template, want.LastState = due[i].Template, ""
		if !reflect.DeepEqual(due[i], want) {
			t.Fatalf("DueSchedules: %+v, want %+v (ListSchedules' but the template)", due[i], want)
		}
	}
	if err := st.DeleteSchedule(ctx, "t1", "nightly"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetSchedule(ctx, "t1", "nightly"); !errors.Is(err, abi.ErrNotFound) {
		t.Fatalf("a deleted schedule: %v", err)
	}
	if _, err := st.GetSchedule(ctx, "t2", "nightly"); err != nil {
		t.Fatalf("deleting t1's removed t2's: %v", err)
	}
}

// aDueTimeFiresOnce: a due time creates one job however many callers
// fire it at once; a due time at or before the last one fired, a paused
// schedule and a firing computed from an older definition create none;
// a run by hand always creates one and leaves the due times alone.
func aDueTimeFiresOnce(t *testing.T, st store.Store) {
	ctx := context.Background()
	s, err := st.CreateSchedule(ctx, sched("t1", "tick"), 0)
	if err != nil {
		t.Fatal(err)
	}
	// Eight nodes fire the same five due times at once, each in order.
	first := s.Anchor.Add(time.Second).Truncate(time.Second)
	var fired atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for k := range 5 {
				out, err := st.FireSchedule(ctx, firing(s, first.Add(time.Duration(k)*time.Second)))
				if err != nil {
					t.Errorf("fire: %v", err)
				}
				if out.Fired {
					fired.Add(1)
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	if fired.Load() != 5 || jobCount(t, st, "t1") != 5 {
		t.Fatalf("8 nodes firing 5 due times: %d fired, %d jobs; want 5", fired.Load(), jobCount(t, st, "t1"))
	}
	due := first.Add(4 * time.Second)
	s, _ = st.GetSchedule(ctx, "t1", "tick")
	if !s.Anchor.Equal(due) || s.LastJob == "" || s.LastFired == nil {
		t.Fatalf("after firing %v: %+v", due, s)
	}
	if j := get(t, st, s.LastJob); j.ETA == nil || !j.ETA.Equal(due) || j.State != abi.StatePending {
		t.Fatalf("the job of the firing: %+v", j)
	}
	if fire(t, st, firing(s, due.Add(-time.Second))).Fired {
		t.Fatal("a due time before the last one fired created a job")
	}
	stale := firing(s, due.Add(time.Second))
	stale.Version = s.Version - 1
	if fire(t, st, stale).Fired {
		t.Fatal("a firing of an older definition created a job")
	}
	if s, err = st.UpdateSchedule(ctx, "t1", "tick", func(x *store.Schedule) error { x.Paused = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if fire(t, st, firing(s, due.Add(time.Hour))).Fired {
		t.Fatal("a paused schedule fired")
	}
	run := fire(t, st, firing(s, time.Time{}))
	if !run.Fired || run.Job.Job.UUID == "" || !run.Schedule.Anchor.Equal(due) || run.Schedule.LastJob != run.Job.Job.UUID {
		t.Fatalf("a run by hand of a paused schedule: %+v", run)
	}
	if n := jobCount(t, st, "t1"); n != 6 {
		t.Fatalf("%d jobs, want 6 (five due times, one run by hand)", n)
	}
}

// changesRestartTheCount: a new cron or time zone, and a resume, count
// due times from now on (none of the past fires); other changes do not.
func changesRestartTheCount(t *testing.T, st store.Store) {
	ctx := context.Background()
	s, err := st.CreateSchedule(ctx, sched("t1", "daily"), 0)
	if err != nil {
		t.Fatal(err)
	}
	past := s.Anchor.Add(-time.Hour)
	if _, err := st.FireSchedule(ctx, firing(s, past)); err != nil {
		t.Fatal(err)
	}
	if jobCount(t, st, "t1") != 0 {
		t.Fatal("a due time before the schedule existed fired")
	}
	old := s
	time.Sleep(2 * time.Millisecond) // the store's clock has microseconds
	s, err = st.UpdateSchedule(ctx, "t1", "daily", func(x *store.Schedule) error {
		x.Template = []byte(`{"func":"testkit.echo","args":[2]}`)
		x.Version, x.Anchor, x.LastJob = 99, time.Time{}, "forged" // not the caller's to set
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != 2 || !s.Anchor.Equal(old.Anchor) || s.LastJob != "" || string(s.Template) != `{"func":"testkit.echo","args":[2]}` {
		t.Fatalf("a new template: %+v", s)
	}
	s, err = st.UpdateSchedule(ctx, "t1", "daily", func(x *store.Schedule) error { x.Cron = "0 3 * * *"; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != 3 || !s.Anchor.After(old.Anchor) {
		t.Fatalf("a new cron keeps the old anchor: %+v (was %v)", s, old.Anchor)
	}
	if fire(t, st, firing(s, s.Anchor.Add(-time.Microsecond))).Fired {
		t.Fatal("a due time before the change fired")
	}
	paused, _ := st.UpdateSchedule(ctx, "t1", "daily", func(x *store.Schedule) error { x.Paused = true; return nil })
	time.Sleep(2 * time.Millisecond)
	resumed, err := st.UpdateSchedule(ctx, "t1", "daily", func(x *store.Schedule) error { x.Paused = false; return nil })
	if err != nil || !resumed.Anchor.After(paused.Anchor) || resumed.Version != 5 {
		t.Fatalf("a resume keeps the anchor of before the pause: %+v, %v", resumed, err)
	}
}

// badSchedulesAreRefused: each field is checked before any SQL, naming it.
func badSchedulesAreRefused(t *testing.T, st store.Store) {
	ctx := context.Background()
	cases := map[string]struct {
		field string
		mod   func(*store.Schedule)
	}{
		"no name":               {"name", func(s *store.Schedule) { s.Name = "" }},
		"a colon in the name":   {"name", func(s *store.Schedule) { s.Name = "a:pause" }},
		"a slash in the name":   {"name", func(s *store.Schedule) { s.Name = "a/b" }},
		"a 65-byte name":        {"name", func(s *store.Schedule) { s.Name = string(make([]byte, 65)) }},
		"NUL in cron":           {"cron", func(s *store.Schedule) { s.Cron = "* * *\x00 * *" }},
		"invalid UTF-8 in tz":   {"timezone", func(s *store.Schedule) { s.Timezone = "Europe/\xff" }},
		"no cron":               {"cron", func(s *store.Schedule) { s.Cron = "" }},
		"a list as template":    {"template", func(s *store.Schedule) { s.Template = []byte(`[1]`) }},
		"NUL in the template":   {"template", func(s *store.Schedule) { s.Template = []byte(`{"func":"a\u0000b"}`) }},
		"an unknown policy":     {"missed_runs", func(s *store.Schedule) { s.MissedRuns = "all" }},
		"catch_up without max":  {"catch_up_max", func(s *store.Schedule) { s.MissedRuns = store.MissedCatchUp }},
		"catch_up over the max": {"catch_up_max", func(s *store.Schedule) { s.MissedRuns, s.CatchUpMax = store.MissedCatchUp, store.MaxCatchUp+1 }},
		"a max under skip":      {"catch_up_max", func(s *store.Schedule) { s.CatchUpMax = 3 }},
		"an unknown source":     {"source", func(s *store.Schedule) { s.Source = "cli" }},
		"NUL in the tenant":     {"tenant", func(s *store.Schedule) { s.Tenant = "t\x00" }},
	}
	for what, c := range cases {
		s := sched("t1", "ok")
		c.mod(&s)
		_, err := st.CreateSchedule(ctx, s, 0)
		wantRefused(t, what, c.field, err)
	}
	if ss, _ := st.ListSchedules(ctx, ""); len(ss) != 0 {
		t.Fatalf("a refused schedule was stored: %+v", ss)
	}
	good, err := st.CreateSchedule(ctx, sched("t1", "ok"), 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.UpdateSchedule(ctx, "t1", "ok", func(s *store.Schedule) error { s.MissedRuns = "sometimes"; return nil })
	wantRefused(t, "a bad change", "missed_runs", err)
	other := firing(good, time.Time{})
	other.Job.Tenant = "t2"
	_, err = st.FireSchedule(ctx, other)
	wantRefused(t, "a job of another tenant", "tenant", err)
	for _, name := range []string{"a\x00b", "\xff", "../x"} {
		if _, err := st.GetSchedule(ctx, "t1", name); !errors.Is(err, abi.ErrNotFound) {
			t.Fatalf("get %q: %v, want not found", name, err)
		}
	}
	noJobs(t, st)
}

// aFiringFindingItsKeyTakenStillCounts: with an identity key whose job is
// still waiting, a firing creates nothing new but the due time is spent
// (the next firing does not try it again) and the schedule names the job
// holding the key.
func aFiringFindingItsKeyTakenStillCounts(t *testing.T, st store.Store) {
	ctx := context.Background()
	s, err := st.CreateSchedule(ctx, sched("t1", "keyed"), 0)
	if err != nil {
		t.Fatal(err)
	}
	d1 := s.Anchor.Add(time.Second)
	f1 := firing(s, d1)
	f1.Job.IdentityKey = "report"
	first := fire(t, st, f1)
	f2 := firing(s, d1.Add(time.Second))
	f2.Job.IdentityKey = "report"
	second := fire(t, st, f2)
	if !first.Fired || !second.Fired || !second.Job.Deduplicated || second.Job.Job.UUID != first.Job.Job.UUID {
		t.Fatalf("two firings under one key: %+v / %+v", first, second)
	}
	if !second.Schedule.Anchor.Equal(d1.Add(time.Second)) || jobCount(t, st, "t1") != 1 {
		t.Fatalf("after the deduplicated firing: %+v, %d jobs", second.Schedule, jobCount(t, st, "t1"))
	}
}

// aTenantsSchedulesAreBoundedByMaxSchedules: a tenant holding max
// schedules is refused one more (a quota waiting does not lift), another
// tenant is not, and removing one makes room. Without a bound (0: a
// schedule of the operator's file) nothing is refused.
func aTenantsSchedulesAreBoundedByMaxSchedules(t *testing.T, st store.Store) {
	ctx := context.Background()
	for _, name := range []string{"a", "b"} {
		if _, err := st.CreateSchedule(ctx, sched("t1", name), 2); err != nil {
			t.Fatal(err)
		}
	}
	_, err := st.CreateSchedule(ctx, sched("t1", "c"), 2)
	var qe *store.QuotaError
	if !errors.As(err, &qe) || qe.Field != "max_schedules" || !errors.Is(err, abi.ErrQuota) {
		t.Fatalf("a third schedule under max_schedules 2: %v, want a quota error on max_schedules", err)
	}
	if _, err := st.CreateSchedule(ctx, sched("t2", "c"), 2); err != nil {
		t.Fatalf("another tenant's schedule: %v", err)
	}
	if _, err := st.CreateSchedule(ctx, sched("t1", "from-the-file"), 0); err != nil {
		t.Fatalf("a schedule without a bound: %v", err)
	}
	for _, name := range []string{"a", "from-the-file"} {
		if err := st.DeleteSchedule(ctx, "t1", name); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.CreateSchedule(ctx, sched("t1", "c"), 2); err != nil {
		t.Fatalf("a schedule once one was removed: %v", err)
	}
}

// aFiringObeysItsTenantsQuota: a schedule is no way around max_pending
// nor max_channels. A firing past either creates nothing and spends
// nothing: the due time fires once there is room.
func aFiringObeysItsTenantsQuota(t *testing.T, st store.Store) {
	ctx := context.Background()
	s, err := st.CreateSchedule(ctx, sched("t1", "tick"), 0)
	if err != nil {
		t.Fatal(err)
	}
	waiting := nj("t1")
	if _, err := st.Insert(ctx, []store.NewJob{waiting}); err != nil {
		t.Fatal(err)
	}
	due := s.Anchor.Add(time.Second)
	f := firing(s, due)
	f.Quota = store.Quota{MaxPending: 1}
	_, err = st.FireSchedule(ctx, f)
	var qe *store.QuotaError
	if !errors.As(err, &qe) || qe.Field != "max_pending" {
		t.Fatalf("a firing with the tenant's one waiting job at max_pending 1: %v, want a quota error on max_pending", err)
	}
	if got, err := st.GetSchedule(ctx, "t1", "tick"); err != nil || !got.Anchor.Equal(s.Anchor) || got.LastJob != "" {
		t.Fatalf("a refused firing moved the schedule: %+v, %v", got, err)
	}
	if n := jobCount(t, st, "t1"); n != 1 {
		t.Fatalf("%d jobs after a refused firing, want 1", n)
	}
	other := firing(s, due)
	other.Job.Channel = "root.other"
	other.Quota = store.Quota{MaxChannels: 1}
	if _, err := st.FireSchedule(ctx, other); !errors.As(err, &qe) || qe.Field != "max_channels" {
		t.Fatalf("a firing into a second channel at max_channels 1: %v, want a quota error on max_channels", err)
	}
	if _, err := st.Act(ctx, "t1", abi.CauseCancel, []string{waiting.UUID}); err != nil {
		t.Fatal(err)
	}
	if out := fire(t, st, f); !out.Fired || !out.Schedule.Anchor.Equal(due) {
		t.Fatalf("the due time once there was room: %+v", out)
	}
}

// schedulesArePagedByTenantAndName: a page of schedules holds at most its
// limit and MaxPageBytes of templates, and its cursor starts the next
// after its last, by tenant then name; a tenant's pages hold only its
// own whatever the cursor names; each schedule comes with its last
// job's state. Bad cursors and limits are refused naming them.
func schedulesArePagedByTenantAndName(t *testing.T, st store.Store) {
	ctx := context.Background()
	for _, k := range [][2]string{{"t1", "s3"}, {"t1", "s1"}, {"t2", "a"}, {"t1", "s4"}, {"t1", "s2"}, {"t1", "s0"}, {"t2", "b"}} {
		if _, err := st.CreateSchedule(ctx, sched(k[0], k[1]), 0); err != nil {
			t.Fatal(err)
		}
	}
	names := func(p store.SchedulePage) string {
		var out []string
		for _, sc := range p.Schedules {
			out = append(out, sc.Tenant+"/"+sc.Name)
		}
		return strings.Join(out, " ")
	}
	walk := func(tenant string, limit int) []string {
		var pages []string
		cursor := ""
		for range 10 {
			p, err := st.SchedulePage(ctx, tenant, cursor, limit)
			if err != nil {
				t.Fatalf("page of %q after %q: %v", tenant, cursor, err)
			}
			pages = append(pages, names(p))
			if cursor = p.NextCursor; cursor == "" {
				return pages
			}
		}
		t.Fatalf("pages of %q never end: %q", tenant, pages)
		return nil
	}
	if got := walk("t1", 2); !reflect.DeepEqual(got, []string{"t1/s0 t1/s1", "t1/s2 t1/s3", "t1/s4"}) {
		t.Fatalf("t1's pages of 2: %q", got)
	}
	if got := walk("", 3); !reflect.DeepEqual(got, []string{"t1/s0 t1/s1 t1/s2", "t1/s3 t1/s4 t2/a", "t2/b"}) {
		t.Fatalf("every tenant's pages of 3: %q", got)
	}
	if got := walk("t2", 0); !reflect.DeepEqual(got, []string{"t2/a t2/b"}) {
		t.Fatalf("t2's pages by default: %q", got)
	}
	first, _ := st.SchedulePage(ctx, "t1", "", 1)
	if p, err := st.SchedulePage(ctx, "t3", first.NextCursor, 10); err != nil || len(p.Schedules) != 0 {
		t.Fatalf("t3 with t1's cursor: %q, %v, want none", names(p), err)
	}
	if p, err := st.SchedulePage(ctx, "t2", first.NextCursor, 10); err != nil || names(p) != "t2/a t2/b" {
		t.Fatalf("t2 with t1's cursor: %q, %v, want t2's own", names(p), err)
	}

	cursor := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	for _, bad := range []string{"!!", "e30", cursor([]string{"", ""}), cursor([]string{"t1\x00", "s1"}), cursor(map[string]int{"a": 1})} {
		_, err := st.SchedulePage(ctx, "t1", bad, 10)
		var fe *abi.FieldError
		if !errors.As(err, &fe) || fe.Field != "cursor" || !errors.Is(err, abi.ErrInvalid) {
			t.Fatalf("cursor %q: %v, want a refusal naming cursor", bad, err)
		}
	}
	for _, bad := range []int{-1, store.MaxSchedulePage + 1} {
		_, err := st.SchedulePage(ctx, "t1", "", bad)
		var fe *abi.FieldError
		if !errors.As(err, &fe) || fe.Field != "limit" {
			t.Fatalf("limit %d: %v, want a refusal naming limit", bad, err)
		}
	}

	// The last job's state comes with the page.
	s0, _ := st.GetSchedule(ctx, "t1", "s0")
	fired := fire(t, st, firing(s0, s0.Anchor.Add(time.Second)))
	p, _ := st.SchedulePage(ctx, "t1", "", 1)
	if len(p.Schedules) != 1 || p.Schedules[0].LastJob != fired.Job.Job.UUID || p.Schedules[0].LastState != fired.Job.Job.State {
		t.Fatalf("s0 after its firing: %+v, want its last job %s in state %s", p.Schedules, fired.Job.Job.UUID, fired.Job.Job.State)
	}
	if _, err := st.Act(ctx, "t1", abi.CauseCancel, []string{fired.Job.Job.UUID}); err != nil {
		t.Fatal(err)
	}
	if p, _ := st.SchedulePage(ctx, "t1", "", 1); p.Schedules[0].LastState != abi.StateCancelled {
		t.Fatalf("s0's last job cancelled: %q", p.Schedules[0].LastState)
	}

	// Big templates: a page stops before MaxPageBytes.
	big := sched("t4", "")
	big.Template = []byte(`{"func":"testkit.echo","args":["` + strings.Repeat("x", 250<<10) + `"]}`)
	for i := range 40 {
		big.Name = fmt.Sprintf("big%02d", i)
		if _, err := st.CreateSchedule(ctx, big, 0); err != nil {
			t.Fatal(err)
		}
	}
	total, pages := 0, 0
	for cursor := ""; ; pages++ {
		p, err := st.SchedulePage(ctx, "t4", cursor, store.MaxSchedulePage)
		if err != nil {
			t.Fatal(err)
		}
		bytes := 0
		for _, sc := range p.Schedules {
			bytes += len(sc.Template)
		}
		if bytes > store.MaxPageBytes {
			t.Fatalf("a page of %d schedules holds %d bytes of templates, over %d", len(p.Schedules), bytes, store.MaxPageBytes)
		}
		total += len(p.Schedules)
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if total != 40 || pages < 1 {
		t.Fatalf("%d schedules of 250 KiB in %d pages, want all 40 in two or more", total, pages+1)
	}
}

// theLeaderReadsOnlySchedulesThatMayBeDue: a schedule's NextDue is never
// after its next due time, and the leader's pass reads only the
// schedules not paused whose NextDue has come. It starts at the anchor
// (any change sets it there again), a pass moves it forward only for the
// definition and anchor it computed from, and a firing to its Next.
func theLeaderReadsOnlySchedulesThatMayBeDue(t *testing.T, st store.Store) {
	ctx := context.Background()
	names := func(ss []store.Schedule) []string {
		out := []string{}
		for _, s := range ss {
			out = append(out, s.Tenant+"/"+s.Name)
		}
		return out
	}
	dueAt := func(now time.Time) ([]string, time.Time) {
		t.Helper()
		ss, next, err := st.DueSchedules(ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		return names(ss), next
	}
	var made []store.Schedule
	for _, k := range [][2]string{{"t2", "b"}, {"t1", "a"}, {"t1", "c"}} {
		s, err := st.CreateSchedule(ctx, sched(k[0], k[1]), 0)
		if err != nil {
			t.Fatal(err)
		}
		if !s.NextDue.Equal(s.Anchor) {
			t.Fatalf("a new schedule's NextDue %v, want its anchor %v", s.NextDue, s.Anchor)
		}
		made = append(made, s)
	}
	a := made[0].Anchor
	if got, next := dueAt(a.Add(-time.Second)); len(got) != 0 || !next.Equal(a) {
		t.Fatalf("before any anchor: due %v, next %v; want none, next %v", got, next, a)
	}
	if got, _ := dueAt(time.Now().Add(time.Second)); !reflect.DeepEqual(got, []string{"t1/a", "t1/c", "t2/b"}) {
		t.Fatalf("new schedules are due at the next pass: %v, want every one by tenant and name", got)
	}

	// A pass moves them on; one computed from a stale anchor or version
	// changes nothing, and one that would move a NextDue back to its
	// anchor or before is no due time.
	b, c := made[0], made[2]
	hour, day := b.Anchor.Add(time.Hour), b.Anchor.Add(24*time.Hour)
	err := st.NextDues(ctx, []store.NextDue{
		{Tenant: "t2", Name: "b", Version: b.Version, Anchor: b.Anchor, Next: hour},
		{Tenant: "t1", Name: "c", Version: c.Version, Anchor: c.Anchor, Next: day},
		{Tenant: "t1", Name: "a", Version: 7, Anchor: made[1].Anchor, Next: day},
		{Tenant: "t1", Name: "a", Version: 1, Anchor: made[1].Anchor.Add(-time.Second), Next: day},
		{Tenant: "t1", Name: "a", Version: 1, Anchor: made[1].Anchor, Next: made[1].Anchor},
		{Tenant: "t9", Name: "a", Version: 1, Anchor: made[1].Anchor, Next: day},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, next := dueAt(b.Anchor.Add(time.Minute)); !reflect.DeepEqual(got, []string{"t1/a"}) || !next.Equal(hour) {
		t.Fatalf("after a pass: due %v, next %v; want t1/a alone (its moves were stale), next %v", got, next, hour)
	}
	if got, next := dueAt(hour); !reflect.DeepEqual(got, []string{"t1/a", "t2/b"}) || !next.Equal(day) {
		t.Fatalf("at t2/b's due time: due %v, next %v; want t1/a and t2/b, next %v", got, next, day)
	}

	// A firing moves NextDue to its Next, or to its due time without one.
	f := firing(b, b.Anchor.Add(time.Second))
	f.Next = b.Anchor.Add(2 * time.Hour)
	if out := fire(t, st, f); !out.Fired || !out.Schedule.NextDue.Equal(f.Next) {
		t.Fatalf("a firing with a next due time: %+v", out.Schedule)
	}
	f = firing(c, c.Anchor.Add(time.Second))
	if out := fire(t, st, f); !out.Fired || !out.Schedule.NextDue.Equal(f.Due) {
		t.Fatalf("a firing without a next due time: NextDue %v, want its due time %v", out.Schedule.NextDue, f.Due)
	}
	run := fire(t, st, firing(b, time.Time{}))
	if got, _ := st.GetSchedule(ctx, "t2", "b"); !run.Fired || !got.NextDue.Equal(b.Anchor.Add(2*time.Hour)) {
		t.Fatalf("a run by hand moved NextDue: %v", got.NextDue)
	}

	// A change, whatever it is, has the schedule read at the next pass; a
	// paused schedule is never read, nor its NextDue the next pass's.
	changed, err := st.UpdateSchedule(ctx, "t2", "b", func(s *store.Schedule) error {
		s.Template = []byte(`{"func":"testkit.echo","args":[2]}`)
		return nil
	})
	if err != nil || !changed.NextDue.Equal(changed.Anchor) {
		t.Fatalf("a changed template: NextDue %v, want the anchor %v (%v)", changed.NextDue, changed.Anchor, err)
	}
	if _, err := st.UpdateSchedule(ctx, "t1", "a", func(s *store.Schedule) error { s.Paused = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateSchedule(ctx, "t1", "c", func(s *store.Schedule) error { s.Paused = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if got, next := dueAt(b.Anchor.Add(time.Minute)); !reflect.DeepEqual(got, []string{"t2/b"}) || !next.IsZero() {
		t.Fatalf("with t1's paused: due %v, next %v; want t2/b, no next", got, next)
	}
	if err := st.NextDues(ctx, []store.NextDue{{Tenant: "t2", Name: "b", Version: changed.Version, Anchor: changed.Anchor, Next: store.NeverDue}}); err != nil {
		t.Fatal(err)
	}
	if got, next := dueAt(time.Date(9000, 1, 1, 0, 0, 0, 0, time.UTC)); len(got) != 0 || !next.Equal(store.NeverDue) {
		t.Fatalf("a schedule never due again: due %v, next %v; want none, next %v", got, next, store.NeverDue)
	}
	resumed, err := st.UpdateSchedule(ctx, "t1", "a", func(s *store.Schedule) error { s.Paused = false; return nil })
	if err != nil || !resumed.NextDue.Equal(resumed.Anchor) {
		t.Fatalf("a resume: NextDue %v, want the anchor %v (%v)", resumed.NextDue, resumed.Anchor, err)
	}
	if got, _ := dueAt(resumed.Anchor); !reflect.DeepEqual(got, []string{"t1/a"}) {
		t.Fatalf("after a resume: due %v, want t1/a", got)
	}
}

// firingsTogetherAreEachAsAlone: FireEach applies each firing as
// FireSchedule would alone, in one transaction, by tenant, name and due
// time whatever the order given; a refused or unfired due time stops its
// schedule's later ones; a tenant refused on max_pending has the rest of
// its firings refused untried; a refusal leaves the others fired. Fired
// again, the same firings create nothing; eight callers firing the same
// due times at once fire each once.
func firingsTogetherAreEachAsAlone(t *testing.T, st store.Store) {
	ctx := context.Background()
	made := map[string]store.Schedule{}
	var base time.Time
	for _, k := range [][2]string{{"t1", "a"}, {"t1", "b"}, {"t1", "c"}, {"t2", "p"}, {"t2", "q"}, {"t2", "r"}} {
		s, err := st.CreateSchedule(ctx, sched(k[0], k[1]), 0)
		if err != nil {
			t.Fatal(err)
		}
		made[k[0]+"/"+k[1]] = s
		base = s.Anchor.Add(time.Second).Truncate(time.Second)
	}
	at := func(name string, due time.Time) store.Firing {
		f := firing(made[name], due)
		if made[name].Tenant == "t2" {
			f.Quota = store.Quota{MaxPending: 1}
		}
		return f
	}
	stale := at("t1/c", base)
	stale.Version = 99
	foreign := at("t1/a", base.Add(time.Hour))
	foreign.Job.Tenant = "t2"
	fs := []store.Firing{
		at("t1/b", base.Add(time.Second)), // 0: after b's first, though given before it
		at("t2/r", base),                  // 1: untried: t2 is full by then
		at("t1/a", base),                  // 2
		at("t2/q", base),                  // 3: refused, max_pending
		at("t1/b", base),                  // 4
		stale,                             // 5: an older definition: not fired
		at("t1/c", base.Add(time.Second)), // 6: after c's unfired one: not tried
		firing(store.Schedule{Tenant: "t1", Name: "gone", Version: 1}, base), // 7
		at("t2/p", base), // 8: t2's one job
		foreign,          // 9: refused before any SQL
	}
	res, err := st.FireEach(ctx, fs)
	if err != nil || len(res) != len(fs) {
		t.Fatalf("FireEach: %d results, %v", len(res), err)
	}
	for _, i := range []int{0, 2, 4, 8} {
		if !res[i].Fired.Fired || res[i].Err != nil || res[i].Fired.Job.Job.UUID != fs[i].Job.UUID {
			t.Errorf("firing %d (%s at %v): %+v, want its job", i, fs[i].Name, fs[i].Due, res[i])
		}
	}
	for _, i := range []int{1, 3} {
		var qe *store.QuotaError
		if res[i].Fired.Fired || !errors.As(res[i].Err, &qe) || qe.Field != "max_pending" || res[i].Untried != (i == 1) {
			t.Errorf("firing %d (%s): %+v, want refused on max_pending (untried after the first)", i, fs[i].Name, res[i])
		}
	}
	for _, i := range []int{5, 6} {
		if res[i].Fired.Fired || res[i].Err != nil || res[i].Untried != (i == 6) {
			t.Errorf("firing %d (%s): %+v, want not fired, no error (untried after the first)", i, fs[i].Name, res[i])
		}
	}
	if !errors.Is(res[7].Err, abi.ErrNotFound) || !errors.Is(res[9].Err, abi.ErrInvalid) {
		t.Errorf("a gone schedule: %v; a job of another tenant: %v", res[7].Err, res[9].Err)
	}
	for name, want := range map[string]time.Time{"t1/a": base, "t1/b": base.Add(time.Second), "t1/c": made["t1/c"].Anchor,
		"t2/p": base, "t2/q": made["t2/q"].Anchor, "t2/r": made["t2/r"].Anchor} {
		s, err := st.GetSchedule(ctx, name[:2], name[3:])
		if err != nil || !s.Anchor.Equal(want) {
			t.Errorf("%s after FireEach: anchor %v (%v), want %v", name, s.Anchor, err, want)
		}
	}
	if n1, n2 := jobCount(t, st, "t1"), jobCount(t, st, "t2"); n1 != 3 || n2 != 1 {
		t.Fatalf("jobs: t1 %d, t2 %d; want 3 and 1", n1, n2)
	}

	// Again: every due time is spent, nothing is created.
	again := make([]store.Firing, len(fs))
	for i, f := range fs {
		again[i] = f
		again[i].Job = nj(f.Job.Tenant)
	}
	if res, err := st.FireEach(ctx, again); err != nil || res[0].Fired.Fired || res[2].Fired.Fired || res[8].Fired.Fired {
		t.Fatalf("the same firings again: %+v, %v; want none fired", res, err)
	}

	// Eight leaders firing the next five due times of a and b at once.
	var fired atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			var fs []store.Firing
			for k := range 5 {
				for _, name := range []string{"t1/b", "t1/a"} {
					fs = append(fs, at(name, base.Add(time.Duration(2+k)*time.Second)))
				}
			}
			res, err := st.FireEach(ctx, fs)
			if err != nil {
				t.Errorf("FireEach: %v", err)
				return
			}
			for _, r := range res {
				if r.Fired.Fired {
					fired.Add(1)
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	if fired.Load() != 10 || jobCount(t, st, "t1") != 13 {
		t.Fatalf("8 callers firing 5 due times of two schedules: %d fired, %d jobs of t1; want 10 and 13", fired.Load(), jobCount(t, st, "t1"))
	}
}
