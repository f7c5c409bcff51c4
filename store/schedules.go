package store

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wasmq/wasmq/abi"
)

// Schedule is a periodic job as the store keeps it: when it fires (Cron
// in Timezone, read by the schedule package, not here), what it enqueues
// (Template, the JSON body of POST /v1/jobs, checked by the enqueue path
// before it reaches the store) and how far it has fired (Anchor).
type Schedule struct {
	Tenant   string
	Name     string
	Cron     string
	Timezone string
	// Template is the job each firing enqueues, a JSON object.
	Template   []byte
	MissedRuns string // MissedSkip or MissedCatchUp
	// CatchUpMax bounds how many missed due times one pass fires under
	// MissedCatchUp.
	CatchUpMax int
	Paused     bool
	Source     string // SourceAPI or SourceConfig
	// Version counts the changes of the definition (not the firings): a
	// firing computed from an older definition applies to nothing.
	Version int64
	// Anchor is where the due times still to fire begin (exclusive): the
	// last due time fired, or when the count (re)started: creation, a
	// change of cron or time zone, a resume.
	Anchor time.Time
	// LastJob is the job the last firing (or run) created or found
	// holding its identity key; LastFired when that was.
	LastJob   string
	LastFired *time.Time
	// LastState is LastJob's state when the schedule was read by
	// SchedulePage or ListSchedules; "" once the job is vacuumed, and
	// from the other reads.
	LastState   abi.State
	DateCreated time.Time
	DateUpdated time.Time
	// NextDue is the leader's index of the schedules: never later than
	// the schedule's next due time, so that a pass reads only the
	// schedules whose NextDue has come (DueSchedules) and none other can
	// be due. The core sets it to the Anchor at every change (a bound
	// that holds whatever the cron says, read at the next pass); a pass
	// and a firing move it to the due time the cron gives (NextDues,
	// Firing.Next), NeverDue for a cron that names no date to come.
	NextDue time.Time
}

// NeverDue is the NextDue of a schedule whose cron names no time to
// come (30 February) or no longer parses: no pass reads it again until
// it changes.
var NeverDue = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// NextDue moves a schedule's NextDue forward, as a pass computed it
// from the schedule at Version and Anchor: a schedule changed or fired
// since keeps its own.
type NextDue struct {
	Tenant, Name string
	Version      int64
	Anchor       time.Time
	Next         time.Time
}

// What a schedule does about due times its leader did not fire in time
// (no leader, the store down, a pause ended).
const (
	MissedSkip    = "skip"     // fire once, for the latest missed due time
	MissedCatchUp = "catch_up" // fire each, oldest first, at most CatchUpMax
)

// ScheduleQuery is a driver's read of schedules: Tenant's ("" = every
// tenant's), by tenant then name, from after After (a tenant and a name,
// exclusive; zero from the first), at most Limit (0 = all).
type ScheduleQuery struct {
	Tenant string
	After  [2]string
	Limit  int
}

// SchedulePage is a page of schedules with where the next begins.
type SchedulePage struct {
	Schedules  []Schedule
	NextCursor string // "" when there is no more
}

// ScheduleColumns are the schedules table's, in the order the drivers
// write and read them.
const ScheduleColumns = `tenant, name, cron, timezone, template, missed_runs, catch_up_max, paused,
	source, version, anchor, last_job, last_fired, date_created, date_updated, next_due`

// ScheduleSelect is a driver's select list over the schedules table
// named s: ScheduleColumns with the template read as template (a cast,
// or an empty string literal to leave it out), then the last job's state
// read as lastState.
func ScheduleSelect(template, lastState string) string {
	cols := strings.Split(ScheduleColumns, ",")
	for i, c := range cols {
		if c = strings.TrimSpace(c); c == "template" {
			cols[i] = template
		} else {
			cols[i] = "s." + c
		}
	}
	return strings.Join(cols, ", ") + ", " + lastState
}

