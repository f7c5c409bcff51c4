package schedule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/enqueue"
	"github.com/wasmq/wasmq/store"
	"github.com/wasmq/wasmq/store/sqlite"
)

// funcs knows the functions named in it; removing one is a plugin removed.
type funcs struct {
	mu    sync.Mutex
	known map[string]bool
}

func (f *funcs) Function(tenant, fn string) (abi.FunctionConfig, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.known[tenant+"/"+fn] {
		return abi.FunctionConfig{}, abi.ErrNotFound
	}
	return abi.FunctionConfig{Channel: "root.reports"}, nil
}

func (f *funcs) remove(tenant, fn string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.known, tenant+"/"+fn)
}

func newService(t *testing.T) (*Service, *funcs) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "q.db"), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &funcs{known: map[string]bool{"t1/report.count": true, "t2/report.count": true}}
	return New(st, &enqueue.Service{Store: st, Funcs: f}), f
}

func def(name, cron string) Definition {
	return Definition{Name: name, Cron: cron, Template: Template{Func: "report.count", Args: json.RawMessage(`["x"]`)}}
}

func wantField(t *testing.T, what string, err error, field string) {
	t.Helper()
	var fe *abi.FieldError
	if !errors.As(err, &fe) || fe.Field != field || !errors.Is(err, abi.ErrInvalid) && !errors.Is(err, enqueue.ErrMalformed) {
		t.Fatalf("%s: %v, want a refusal naming %q", what, err, field)
	}
}

