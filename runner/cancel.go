package runner

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// errTakenAway is the cause of an attempt's context when its job stopped
// being this worker's while it ran: cancelled or requeued by hand, or
// reaped. The sandbox is interrupted and its instance discarded (a call
// that ends in error never goes back to a pool); the outcome it reports
// applies to nothing, since the store no longer shows the job as ours.
var errTakenAway = errors.New("the job was cancelled or taken back while it ran")

// live is this node's attempts in progress, by job uuid, so that a
// finished event naming one of them (a cancel on any node) interrupts it.
type live struct {
	mu   sync.Mutex
	jobs map[string]liveJob
}

type liveJob struct {
	attempt int
	cancel  context.CancelCauseFunc
	since   time.Time
}

func (l *live) add(uuid string, attempt int, cancel context.CancelCauseFunc) {
	l.mu.Lock()
	if l.jobs == nil {
		l.jobs = map[string]liveJob{}
	}
	l.jobs[uuid] = liveJob{attempt, cancel, time.Now()}
	l.mu.Unlock()
}

// runningSince returns the attempts in progress that started before t:
// the lease renewal re-checks only those, since a short job ends before
// a lost notification would matter.
func (l *live) runningSince(t time.Time) map[string]liveJob {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]liveJob{}
	for id, j := range l.jobs {
		if j.since.Before(t) {
			out[id] = j
		}
	}
	return out
}

func (l *live) remove(uuid string) {
	l.mu.Lock()
	delete(l.jobs, uuid)
	l.mu.Unlock()
}

// among returns the attempts in progress among uuids (all of them when
// uuids is nil: an event that names no job).
func (l *live) among(uuids []string) map[string]liveJob {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]liveJob{}
	if uuids == nil {
		for id, j := range l.jobs {
			out[id] = j
		}
		return out
	}
	for _, id := range uuids {
		if j, ok := l.jobs[id]; ok {
			out[id] = j
		}
	}
	return out
}

// checkLive interrupts those of the given attempts whose job the store no
// longer shows as started by this worker at that attempt. Only jobs
// running here are read, so a finished event about other nodes' jobs (or
// this node's own completions, already gone from live) costs nothing.
func (r *Runner) checkLive(ctx context.Context, jobs map[string]liveJob) {
	for id, lj := range jobs {
		j, err := r.store.Get(ctx, "", id)
		switch {
		case errors.Is(err, abi.ErrNotFound):
		case err != nil:
			if ctx.Err() == nil {
				r.log.Warn().Err(err).Str("job_uuid", id).Msg("checking a running job")
			}
			continue
		case j.State == abi.StateStarted && j.WorkerID == r.workerID && j.Attempt == lj.attempt:
			continue
		}
		r.log.Info().Str("job_uuid", id).Str("state", string(j.State)).Msg("interrupting an attempt: its job is no longer ours")
		lj.cancel(errTakenAway)
	}
}

// watchEvent starts checking the running jobs a finished event names,
// without holding up the fetch loop.
func (r *Runner) watchEvent(ctx context.Context, e store.Event) {
	if e.Kind != store.EventFinished && !(e.Kind == store.EventChanged && e.UUIDs == nil && len(e.Channels) == 0) {
		return
	}
	jobs := r.live.among(e.UUIDs)
	if len(jobs) == 0 {
		return
	}
	r.checks.Add(1)
	go func() {
		defer r.checks.Done()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		r.checkLive(cctx, jobs)
	}()
}
