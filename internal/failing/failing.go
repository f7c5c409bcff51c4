// Package failing logs an operation retried while it fails (a scheduler
// round, an outcome write, a schedule's firing) as one line when it
// starts failing, one per ReportEvery while it goes on, and one when it
// succeeds again: not one per try.
package failing

import (
	"time"

	"github.com/rs/zerolog"
)

// ReportEvery is how often an operation that keeps failing is logged. A
// node retries within a second (it must resume as soon as the store is
// back), and a line per try was five a second for as long as a database
// stayed down or its disk full: tens of thousands of lines an hour that
// say one thing.
const ReportEvery = 10 * time.Second

// Report reports the failures of one repeated operation, named What
// ("scheduler round", "recording outcomes"). Owned by the one goroutine
// that retries the operation.
type Report struct {
	What     string
	run      int // consecutive failures
	since    time.Time
	unlogged int // failures since the last line
	logged   time.Time
	reported bool // this run has a line
}

// Fail counts a failure at now: the first of a run is logged at once,
// then at most one line per ReportEvery with the failures since the
// last line.
func (f *Report) Fail(log *zerolog.Logger, err error, now time.Time) {
	if f.run == 0 {
		f.since, f.reported = now, false
	}
	f.run++
	f.unlogged++
	if !f.logged.IsZero() && now.Sub(f.logged) < ReportEvery {
		return
	}
	log.Warn().Err(err).Int("failures", f.unlogged).Dur("failing_for", now.Sub(f.since)).
		Msg(f.What + " failed; retrying")
	f.unlogged, f.logged, f.reported = 0, now, true
}

// OK ends a run of failures, logging its end if its start was logged.
func (f *Report) OK(log *zerolog.Logger, now time.Time) {
	if f.run > 0 && f.reported {
		log.Info().Int("failures", f.run).Dur("failed_for", now.Sub(f.since)).Msg(f.What + " succeeded again")
	}
	f.run = 0
}

// Run is how many times in a row the operation failed (0: its last try
// succeeded).
func (f *Report) Run() int { return f.run }