// Who owns a schedule's definition.
const (
	SourceAPI    = "api"    // created over the API or the CLI
	SourceConfig = "config" // a [[schedules]] entry of wasmq.toml
)

// Bounds of a schedule.
const (
	MaxCatchUp     = 1000
	MaxCronLen     = 200
	MaxTimezoneLen = 64
	// MaxTemplateBytes bounds a schedule's job template: a schedule runs
	// for ever, so its arguments are kept small.
	MaxTemplateBytes = 256 << 10
)

// Firing is one job a schedule creates: for a due time, or (Due zero) a
// run asked for by hand.
type Firing struct {
	Tenant, Name string
	// Version: the definition the due time was computed from; a firing
	// of another version creates nothing.
	Version int64
	Due     time.Time
	// Next is the due time after Due, the schedule's NextDue once Due
	// is fired (NeverDue for none; zero: not known, read at the next
	// pass). A run by hand leaves NextDue as it is.
	Next time.Time
	Job  NewJob
	// Quota is the tenant's, which a firing obeys as any enqueue does:
	// a schedule is no way around max_pending or max_channels.
	Quota Quota
}

// Fired is what FireSchedule did.
type Fired struct {
	// Fired is false when the due time was fired already (by this or
	// another node), the schedule is paused, or changed since Version.
	Fired    bool
	Job      Inserted
	Schedule Schedule
}

// Schedules is the durable home of periodic jobs; Store includes it.
type Schedules interface {
	// CreateSchedule stores a new schedule (Version 1, Anchor now); a
	// name the tenant uses already is abi.ErrConflict. With max > 0, a
	// tenant holding max schedules already is refused a *QuotaError on
	// max_schedules (wrapping abi.ErrQuota: removing one makes room),
	// counted under the tenant's lock so that it holds across nodes.
	CreateSchedule(ctx context.Context, s Schedule, max int) (Schedule, error)
	// GetSchedule returns one schedule; another tenant's is
	// abi.ErrNotFound. tenant "" matches none: schedules are named per
	// tenant.
	GetSchedule(ctx context.Context, tenant, name string) (Schedule, error)
	// ListSchedules returns tenant's schedules by name ("" = every
	// tenant's, by tenant then name).
	ListSchedules(ctx context.Context, tenant string) ([]Schedule, error)
	// SchedulePage returns a page of tenant's schedules ("" = every
	// tenant's) as ListSchedules orders them, from after cursor (a
	// NextCursor; "" from the first), each with its last job's state: at
	// most limit (DefaultSchedulePage when 0, at most MaxSchedulePage),
	// and at most MaxPageBytes of templates. A cursor not made by a page
	// is an *abi.FieldError on "cursor".
	SchedulePage(ctx context.Context, tenant, cursor string, limit int) (SchedulePage, error)
	// DueSchedules returns what the leader reads at each pass: every
	// tenant's schedules not paused whose NextDue is at or before now,
	// by tenant then name, without their templates (Template empty) and
	// LastState; and the earliest NextDue after now (zero if none), when
	// the next pass is due. A pass so reads the schedules that may be
	// due, not every schedule, and a template (up to MaxTemplateBytes)
	// only when its schedule fires.
	DueSchedules(ctx context.Context, now time.Time) ([]Schedule, time.Time, error)
	// NextDues moves the NextDue of schedules a pass read and found not
	// yet due, each only if it is still at the Version and Anchor the
	// pass computed from.
	NextDues(ctx context.Context, ns []NextDue) error
	// UpdateSchedule applies change to the schedule under a lock. A new
	// cron or time zone, or a resume, restarts the count of due times
	// from now: a change never fires for times already past.
	UpdateSchedule(ctx context.Context, tenant, name string, change func(*Schedule) error) (Schedule, error)
	DeleteSchedule(ctx context.Context, tenant, name string) error
	// FireSchedule creates f.Job for f.Due, once: in one transaction with
	// moving the schedule's Anchor to f.Due, only if f.Due is after the
	// Anchor, the schedule is not paused and still at f.Version. With f.Due
	// zero (a run by hand) it creates the job whatever the schedule's
	// state and leaves the Anchor. A job past f.Quota is a *QuotaError,
	// and nothing changes: the due time is not spent, and fires once
	// there is room (as a run missed, by the schedule's missed_runs).
	FireSchedule(ctx context.Context, f Firing) (Fired, error)
	// FireEach fires many due times in one transaction, each as
	// FireSchedule would alone (store/firing.go has its rules): a
	// firing's refusal is its result's Err; the error returned is the
	// transaction's, and then nothing was fired.
	FireEach(ctx context.Context, fs []Firing) ([]FireResult, error)
}

