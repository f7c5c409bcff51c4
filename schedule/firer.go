package schedule

import (
	"context"
	"errors"
	"time"

	"github.com/rs/zerolog"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// DefaultPoll is how often the leader re-reads the schedules at the
// longest: a schedule made or changed on another node is seen within it
// (on this node, at once).
const DefaultPoll = 2 * time.Second

// Fire is the leader's loop: it reads every schedule, fires the due
// times that came (per the missed-runs policy), then sleeps until the
// next one or the next poll. It runs while this node leads (ctx ends
// with the leadership). Firing twice is harmless: the store creates one
// job per (schedule, due time) whichever node asks, so a leader that
// lost its lock without knowing yet doubles nothing.
func (s *Service) Fire(ctx context.Context, poll time.Duration, log zerolog.Logger) {
	if poll <= 0 {
		poll = DefaultPoll
	}
	log = log.With().Str("component", "schedules").Logger()
	specs := map[[2]string]Spec{}
	held := map[[2]string]bool{} // schedules whose last firing a quota refused
	for ctx.Err() == nil {
		next := s.pass(ctx, time.Now(), specs, held, log)
		wait := poll
		if !next.IsZero() {
			wait = min(wait, max(time.Until(next), time.Millisecond))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-s.wake:
		}
		t.Stop()
	}
}

// Observer hears of the leader's work: what each firing came to and how
// late, what each pass read and took (telemetry.Metrics is one).
type Observer interface {
	// ScheduleFiring: one firing of tenant's ended with outcome (Fired,
	// Deduplicated, Held, Skipped, Failed); late is from its due time to
	// the job's creation, for Fired (zero for the others).
	ScheduleFiring(tenant, outcome string, late time.Duration)
	// SchedulePass: a pass read n schedules and took d.
	SchedulePass(n int, d time.Duration)
}

// What a firing came to (Observer.ScheduleFiring).
const (
	Fired = "fired" // its job was created
	// Deduplicated: its due time is spent, an active job holding the
	// template's identity key standing for its job.
	Deduplicated = "deduplicated"
	Held         = "held"    // a quota of its tenant refused it: it fires once there is room
	Skipped      = "skipped" // fired already (another node, a leader before), or changed since read
	Failed       = "failed"  // the store or the template failed: tried again at the next pass
)

// pass fires what is due at now; returns the next due time of all.
//
// It reads only the schedules whose NextDue has come (Store.DueSchedules):
// a store of many schedules costs a pass what is due in it, not what it
// holds. A schedule read and found not yet due has its NextDue moved to
// its next due time, once; a firing moves it in its transaction. A
// tenant's due times are fired together, fireChunk at a time.
func (s *Service) pass(ctx context.Context, now time.Time, specs map[[2]string]Spec, held map[[2]string]bool, log zerolog.Logger) time.Time {
	began := time.Now()
	due, next, err := s.Store.DueSchedules(ctx, now)
	if err != nil {
		if ctx.Err() == nil {
			s.fails.read.Fail(&log, err, time.Now())
		}
		return time.Time{}
	}
	s.fails.read.OK(&log, time.Now())
	if s.Observer != nil {
		defer func() { s.Observer.SchedulePass(len(due), time.Since(began)) }()
	}
	// full: the tenants whose max_pending refused a firing in this pass.
	// Their other schedules would be refused alike, so they wait for the
	// next pass untried: a tenant at its quota costs the leader one
	// transaction a pass, not one per schedule it holds.
	full := map[string]bool{}
	seen := make(map[[2]string]bool, len(due))
	var moved []store.NextDue
	// batch: the due times of one tenant's schedules, fired together
	// (Store.FireEach: one transaction, each as if alone). Due schedules
	// come by tenant then name.
	var batch []firing
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if _, refused := s.fire(ctx, batch, held, log); refused {
			full[batch[0].sc.Tenant] = true
		}
		batch = batch[:0]
	}
	for _, sc := range due {
		seen[[2]string{sc.Tenant, sc.Name}] = true
		if len(batch) > 0 && batch[0].sc.Tenant != sc.Tenant {
			flush()
		}
		if full[sc.Tenant] {
			continue
		}
		key := [2]string{sc.Cron, sc.Timezone}
		spec, ok := specs[key]
		if !ok {
			if spec, err = ParseSpec(sc.Cron, sc.Timezone); err != nil {
				log.Error().Err(err).Str("tenant", sc.Tenant).Str("schedule", sc.Name).Msg("a stored schedule does not parse: it fires nothing until it is changed")
				moved = append(moved, nextDue(sc, store.NeverDue))
				continue
			}
			specs[key] = spec
		}
		k := 1
		if sc.MissedRuns == store.MissedCatchUp {
			k = sc.CatchUpMax
		}
		dues := spec.Due(sc.Anchor, now, k)
		if len(dues) == 0 {
			moved = append(moved, nextDue(sc, firstAfter(spec, sc.Anchor, now)))
		} else if sc, ok = s.withTemplate(ctx, sc, log); !ok {
			dues = nil
		}
		var mine []firing
		for _, due := range dues {
			f, ok := s.firingOf(ctx, sc, due, spec, log)
			if !ok {
				break // its later due times wait for the next pass
			}
			mine = append(mine, f)
		}
		// A schedule's due times go in one transaction: each of them
		// fires only if the one before did.
		if len(batch) > 0 && len(batch)+len(mine) > fireChunk {
			flush()
		}
		if !full[sc.Tenant] {
			batch = append(batch, mine...)
		}
		if n := spec.Next(now); !n.IsZero() && (next.IsZero() || n.Before(next)) {
			next = n
		}
	}
	flush()
	// A failure is harmless: those schedules are read again at the next
	// pass.
	if err := s.Store.NextDues(ctx, moved); err != nil && ctx.Err() == nil {
		s.fails.moves.Fail(&log, err, time.Now())
	} else if err == nil {
		s.fails.moves.OK(&log, time.Now())
	}
	for key := range held { // a held schedule deleted, paused or fired since
		if !seen[key] {
			delete(held, key)
		}
	}
	return next
}

