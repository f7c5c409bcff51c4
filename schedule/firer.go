package schedule

import (
	"context"
	"time"

	"github.com/rs/zerolog"
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
	for ctx.Err() == nil {
		next := s.pass(ctx, time.Now(), specs, log)
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

// pass fires what is due at now; returns the next due time of all.
func (s *Service) pass(ctx context.Context, now time.Time, specs map[[2]string]Spec, log zerolog.Logger) time.Time {
	all, err := s.Store.ListSchedules(ctx, "")
	if err != nil {
		if ctx.Err() == nil {
			log.Warn().Err(err).Msg("read schedules")
		}
		return time.Time{}
	}
	var next time.Time
	for _, sc := range all {
		if sc.Paused {
			continue
		}
		key := [2]string{sc.Cron, sc.Timezone}
		spec, ok := specs[key]
		if !ok {
			if spec, err = ParseSpec(sc.Cron, sc.Timezone); err != nil {
				log.Error().Err(err).Str("tenant", sc.Tenant).Str("schedule", sc.Name).Msg("a stored schedule does not parse: it fires nothing")
				continue
			}
			specs[key] = spec
		}
		k := 1
		if sc.MissedRuns == store.MissedCatchUp {
			k = sc.CatchUpMax
		}
		for _, due := range spec.Due(sc.Anchor, now, k) {
			if !s.fireOne(ctx, sc, due, log) {
				break
			}
		}
		if n := spec.Next(now); !n.IsZero() && (next.IsZero() || n.Before(next)) {
			next = n
		}
	}
	return next
}

// fireOne creates the job of one due time; false when it did not (the
// schedule changed, another node fired it, an error), so that the later
// due times of this pass wait for a fresh read.
func (s *Service) fireOne(ctx context.Context, sc store.Schedule, due time.Time, log zerolog.Logger) bool {
	j, err := s.jobOf(ctx, sc, due)
	if err == nil {
		var out store.Fired
		out, err = s.Store.FireSchedule(ctx, store.Firing{Tenant: sc.Tenant, Name: sc.Name, Version: sc.Version, Due: due, Job: j})
		if err == nil {
			if out.Fired {
				log.Debug().Str("tenant", sc.Tenant).Str("schedule", sc.Name).Time("due", due).Str("job_uuid", out.Job.Job.UUID).Msg("fired")
			}
			return out.Fired
		}
	}
	if ctx.Err() == nil {
		log.Error().Err(err).Str("tenant", sc.Tenant).Str("schedule", sc.Name).Time("due", due).Msg("firing failed; tried again on the next pass")
	}
	return false
}