func jobsOf(t *testing.T, s *Service, tenant string) []abi.Job {
	t.Helper()
	p, err := s.Store.List(context.Background(), store.Filter{Tenant: tenant, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return p.Jobs
}

func TestADefinitionIsCheckedAsTheEnqueuePathChecksAJob(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	neg := -1
	bad := "x\x00"
	long := strings.Repeat("é", abi.MaxDescription+1)
	for what, c := range map[string]struct {
		d     Definition
		field string
	}{
		"an unknown function":     {Definition{Name: "a", Cron: "@daily", Template: Template{Func: "report.nope"}}, "func"},
		"a function without a .":  {Definition{Name: "a", Cron: "@daily", Template: Template{Func: "report"}}, "func"},
		"no function":             {Definition{Name: "a", Cron: "@daily"}, "func"},
		"a bad cron":              {Definition{Name: "a", Cron: "every day", Template: Template{Func: "report.count"}}, "cron"},
		"a bad zone":              {Definition{Name: "a", Cron: "@daily", Timezone: "Europe/Nowhere", Template: Template{Func: "report.count"}}, "timezone"},
		"a bad name":              {Definition{Name: "night ly", Cron: "@daily", Template: Template{Func: "report.count"}}, "name"},
		"a negative priority":     {Definition{Name: "a", Cron: "@daily", Template: Template{Func: "report.count", Priority: &neg}}, "priority"},
		"args not a list":         {Definition{Name: "a", Cron: "@daily", Template: Template{Func: "report.count", Args: json.RawMessage(`{}`)}}, "args"},
		"a bad channel":           {Definition{Name: "a", Cron: "@daily", Template: Template{Func: "report.count", Channel: &bad}}, "channel"},
		"a long description":      {Definition{Name: "a", Cron: "@daily", Template: Template{Func: "report.count", Description: &long}}, "description"},
		"a long identity key":     {Definition{Name: "a", Cron: "@daily", Template: Template{Func: "report.count", IdentityKey: strings.Repeat("k", 256)}}, "identity_key"},
		"an unknown policy":       {Definition{Name: "a", Cron: "@daily", MissedRuns: "all", Template: Template{Func: "report.count"}}, "missed_runs"},
		"catch_up_max over 1000":  {Definition{Name: "a", Cron: "@daily", MissedRuns: "catch_up", CatchUpMax: 1001, Template: Template{Func: "report.count"}}, "catch_up_max"},
		"catch_up_max under skip": {Definition{Name: "a", Cron: "@daily", CatchUpMax: 5, Template: Template{Func: "report.count"}}, "catch_up_max"},
		"another tenant's func":   {Definition{Name: "a", Cron: "@daily", Template: Template{Func: "other.fn"}}, "func"},
	} {
		_, err := s.Create(ctx, "t1", c.d)
		wantField(t, what, err, c.field)
	}
	if all, _, _ := s.List(ctx, "", "", 0); len(all) != 0 {
		t.Fatalf("refused definitions were stored: %+v", all)
	}
	v, err := s.Create(ctx, "t1", Definition{Name: "catchy", Cron: "@hourly", MissedRuns: "catch_up", Template: Template{Func: "report.count"}})
	if err != nil || v.CatchUpMax != DefaultCatchUpMax || v.Timezone != "UTC" || len(v.NextRuns) != NextRuns {
		t.Fatalf("defaults: %+v, %v", v, err)
	}
}

func TestPatchReplacesTheNamedFieldsOnly(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	if _, err := s.Create(ctx, "t1", def("nightly", "0 3 * * *")); err != nil {
		t.Fatal(err)
	}
	v, err := s.Patch(ctx, "t1", "nightly", []byte(`{"timezone":"Europe/Brussels","priority":3}`))
	if err != nil || v.Timezone != "Europe/Brussels" || *v.Priority != 3 || v.Cron != "0 3 * * *" || string(v.Args) != `["x"]` || v.Version != 2 {
		t.Fatalf("patch: %+v, %v", v, err)
	}
	_, err = s.Patch(ctx, "t1", "nightly", []byte(`{"cron":"0 25 * * *"}`))
	wantField(t, "a bad cron in a patch", err, "cron")
	_, err = s.Patch(ctx, "t1", "nightly", []byte(`{"colour":"red"}`))
	wantField(t, "an unknown field", err, "colour")
	_, err = s.Patch(ctx, "t1", "nightly", []byte(`{"name":"other"}`))
	wantField(t, "a rename", err, "name")
	if _, err := s.Patch(ctx, "t2", "nightly", []byte(`{"priority":1}`)); !errors.Is(err, abi.ErrNotFound) {
		t.Fatalf("t2 patches t1's schedule: %v", err)
	}
	v, err = s.Patch(ctx, "t1", "nightly", []byte(`{"priority":null}`))
	if err != nil || v.Priority != nil || v.Version != 3 {
		t.Fatalf("null restores the default: %+v, %v", v, err)
	}
}

// TestTheLoopFiresEachDueTimeOnce runs the leader's loop on SQLite: an
// @every 1s schedule makes one job per second, each with its due time as
// eta; paused it makes none; a run makes one at once.
func TestTheLoopFiresEachDueTimeOnce(t *testing.T) {
	s, _ := newService(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := s.Create(ctx, "t1", def("tick", "@every 1s")); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); s.Fire(ctx, 200*time.Millisecond, zerolog.Nop()) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(jobsOf(t, s, "t1")) < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := s.SetPaused(ctx, "t1", "tick", true); err != nil {
		t.Fatal(err)
	}
	jobs := jobsOf(t, s, "t1")
	seen := map[time.Time]bool{}
	for _, j := range jobs {
		if j.ETA == nil || j.ETA.Truncate(time.Second) != *j.ETA || seen[*j.ETA] {
			t.Fatalf("a job without its own whole-second due time: %+v", j)
		}
		seen[*j.ETA] = true
		if j.Channel != "root.reports" || j.Func != "report.count" {
			t.Fatalf("the job ignores the function's defaults: %+v", j)
		}
	}
	if len(jobs) < 3 {
		t.Fatalf("%d jobs in 10 s", len(jobs))
	}
	before := len(jobsOf(t, s, "t1"))
	time.Sleep(2500 * time.Millisecond) // two due times pass while paused
	if n := len(jobsOf(t, s, "t1")); n != before {
		t.Fatalf("a paused schedule made %d jobs", n-before)
	}
	j, err := s.Run(ctx, "t1", "tick")
	if err != nil || j.UUID == "" || j.ETA != nil {
		t.Fatalf("run now: %+v, %v", j, err)
	}
	if n := len(jobsOf(t, s, "t1")); n != before+1 {
		t.Fatalf("run now made %d jobs, want 1", n-before)
	}
	v, _ := s.Get(ctx, "t1", "tick")
	if v.LastJob == nil || v.LastJob.UUID != j.UUID || v.LastJob.State != abi.StatePending || len(v.NextRuns) != 0 {
		t.Fatalf("the view after a run of a paused schedule: %+v", v)
	}
	cancel()
	<-done
}

// TestARemovedFunctionStillMakesItsJob: the job is created and fails
// when it runs, rather than the schedule skipping in silence.
func TestARemovedFunctionStillMakesItsJob(t *testing.T) {
	s, f := newService(t)
	ctx := context.Background()
	sc, err := s.Create(ctx, "t1", def("gone", "@every 1s"))
	if err != nil {
		t.Fatal(err)
	}
	f.remove("t1", "report.count")
	stored, _ := s.Store.GetSchedule(ctx, "t1", "gone")
	spec, _ := ParseSpec("@every 1s", "UTC")
	if fired := s.fireOne(ctx, stored, stored.Anchor.Add(time.Second), spec, map[[2]string]bool{}, zerolog.Nop()); !fired {
		t.Fatal("the firing of a removed function created nothing")
	}
	jobs := jobsOf(t, s, "t1")
	if len(jobs) != 1 || jobs[0].Func != "report.count" || jobs[0].Channel != "root" {
		t.Fatalf("jobs: %+v", jobs)
	}
	if _, err := s.Run(ctx, "t1", sc.Name); err != nil {
		t.Fatalf("run now of a removed function: %v", err)
	}
	if _, err := s.Patch(ctx, "t1", "gone", []byte(`{"priority":2}`)); err == nil {
		t.Fatal("a change was accepted while its function does not exist")
	}
}

func TestTheFileOwnsConfigSchedules(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	file := []Owned{{Tenant: "t1", Definition: def("nightly", "0 3 * * *")}, {Tenant: "t2", Definition: def("hourly", "@hourly")}}
	if err := s.Apply(ctx, file); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Patch(ctx, "t1", "nightly", []byte(`{"priority":1}`)); !errors.Is(err, abi.ErrConflict) {
		t.Fatalf("the API changes a schedule of the file: %v", err)
	}
	if err := s.Delete(ctx, "t1", "nightly"); !errors.Is(err, abi.ErrConflict) {
		t.Fatalf("the API deletes a schedule of the file: %v", err)
	}
	if _, err := s.SetPaused(ctx, "t1", "nightly", true); err != nil {
		t.Fatalf("pausing a schedule of the file: %v", err)
	}
	if _, err := s.Create(ctx, "t1", def("adhoc", "@daily")); err != nil {
		t.Fatal(err)
	}
	// The next start: nightly's cron changed, hourly left the file.
	file = []Owned{{Tenant: "t1", Definition: def("nightly", "0 4 * * *")}}
	if err := s.Apply(ctx, file); err != nil {
		t.Fatal(err)
	}
	v, err := s.Get(ctx, "t1", "nightly")
	if err != nil || v.Cron != "0 4 * * *" || !v.Paused || v.Source != store.SourceConfig {
		t.Fatalf("re-applied: %+v, %v (the pause is the operators' and stays)", v, err)
	}
	if _, err := s.Get(ctx, "t2", "hourly"); !errors.Is(err, abi.ErrNotFound) {
		t.Fatalf("a schedule removed from the file stays: %v", err)
	}
	if _, err := s.Get(ctx, "t1", "adhoc"); err != nil {
		t.Fatalf("an API schedule was removed by the file: %v", err)
	}
	err = s.Apply(ctx, []Owned{{Tenant: "t1", Definition: def("adhoc", "@daily")}})
	if err == nil || !strings.HasPrefix(err.Error(), "schedules[0].name") {
		t.Fatalf("an entry named as an API schedule: %v", err)
	}
	err = s.Apply(ctx, []Owned{{Tenant: "t1", Definition: Definition{Name: "x", Cron: "@daily", Template: Template{Func: "report.nope"}}}})
	if err == nil || !strings.HasPrefix(err.Error(), "schedules[0].func") {
		t.Fatalf("an entry with an unknown function: %v", err)
	}
}

// A tenant's schedules obey its quotas: the API creates at most
// max_schedules of them (the file's are the operator's), and a firing
// past max_pending — at a due time or by hand — creates nothing. The due
// time is held, not lost: it fires at the first pass with room. Before,
// a tenant at its max_pending made as many jobs as its schedules fired.
func TestATenantsSchedulesObeyItsQuotas(t *testing.T) {
	s, _ := newService(t)
	s.Enqueue.Limits = map[string]enqueue.Limits{"t1": {MaxPending: 2, MaxSchedules: 1}}
	ctx := context.Background()
	if _, err := s.Create(ctx, "t1", def("tick", "@every 1s")); err != nil {
		t.Fatal(err)
	}
	_, err := s.Create(ctx, "t1", def("tock", "@every 1s"))
	var qe *store.QuotaError
	if !errors.As(err, &qe) || qe.Field != "max_schedules" || !errors.Is(err, abi.ErrQuota) {
		t.Fatalf("a second schedule under max_schedules 1: %v, want a quota error on max_schedules", err)
	}
	if _, err := s.Create(ctx, "t2", def("tock", "@every 1s")); err != nil {
		t.Fatalf("another tenant's schedule: %v", err)
	}

	specs, held := map[[2]string]Spec{}, map[[2]string]bool{}
	passAt := func(at time.Time) { s.pass(ctx, at, specs, held, zerolog.Nop()) }
	start := time.Now()
	passAt(start.Add(1100 * time.Millisecond))
	passAt(start.Add(2100 * time.Millisecond))
	if n := len(jobsOf(t, s, "t1")); n != 2 {
		t.Fatalf("%d jobs after two due times, want 2", n)
	}
	passAt(start.Add(3100 * time.Millisecond)) // t1 holds max_pending 2 waiting jobs
	if n := len(jobsOf(t, s, "t1")); n != 2 || !held[[2]string{"t1", "tick"}] {
		t.Fatalf("%d jobs at max_pending 2 (held %v), want 2, the firing held", n, held)
	}
	_, err = s.Run(ctx, "t1", "tick")
	var eq *enqueue.QuotaError
	if !errors.As(err, &eq) || eq.RetryAfter <= 0 || !strings.Contains(eq.Msg, "quota is 2") {
		t.Fatalf("a run by hand at max_pending 2: %v, want the quota's refusal, with a Retry-After", err)
	}
	first := jobsOf(t, s, "t1")[1] // the oldest
	if _, err := s.Store.Act(ctx, "t1", abi.CauseCancel, []string{first.UUID}); err != nil {
		t.Fatal(err)
	}
	passAt(start.Add(3200 * time.Millisecond)) // the held due time, with room
	jobs := jobsOf(t, s, "t1")
	if len(jobs) != 3 || held[[2]string{"t1", "tick"}] {
		t.Fatalf("%d jobs once there was room (held %v), want 3", len(jobs), held)
	}
	if got, _ := s.Store.GetSchedule(ctx, "t1", "tick"); got.LastJob != jobs[0].UUID {
		t.Fatalf("the schedule's last job %q, want the newest %q", got.LastJob, jobs[0].UUID)
	}
}

// firings counts the transactions of firings asked of the store, by
// tenant, and the schedules read whole (with their templates).
type firings struct {
	store.Store
	mu    sync.Mutex
	per   map[string]int // by tenant
	reads int
}

func (f *firings) GetSchedule(ctx context.Context, tenant, name string) (store.Schedule, error) {
	f.mu.Lock()
	f.reads++
	f.mu.Unlock()
	return f.Store.GetSchedule(ctx, tenant, name)
}

func (f *firings) ListSchedules(ctx context.Context, tenant string) ([]store.Schedule, error) {
	ss, err := f.Store.ListSchedules(ctx, tenant)
	f.mu.Lock()
	f.reads += len(ss)
	f.mu.Unlock()
	return ss, err
}

func (f *firings) takeReads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.reads
	f.reads = 0
	return n
}

func (f *firings) FireEach(ctx context.Context, fs []store.Firing) ([]store.FireResult, error) {
	f.mu.Lock()
	for _, tenant := range tenantsOf(fs) {
		f.per[tenant]++
	}
	f.mu.Unlock()
	return f.Store.FireEach(ctx, fs)
}

func tenantsOf(fs []store.Firing) []string {
	var ts []string
	for _, fi := range fs {
		if !slices.Contains(ts, fi.Tenant) {
			ts = append(ts, fi.Tenant)
		}
	}
	return ts
}

func (f *firings) take() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	per := f.per
	f.per = map[string]int{}
	return per
}

