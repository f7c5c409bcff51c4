package runner

import (
	"time"

	"github.com/rs/zerolog"
)

// failureReportEvery: how often a write that keeps failing is logged.
// The node retries within a second (it must resume as soon as the store
// is back), and a line per try was five a second for as long as a
// database stayed down or its disk full: tens of thousands of lines an
// hour that say one thing.
const failureReportEvery = 10 * time.Second

// failing reports the failures of one repeated operation: the first
// failure of a run at once, then at most one line per failureReportEvery
// with the failures since the last line, and the recovery of a run that
// was reported. Owned by the one goroutine that retries the operation.
type failing struct {
	what     string // "scheduler round", "recording outcomes"
	run      int    // consecutive failures
	since    time.Time
	unlogged int // failures since the last line
	logged   time.Time
	reported bool // this run has a line
}

func (f *failing) fail(log *zerolog.Logger, err error, now time.Time) {
	if f.run == 0 {
		f.since, f.reported = now, false
	}
	f.run++
	f.unlogged++
	if !f.logged.IsZero() && now.Sub(f.logged) < failureReportEvery {
		return
	}
	log.Warn().Err(err).Int("failures", f.unlogged).Dur("failing_for", now.Sub(f.since)).
		Msg(f.what + " failed; retrying")
	f.unlogged, f.logged, f.reported = 0, now, true
}

// ok ends a run of failures.
func (f *failing) ok(log *zerolog.Logger, now time.Time) {
	if f.run > 0 && f.reported {
		log.Info().Int("failures", f.run).Dur("failed_for", now.Sub(f.since)).Msg(f.what + " succeeded again")
	}
	f.run = 0
}
