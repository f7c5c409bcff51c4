package schedule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/enqueue"
	"github.com/wasmq/wasmq/internal/failing"
	"github.com/wasmq/wasmq/store"
)

// Template is the job a schedule enqueues at each due time: the fields of
// POST /v1/jobs that make sense for a job created again and again (no
// eta, dependencies, batch splitting or ref). IdentityKey may hold
// {schedule}, {due} (RFC 3339, UTC) and {due_unix}.
type Template struct {
	Func        string          `json:"func"`
	Args        json.RawMessage `json:"args,omitempty"`
	Kwargs      json.RawMessage `json:"kwargs,omitempty"`
	Context     json.RawMessage `json:"context,omitempty"`
	Channel     *string         `json:"channel,omitempty"`
	Priority    *int            `json:"priority,omitempty"`
	MaxRetries  *int            `json:"max_retries,omitempty"`
	IdentityKey string          `json:"identity_key,omitempty"`
	Description *string         `json:"description,omitempty"`
}

// Definition is a schedule as a client writes it: the body of POST
// /v1/schedules, a [[schedules]] entry of wasmq.toml.
type Definition struct {
	Name       string `json:"name"`
	Cron       string `json:"cron"`
	Timezone   string `json:"timezone,omitempty"`
	MissedRuns string `json:"missed_runs,omitempty"`
	CatchUpMax int    `json:"catch_up_max,omitempty"`
	Paused     bool   `json:"paused"`
	Template
}

// Decode reads a definition strictly (enqueue.Decode), naming a field of
// the template as the client wrote it ("priority", not "Template.priority").
func Decode(body []byte, d *Definition) error {
	err := enqueue.Decode(body, d)
	var fe *abi.FieldError
	if errors.As(err, &fe) {
		fe.Field = strings.TrimPrefix(fe.Field, "Template.")
		fe.Msg = strings.TrimPrefix(fe.Msg, "Template.")
	}
	return err
}

// DefaultCatchUpMax is the bound of missed_runs = "catch_up" when the
// definition gives none.
const DefaultCatchUpMax = 10

// NextRuns is how many coming due times a View lists.
const NextRuns = 5

// View is a schedule as the API shows it.
type View struct {
	Tenant string `json:"tenant"`
	Definition
	Source    string      `json:"source"`
	Version   int64       `json:"version"`
	NextRuns  []time.Time `json:"next_runs"`
	LastFired *time.Time  `json:"last_fired"`
	LastJob   *LastJob    `json:"last_job"`
	Created   time.Time   `json:"date_created"`
	Updated   time.Time   `json:"date_updated"`
}

// LastJob is the job a schedule created last, with its state now ("" once
// the vacuum removed it).
type LastJob struct {
	UUID  string    `json:"uuid"`
	State abi.State `json:"state,omitempty"`
}

// ErrConfigOwned: the definition of a schedule from wasmq.toml is the
// file's; the API may pause, resume and run it, not change or delete it.
var ErrConfigOwned = errors.New("defined in wasmq.toml")

// Service is what the API, the CLI and the config use: every definition
// goes through the checks of the enqueue path before the store.
type Service struct {
	Store   store.Store
	Enqueue *enqueue.Service
	// Observer, if set, hears of the leader's firings and passes.
	Observer Observer
	// fails report the leader's reads and writes that fail, owned by its
	// loop (Fire): a store that keeps failing (down, its disk full) is a
	// line every ten seconds, not one per schedule due and pass.
	fails struct{ read, fire, moves failing.Report }
	// wake tells this node's firing loop a schedule changed.
	wake chan struct{}
}

// New returns a Service over st, checking templates with e.
func New(st store.Store, e *enqueue.Service) *Service {
	s := &Service{Store: st, Enqueue: e, wake: make(chan struct{}, 1)}
	s.fails.read.What = "reading the due schedules"
	s.fails.fire.What = "firing schedules"
	s.fails.moves.What = "writing the schedules' next due times"
	return s
}

