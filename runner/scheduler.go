package runner

import (
	"context"
	"sort"
	"time"

	"github.com/wasmq/wasmq/store"
)

// scheduler decides which pending jobs become enqueued. It runs on the
// leader only, in one goroutine that owns every field: no locks.
type scheduler struct {
	r          *Runner
	tree       *ChannelTree
	pending    map[string]store.Candidate
	maxVersion int64
	reload     bool                   // re-read every pending job next round
	lastStart  map[*Channel]time.Time // throttled channels
	served     map[string]int         // jobs handed over per tenant, decaying
	decayed    time.Time
}

func newScheduler(r *Runner) *scheduler {
	return &scheduler{r: r, tree: r.tree, pending: map[string]store.Candidate{}, reload: true,
		lastStart: map[*Channel]time.Time{}, served: map[string]int{}, decayed: time.Now()}
}

// run schedules until ctx ends: a round after every batch of store events,
// at the next due eta or throttle end, and on the safety poll.
func (s *scheduler) run(ctx context.Context) {
	events, err := s.r.store.Subscribe(ctx)
	if err != nil {
		s.r.log.Error().Err(err).Msg("scheduler: subscribe to store events; falling back to polling")
	}
	poll := time.NewTicker(s.r.cfg.SafetyPoll.D())
	defer poll.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next, err := s.round(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := time.Hour
		if err != nil {
			s.r.log.Warn().Err(err).Msg("scheduler round failed; retrying")
			s.reload = true
			wait = 200 * time.Millisecond
		} else if !next.IsZero() {
			wait = max(time.Until(next), 0)
		}
		timer.Reset(wait)
		if !s.wait(ctx, &events, timer, poll) {
			return
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// wait blocks until a round is due: a store event that calls for one (not
// merely our own hand-overs), the timer, or the safety poll. It returns
// false when ctx ends.
func (s *scheduler) wait(ctx context.Context, events *<-chan store.Event, timer *time.Timer, poll *time.Ticker) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case e, ok := <-*events:
			if !ok {
				*events = nil
				return true
			}
			news := s.note(e)
			for drained := false; !drained; { // one round for a burst of events
				select {
				case e, ok := <-*events:
					if !ok {
						*events, drained = nil, true
					} else {
						news = s.note(e) || news
					}
				default:
					drained = true
				}
			}
			if news {
				return true
			}
		case <-timer.C:
			timer.Reset(time.Hour) // drained: the caller's Stop must not block
			return true
		case <-poll.C:
			s.reload = true
			return true
		}
	}
}

// note records what an event means for the next round and reports
// whether it calls for one.
func (s *scheduler) note(e store.Event) bool {
	// A change other than new or newly pending jobs (cancel, set done,
	// patch, failure) may take a job out of pending without a new version
	// the incremental read would see.
	if e.Kind == store.EventChanged {
		s.reload = true
	}
	return e.Kind != store.EventEnqueued
}

