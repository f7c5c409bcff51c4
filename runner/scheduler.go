package runner

import (
	"container/heap"
	"context"
	"errors"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/internal/failing"
	"github.com/wasmq/wasmq/store"
)

// scheduler decides which pending jobs start. It runs on the leader only,
// in one goroutine that owns every field: no locks.
//
// It keeps in memory what it needs for a round, so that a round on a busy
// node costs one store write: the pending jobs in run order (re-read only
// when the store says jobs became pending), and the running jobs per
// channel, counted once from the store then followed through the uuids of
// finished events and the notes of this node's own workers, which free a
// slot as soon as a job's code has returned rather than when its outcome
// is committed. A sequential channel's jobs are the exception: a notice
// that one finished brings a recount (see finished).
type scheduler struct {
	r    *Runner
	tree *ChannelTree

	pending    map[string]store.Candidate // by uuid, at its latest version
	tenants    map[string]int             // pending jobs per tenant
	order      []store.Candidate          // run order; an entry is stale once pending holds another version
	fresh      []store.Candidate          // read since the last round, not yet in order
	later      etaHeap                    // not yet due (channels that are not sequential)
	maxVersion int64
	// horizon: of the channels that are not sequential, only jobs due by
	// it are held, so that the memory and work of a round follow the jobs
	// due soon, not the backlog of jobs scheduled for later. The later
	// ones are read by eta (an index) as they come within it, half a
	// horizon (Config.DueHorizon) before they are due. seqChans, the
	// sequential channels: their jobs are all held whatever their eta (a
	// future head blocks its channel).
	horizon     time.Time
	seqChans    []string
	reload      bool              // re-read every pending job held (readDue)
	readPending bool              // jobs became pending: read what is new
	named       []string          // jobs events said became pending: read them
	announced   []store.Candidate // jobs events brought whole: no read

	running    map[string]store.RunningJob // enqueued or started, by uuid
	used       map[*Channel]int            // running per channel, subtree included
	tenantUsed map[string]int
	ended      map[string]int64 // ours, code returned, outcome not yet committed: the hand-over's version
	recount    bool             // re-read the running jobs

	nodes map[string]time.Time // nodes heard from (EventNode), when

	lastStart map[*Channel]time.Time // throttled channels
	// startsRead: lastStart holds what the store kept of the last
	// leaders' hand-overs (readStarts); marks, this leader's, not yet
	// kept (markStarts), whose failures markFails reports.
	startsRead bool
	marks      map[string]time.Time
	markFails  failing.Report
	// ov is the operators' channel overrides (stored, so every node's
	// scheduler sees the same), re-read when ovStale: at leadership, on
	// EventChannels and on the safety poll.
	ov      map[*Channel]abi.ChannelOverride
	ovStale bool
	// Fair share by slot time: what each tenant's jobs held of the
	// workers lately (decaying), and since when each running job holds
	// its slot. See fairShare.
	slotTime map[string]time.Duration
	since    map[string]time.Time // running jobs, by uuid
	recent   map[string]time.Time // tenants with jobs pending or running, when last seen so
	decayed  time.Time
	// Fuel (fuel.go): each tenant's token bucket, and the fuel its
	// attempts used lately (decaying with slotTime), as the time its
	// fuel_rate takes to earn it.
	buckets  map[string]*fuelBucket
	fuelTime map[string]time.Duration
}

func newScheduler(r *Runner) *scheduler {
	return &scheduler{r: r, tree: r.tree, reload: true, recount: true, ovStale: true,
		pending: map[string]store.Candidate{}, tenants: map[string]int{},
		running: map[string]store.RunningJob{}, used: map[*Channel]int{}, tenantUsed: map[string]int{},
		ended: map[string]int64{}, nodes: map[string]time.Time{}, lastStart: map[*Channel]time.Time{},
		slotTime: map[string]time.Duration{}, since: map[string]time.Time{}, recent: map[string]time.Time{}, decayed: time.Now(),
		buckets: map[string]*fuelBucket{}, fuelTime: map[string]time.Duration{},
		markFails: failing.Report{What: "keeping the throttled channels' last hand-overs"}}
}