func (s *Service) changed() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Settle fills a definition's defaults and checks what needs no plugin
// (the name, the cron expression and time zone, missed_runs and
// catch_up_max), naming the field: a config file is checked with it
// before any node applies the file.
func (d Definition) Settle() (Definition, error) {
	if err := abi.CheckScheduleName(d.Name); err != nil {
		return d, err
	}
	if d.Timezone == "" {
		d.Timezone = "UTC"
	}
	if _, err := ParseSpec(d.Cron, d.Timezone); err != nil {
		return d, err
	}
	if d.MissedRuns == "" {
		d.MissedRuns = store.MissedSkip
	}
	switch {
	case d.MissedRuns == store.MissedCatchUp && d.CatchUpMax == 0:
		d.CatchUpMax = DefaultCatchUpMax
	case d.MissedRuns == store.MissedCatchUp && (d.CatchUpMax < 1 || d.CatchUpMax > store.MaxCatchUp):
		return d, badField("catch_up_max", "must be an integer from 1 to %d", store.MaxCatchUp)
	case d.MissedRuns == store.MissedSkip && d.CatchUpMax != 0:
		return d, badField("catch_up_max", "applies only to missed_runs = %q", store.MissedCatchUp)
	case d.MissedRuns != store.MissedSkip && d.MissedRuns != store.MissedCatchUp:
		return d, badField("missed_runs", "must be %q (fire once for the latest missed time) or %q", store.MissedSkip, store.MissedCatchUp)
	}
	return d, nil
}

// check turns a definition into the store's schedule, checking each field
// as the enqueue path does (the function must exist now), naming it.
func (s *Service) check(ctx context.Context, tenant string, d Definition) (store.Schedule, error) {
	d, err := d.Settle()
	if err != nil {
		return store.Schedule{}, err
	}
	if _, err := s.build(ctx, tenant, d.Name, d.Template, time.Now().UTC(), s.Enqueue.Funcs); err != nil {
		return store.Schedule{}, err
	}
	tmpl, err := json.Marshal(d.Template)
	if err != nil {
		return store.Schedule{}, badField("template", "%v", err)
	}
	return store.Schedule{Tenant: tenant, Name: d.Name, Cron: strings.TrimSpace(d.Cron), Timezone: d.Timezone, Template: tmpl,
		MissedRuns: d.MissedRuns, CatchUpMax: d.CatchUpMax, Paused: d.Paused, Source: store.SourceAPI}, nil
}

// build makes the job of one due time with the enqueue path's own
// Build: the same checks and defaults as POST /v1/jobs.
func (s *Service) build(ctx context.Context, tenant, name string, t Template, due time.Time, funcs enqueue.Functions) (store.NewJob, error) {
	r := enqueue.Request{Func: t.Func, Args: t.Args, Kwargs: t.Kwargs, Context: t.Context, Channel: t.Channel,
		Priority: t.Priority, MaxRetries: t.MaxRetries, Description: t.Description, IdentityKey: expandKey(t.IdentityKey, name, due)}
	b := &enqueue.Service{Store: s.Store, Funcs: funcs}
	jobs, err := b.Build(ctx, tenant, []enqueue.Request{r}, false)
	if err != nil {
		var fe *abi.FieldError
		if errors.As(err, &fe) && errors.Is(err, abi.ErrNotFound) {
			// An unknown function is a bad definition here, not a
			// missing resource: the request names the schedule.
			return store.NewJob{}, &abi.FieldError{Field: fe.Field, Msg: fe.Msg, Err: abi.ErrInvalid}
		}
		return store.NewJob{}, err
	}
	// Build applied the store's rules (text without NUL, numbers in
	// range), so a definition is refused when written, not at each
	// firing; the due time comes from the cron spec, always in range.
	j := jobs[0]
	if !due.IsZero() {
		j.ETA = &due
	}
	return j, nil
}

func expandKey(key, name string, due time.Time) string {
	if !strings.Contains(key, "{") {
		return key
	}
	return strings.NewReplacer("{schedule}", name, "{due}", due.UTC().Format(time.RFC3339),
		"{due_unix}", strconv.FormatInt(due.Unix(), 10)).Replace(key)
}

