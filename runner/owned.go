package runner

import (
	"context"
	"sync"

	"github.com/wasmq/wasmq/store"
)

// owned is the attempts this process answers for: from their launch
// until their outcome is written. A job the store says this worker runs,
// but which is not here, was started by a write whose answer never came
// back (the connection broke after the commit); left alone, the worker's
// renewals would keep it started for good.
type owned struct {
	mu   sync.Mutex
	jobs map[string]int // uuid → attempt
}

func (o *owned) add(uuid string, attempt int) {
	o.mu.Lock()
	if o.jobs == nil {
		o.jobs = map[string]int{}
	}
	o.jobs[uuid] = attempt
	o.mu.Unlock()
}

// done forgets the attempts whose outcome the store has (or refused as
// stale: either way this process no longer answers for them).
func (o *owned) done(batch []store.Completion) {
	o.mu.Lock()
	for _, c := range batch {
		if a, ok := o.jobs[c.UUID]; ok && a == c.Attempt {
			delete(o.jobs, c.UUID)
		}
	}
	o.mu.Unlock()
}

// strays returns the jobs of held that are not here.
func (o *owned) strays(held []store.Held) []store.Held {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []store.Held
	for _, h := range held {
		if a, ok := o.jobs[h.UUID]; !ok || a != h.Attempt {
			out = append(out, h)
		}
	}
	return out
}

// strayWatch disowns the jobs the store names as this worker's that it
// does not run, once they were strays at two renewals in a row: a start
// whose answer is on its way is a stray for an instant (committed, not
// yet launched), never for a whole renewal period. It belongs to the
// renew loop.
type strayWatch struct {
	suspects map[store.Held]bool
}

func (w *strayWatch) check(ctx context.Context, r *Runner, held []store.Held) {
	strays := r.owned.strays(held)
	next := make(map[store.Held]bool, len(strays))
	var disown []store.Held
	for _, h := range strays {
		if w.suspects[h] {
			disown = append(disown, h)
		} else {
			next[h] = true
		}
	}
	w.suspects = next
	if len(disown) == 0 {
		return
	}
	back, err := r.store.Disown(ctx, r.workerID, disown)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn().Err(err).Int("jobs", len(disown)).Msg("taking back jobs this node does not run failed")
		}
		for _, h := range disown { // look again at the next renewal
			w.suspects[h] = true
		}
		return
	}
	for _, j := range back {
		r.log.Warn().Str("job_uuid", j.UUID).Str("state", string(j.State)).
			Msg("took back a job this node never received (its start's answer was lost)")
	}
}