// Validate refuses a schedule no store may keep, naming the field. The
// cron expression and time zone are only checked as text here; their
// meaning is the schedule package's.
func (s Schedule) Validate() error {
	if err := checkText("tenant", s.Tenant); err != nil {
		return err
	}
	if s.Tenant == "" {
		return invalid("tenant", "is required")
	}
	if err := abi.CheckScheduleName(s.Name); err != nil {
		return err
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"cron", s.Cron, MaxCronLen}, {"timezone", s.Timezone, MaxTimezoneLen}} {
		if err := checkText(f.name, f.v); err != nil {
			return err
		}
		if f.v == "" {
			return invalid(f.name, "is required")
		}
		if n := utf8.RuneCountInString(f.v); n > f.max {
			return invalid(f.name, "at most %d characters (this one has %d)", f.max, n)
		}
	}
	if len(s.Template) == 0 {
		return invalid("template", "is required")
	}
	if len(s.Template) > MaxTemplateBytes {
		return invalid("template", "at most %d bytes (this one has %d)", MaxTemplateBytes, len(s.Template))
	}
	if err := checkJSON("template", s.Template, '{'); err != nil {
		return err
	}
	switch s.MissedRuns {
	case MissedSkip:
		if s.CatchUpMax != 0 {
			return invalid("catch_up_max", "applies only to missed_runs = %q", MissedCatchUp)
		}
	case MissedCatchUp:
		if err := checkRange("catch_up_max", s.CatchUpMax, 1, MaxCatchUp); err != nil {
			return err
		}
	default:
		return invalid("missed_runs", "must be %q or %q", MissedSkip, MissedCatchUp)
	}
	if s.Source != SourceAPI && s.Source != SourceConfig {
		return invalid("source", "must be %q or %q", SourceAPI, SourceConfig)
	}
	return nil
}

func scheduleNotFound(name string) error {
	return fmt.Errorf("schedule %q: %w", name, abi.ErrNotFound)
}

// scheduleKey refuses a lookup no schedule can match; it is then simply
// not found, as a hostile job uuid is.
func scheduleKey(tenant, name string) error {
	if checkText("tenant", tenant) != nil || tenant == "" || abi.CheckScheduleName(name) != nil {
		return scheduleNotFound(name)
	}
	return nil
}

func (c *Core) CreateSchedule(ctx context.Context, s Schedule, max int) (Schedule, error) {
	if err := s.Validate(); err != nil {
		return Schedule{}, err
	}
	err := c.write(ctx, func(tx Tx) error {
		if max > 0 {
			if err := tx.LockTenant(ctx, s.Tenant); err != nil {
				return err
			}
			n, err := tx.CountSchedules(ctx, s.Tenant)
			if err != nil {
				return err
			}
			if n >= max {
				return &QuotaError{Field: "max_schedules", Msg: fmt.Sprintf(
					"tenant %s has %d schedules, its quota (max_schedules): remove one before creating another", s.Tenant, n)}
			}
		}
		now := tx.Now()
		s.Version, s.Anchor, s.DateCreated, s.DateUpdated = 1, now, now, now
		s.LastJob, s.LastFired, s.NextDue = "", nil, now
		return tx.InsertSchedule(ctx, s)
	})
	if err != nil {
		return Schedule{}, err
	}
	return s, nil
}