// run schedules until ctx ends: a round after store events and worker
// notes, at the next due eta or throttle end, and on the safety poll.
func (s *scheduler) run(ctx context.Context) {
	events, err := s.r.store.Subscribe(ctx)
	if err != nil {
		s.r.log.Error().Err(err).Msg("scheduler: subscribe to store events; falling back to polling")
	}
	poll := time.NewTicker(s.r.cfg.SafetyPoll.D())
	defer poll.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	fails := failing.Report{What: "scheduler round"}
	for {
		next, err := s.round(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := time.Hour
		switch {
		case errors.Is(err, errLeadLapsed):
			// Not a failure: the lead check confirms the lead (a short
			// freeze) or ends it, and this loop with it. The picked
			// jobs left memory: read them again.
			s.reload, s.recount = true, true
			wait = s.r.leadCheck()
		case err != nil:
			fails.Fail(&s.r.log, err, time.Now())
			s.reload, s.recount = true, true
			wait = roundRetry(fails.Run())
		default:
			fails.OK(&s.r.log, time.Now())
			if !next.IsZero() {
				wait = max(time.Until(next), 0)
			}
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

// errLeadLapsed stops a round that would write on a lead the store has
// not confirmed within three quarters of a lease (Runner.leads): another
// node may lead by now.
var errLeadLapsed = errors.New("scheduler: the lead is not confirmed recently enough to act on")

// roundRetry is the wait before the next round after the run-th failed
// one in a row: 0.2 s, doubling to a second. A store that comes back is
// used within a second, and nodes waiting on one that is down do not
// call on it five times a second each.
func roundRetry(run int) time.Duration {
	return min(200*time.Millisecond<<min(run-1, 3), time.Second)
}

// wait blocks until a round is due: a store event or worker note that
// calls for one, the timer, or the safety poll. It returns false when ctx
// ends.
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
		case <-s.r.notes.wake:
			return true
		case <-timer.C:
			timer.Reset(time.Hour) // drained: the caller's Stop must not block
			return true
		case <-poll.C:
			s.reload, s.recount, s.ovStale = true, true, true
			return true
		}
	}
}

// note records what an event means for the next round and reports
// whether it calls for one.
func (s *scheduler) note(e store.Event) bool {
	switch e.Kind {
	case store.EventEnqueued:
		return false // our own hand-overs
	case store.EventNode:
		s.nodes[e.Node] = time.Now()
		return false
	case store.EventChannels:
		s.ovStale = true
	case store.EventPending:
		switch {
		case len(e.Jobs) > 0:
			// As Pending(UUIDs) would have read them at commit; the
			// start is conditional on their version like any read's.
			s.announced = append(s.announced, e.Jobs...)
		case e.UUIDs == nil:
			s.readPending = true
		default:
			s.named = append(s.named, e.UUIDs...)
		}
	case store.EventFinished:
		if e.UUIDs == nil {
			s.recount = true
		}
		if len(e.Fuel) > 0 && e.FuelBy != s.r.workerID {
			s.chargeFuel(e.Fuel, time.Now()) // another node's attempts
		}
		for i, id := range e.UUIDs {
			var version int64 // unknown: a node from before Event.Versions
			if len(e.Versions) == len(e.UUIDs) {
				version = e.Versions[i]
			}
			s.finished(id, version)
		}
	default:
		// A cancel, set done or patch may take a job out of
		// pending without a version the incremental read would see.
		s.reload, s.recount = true, true
	}
	return true
}

// finished applies a finished event or a settled note: the job's attempt
// is written.
//
// A hand-over has up to three notices (this node's worker's two notes
// and the store's event), which race with each other and with the
// job's next hand-over: a job whose retry was due at once may be handed
// over again on the first of them. The notice names the hand-over by a
// version the job had during it, so one that comes after the next
// hand-over is known stale and frees nothing: freeing the next one's
// slot would run one job too many in its channel (found by
// TestTheSchedulersRulesHoldWhateverHappens). A notice without a version
// (a node from before them) is taken as it was: for the hand-over
// counted. In a sequential channel, whose next job must never start
// beside it, a notice is not taken on trust even so: the running jobs
// are re-read, one query bounded by the capacities.
func (s *scheduler) finished(id string, version int64) {
	if s.stale(id, version) {
		return
	}
	if v, ok := s.ended[id]; ok && (version == 0 || version >= v) {
		delete(s.ended, id)
	}
	if j, ok := s.running[id]; ok && s.tree.Get(j.Channel).Sequential {
		s.recount = true
		return
	}
	s.release(id)
}

// stale reports whether a notice of the hand-over at version is about
// one before the hand-over of the job counted now.
func (s *scheduler) stale(id string, version int64) bool {
	j, ok := s.running[id]
	return ok && version != 0 && version < j.Version
}

// release stops counting a job as running. A job of a sequential channel
// is read again before the round: it may be pending again (a retry, a
// hand-over that did not move it), and then it is still its channel's
// head. The event saying so may come later, or never (another node's
// retry, a lost notification), and until it did the round would take the
// channel's next job for its head.
func (s *scheduler) release(id string) {
	j, ok := s.running[id]
	if !ok {
		return
	}
	s.drop(j)
	if s.tree.Get(j.Channel).Sequential {
		s.named = append(s.named, id)
	}
}

// drop stops counting a job's hand-over, charging its slot time.
func (s *scheduler) drop(j store.RunningJob) {
	delete(s.running, j.UUID)
	s.charge(j.UUID, j.Tenant, time.Now())
	for x := s.tree.Get(j.Channel); x != nil; x = x.Parent {
		s.used[x]--
	}
	s.tenantUsed[j.Tenant]--
}

// count starts counting a job as running. A job counted already, at an
// earlier version, was handed over again before the notice of its last
// hand-over came: the new hand-over takes the old one's place (its
// channel may have changed since), and that notice is stale when it
// comes.
func (s *scheduler) count(j store.RunningJob) {
	if old, ok := s.running[j.UUID]; ok {
		if j.Version <= old.Version {
			return
		}
		s.drop(old)
	}
	s.running[j.UUID] = j
	if _, ok := s.since[j.UUID]; !ok {
		s.since[j.UUID] = time.Now()
	}
	for x := s.tree.Get(j.Channel); x != nil; x = x.Parent {
		s.used[x]++
	}
	s.tenantUsed[j.Tenant]++
}

// startCharge is the slot time a start costs at once, however short the
// job: so that tenants of instant jobs still take turns, and a burst of
// picks in one round is shared before any of them has run.
const startCharge = 100 * time.Millisecond

// reserveFor is how long a tenant counts as active after its last
// pending or running job: while it does, one slot of the root is kept for
// it whenever it runs nothing (see fairCap).
const reserveFor = 5 * time.Second

// fairCap is how many slots of the root a tenant may hold: all but one
// for each other active tenant running nothing. Jobs cannot be preempted,
// so a tenant whose slow jobs hold every slot would make another's wait a
// whole job length; keeping a slot lets the other start at once, at the
// cost of that slot idling while the other tenant is quiet (at most
// reserveFor). It never goes under one slot, and an unlimited root caps
// nothing. With fuel_rate weights, a slot is kept only for a tenant whose
// virtual use (use) is no more than this one's: one that used more than
// its share lately waits its turn, else with few workers the reserve
// alone would share them equally whatever the rates.
func (s *scheduler) fairCap(tenant string, capacity int, use map[string]time.Duration) int {
	if capacity <= 0 || len(s.recent) < 2 {
		return math.MaxInt
	}
	weighted := s.refRate() > 0
	idle := 0
	for t := range s.recent {
		if t != tenant && s.tenantUsed[t] == 0 && (!weighted || use[t] <= use[tenant]) {
			idle++
		}
	}
	return max(1, capacity-idle)
}

// charge adds to the tenant's slot time what a job that stopped running
// held beyond its start charge.
func (s *scheduler) charge(id, tenant string, now time.Time) {
	if at, ok := s.since[id]; ok {
		s.slotTime[tenant] += max(0, now.Sub(at)-startCharge)
		delete(s.since, id)
	}
}

// usage is each tenant's virtual use now: the slot time its ended jobs
// held lately and its running ones hold so far, over its weight, plus
// the fuel its attempts used lately as the time its fuel_rate takes to
// earn it. Slot time keeps a tenant whose jobs sleep in host calls (no
// fuel) from holding every slot; fuel makes the share of CPU-bound
// tenants follow their rates: a tenth of the rate, a tenth of the fuel.
// Without fuel_rate anywhere, it is the slot time alone.
func (s *scheduler) usage(now time.Time) map[string]time.Duration {
	u := make(map[string]time.Duration, len(s.slotTime)+1)
	for t, d := range s.slotTime {
		u[t] = d
	}
	for id, j := range s.running {
		if at, ok := s.since[id]; ok {
			u[j.Tenant] += max(0, now.Sub(at)-startCharge)
		}
	}
	if s.refRate() == 0 {
		return u
	}
	for t, d := range u {
		u[t] = time.Duration(float64(d) / s.weight(t))
	}
	for t, d := range s.fuelTime {
		u[t] += d
	}
	return u
}

// drainNotes applies what this node's workers reported: a job whose code
// returned frees its slot at once (except in a sequential channel, whose
// next job depends on the outcome); a settled one, once committed.
func (s *scheduler) drainNotes() {
	ended, settled := s.r.notes.take()
	if fuel := s.r.notes.takeFuel(); len(fuel) > 0 {
		s.chargeFuel(fuel, time.Now())
	}
	for _, n := range ended {
		if s.stale(n.uuid, n.version) {
			continue
		}
		s.release(n.uuid)
		s.ended[n.uuid] = n.version
	}
	for _, n := range settled {
		s.finished(n.uuid, n.version)
	}
}

// recountRunning re-reads the running jobs. Notes that arrive meanwhile
// wait in the queue, so a job in ended while still started in the store
// is not counted, and one committed after the read is released by its
// event or note afterwards. A job of a sequential channel that no longer
// runs is read again, as on release; one that runs still, handed over
// again since a notice said it finished, stays counted.
func (s *scheduler) recountRunning(ctx context.Context) error {
	all, err := s.r.store.Running(ctx)
	if err != nil {
		return err
	}
	before := s.running
	s.running, s.used, s.tenantUsed = map[string]store.RunningJob{}, map[*Channel]int{}, map[string]int{}
	still := map[string]int64{}
	for _, j := range all {
		if v, ok := s.ended[j.UUID]; ok && j.Version <= v { // that hand-over, its outcome not yet committed
			still[j.UUID] = v
			continue
		}
		s.count(j)
	}
	now := time.Now()
	for id, j := range before {
		if _, ok := s.running[id]; ok {
			continue
		}
		s.charge(id, j.Tenant, now)
		if s.tree.Get(j.Channel).Sequential {
			s.named = append(s.named, id)
		}
	}
	s.ended = still // the others were committed: nothing left to subtract
	s.recount = false
	return nil
}

// addPending takes in a candidate read from the store.
func (s *scheduler) addPending(c store.Candidate, now time.Time) {
	beyond := c.ETA != nil && c.ETA.After(s.horizon) && !s.tree.Get(c.Channel).Sequential
	if old, ok := s.pending[c.UUID]; ok {
		if old.Version >= c.Version {
			return // read twice (an event and the incremental read)
		}
		if beyond { // postponed past the horizon: its entries go stale
			s.dropPending(c.UUID)
			return
		}
		s.tenants[old.Tenant]--
	} else if beyond {
		return // read by eta when it comes within the horizon
	}
	s.pending[c.UUID] = c
	s.tenants[c.Tenant]++
	if c.ETA != nil && c.ETA.After(now) && !s.tree.Get(c.Channel).Sequential {
		heap.Push(&s.later, c)
	} else {
		s.fresh = append(s.fresh, c) // a sequential channel's head waits for its eta in order
	}
}

func (s *scheduler) dropPending(id string) {
	if c, ok := s.pending[id]; ok {
		delete(s.pending, id)
		if s.tenants[c.Tenant]--; s.tenants[c.Tenant] == 0 {
			delete(s.tenants, c.Tenant)
		}
	}
}

// current reports whether an entry of order is the job's latest version
// and the job is still pending.
func (s *scheduler) current(c store.Candidate) bool {
	p, ok := s.pending[c.UUID]
	return ok && p.Version == c.Version
}

// readStore brings running and pending jobs up to date, in that order:
// a job that leaves running between the two reads (a retry, say) is then
// still counted as running, or read as pending, never missed by both —
// which would make the next job of a sequential channel its head.
func (s *scheduler) readStore(ctx context.Context, now time.Time) error {
	if s.recount {
		if err := s.recountRunning(ctx); err != nil {
			return err
		}
	}
	if s.reload {
		if err := s.readDue(ctx, now); err != nil {
			return err
		}
	} else if !now.Add(s.r.cfg.DueHorizon.D() / 2).Before(s.horizon) {
		if err := s.advance(ctx, now); err != nil {
			s.reload = true
			return err
		}
	}
	if s.readPending {
		s.readPending = false
		for {
			batch, err := s.r.store.PendingDue(ctx, s.maxVersion, s.horizon, s.seqChans, 5000)
			if err != nil {
				s.readPending = true
				return err
			}
			for _, c := range batch {
				s.addPending(c, now)
				s.maxVersion = max(s.maxVersion, c.Version)
			}
			if len(batch) < 5000 {
				break
			}
		}
	}
	for _, c := range s.announced {
		s.addPending(c, now)
	}
	s.announced = nil
	if len(s.named) > 0 {
		// Not through PendingSince: versions are taken at write time, so
		// a transaction may commit a version lower than one already read.
		cs, err := s.r.store.Pending(ctx, s.named)
		if err != nil {
			return err
		}
		s.named = nil
		for _, c := range cs {
			s.addPending(c, now)
		}
	}
	for len(s.later) > 0 && !s.later[0].ETA.After(now) {
		if c := heap.Pop(&s.later).(store.Candidate); s.current(c) {
			s.fresh = append(s.fresh, c)
		}
	}
	if len(s.fresh) > 0 {
		s.order = mergeOrder(s.order, s.fresh, s.current)
		s.fresh = s.fresh[:0]
	}
	s.r.stats.held.Store(int64(len(s.pending) + len(s.order) + len(s.later)))
	return nil
}

// readDue reads afresh every pending job the scheduler holds: those due
// within the horizon and every job of a sequential channel. The highest
// pending version is read first: a job written meanwhile is above it, and
// the incremental read that follows brings it.
func (s *scheduler) readDue(ctx context.Context, now time.Time) error {
	s.pending, s.tenants, s.order, s.fresh, s.later = map[string]store.Candidate{}, map[string]int{}, nil, nil, nil
	s.maxVersion, s.readPending, s.named, s.announced = 0, true, nil, nil
	s.seqChans = s.tree.sequentialNames()
	high, err := s.r.store.PendingHigh(ctx)
	if err != nil {
		return err
	}
	s.horizon = now.Add(s.r.cfg.DueHorizon.D()).Truncate(time.Microsecond)
	if err := s.readByETA(ctx, store.ETACursor{}, now); err != nil {
		return err
	}
	if len(s.seqChans) > 0 {
		// No index on the channel: a full read of the pending jobs, the
		// price of sequential channels holding every job in memory.
		if err := s.readPages(ctx, func(after int64) ([]store.Candidate, error) {
			return s.r.store.PendingDue(ctx, after, time.Time{}, s.seqChans, 5000)
		}, now); err != nil {
			return err
		}
	}
	s.maxVersion, s.reload = high, false
	return nil
}

// advance moves the horizon on, reading the jobs that come within it.
func (s *scheduler) advance(ctx context.Context, now time.Time) error {
	from := s.horizon
	s.horizon = now.Add(s.r.cfg.DueHorizon.D()).Truncate(time.Microsecond)
	return s.readByETA(ctx, store.ETACursor{ETA: &from, Version: math.MaxInt64}, now)
}

// readByETA takes in the pending jobs after the cursor due by the horizon.
func (s *scheduler) readByETA(ctx context.Context, after store.ETACursor, now time.Time) error {
	for {
		batch, err := s.r.store.PendingByETA(ctx, after, s.horizon, 5000)
		if err != nil {
			return err
		}
		for _, c := range batch {
			s.addPending(c, now)
		}
		if len(batch) < 5000 {
			return nil
		}
		after = batch[len(batch)-1].After()
	}
}

// readPages takes in candidates read a page at a time by version.
func (s *scheduler) readPages(ctx context.Context, page func(after int64) ([]store.Candidate, error), now time.Time) error {
	var after int64
	for {
		batch, err := page(after)
		if err != nil {
			return err
		}
		for _, c := range batch {
			s.addPending(c, now)
			after = max(after, c.Version)
		}
		if len(batch) < 5000 {
			return nil
		}
	}
}

// mergeOrder merges sorted-to-be fresh candidates into order, dropping
// stale entries on the way.
func mergeOrder(order, fresh []store.Candidate, current func(store.Candidate) bool) []store.Candidate {
	sort.Slice(fresh, func(i, j int) bool { return less(fresh[i], fresh[j]) })
	out := make([]store.Candidate, 0, len(order)+len(fresh))
	i, j := 0, 0
	for i < len(order) || j < len(fresh) {
		var c store.Candidate
		if j == len(fresh) || i < len(order) && less(order[i], fresh[j]) {
			c, i = order[i], i+1
		} else {
			c, j = fresh[j], j+1
		}
		if current(c) {
			out = append(out, c)
		}
	}
	return out
}

// round picks what may start and hands it over; it returns when the next
// round is due for time reasons (eta, throttle).
func (s *scheduler) round(ctx context.Context) (time.Time, error) {
	s.drainNotes()
	now := time.Now()
	if err := s.readStore(ctx, now); err != nil {
		return time.Time{}, err
	}
	// After the jobs: an override stored before a job this round sees
	// is in force for it. This node's own changes are known at once; the
	// other nodes' come with their event (within a round or two).
	if s.r.ovChanged.Swap(false) {
		s.ovStale = true
	}
	if err := s.readOverrides(ctx); err != nil {
		return time.Time{}, err
	}
	if err := s.readStarts(ctx); err != nil {
		return time.Time{}, err
	}
	var next time.Time
	wakeAt := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if len(s.later) > 0 {
		wakeAt(*s.later[0].ETA)
	}
	wakeAt(s.horizon.Add(-s.r.cfg.DueHorizon.D() / 2)) // the next jobs to come within it
	root := s.tree.Root()
	full := func() bool { return s.capacity(root) > 0 && s.used[root] >= s.capacity(root) }
	if len(s.pending) == 0 || full() {
		return next, nil // full: the next finished job brings a round
	}
	var failed map[string]int
	if s.tree.hasSequential() {
		var err error
		if failed, err = s.r.store.FailedChannels(ctx); err != nil {
			return time.Time{}, err
		}
	}

	// Walk the run order. A sequential channel runs only its head, even
	// when the head is postponed: later jobs wait for it.
	var pick []store.Candidate
	var use map[string]time.Duration // virtual use, for fairCap with fuel rates
	if s.refRate() > 0 {
		use = s.usage(now)
	}
	try := func(c store.Candidate) {
		if j, ok := s.running[c.UUID]; ok && j.Version >= c.Version {
			// Handed over at this version already: a late announcement
			// of it. Picked, its hand-over would fail, and undoing the
			// pick would free the slot its real hand-over holds.
			return
		}
		ch := s.tree.Get(c.Channel)
		if !s.fits(ch, now, wakeAt) {
			return
		}
		if limit := s.r.cfg.TenantMaxRunning[c.Tenant]; limit > 0 && s.tenantUsed[c.Tenant] >= limit {
			return
		}
		if limit := s.fairCap(c.Tenant, s.capacity(root), use); s.tenantUsed[c.Tenant] >= limit {
			return
		}
		if !s.fuelAllows(c.Tenant, now, wakeAt) {
			return
		}
		s.count(store.RunningJob{UUID: c.UUID, Channel: c.Channel, Tenant: c.Tenant, Version: c.Version})
		for x := ch; x != nil; x = x.Parent {
			if t := s.throttle(x); t > 0 {
				s.lastStart[x] = now
				wakeAt(now.Add(t))
			}
		}
		pick = append(pick, c)
		s.slotTime[c.Tenant] += startCharge
	}
	for len(s.order) > 0 && !s.current(s.order[0]) {
		s.order = s.order[1:] // what the last rounds handed over
	}
	for t := range s.tenants {
		s.recent[t] = now
	}
	for _, j := range s.running {
		s.recent[j.Tenant] = now
	}
	for t, at := range s.recent {
		if now.Sub(at) > reserveFor {
			delete(s.recent, t)
		}
	}
	fair := len(s.tenants) > 1 // tenants take turns: gather the ready jobs first
	var ready []store.Candidate
	// A round picks at most the root's free slots, and at most a
	// channel's free room from that channel: gathering more of a tenant's
	// jobs than that cannot change the picks, and with tens of thousands
	// pending would cost each round the whole backlog (docs/architecture.md).
	rootRoom := -1
	var gathered map[gatherKey]int
	var perTenant map[string]int
	if fair {
		rootRoom, gathered, perTenant = s.room(root), map[gatherKey]int{}, map[string]int{}
	}
	saturated := 0
	heads := map[*Channel]bool{}
	stale := 0
	// Without sequential channels, a tenant that has all it can get is
	// passed over before the costlier checks (a sequential channel needs
	// its head seen whoever's it is).
	skipFull := fair && rootRoom >= 0 && !s.tree.hasSequential()
	for _, c := range s.order {
		if fair && rootRoom >= 0 && saturated == len(s.tenants) {
			break
		}
		if skipFull && perTenant[c.Tenant] >= rootRoom {
			continue
		}
		if !s.current(c) {
			stale++
			continue
		}
		ch := s.tree.Get(c.Channel)
		if ch.Sequential {
			if heads[ch] {
				continue
			}
			heads[ch] = true
			if failed[ch.Name] > 0 {
				continue
			}
		}
		if s.paused(ch) {
			continue
		}
		if c.ETA != nil && c.ETA.After(now) {
			wakeAt(*c.ETA)
			continue
		}
		if fair {
			if rootRoom >= 0 && perTenant[c.Tenant] >= rootRoom {
				continue
			}
			if room := s.room(ch); room >= 0 {
				k := gatherKey{c.Tenant, ch}
				if gathered[k] >= room {
					continue
				}
				gathered[k]++
			}
			ready = append(ready, c)
			if perTenant[c.Tenant]++; rootRoom >= 0 && perTenant[c.Tenant] == rootRoom {
				saturated++
			}
			continue
		}
		if full() {
			break
		}
		try(c)
	}
	if fair {
		for _, c := range fairShare(ready, s.usage(now), s.startCost) {
			if full() {
				break
			}
			try(c)
		}
	}
	if stale > len(s.order)/2 {
		s.order = slices.DeleteFunc(s.order, func(c store.Candidate) bool { return !s.current(c) })
	}
	if now.Sub(s.decayed) > 10*time.Second { // old use fades: fairness is about now
		for _, m := range []map[string]time.Duration{s.slotTime, s.fuelTime} {
			for t, d := range m {
				if d /= 2; d < startCharge {
					delete(m, t)
				} else {
					m[t] = d
				}
			}
		}
		s.decayed = now
	}
	err := s.handOver(ctx, pick)
	if err == nil {
		s.markStarts(ctx)
	}
	return next, err
}

// handOver starts what this node's free workers can take at once, and
// enqueues the rest for any node to claim. Picked jobs leave pending
// whether they moved or not: one that changed meanwhile comes back with a
// newer version.
func (s *scheduler) handOver(ctx context.Context, pick []store.Candidate) error {
	if !s.r.leads() {
		s.uncount(pick)
		return errLeadLapsed
	}
	for _, c := range pick {
		s.dropPending(c.UUID)
	}
	// The writes are not cut short by a lost leadership or a stop: once
	// the store has started a job, this node must run it.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	lease := time.Now().Add(s.r.cfg.Lease.D())
	alive := s.aliveNodes()
	s.r.peers.Store(int32(alive - 1))
	// The leader starts its share on its own workers; the rest is
	// enqueued for every node, the leader's workers included, to claim.
	// With peers, its share tops it up to its part of all running jobs
	// (the picked ones are counted already): its own jobs end first, in
	// this process, so "half of each round" ran three jobs in four here.
	share := (len(pick) + alive - 1) / alive
	if alive > 1 {
		busy := s.r.cfg.Workers - len(s.r.slots)
		share = max(0, min(len(pick), (len(s.running)+alive-1)/alive-busy))
	}
	if n := s.r.reserveSlots(min(share, s.r.cfg.BatchSize)); n > 0 {
		started, err := s.r.store.Start(wctx, pick[:n], s.r.workerID, lease)
		if err != nil {
			s.r.releaseSlots(n) // started nothing (the store's rule)
			s.uncount(pick)
			return err
		}
		s.r.releaseSlots(n - len(started))
		for i := range started {
			s.r.launch(started[i])
		}
		s.settle(pick[:n], idsOf(started))
		pick = pick[n:]
	}
	for len(pick) > 0 {
		n := min(len(pick), s.r.cfg.BatchSize)
		if !s.r.leads() { // each write of a long hand-over asks again
			s.uncount(pick)
			return errLeadLapsed
		}
		moved, err := s.r.store.Enqueue(wctx, pick[:n], lease)
		if err != nil {
			s.uncount(pick)
			return err
		}
		s.settle(pick[:n], moved)
		if len(moved) > 0 && alive == 1 { // alone: no head start to give up
			s.r.claimable.Store(true)
			s.r.wakeFetch() // this node's workers need not wait for the NOTIFY round trip
		}
		pick = pick[n:]
	}
	return nil
}

// aliveNodes counts the nodes heard from within a lease (they announce
// every third of one), this one included.
func (s *scheduler) aliveNodes() int {
	alive := 1
	for node, seen := range s.nodes {
		switch {
		case time.Since(seen) > s.r.cfg.Lease.D():
			delete(s.nodes, node)
		case node != s.r.workerID:
			alive++
		}
	}
	return alive
}

// settle un-counts the picked jobs the store did not move, and dates
// throttles from the hand-over as stored rather than from the round's
// start.
func (s *scheduler) settle(picked []store.Candidate, moved []string) {
	ok := make(map[string]bool, len(moved))
	for _, id := range moved {
		ok[id] = true
	}
	after := time.Now()
	for _, c := range picked {
		if !ok[c.UUID] {
			s.unpick(c)
			continue
		}
		for x := s.tree.Get(c.Channel); x != nil; x = x.Parent {
			if s.throttle(x) > 0 {
				s.lastStart[x] = after
				if s.marks == nil {
					s.marks = map[string]time.Time{}
				}
				s.marks[x.Name] = after
			}
		}
	}
	s.r.stats.enqueued.Add(int64(len(moved)))
}

// unpick stops counting a pick whose hand-over did not happen, unless
// the job is counted for another hand-over since.
func (s *scheduler) unpick(c store.Candidate) {
	if j, ok := s.running[c.UUID]; ok && j.Version == c.Version {
		s.release(c.UUID)
	}
}

// uncount forgets picks whose hand-over failed; the next round re-reads.
func (s *scheduler) uncount(picked []store.Candidate) {
	for _, c := range picked {
		s.unpick(c)
	}
	s.reload, s.recount = true, true
}

func idsOf(jobs []store.Claimed) []string {
	out := make([]string, len(jobs))
	for i := range jobs {
		out[i] = jobs[i].UUID
	}
	return out
}

// fits reports whether one more job may start in ch: room in ch and every
// ancestor, and no throttle holding any of them.
// gatherKey is a tenant's jobs in one channel, gathered for a round.
type gatherKey struct {
	tenant string
	ch     *Channel
}

// room is how many more jobs ch can start now: the least free capacity
// on its way to the root; -1 when no channel on the way has a capacity.
func (s *scheduler) room(ch *Channel) int {
	room := -1
	for x := ch; x != nil; x = x.Parent {
		if n := s.capacity(x); n > 0 {
			if free := max(n-s.used[x], 0); room < 0 || free < room {
				room = free
			}
		}
	}
	return room
}

func (s *scheduler) fits(ch *Channel, now time.Time, wakeAt func(time.Time)) bool {
	for x := ch; x != nil; x = x.Parent {
		if n := s.capacity(x); n > 0 && s.used[x] >= n {
			return false
		}
		if t := s.throttle(x); t > 0 {
			if last, ok := s.lastStart[x]; ok && now.Sub(last) < t {
				wakeAt(last.Add(t))
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

// etaHeap holds postponed candidates, soonest first.
type etaHeap []store.Candidate

func (h etaHeap) Len() int           { return len(h) }
func (h etaHeap) Less(i, j int) bool { return h[i].ETA.Before(*h[j].ETA) }
func (h etaHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *etaHeap) Push(x any)        { *h = append(*h, x.(store.Candidate)) }
func (h *etaHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

// sequentialNames lists the sequential channels, sorted.
func (t *ChannelTree) sequentialNames() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for name, c := range t.byName {
		if c.Sequential {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
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

// startCost is what a start adds to the tenant's virtual use (usage).
func (s *scheduler) startCost(tenant string) time.Duration {
	if s.refRate() == 0 {
		return startCharge
	}
	return time.Duration(float64(startCharge) / s.weight(tenant))
}

// fairShare reorders candidates already in run order so that, within one
// priority, each next slot goes to the tenant whose jobs held the fewest
// worker-seconds lately (usage), each pick counting its start charge: a
// tenant flooding slow jobs cannot starve another's, however many it
// queues, with no per-tenant limit set. Each tenant's own order is kept,
// a lower priority never overtakes a higher one, and tenants at equal use
// go in the order of their best candidate.
func fairShare(ready []store.Candidate, usage map[string]time.Duration, startCost func(tenant string) time.Duration) []store.Candidate {
	out := make([]store.Candidate, 0, len(ready))
	use := make(map[string]time.Duration, len(usage))
	for t, d := range usage {
		use[t] = d
	}
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
			i = j
			continue
		}
		for len(out) < j {
			next := ""
			for _, t := range order {
				if len(queues[t]) > 0 && (next == "" || use[t] < use[next]) {
					next = t
				}
			}
			out = append(out, queues[next][0])
			queues[next] = queues[next][1:]
			use[next] += startCost(next)
		}
		i = j
	}
	return out
}