// anyFunction resolves a function that was removed as if it had the
// defaults: the job of a due time is created anyway and fails with the
// usual not-found outcome when it runs, visible in the UI, rather than
// the schedule skipping in silence.
type anyFunction struct{ enqueue.Functions }

func (f anyFunction) Function(tenant, fn string) (abi.FunctionConfig, error) {
	c, err := f.Functions.Function(tenant, fn)
	if errors.Is(err, abi.ErrNotFound) {
		return abi.FunctionConfig{}, nil
	}
	return c, err
}

// Create stores a new schedule of tenant.
func (s *Service) Create(ctx context.Context, tenant string, d Definition) (View, error) {
	sc, err := s.check(ctx, tenant, d)
	if err != nil {
		return View{}, err
	}
	sc, err = s.Store.CreateSchedule(ctx, sc, s.limits(tenant).MaxSchedules)
	if err != nil {
		return View{}, err
	}
	s.changed()
	return s.view(ctx, sc), nil
}

// Get returns one schedule of tenant.
func (s *Service) Get(ctx context.Context, tenant, name string) (View, error) {
	sc, err := s.Store.GetSchedule(ctx, tenant, name)
	if err != nil {
		return View{}, err
	}
	return s.view(ctx, sc), nil
}

// List returns a page of tenant's schedules ("" = every tenant's), by
// tenant then name, from after cursor ("" from the first), of at most
// limit (0: store.DefaultSchedulePage), and where the next page begins
// ("" at the end).
func (s *Service) List(ctx context.Context, tenant, cursor string, limit int) ([]View, string, error) {
	p, err := s.Store.SchedulePage(ctx, tenant, cursor, limit)
	if err != nil {
		return nil, "", err
	}
	out := make([]View, len(p.Schedules))
	for i, sc := range p.Schedules {
		out[i] = viewOf(sc, sc.LastState)
	}
	return out, p.NextCursor, nil
}

// Patch changes the fields patch (a JSON object) names: each replaces the
// field, null restores its default. The name cannot change.
func (s *Service) Patch(ctx context.Context, tenant, name string, patch []byte) (View, error) {
	var fields map[string]json.RawMessage
	if err := enqueue.Decode(patch, &fields); err != nil {
		return View{}, err
	}
	if n, ok := fields["name"]; ok {
		var v string
		if json.Unmarshal(n, &v) != nil || v != name {
			return View{}, badField("name", "a schedule cannot be renamed: create another and delete this one")
		}
	}
	sc, err := s.Store.UpdateSchedule(ctx, tenant, name, func(sc *store.Schedule) error {
		if sc.Source == store.SourceConfig {
			return &abi.FieldError{Field: "name", Msg: fmt.Sprintf("schedule %q is %v: change it there", name, ErrConfigOwned), Err: abi.ErrConflict}
		}
		cur, err := json.Marshal(definitionOf(*sc))
		if err != nil {
			return err
		}
		merged := map[string]json.RawMessage{}
		if err := json.Unmarshal(cur, &merged); err != nil {
			return err
		}
		for k, v := range fields {
			if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
				delete(merged, k)
			} else {
				merged[k] = v
			}
		}
		if _, ok := fields["missed_runs"]; ok {
			if _, also := fields["catch_up_max"]; !also {
				delete(merged, "catch_up_max") // the new policy's default bound
			}
		}
		body, _ := json.Marshal(merged)
		var d Definition
		if err := Decode(body, &d); err != nil {
			return err
		}
		next, err := s.check(ctx, tenant, d)
		if err != nil {
			return err
		}
		next.Source = sc.Source
		*sc = next
		return nil
	})
	if err != nil {
		return View{}, err
	}
	s.changed()
	return s.view(ctx, sc), nil
}