func (c *Core) GetSchedule(ctx context.Context, tenant, name string) (Schedule, error) {
	if err := scheduleKey(tenant, name); err != nil {
		return Schedule{}, err
	}
	return c.d.GetSchedule(ctx, tenant, name)
}

func (c *Core) ListSchedules(ctx context.Context, tenant string) ([]Schedule, error) {
	if err := checkText("tenant", tenant); err != nil {
		return []Schedule{}, nil
	}
	ss, err := c.d.ListSchedules(ctx, ScheduleQuery{Tenant: tenant})
	if ss == nil && err == nil {
		ss = []Schedule{}
	}
	return ss, err
}

// Pages of schedules: 100 by default (a tenant's default max_schedules:
// one page), 1000 at most.
const (
	DefaultSchedulePage = 100
	MaxSchedulePage     = 1000
)

// scheduleChunk is how many schedules SchedulePage reads at a time at
// first: 32 templates at their bound are MaxPageBytes.
const scheduleChunk = 32

func (c *Core) SchedulePage(ctx context.Context, tenant, cursor string, limit int) (SchedulePage, error) {
	page := SchedulePage{Schedules: []Schedule{}}
	if err := checkText("tenant", tenant); err != nil {
		return page, nil // no such tenant: no schedules
	}
	switch {
	case limit == 0:
		limit = DefaultSchedulePage
	case limit < 0 || limit > MaxSchedulePage:
		return page, &abi.FieldError{Field: "limit", Msg: fmt.Sprintf("limit must be from 1 to %d", MaxSchedulePage), Err: abi.ErrInvalid}
	}
	q := ScheduleQuery{Tenant: tenant}
	if cursor != "" {
		after, err := decodeScheduleCursor(cursor)
		if err != nil {
			return page, err
		}
		q.After = after
	}
	size, chunk := 0, scheduleChunk
	for {
		// One row more than the page needs tells whether there is a next.
		q.Limit = min(chunk, limit+1-len(page.Schedules))
		ss, err := c.d.ListSchedules(ctx, q)
		if err != nil {
			return SchedulePage{}, err
		}
		for _, sc := range ss {
			weight := 1024 + len(sc.Template)
			if len(page.Schedules) == limit || (len(page.Schedules) > 0 && size+weight > MaxPageBytes) {
				last := page.Schedules[len(page.Schedules)-1]
				page.NextCursor = encodeScheduleCursor(last.Tenant, last.Name)
				return page, nil
			}
			page.Schedules, size = append(page.Schedules, sc), size+weight
			q.After = [2]string{sc.Tenant, sc.Name}
		}
		if len(ss) < q.Limit {
			return page, nil // no more rows
		}
		if size < len(page.Schedules)*4096 {
			chunk = min(chunk*4, limit+1)
		}
	}
}

// A schedules cursor is the tenant and name of a page's last schedule.
func encodeScheduleCursor(tenant, name string) string {
	b, _ := json.Marshal([2]string{tenant, name})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeScheduleCursor(c string) ([2]string, error) {
	var at [2]string
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil {
		err = json.Unmarshal(b, &at)
	}
	if err == nil {
		err = checkText("cursor", at[0])
	}
	if err == nil {
		err = checkText("cursor", at[1])
	}
	if err != nil || at[0] == "" || at[1] == "" {
		return at, &abi.FieldError{Field: "cursor", Msg: "not a cursor returned by a previous page", Err: abi.ErrInvalid}
	}
	return at, nil
}

func (c *Core) DueSchedules(ctx context.Context, now time.Time) ([]Schedule, time.Time, error) {
	ss, next, err := c.d.DueSchedules(ctx, now)
	if err != nil {
		return nil, time.Time{}, err
	}
	// Ordered here, not in the driver's statement: an ORDER BY of the
	// primary key has SQLite walk the whole table in its order rather than
	// the next_due index to the few rows due.
	slices.SortFunc(ss, func(a, b Schedule) int {
		return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Name, b.Name))
	})
	return ss, next, nil
}