// nextDue is the NextDue a pass writes for sc, computed from its
// definition and Anchor as read.
func nextDue(sc store.Schedule, next time.Time) store.NextDue {
	return store.NextDue{Tenant: sc.Tenant, Name: sc.Name, Version: sc.Version, Anchor: sc.Anchor, Next: next}
}

// firstAfter is the earliest of a schedule's next due times as counted
// from its anchor and from now (the two agree but where the clocks
// change; the earlier is the bound to keep), NeverDue if there is none.
func firstAfter(spec Spec, anchor, now time.Time) time.Time {
	first := store.NeverDue
	for _, n := range []time.Time{spec.Next(anchor), spec.Next(now)} {
		if !n.IsZero() && n.Before(first) {
			first = n
		}
	}
	return first
}

// withTemplate reads the template of sc, listed without it, to fire it;
// false when the schedule is gone, paused or changed since it was listed
// (the next pass reads it afresh) or cannot be read now.
func (s *Service) withTemplate(ctx context.Context, sc store.Schedule, log zerolog.Logger) (store.Schedule, bool) {
	whole, err := s.Store.GetSchedule(ctx, sc.Tenant, sc.Name)
	if err != nil {
		if !errors.Is(err, abi.ErrNotFound) && ctx.Err() == nil {
			l := log.With().Str("tenant", sc.Tenant).Str("schedule", sc.Name).Logger()
			s.fails.read.Fail(&l, err, time.Now())
		}
		return sc, false
	}
	return whole, whole.Version == sc.Version && !whole.Paused
}

// fireChunk bounds the firings of one transaction (but for one schedule
// catching up more due times than that, up to its catch_up_max): a
// tenant's many due times are several transactions, each holding the
// tenant's rows a short while.
const fireChunk = 256

