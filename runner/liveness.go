package runner

import "time"

const (
	// reapEvery is the leader's longest period between passes over the
	// leases and the workers' liveness (shorter with a lease under 3 s).
	reapEvery = time.Second
	// holdRetry: a worker whose liveness hold failed holds again after
	// this long, well within confirmGone.
	holdRetry = 250 * time.Millisecond
	// confirmGone: a worker unheld at two passes this far apart is gone
	// (passes come every reapEvery, give or take the ticker's slack).
	// One look is not enough: a live worker whose connection broke holds
	// again within holdRetry (plus a connect).
	confirmGone = 750 * time.Millisecond
	// trustAfter: the leader takes a worker for gone only after its own
	// store calls have succeeded this long: after a database restart
	// every worker is unheld until it reconnects, and the leader may
	// reconnect first.
	trustAfter = 750 * time.Millisecond
)

// goneWatch decides, from the workers the store names unheld at each of
// the leader's passes, which are gone: unheld at two passes confirmGone
// apart while the leader's store calls all succeeded for trustAfter. It
// belongs to the leader's maintenance goroutine. The store tells who
// holds (a dead process lets go at once); the watch only adds the time a
// live worker needs to hold again after a lost connection.
type goneWatch struct {
	self         string               // this runner's worker: alive while it runs
	healthySince time.Time            // zero: the last store call failed
	suspects     map[string]time.Time // unheld → first seen unheld
}

// observe records one pass; unheld is what the store said, or err.
func (g *goneWatch) observe(now time.Time, unheld []string, err error) []string {
	if err != nil {
		g.failed()
		return nil
	}
	if g.healthySince.IsZero() {
		g.healthySince = now
	}
	next := make(map[string]time.Time, len(unheld))
	var gone []string
	for _, w := range unheld {
		if w == g.self {
			continue
		}
		first, seen := g.suspects[w]
		if !seen {
			first = now
		}
		next[w] = first
		if now.Sub(first) >= confirmGone && now.Sub(g.healthySince) >= trustAfter {
			gone = append(gone, w)
		}
	}
	g.suspects = next
	return gone
}

// failed forgets what the passes saw: after a store error, every worker
// is given time to hold again.
func (g *goneWatch) failed() {
	g.healthySince = time.Time{}
	g.suspects = nil
}