// nextDueChunk is how many NextDues one transaction writes: a pass after
// many schedules were made moves each once.
const nextDueChunk = 500

func (c *Core) NextDues(ctx context.Context, ns []NextDue) error {
	var valid []NextDue
	for _, n := range ns {
		if scheduleKey(n.Tenant, n.Name) == nil && n.Next.After(n.Anchor) && !n.Next.After(NeverDue) {
			valid = append(valid, n) // else no schedule's, or no due time of that anchor
		}
	}
	for len(valid) > 0 {
		chunk := valid[:min(len(valid), nextDueChunk)]
		valid = valid[len(chunk):]
		if err := c.write(ctx, func(tx Tx) error {
			for _, n := range chunk {
				if err := tx.SetNextDue(ctx, n); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

func (c *Core) UpdateSchedule(ctx context.Context, tenant, name string, change func(*Schedule) error) (Schedule, error) {
	if err := scheduleKey(tenant, name); err != nil {
		return Schedule{}, err
	}
	var out Schedule
	err := c.write(ctx, func(tx Tx) error {
		before, err := tx.LockSchedule(ctx, tenant, name)
		if err != nil {
			return err
		}
		after := before
		after.Template = append([]byte(nil), before.Template...)
		if err := change(&after); err != nil {
			return err
		}
		after = rescheduled(before, after, tx.Now())
		if err := after.Validate(); err != nil {
			return err
		}
		out = after
		return tx.UpdateSchedule(ctx, after)
	})
	return out, err
}

// rescheduled is what a change writes: the identity and the firing
// record are not the caller's to change; a new definition is a new
// version; a new cron or time zone, or a resume, counts due times from
// now on; and the next pass reads the schedule again (NextDue at the
// Anchor), whatever the change was.
func rescheduled(before, after Schedule, now time.Time) Schedule {
	after.Tenant, after.Name, after.DateCreated = before.Tenant, before.Name, before.DateCreated
	after.LastJob, after.LastFired, after.Anchor = before.LastJob, before.LastFired, before.Anchor
	after.Version, after.DateUpdated = before.Version+1, now
	if after.Cron != before.Cron || after.Timezone != before.Timezone || before.Paused && !after.Paused {
		if now.After(after.Anchor) {
			after.Anchor = now
		}
	}
	after.NextDue = after.Anchor
	return after
}

func (c *Core) DeleteSchedule(ctx context.Context, tenant, name string) error {
	if err := scheduleKey(tenant, name); err != nil {
		return err
	}
	return c.write(ctx, func(tx Tx) error {
		found, err := tx.DeleteSchedule(ctx, tenant, name)
		if err == nil && !found {
			err = scheduleNotFound(name)
		}
		return err
	})
}

func (c *Core) FireSchedule(ctx context.Context, f Firing) (Fired, error) {
	if err := checkFiring(&f); err != nil {
		return Fired{}, err
	}
	var out Fired
	err := c.write(ctx, func(tx Tx) error {
		g := &group{tx: tx, quotas: map[string]*tally{}}
		req := InsertRequest{Quota: f.Quota, Jobs: []NewJob{f.Job}}
		if err := g.lockTenants(ctx, []InsertRequest{req}, []int{0}); err != nil {
			return err
		}
		s, err := tx.LockSchedule(ctx, f.Tenant, f.Name)
		if err != nil {
			return err
		}
		o, refused, err := fireLocked(ctx, tx, g, f, req, s)
		if err == nil {
			out, err = o, refused
		}
		return err
	})
	if err != nil {
		return Fired{}, err
	}
	return out, nil
}