// firing is one due time of a schedule as a pass fires it.
type firing struct {
	sc store.Schedule
	f  store.Firing
}

// firingOf builds the firing of sc's due time; false if its job cannot
// be built from the template (told and logged as a failed firing).
func (s *Service) firingOf(ctx context.Context, sc store.Schedule, due time.Time, spec Spec, log zerolog.Logger) (firing, bool) {
	j, err := s.jobOf(ctx, sc, due)
	if err != nil {
		if ctx.Err() == nil {
			s.failed(sc, due, err, log)
		}
		return firing{}, false
	}
	return firing{sc: sc, f: store.Firing{Tenant: sc.Tenant, Name: sc.Name, Version: sc.Version, Due: due,
		Next: firstAfter(spec, due, due), Job: j, Quota: s.limits(sc.Tenant).Quota()}}, true
}

// fire fires one tenant's due times together (Store.FireEach) and tells
// of each: how many fired, and full when the tenant's max_pending refused
// one.
//
// A firing past its tenant's max_pending or max_channels creates nothing
// and leaves the due time unspent: it fires at a pass that finds room, as
// a run missed (the schedule's missed_runs). That is logged once when it
// starts and once when it ends, not at every pass.
func (s *Service) fire(ctx context.Context, fs []firing, held map[[2]string]bool, log zerolog.Logger) (fired int, full bool) {
	in := make([]store.Firing, len(fs))
	for i, f := range fs {
		in[i] = f.f
	}
	res, err := s.Store.FireEach(ctx, in)
	if err != nil {
		if ctx.Err() == nil {
			for _, f := range fs {
				s.failed(f.sc, f.f.Due, err, log)
			}
		}
		return 0, false
	}
	s.fails.fire.OK(&log, time.Now()) // the store answered
	for i, r := range res {
		sc, due := fs[i].sc, fs[i].f.Due
		key := [2]string{sc.Tenant, sc.Name}
		var qe *store.QuotaError
		switch {
		case errors.As(r.Err, &qe):
			s.observe(sc.Tenant, Held, 0)
			full = full || qe.Field == "max_pending"
			if !held[key] && !r.Untried {
				held[key] = true
				log.Warn().Str("tenant", sc.Tenant).Str("schedule", sc.Name).Time("due", due).Str("quota", qe.Field).Str("reason", qe.Msg).
					Msg("firing held by the tenant's quota; it fires once there is room")
			}
		case r.Err != nil:
			if ctx.Err() == nil {
				s.failed(sc, due, r.Err, log)
			}
		case r.Untried: // after a due time of its schedule that did not fire
		default:
			if held[key] {
				delete(held, key)
				log.Info().Str("tenant", sc.Tenant).Str("schedule", sc.Name).Time("due", due).Msg("firing again: the tenant's quota has room")
			}
			switch {
			case !r.Fired.Fired:
				s.observe(sc.Tenant, Skipped, 0)
			case r.Fired.Job.Deduplicated:
				s.observe(sc.Tenant, Deduplicated, 0)
			default:
				s.observe(sc.Tenant, Fired, max(r.Fired.Job.Job.DateCreated.Sub(due), 0))
			}
			if r.Fired.Fired {
				fired++
				log.Debug().Str("tenant", sc.Tenant).Str("schedule", sc.Name).Time("due", due).Str("job_uuid", r.Fired.Job.Job.UUID).Msg("fired")
			}
		}
	}
	return fired, full
}

// failed tells and logs a firing that failed: tried again at the next
// pass.
func (s *Service) failed(sc store.Schedule, due time.Time, err error, log zerolog.Logger) {
	s.observe(sc.Tenant, Failed, 0)
	l := log.With().Str("tenant", sc.Tenant).Str("schedule", sc.Name).Time("due", due).Logger()
	s.fails.fire.Fail(&l, err, time.Now())
}

func (s *Service) observe(tenant, outcome string, late time.Duration) {
	if s.Observer != nil {
		s.Observer.ScheduleFiring(tenant, outcome, late)
	}
}