// round reads what changed, picks what may start and enqueues it; it
// returns when the next round is due for time reasons (eta, throttle).
func (s *scheduler) round(ctx context.Context) (time.Time, error) {
	st := s.r.store
	if s.reload {
		s.pending, s.maxVersion, s.reload = map[string]store.Candidate{}, 0, false
	}
	for {
		batch, err := st.PendingSince(ctx, s.maxVersion, 5000)
		if err != nil {
			return time.Time{}, err
		}
		for _, c := range batch {
			s.pending[c.UUID] = c
			s.maxVersion = max(s.maxVersion, c.Version)
		}
		if len(batch) < 5000 {
			break
		}
	}
	if len(s.pending) == 0 {
		return time.Time{}, nil
	}
	running, err := st.RunningCounts(ctx)
	if err != nil {
		return time.Time{}, err
	}
	used := map[*Channel]int{}
	for name, n := range running {
		for x := s.tree.Get(name); x != nil; x = x.Parent {
			used[x] += n
		}
	}
	root := s.tree.Root()
	if root.Capacity > 0 && used[root] >= root.Capacity {
		return time.Time{}, nil // full: the next finished job brings a round
	}
	var failed map[string]int
	if s.tree.hasSequential() {
		if failed, err = st.FailedChannels(ctx); err != nil {
			return time.Time{}, err
		}
	}

	now := time.Now()
	var next time.Time
	wakeAt := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	// A sequential channel runs only its head, in order, even when the
	// head is postponed: later jobs wait for it.
	heads := map[*Channel]store.Candidate{}
	ready := make([]store.Candidate, 0, len(s.pending))
	for _, c := range s.pending {
		ch := s.tree.Get(c.Channel)
		if ch.Sequential {
			if h, ok := heads[ch]; !ok || less(c, h) {
				heads[ch] = c
			}
			continue
		}
		if ch.pausedPath() {
			continue
		}
		if c.ETA != nil && c.ETA.After(now) {
			wakeAt(*c.ETA)
			continue
		}
		ready = append(ready, c)
	}
	for ch, h := range heads {
		if ch.pausedPath() || failed[ch.Name] > 0 {
			continue
		}
		if h.ETA != nil && h.ETA.After(now) {
			wakeAt(*h.ETA)
			continue
		}
		ready = append(ready, h)
	}
	sort.Slice(ready, func(i, j int) bool { return less(ready[i], ready[j]) })
	ready = fairShare(ready, s.served)
	var tenantRunning map[string]int
	if len(s.r.cfg.TenantMaxRunning) > 0 {
		if tenantRunning, err = st.RunningByTenant(ctx); err != nil {
			return time.Time{}, err
		}
	}

	var pick []store.Candidate
	for _, c := range ready {
		if root.Capacity > 0 && used[root] >= root.Capacity {
			break
		}
		ch := s.tree.Get(c.Channel)
		if !s.fits(ch, used, now, wakeAt) {
			continue
		}
		if limit := s.r.cfg.TenantMaxRunning[c.Tenant]; limit > 0 {
			if tenantRunning[c.Tenant] >= limit {
				continue
			}
			tenantRunning[c.Tenant]++
		}
		for x := ch; x != nil; x = x.Parent {
			used[x]++
			if x.Throttle > 0 {
				s.lastStart[x] = now
				wakeAt(now.Add(x.Throttle))
			}
		}
		pick = append(pick, c)
		s.served[c.Tenant]++
	}
	if now.Sub(s.decayed) > 10*time.Second { // old service fades: fairness is about now
		for t, n := range s.served {
			if n /= 2; n == 0 {
				delete(s.served, t)
			} else {
				s.served[t] = n
			}
		}
		s.decayed = now
	}
	channelOf := make(map[string]string, len(pick))
	for _, c := range pick {
		channelOf[c.UUID] = c.Channel
	}
	for len(pick) > 0 {
		n := min(len(pick), s.r.cfg.BatchSize)
		moved, err := st.Enqueue(ctx, pick[:n], now.Add(s.r.cfg.Lease.D()))
		if err != nil {
			return time.Time{}, err
		}
		// Whether moved or not (changed meanwhile), the job's current
		// version, if still pending, is newer than what we hold.
		for _, c := range pick[:n] {
			delete(s.pending, c.UUID)
		}
		// A throttle counts from the hand-over as stored (the store dates
		// it after our queries), not from the start of this round.
		after := time.Now()
		for _, id := range moved {
			for x := s.tree.Get(channelOf[id]); x != nil; x = x.Parent {
				if x.Throttle > 0 {
					s.lastStart[x] = after
				}
			}
		}
		s.r.stats.enqueued.Add(int64(len(moved)))
		if len(moved) > 0 {
			s.r.wakeFetch() // this node's workers need not wait for the NOTIFY round trip
		}
		pick = pick[n:]
	}
	return next, nil
}

// fits reports whether one more job may start in ch: room in ch and every
// ancestor, and no throttle holding any of them.
func (s *scheduler) fits(ch *Channel, used map[*Channel]int, now time.Time, wakeAt func(time.Time)) bool {
	for x := ch; x != nil; x = x.Parent {
		if x.Capacity > 0 && used[x] >= x.Capacity {
			return false
		}
		if x.Throttle > 0 {
			if last, ok := s.lastStart[x]; ok && now.Sub(last) < x.Throttle {
				wakeAt(last.Add(x.Throttle))
				return false
			}
		}
	}
	return true
}

// less is the run order: priority, then the earlier expected_at (none
// last), then creation, then insertion sequence.
func less(a, b store.Candidate) bool {
	if a.Priority != b.Priority {
		return a.Priority < b.Priority
	}
	switch {
	case a.ExpectedAt != nil && b.ExpectedAt == nil:
		return true
	case a.ExpectedAt == nil && b.ExpectedAt != nil:
		return false
	case a.ExpectedAt != nil && !a.ExpectedAt.Equal(*b.ExpectedAt):
		return a.ExpectedAt.Before(*b.ExpectedAt)
	}
	if !a.DateCreated.Equal(b.DateCreated) {
		return a.DateCreated.Before(b.DateCreated)
	}
	return a.Seq < b.Seq
}

func (t *ChannelTree) hasSequential() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.byName {
		if c.Sequential {
			return true
		}
	}
	return false
}

// fairShare reorders candidates already in run order so that, within one
// priority, tenants take turns, the least served lately first: one
// tenant's flood cannot starve another tenant's jobs queued behind it.
// Each tenant's own order is kept, and a lower priority never overtakes a
// higher one.
func fairShare(ready []store.Candidate, served map[string]int) []store.Candidate {
	single := true
	for _, c := range ready {
		if c.Tenant != ready[0].Tenant {
			single = false
			break
		}
	}
	if single {
		return ready
	}
	out := make([]store.Candidate, 0, len(ready))
	for i := 0; i < len(ready); {
		j := i
		for j < len(ready) && ready[j].Priority == ready[i].Priority {
			j++
		}
		class := ready[i:j]
		var order []string // tenants by their best candidate
		queues := map[string][]store.Candidate{}
		for _, c := range class {
			if _, ok := queues[c.Tenant]; !ok {
				order = append(order, c.Tenant)
			}
			queues[c.Tenant] = append(queues[c.Tenant], c)
		}
		if len(order) == 1 {
			out = append(out, class...)
		} else {
			sort.SliceStable(order, func(a, b int) bool { return served[order[a]] < served[order[b]] })
			for len(out) < j {
				for _, t := range order {
					if q := queues[t]; len(q) > 0 {
						out = append(out, q[0])
						queues[t] = q[1:]
					}
				}
			}
		}
		i = j
	}
	return out
}