// A tenant at its max_pending with many schedules due costs the leader
// one try a pass, not one per schedule: the others would be refused
// alike. Another tenant's schedules fire in the same pass. Before, each
// held schedule was one transaction (the tenant's lock and its counts)
// at every pass, so a tenant holding thousands of them made every
// other tenant's firing late. A held schedule deleted is forgotten.
func TestATenantAtItsQuotaCostsTheLeaderOneTryAPass(t *testing.T) {
	s, _ := newService(t)
	counted := &firings{Store: s.Store, per: map[string]int{}}
	s.Store = counted
	s.Enqueue.Limits = map[string]enqueue.Limits{"t1": {MaxPending: 1, MaxSchedules: 100}}
	ctx := context.Background()
	for i := range 50 {
		if _, err := s.Create(ctx, "t1", def(fmt.Sprintf("s%02d", i), "@every 1s")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Create(ctx, "t2", def("other", "@every 1s")); err != nil {
		t.Fatal(err)
	}

	specs, held := map[[2]string]Spec{}, map[[2]string]bool{}
	start := time.Now()
	s.pass(ctx, start.Add(1100*time.Millisecond), specs, held, zerolog.Nop())
	if n := len(jobsOf(t, s, "t1")); n != 1 {
		t.Fatalf("t1 has %d jobs at max_pending 1, want 1", n)
	}
	if got := counted.take(); got["t1"] != 1 || got["t2"] != 1 {
		t.Fatalf("firing transactions in the pass that filled t1: %v, want one of each tenant (t1's: one fired, one refused, the rest untried)", got)
	}
	for i := 2; i <= 4; i++ {
		s.pass(ctx, start.Add(time.Duration(i)*time.Second+100*time.Millisecond), specs, held, zerolog.Nop())
		if got := counted.take(); got["t1"] != 1 || got["t2"] != 1 {
			t.Fatalf("pass %d: firing transactions %v, want one of each tenant", i, got)
		}
	}
	if len(held) != 2 {
		t.Fatalf("%d schedules held, want 2 (the two refused in turn; the untried ones are not)", len(held))
	}
	if n := len(jobsOf(t, s, "t2")); n != 4 {
		t.Fatalf("t2 has %d jobs after four due times, want 4", n)
	}

	heldKey := func() [2]string {
		for k := range held {
			return k
		}
		t.Fatalf("no schedule held")
		return [2]string{}
	}()
	if err := s.Delete(ctx, heldKey[0], heldKey[1]); err != nil {
		t.Fatal(err)
	}
	s.pass(ctx, start.Add(5100*time.Millisecond), specs, held, zerolog.Nop())
	if held[heldKey] {
		t.Fatalf("a deleted schedule %v is still held", heldKey)
	}
}

// A pass reads a schedule's template only when the schedule is due: a
// template is up to 256 KiB, and the leader passes every two seconds at
// most. Before, each pass read every template: one tenant's 100
// schedules of 250 KiB (its default max_schedules) cost the leader a
// quarter of a second and 50 MB of garbage a pass on PostgreSQL
// (BenchmarkAPassWithNothingDue), whether anything was due or not. A
// schedule changed between the list and its firing fires at the next
// pass, by its new definition.
func TestAPassReadsOnlyTheTemplatesOfDueSchedules(t *testing.T) {
	s, _ := newService(t)
	counted := &firings{Store: s.Store, per: map[string]int{}}
	s.Store = counted
	ctx := context.Background()
	for i := range 20 {
		if _, err := s.Create(ctx, "t1", def(fmt.Sprintf("yearly%02d", i), "0 3 1 1 *")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Create(ctx, "t1", def("tick", "@every 1s")); err != nil {
		t.Fatal(err)
	}
	specs, held := map[[2]string]Spec{}, map[[2]string]bool{}
	start := time.Now()
	counted.takeReads()
	s.pass(ctx, start, specs, held, zerolog.Nop())
	if n := counted.takeReads(); n != 0 {
		t.Fatalf("a pass with nothing due read %d schedules whole, want 0", n)
	}
	s.pass(ctx, start.Add(1100*time.Millisecond), specs, held, zerolog.Nop())
	if n, jobs := counted.takeReads(), jobsOf(t, s, "t1"); n != 1 || len(jobs) != 1 || string(jobs[0].Args) != `["x"]` {
		t.Fatalf("a pass with one schedule due read %d whole and made %v, want 1 and its job with the template's args", n, jobs)
	}

	// Changed between the pass's list and the firing: the firing of the
	// old version is dropped, the next pass fires the new one.
	changed := &changeOnRead{firings: counted, change: func() {
		args := json.RawMessage(`["new"]`)
		if _, err := s.Patch(ctx, "t1", "tick", []byte(`{"args":`+string(args)+`}`)); err != nil {
			t.Error(err)
		}
	}}
	s.Store = changed
	s.pass(ctx, start.Add(2100*time.Millisecond), specs, held, zerolog.Nop())
	if jobs := jobsOf(t, s, "t1"); len(jobs) != 1 {
		t.Fatalf("a firing of the definition before a change made a job: %v", jobs)
	}
	s.Store = counted
	s.pass(ctx, start.Add(3100*time.Millisecond), specs, held, zerolog.Nop())
	if jobs := jobsOf(t, s, "t1"); len(jobs) != 2 || string(jobs[0].Args) != `["new"]` {
		t.Fatalf("the next pass after a change made %v, want a job of the new template", jobs)
	}
}

// changeOnRead changes the schedule once, as the pass reads its template.
type changeOnRead struct {
	*firings
	change func()
	done   bool
}

func (c *changeOnRead) GetSchedule(ctx context.Context, tenant, name string) (store.Schedule, error) {
	if !c.done {
		c.done = true
		c.change()
	}
	return c.firings.GetSchedule(ctx, tenant, name)
}

// dueReads counts the schedules each pass reads.
type dueReads struct {
	store.Store
	rows []int
}

func (d *dueReads) DueSchedules(ctx context.Context, now time.Time) ([]store.Schedule, time.Time, error) {
	ss, next, err := d.Store.DueSchedules(ctx, now)
	d.rows = append(d.rows, len(ss))
	return ss, next, err
}

func (d *dueReads) last() int { return d.rows[len(d.rows)-1] }

// A pass reads the schedules that may be due, not every schedule: a new
// or changed one once (to learn its next due time), then each only when
// its time comes. Before, every pass read every schedule, 6–9 µs each:
// 10,000 schedules (a hundred tenants at the default quota) cost the
// leader 60–70 ms a pass, due or not. A stored schedule that no longer
// parses is read (and logged) once, not at every pass.
func TestAPassReadsOnlyTheSchedulesThatMayBeDue(t *testing.T) {
	s, _ := newService(t)
	reads := &dueReads{Store: s.Store}
	s.Store = reads
	ctx := context.Background()
	for i := range 200 {
		if _, err := s.Create(ctx, "t1", def(fmt.Sprintf("yearly%03d", i), "0 3 1 1 *")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Create(ctx, "t1", def("tick", "@every 1s")); err != nil {
		t.Fatal(err)
	}
	specs, held := map[[2]string]Spec{}, map[[2]string]bool{}
	start := time.Now()
	s.pass(ctx, start, specs, held, zerolog.Nop())
	if n := reads.last(); n != 201 {
		t.Fatalf("the first pass read %d schedules, want the 201 new ones", n)
	}
	for i := 1; i <= 3; i++ {
		now := start.Add(time.Duration(i)*time.Second + 100*time.Millisecond)
		next := s.pass(ctx, now, specs, held, zerolog.Nop())
		if n := reads.last(); n != 1 {
			t.Fatalf("pass %d read %d schedules, want 1 (tick, due each second)", i, n)
		}
		if want := now.Truncate(time.Second).Add(time.Second); !next.Equal(want) {
			t.Fatalf("pass %d: next pass at %v, want tick's next due time %v", i, next, want)
		}
	}
	if n := len(jobsOf(t, s, "t1")); n != 3 {
		t.Fatalf("%d jobs after three of tick's due times, want 3", n)
	}

	// Changed or resumed: read at the next pass, then no more.
	if _, err := s.Patch(ctx, "t1", "yearly007", []byte(`{"priority":3}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "t1", "tick"); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(5 * time.Second)
	s.pass(ctx, later, specs, held, zerolog.Nop())
	s.pass(ctx, later.Add(time.Second), specs, held, zerolog.Nop())
	if got := reads.rows[len(reads.rows)-2:]; got[0] != 1 || got[1] != 0 {
		t.Fatalf("the passes after a change read %v schedules, want [1 0]", got)
	}
	newYear := time.Date(later.Year()+1, 1, 1, 3, 0, 0, 0, time.UTC)
	if next := s.pass(ctx, later.Add(2*time.Second), specs, held, zerolog.Nop()); !next.Equal(newYear) {
		t.Fatalf("with nothing due, the next pass at %v, want the yearly ones' %v", next, newYear)
	}
	s.pass(ctx, newYear.Add(time.Second), specs, held, zerolog.Nop())
	if n, jobs := reads.last(), len(jobsOf(t, s, "t1")); n != 200 || jobs != 203 {
		t.Fatalf("at their due time: %d read, %d jobs; want the 200 yearly ones read and fired", n, jobs)
	}

	// A stored cron that no longer parses (a time zone gone from the
	// machine's database, a definition written by a newer version):
	// read once, then left until it changes.
	if _, err := s.Store.UpdateSchedule(ctx, "t1", "yearly001", func(sc *store.Schedule) error { sc.Cron = "not a cron"; return nil }); err != nil {
		t.Fatal(err)
	}
	s.pass(ctx, newYear.Add(2*time.Second), specs, held, zerolog.Nop())
	s.pass(ctx, newYear.Add(3*time.Second), specs, held, zerolog.Nop())
	if got := reads.rows[len(reads.rows)-2:]; got[0] != 1 || got[1] != 0 {
		t.Fatalf("the passes after a cron that does not parse read %v, want [1 0]", got)
	}
	if sc, _ := s.Store.GetSchedule(ctx, "t1", "yearly001"); !sc.NextDue.Equal(store.NeverDue) {
		t.Fatalf("a schedule that does not parse is next due %v, want never", sc.NextDue)
	}
}

// The leader fires each due time at its time although a pass reads only
// the schedules whose NextDue came, across the clocks' changes too: a
// time the clocks skip runs at the jump, a time they repeat runs once,
// as when every pass read every schedule (spec_test.go). Passes every
// 7 minutes through the two changes of 2027 in Brussels and New York;
// after each, every schedule's last firing is its latest due time, and
// a schedule that catches up has fired each due time it missed, up to
// its bound.
func TestTheLeaderFiresOnTimeAcrossTheClockChanges(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	type sched struct {
		name, cron, tz string
		catchUp        int // missed_runs = "catch_up" with this bound, else "skip"
	}
	scheds := []sched{
		{"brussels-0230", "30 2 * * *", "Europe/Brussels", 0}, // skipped in March, twice in October
		{"brussels-0230-catchup", "30 2 * * *", "Europe/Brussels", 1000},
		{"brussels-0215-sun", "15 2 * * 0", "Europe/Brussels", 0},
		{"newyork-0130", "30 1 * * *", "America/New_York", 0}, // twice in November
		{"newyork-0210", "10 2 * * *", "America/New_York", 0}, // skipped in March
		{"hourly", "5 * * * *", "Europe/Brussels", 0},
		{"hourly-catchup", "5 * * * *", "Europe/Brussels", 3},
		{"every7s", "@every 7s", "UTC", 0},
	}
	specs := map[string]Spec{}
	for _, sc := range scheds {
		d := def(sc.name, sc.cron)
		d.Timezone = sc.tz
		tenant := "t1"
		if sc.catchUp > 0 {
			d.MissedRuns, d.CatchUpMax, d.Description, tenant = store.MissedCatchUp, sc.catchUp, &sc.name, "t2"
		}
		if _, err := s.Create(ctx, tenant, d); err != nil {
			t.Fatal(err)
		}
		specs[sc.name], _ = ParseSpec(sc.cron, sc.tz)
	}
	created, _ := s.Store.GetSchedule(ctx, "t1", "hourly")
	cache, held := map[[2]string]Spec{}, map[[2]string]bool{}
	want := map[string]int{} // the jobs each catching-up schedule should have made
	last := map[string]time.Time{}
	for _, window := range [][2]time.Time{
		{time.Date(2027, 3, 13, 0, 0, 0, 0, time.UTC), time.Date(2027, 3, 15, 0, 0, 0, 0, time.UTC)},
		{time.Date(2027, 3, 27, 12, 0, 0, 0, time.UTC), time.Date(2027, 3, 29, 0, 0, 0, 0, time.UTC)},
		{time.Date(2027, 10, 30, 12, 0, 0, 0, time.UTC), time.Date(2027, 11, 1, 0, 0, 0, 0, time.UTC)},
		{time.Date(2027, 11, 6, 12, 0, 0, 0, time.UTC), time.Date(2027, 11, 8, 12, 0, 0, 0, time.UTC)},
	} {
		for now := window[0]; now.Before(window[1]); now = now.Add(7 * time.Minute) {
			s.pass(ctx, now, cache, held, zerolog.Nop())
			for _, sc := range scheds {
				tenant := "t1"
				if sc.catchUp > 0 {
					tenant = "t2"
					from, ok := last[sc.name]
					if !ok {
						from = created.Anchor
					}
					missed := specs[sc.name].Due(from, now, sc.catchUp)
					want[sc.name] += len(missed)
					if len(missed) > 0 {
						last[sc.name] = missed[len(missed)-1]
					}
				}
				got, err := s.Store.GetSchedule(ctx, tenant, sc.name)
				if err != nil {
					t.Fatal(err)
				}
				latest := specs[sc.name].Due(created.Anchor, now, 1)
				if len(latest) != 1 || !got.Anchor.Equal(latest[0]) {
					t.Fatalf("%s after the pass at %v: last fired %v, want %v", sc.name, now, got.Anchor, latest)
				}
				if !got.NextDue.After(now) || got.NextDue.After(specs[sc.name].Next(now)) {
					t.Fatalf("%s after the pass at %v: next due %v, want after the pass and not after %v", sc.name, now, got.NextDue, specs[sc.name].Next(now))
				}
			}
		}
	}
	made := map[string]int{}
	for _, j := range jobsOf(t, s, "t2") {
		made[j.Description]++
	}
	for name, n := range want {
		if made[name] != n {
			t.Errorf("%s made %d jobs, want %d (each due time it missed, up to its bound, at every pass)", name, made[name], n)
		}
	}
	if len(want) != 2 || want["hourly-catchup"] < 150 {
		t.Fatalf("catching up: %v, want both schedules counted, hourly-catchup over 150", want)
	}
}

// heard records what the leader tells its Observer.
type heard struct {
	mu      sync.Mutex
	firings map[string]int // tenant "/" outcome
	late    []time.Duration
	passes  []int
}

func (h *heard) ScheduleFiring(tenant, outcome string, late time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.firings[tenant+"/"+outcome]++
	if outcome == Fired {
		h.late = append(h.late, late)
	}
}

func (h *heard) SchedulePass(n int, d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.passes = append(h.passes, n)
}

// failFirings fails every firing, as a store that went away would.
type failFirings struct{ store.Store }

func (failFirings) FireEach(context.Context, []store.Firing) ([]store.FireResult, error) {
	return nil, errors.New("the store went away")
}

// The leader tells what each firing came to and how late it was, and
// what each pass read (wasmq_schedule_* on /metrics): an operator sees
// schedules that fire late, are held by a quota, or fail.
func TestTheLeaderTellsWhatEachFiringCameTo(t *testing.T) {
	s, _ := newService(t)
	h := &heard{firings: map[string]int{}}
	s.Observer = h
	s.Enqueue.Limits = map[string]enqueue.Limits{"t2": {MaxPending: 1, MaxSchedules: 10}}
	ctx := context.Background()
	for _, tenant := range []string{"t1", "t2"} {
		for _, name := range []string{"a", "b"} {
			if _, err := s.Create(ctx, tenant, def(name, "@every 1s")); err != nil {
				t.Fatal(err)
			}
		}
	}
	keyed := def("keyed", "@every 1s")
	keyed.IdentityKey = "one-at-a-time"
	if _, err := s.Create(ctx, "t1", keyed); err != nil {
		t.Fatal(err)
	}
	specs, held := map[[2]string]Spec{}, map[[2]string]bool{}
	start := time.Now()
	s.pass(ctx, start.Add(1100*time.Millisecond), specs, held, zerolog.Nop())
	s.pass(ctx, start.Add(2100*time.Millisecond), specs, held, zerolog.Nop())
	want := map[string]int{
		"t1/fired": 5, "t1/deduplicated": 1, // two of a and b, one of keyed, then its key held
		"t2/fired": 1, "t2/held": 3, // max_pending 1: one fired, one refused; then both refused (one tried)
	}
	if !reflect.DeepEqual(h.firings, want) {
		t.Fatalf("firings heard: %v, want %v", h.firings, want)
	}
	for _, late := range h.late {
		if late < 0 || late > time.Hour {
			t.Fatalf("a firing %v late, want from its due time to its job's creation", late)
		}
	}
	if len(h.passes) != 2 || h.passes[0] != 5 || h.passes[1] != 5 {
		t.Fatalf("passes read %v, want [5 5]", h.passes)
	}

	// Fired already by another leader: skipped. The store gone: failed.
	sc, _ := s.Store.GetSchedule(ctx, "t1", "a")
	spec, _ := ParseSpec(sc.Cron, sc.Timezone)
	s.fireOne(ctx, sc, sc.Anchor, spec, held, zerolog.Nop())
	s.Store = failFirings{s.Store}
	s.fireOne(ctx, sc, sc.Anchor.Add(time.Second), spec, held, zerolog.Nop())
	if h.firings["t1/skipped"] != 1 || h.firings["t1/failed"] != 1 {
		t.Fatalf("firings heard: %v, want one skipped and one failed of t1", h.firings)
	}
}

// A store that keeps failing the firings (down, its disk full) while 100
// schedules are due is one line when it starts, one per ten seconds while
// it goes on and one when it is back: not a line per schedule and pass.
// Before, five passes were 500 error lines saying one thing.
func TestAStoreThatKeepsFailingTheFiringsIsALineNotOnePerSchedule(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	for i := range 100 {
		if _, err := s.Create(ctx, "t1", def(fmt.Sprintf("s%03d", i), "@every 1s")); err != nil {
			t.Fatal(err)
		}
	}
	var out strings.Builder
	log := zerolog.New(&out).Level(zerolog.InfoLevel)
	specs, held := map[[2]string]Spec{}, map[[2]string]bool{}
	healthy := s.Store
	s.Store = failFirings{healthy}
	start := time.Now()
	for i := 1; i <= 5; i++ {
		s.pass(ctx, start.Add(time.Duration(i)*time.Second+100*time.Millisecond), specs, held, log)
	}
	s.Store = healthy
	s.pass(ctx, start.Add(6100*time.Millisecond), specs, held, log)
	if n := len(jobsOf(t, s, "t1")); n != 100 {
		t.Fatalf("%d jobs once the store was back, want one of each of the 100 schedules", n)
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("a log line that is not JSON: %q", l)
		}
		lines = append(lines, m)
	}
	if len(lines) != 2 {
		t.Fatalf("%d lines for 500 failed firings and the recovery, want 2:\n%s", len(lines), out.String())
	}
	if first := lines[0]; first["message"] != "firing schedules failed; retrying" || first["level"] != "warn" ||
		first["error"] != "the store went away" || first["tenant"] != "t1" || first["schedule"] != "s000" {
		t.Errorf("first line %v, want the first failure with its schedule and error", first)
	}
	if last := lines[1]; last["message"] != "firing schedules succeeded again" || last["failures"] != 500.0 {
		t.Errorf("last line %v, want the recovery after 500 failures", last)
	}
}

// fireOne fires one due time of sc alone, as a pass would; true if it
// fired.
func (s *Service) fireOne(ctx context.Context, sc store.Schedule, due time.Time, spec Spec, held map[[2]string]bool, log zerolog.Logger) bool {
	f, ok := s.firingOf(ctx, sc, due, spec, log)
	if !ok {
		return false
	}
	fired, _ := s.fire(ctx, []firing{f}, held, log)
	return fired == 1
}

// A tenant's due times go to the store a batch at a time (fireChunk),
// but a schedule's own are never split: each fires only if the one
// before it did. Three schedules catching up 200, 200 and 600 due times
// are three transactions (two of 200 do not fit in one of 256; the 600
// are not split). Every due time fires once.
func TestCatchingUpFiresEveryDueTimeWhateverTheBatches(t *testing.T) {
	s, _ := newService(t)
	counted := &firings{Store: s.Store, per: map[string]int{}}
	s.Store = counted
	ctx := context.Background()
	for _, c := range []struct {
		name string
		max  int
	}{{"a", 200}, {"b", 200}, {"c", 1000}} {
		d := def(c.name, "@every 1s")
		d.MissedRuns, d.CatchUpMax = store.MissedCatchUp, c.max
		if _, err := s.Create(ctx, "t1", d); err != nil {
			t.Fatal(err)
		}
	}
	specs, held := map[[2]string]Spec{}, map[[2]string]bool{}
	now := time.Now().Add(600 * time.Second)
	s.pass(ctx, now, specs, held, zerolog.Nop())
	if got := counted.take()["t1"]; got != 3 {
		t.Fatalf("%d transactions of firings, want 3 (a's 200, b's 200, c's 600)", got)
	}
	n := 0
	for cursor := ""; ; {
		p, err := s.Store.List(ctx, store.Filter{Tenant: "t1", Limit: 300, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		n += len(p.Jobs)
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if n != 1000 {
		t.Fatalf("%d jobs, want 1,000 (200, 200 and 600 due times)", n)
	}
	for _, name := range []string{"a", "b", "c"} {
		sc, _ := s.Store.GetSchedule(ctx, "t1", name)
		if want := now.Truncate(time.Second); !sc.Anchor.Equal(want) {
			t.Errorf("%s fired up to %v, want %v", name, sc.Anchor, want)
		}
	}
}
