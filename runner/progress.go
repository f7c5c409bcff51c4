package runner

import (
	"context"
	"sync"
	"time"

	"github.com/wasmq/wasmq/abi"
)

// progressEvery is the least time between two progress writes of one
// job: a plugin may report in a tight loop, the store sees the latest
// value once a second at most.
const progressEvery = time.Second

// jobProgress coalesces one attempt's progress reports.
type jobProgress struct {
	r        *Runner
	uuid     string
	attempt  int
	mu       sync.Mutex
	latest   abi.Progress
	dirty    bool      // a report not yet written
	last     time.Time // the last write
	timer    *time.Timer
	finished bool
}

// progressFor returns the reporter of one attempt and the function that
// ends it: the last report, if not yet written, is written then, before
// the outcome (which ends the job's progress writes), so the job keeps
// the value it ended on. That is one write more per attempt at most.
func (r *Runner) progressFor(job *abi.Job) (abi.ProgressFunc, func()) {
	jp := &jobProgress{r: r, uuid: job.UUID, attempt: job.Attempt}
	return jp.report, jp.finish
}

func (jp *jobProgress) report(p abi.Progress) {
	jp.mu.Lock()
	defer jp.mu.Unlock()
	if jp.finished {
		return
	}
	jp.latest, jp.dirty = p, true
	if jp.timer == nil {
		jp.timer = time.AfterFunc(max(time.Until(jp.last.Add(progressEvery)), 0), jp.flush)
	}
}

// flush writes the latest report; a report arriving meanwhile waits for
// the next second.
func (jp *jobProgress) flush() {
	jp.mu.Lock()
	jp.timer = nil
	if !jp.dirty || jp.finished {
		jp.mu.Unlock()
		return
	}
	p := jp.latest
	jp.dirty, jp.last = false, time.Now()
	jp.mu.Unlock()
	ctx, cancel := context.WithTimeout(jp.r.abandon, 5*time.Second)
	defer cancel()
	if err := jp.r.store.SetProgress(ctx, jp.uuid, jp.r.workerID, jp.attempt, p); err != nil && ctx.Err() == nil {
		jp.r.log.Warn().Err(err).Str("job_uuid", jp.uuid).Msg("recording progress failed")
	}
}

func (jp *jobProgress) finish() {
	jp.mu.Lock()
	if jp.timer != nil {
		jp.timer.Stop()
		jp.timer = nil
	}
	dirty := jp.dirty
	jp.mu.Unlock()
	if dirty {
		jp.flush()
	}
	jp.mu.Lock()
	jp.finished = true
	jp.mu.Unlock()
}