// Delete removes a schedule of tenant; the jobs it created stay.
func (s *Service) Delete(ctx context.Context, tenant, name string) error {
	sc, err := s.Store.GetSchedule(ctx, tenant, name)
	if err != nil {
		return err
	}
	if sc.Source == store.SourceConfig {
		return &abi.FieldError{Field: "name", Msg: fmt.Sprintf("schedule %q is %v: remove it there", name, ErrConfigOwned), Err: abi.ErrConflict}
	}
	if err := s.Store.DeleteSchedule(ctx, tenant, name); err != nil {
		return err
	}
	s.changed()
	return nil
}

// SetPaused pauses or resumes a schedule. A paused schedule creates no
// job; a resumed one counts due times from now (the ones missed while
// paused never fire).
func (s *Service) SetPaused(ctx context.Context, tenant, name string, paused bool) (View, error) {
	sc, err := s.Store.UpdateSchedule(ctx, tenant, name, func(sc *store.Schedule) error {
		sc.Paused = paused
		return nil
	})
	if err != nil {
		return View{}, err
	}
	s.changed()
	return s.view(ctx, sc), nil
}

// Run creates the schedule's job at once, paused or not, outside its due
// times (which it leaves as they are).
func (s *Service) Run(ctx context.Context, tenant, name string) (abi.Job, error) {
	sc, err := s.Store.GetSchedule(ctx, tenant, name)
	if err != nil {
		return abi.Job{}, err
	}
	j, err := s.jobOf(ctx, sc, time.Time{})
	if err != nil {
		return abi.Job{}, err
	}
	out, err := s.Store.FireSchedule(ctx, store.Firing{Tenant: tenant, Name: name, Job: j, Quota: s.limits(tenant).Quota()})
	if err != nil {
		return abi.Job{}, enqueue.Refusal(err) // past a quota, answered as an enqueue is
	}
	return out.Job.Job, nil
}

// limits are tenant's quotas (none without an enqueue service's).
func (s *Service) limits(tenant string) enqueue.Limits {
	if s.Enqueue == nil {
		return enqueue.Limits{}
	}
	return s.Enqueue.Limits[tenant]
}

// jobOf builds the job of a stored schedule for due (zero: now, by hand).
func (s *Service) jobOf(ctx context.Context, sc store.Schedule, due time.Time) (store.NewJob, error) {
	var t Template
	if err := json.Unmarshal(sc.Template, &t); err != nil {
		return store.NewJob{}, fmt.Errorf("schedule %s/%s: template: %w", sc.Tenant, sc.Name, err)
	}
	keyTime := due
	if keyTime.IsZero() {
		keyTime = time.Now().UTC()
	}
	t.IdentityKey = expandKey(t.IdentityKey, sc.Name, keyTime)
	return s.build(ctx, sc.Tenant, sc.Name, t, due, anyFunction{s.Enqueue.Funcs})
}

func definitionOf(sc store.Schedule) Definition {
	d := Definition{Name: sc.Name, Cron: sc.Cron, Timezone: sc.Timezone, MissedRuns: sc.MissedRuns,
		CatchUpMax: sc.CatchUpMax, Paused: sc.Paused}
	_ = json.Unmarshal(sc.Template, &d.Template) // the store keeps what check wrote
	return d
}

// view is one schedule as the API shows it, its last job's state read now.
func (s *Service) view(ctx context.Context, sc store.Schedule) View {
	var last abi.State
	if sc.LastJob != "" {
		if j, err := s.Store.Get(ctx, sc.Tenant, sc.LastJob); err == nil {
			last = j.State
		}
	}
	return viewOf(sc, last)
}

// viewOf is sc as the API shows it, its last job in state last ("" once
// vacuumed).
func viewOf(sc store.Schedule, last abi.State) View {
	v := View{Tenant: sc.Tenant, Definition: definitionOf(sc), Source: sc.Source, Version: sc.Version,
		NextRuns: []time.Time{}, LastFired: sc.LastFired, Created: sc.DateCreated, Updated: sc.DateUpdated}
	if spec, err := ParseSpec(sc.Cron, sc.Timezone); err == nil && !sc.Paused {
		v.NextRuns = spec.NextN(time.Now(), NextRuns)
	}
	if sc.LastJob != "" {
		v.LastJob = &LastJob{UUID: sc.LastJob, State: last}
	}
	return v
}
