// Package runner moves jobs: the leader's scheduler enqueues pending jobs
// as channels have room; every node's workers claim enqueued jobs, run
// them through an Executor (the wasm host) and record the outcome.
package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/internal/failing"
	"github.com/wasmq/wasmq/store"
)

// Executor runs one attempt of a job. *host.Host satisfies it.
type Executor interface {
	Run(ctx context.Context, job *abi.Job) abi.Outcome
	Function(tenant, fn string) (abi.FunctionConfig, error)
}

// Observer hears of each attempt: its metrics and its span
// (telemetry.Observer is one). AttemptStart returns the context the
// attempt runs under.
type Observer interface {
	AttemptStart(ctx context.Context, job *abi.Job) context.Context
	AttemptEnd(ctx context.Context, job *abi.Job, o *abi.Outcome, to abi.State)
}

// Runner is one node's scheduler (when it leads) and workers.
type Runner struct {
	cfg Config
	// workerID is this process's name in worker_id, leases and
	// announcements: the node_id and an incarnation drawn at start, so a
	// process that comes back under the same node_id (a fixed name, or
	// <hostname>-<pid> as PID 1 in a container) never renews, completes or
	// counts as its own what the killed one held.
	workerID string
	tree     *ChannelTree
	store    store.Store
	exec     Executor
	log      zerolog.Logger
	stats    counters
	obs      Observer // nil: attempts are only counted in stats

	startOnce, stopOnce sync.Once
	started             atomic.Bool

	// Three contexts so a stop can first stop claiming, then let running
	// jobs finish, then interrupt them.
	bgCancel    context.CancelFunc // lease renewal
	leadCancel  context.CancelFunc // leadership: scheduler, reaper, vacuum
	fetchCancel context.CancelFunc // claiming
	jobCtx      context.Context
	jobCancel   context.CancelFunc // running attempts
	// abandon ends the completer's retries: only a stop whose shutdown
	// timeout ran out gives up on writing outcomes.
	abandon       context.Context
	abandonCancel context.CancelFunc

	fetchDone   chan struct{} // closed when fetchLoop has returned
	slots       chan struct{} // one token per free worker slot
	slotFreed   chan struct{}
	inflight    sync.WaitGroup
	completions chan store.Completion
	bg          sync.WaitGroup
	completerWG sync.WaitGroup
	// usageStop ends usageLoop, which closes usageDone once its last
	// write has returned.
	usageStop context.CancelFunc
	usageDone chan struct{}
	leading   atomic.Bool
	// leadUntil is when, in nanoseconds from born, this node's lead
	// stops being its to act on unless the store confirms it again
	// (leads).
	leadUntil atomic.Int64
	born      time.Time
	leadDone  chan struct{} // closed when leadLoop has returned
	work      chan abi.Job  // started jobs for the worker goroutines
	workersWG sync.WaitGroup
	claimable atomic.Bool // the scheduler enqueued jobs: worth a claim
	// ovChanged: this node stored a channel override; its scheduler
	// re-reads them in its next round, whatever the events.
	ovChanged atomic.Bool
	// peers is how many other nodes the leading scheduler last heard
	// from (0 when this node does not lead).
	peers atomic.Int32
	notes notes // workers → scheduler
	// usage is what this node's attempts used, not yet in the store.
	usage usageBuckets
	// live is the attempts running here, interrupted when their job is
	// cancelled (cancel.go); checks is the goroutines checking them.
	live   live
	checks sync.WaitGroup
	// owned is the attempts this process answers for, launch to outcome
	// written (owned.go).
	owned owned
	// fatal receives the one error after which this node must stop
	// (store.ErrSchemaAhead); see Fatal.
	fatal chan error
	// whileLeading are the leader's other duties (WhileLeading).
	whileLeading []func(ctx context.Context)
}

// WhileLeading adds fn to what this node does while it leads: fn runs in
// its own goroutine from each start of leadership, and its ctx ends with
// it (the schedules' firing loop). Call it before Start.
func (r *Runner) WhileLeading(fn func(ctx context.Context)) {
	r.whileLeading = append(r.whileLeading, fn)
}

// peersHeadStart is how long a leader with live peers waits, after jobs
// are enqueued, before its own workers claim them: it has started its
// share of the round already, and without the wait its claims (no NOTIFY
// round trip to wait for) took most of the rest, 83 % of a two-node run.
const peersHeadStart = 5 * time.Millisecond

// notes carries what this node's workers tell the scheduler, which must
// never be lost (a lost note would hold a slot until the next recount):
// an unbounded queue with a wake-up signal.
type notes struct {
	mu      sync.Mutex
	ended   []notice
	settled []notice
	// fuel is what this node's ended attempts used, per tenant: the
	// scheduler charges it at once, before the completion commits
	// (other nodes' fuel comes with their finished events).
	fuel map[string]int64
	wake chan struct{}
}

// charge notes fuel a tenant's attempt used; it needs no round of its own.
func (n *notes) charge(tenant string, fuel int64) {
	n.mu.Lock()
	if n.fuel == nil {
		n.fuel = map[string]int64{}
	}
	n.fuel[tenant] += fuel
	n.mu.Unlock()
}

// takeFuel empties the fuel noted.
func (n *notes) takeFuel() map[string]int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	f := n.fuel
	n.fuel = nil
	return f
}

// notice names a hand-over whose attempt ended: the job, and its version
// while it ran (abi.Job.Version).
type notice struct {
	uuid    string
	version int64
}

func (n *notes) post(ended notice, settled []notice) {
	n.mu.Lock()
	if ended.uuid != "" {
		n.ended = append(n.ended, ended)
	}
	n.settled = append(n.settled, settled...)
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *notes) take() ([]notice, []notice) {
	n.mu.Lock()
	defer n.mu.Unlock()
	e, s := n.ended, n.settled
	n.ended, n.settled = nil, nil
	return e, s
}

type counters struct {
	enqueued, started, done, failed, retried, interrupted, late, cancelled atomic.Int64
	held                                                                   atomic.Int64 // see Held
}

// New checks the config and builds a runner; Start sets it going.
func New(cfg Config, st store.Store, exec Executor, log zerolog.Logger) (*Runner, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tree, _ := ParseChannels(cfg.Channels)
	r := &Runner{
		cfg: cfg, workerID: cfg.NodeID + "/" + incarnation(), tree: tree, store: st, exec: exec,
		log:         log.With().Str("component", "runner").Str("node", cfg.NodeID).Logger(),
		slots:       make(chan struct{}, cfg.Workers),
		slotFreed:   make(chan struct{}, 1),
		completions: make(chan store.Completion, cfg.Workers*2),
		notes:       notes{wake: make(chan struct{}, 1)},
		fatal:       make(chan error, 1),
		born:        time.Now(),
	}
	for i := 0; i < cfg.Workers; i++ {
		r.slots <- struct{}{}
	}
	return r, nil
}

// incarnation tells one start of a process from another.
func incarnation() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// WorkerID is this process's name in the jobs it runs: node_id/incarnation.
func (r *Runner) WorkerID() string { return r.workerID }

// Fatal delivers the error after which this node must stop: the
// database was migrated past this binary while it ran. The runner has
// stopped taking jobs by then; the caller stops the node (Stop).
func (r *Runner) Fatal() <-chan error { return r.fatal }

// Config returns the effective configuration.
func (r *Runner) Config() Config { return r.cfg }

// Tree returns the channel tree.
func (r *Runner) Tree() *ChannelTree { return r.tree }

// Start launches the workers, the lease renewer and the leadership loop,
// unless this node's clock is off (ErrClockOffset): then it starts
// nothing.
func (r *Runner) Start(ctx context.Context) error {
	if err := r.clockOffset(ctx); err != nil {
		return err
	}
	r.startOnce.Do(func() {
		bg, bgCancel := context.WithCancel(context.WithoutCancel(ctx))
		fetch, fetchCancel := context.WithCancel(bg)
		lead, leadCancel := context.WithCancel(bg)
		r.bgCancel, r.fetchCancel, r.leadCancel = bgCancel, fetchCancel, leadCancel
		r.jobCtx, r.jobCancel = context.WithCancel(context.WithoutCancel(ctx))
		r.abandon, r.abandonCancel = context.WithCancel(context.WithoutCancel(ctx))
		r.completerWG.Add(1)
		go r.completer()
		// One long-lived goroutine per worker slot: a goroutine per job
		// grew a fresh stack through the sandbox call each time.
		r.work = make(chan abi.Job, r.cfg.Workers)
		r.workersWG.Add(r.cfg.Workers)
		for range r.cfg.Workers {
			go func() {
				defer r.workersWG.Done()
				for job := range r.work {
					r.execute(job)
				}
			}()
		}
		usage, usageStop := context.WithCancel(context.WithoutCancel(ctx))
		r.usageStop, r.usageDone = usageStop, make(chan struct{})
		go func() { defer close(r.usageDone); r.usageLoop(usage) }()
		r.bg.Add(4)
		r.fetchDone, r.leadDone = make(chan struct{}), make(chan struct{})
		go func() { defer r.bg.Done(); defer close(r.fetchDone); r.fetchLoop(fetch) }()
		go func() { defer r.bg.Done(); r.renewLoop(bg) }()
		go func() { defer r.bg.Done(); r.holdLoop(bg) }()
		go func() { defer r.bg.Done(); defer close(r.leadDone); r.leadLoop(lead) }()
		r.started.Store(true)
		r.log.Info().Str("channels", r.cfg.Channels).Int("workers", r.cfg.Workers).Msg("runner started")
	})
	return nil
}

// Stop stops claiming, gives running jobs ShutdownTimeout (or until ctx
// ends) to finish, then interrupts them: they go back to pending without
// counting the attempt. Safe to call twice or before Start.
func (r *Runner) Stop(ctx context.Context) error {
	if !r.started.Load() {
		return nil
	}
	r.stopOnce.Do(func() {
		// Scheduling stops first, so jobs handed back below stay pending.
		r.leadCancel()
		r.fetchCancel()
		<-r.leadDone  // the scheduler starts no more jobs here
		<-r.fetchDone // no more inflight.Add after this
		done := make(chan struct{})
		go func() { r.inflight.Wait(); close(done) }()
		grace := time.NewTimer(r.cfg.ShutdownTimeout.D())
		defer grace.Stop()
		select {
		case <-done:
		case <-grace.C:
			r.log.Warn().Msg("shutdown timeout: interrupting running jobs")
		case <-ctx.Done():
			r.log.Warn().Msg("stop cancelled: interrupting running jobs")
		}
		r.jobCancel()
		<-done
		close(r.work)
		r.workersWG.Wait()
		close(r.completions)
		// Outcomes still unwritten (the store is away) get one more
		// shutdown timeout; then their leases lapse and the jobs come back.
		giveUp := time.AfterFunc(r.cfg.ShutdownTimeout.D(), r.abandonCancel)
		defer giveUp.Stop()
		r.completerWG.Wait()
		// The periodic flush ends first, its write done (a write cut
		// short would put back usage it may have stored): then one flush
		// writes all that is left.
		r.usageStop()
		<-r.usageDone
		r.flushUsage(r.abandon)
		r.abandonCancel()
		r.bgCancel()
		r.bg.Wait()
		r.checks.Wait()
		r.log.Info().Msg("runner stopped")
	})
	return nil
}

// SetObserver has obs hear of every attempt; call it before Start.
func (r *Runner) SetObserver(obs Observer) { r.obs = obs }

// Workers is how many jobs this node runs at once at most.
func (r *Runner) Workers() int { return r.cfg.Workers }

// Held is how many pending jobs the scheduler holds in memory (their
// entries, stale ones included), as of its last round; 0 off the leader.
// It follows the jobs due within the horizon, not the store's backlog.
func (r *Runner) Held() int { return int(r.stats.held.Load()) }

// Stats returns this node's counters.
func (r *Runner) Stats() abi.RunnerStats {
	return abi.RunnerStats{
		Enqueued: r.stats.enqueued.Load(), Started: r.stats.started.Load(), Done: r.stats.done.Load(),
		Failed: r.stats.failed.Load(), Retried: r.stats.retried.Load(), Interrupted: r.stats.interrupted.Load(),
		Late: r.stats.late.Load(), Leader: r.leading.Load(),
	}
}

// fetchLoop claims enqueued jobs while this node has free slots.
func (r *Runner) fetchLoop(ctx context.Context) {
	events, err := r.store.Subscribe(ctx)
	if err != nil {
		r.log.Error().Err(err).Msg("workers: subscribe; falling back to polling")
	}
	poll := time.NewTicker(min(r.cfg.SafetyPoll.D(), time.Second))
	defer poll.Stop()
	// A freed slot alone is no reason to ask the store: only when jobs may
	// be waiting in enqueued (an event said so, the last claim was full,
	// or the poll) — else every finished job would cost a query.
	claimable := true
	// The head start runs from the first enqueue it covers: later ones
	// must not push it back, or a stream of them would keep this node's
	// free workers from claiming while the peers are full.
	headStart := time.NewTimer(time.Hour)
	headStart.Stop()
	defer headStart.Stop()
	headStarted := false
	fails := failing.Report{What: "claim"} // tried again at least every second while it fails
	for {
		free := len(r.slots)
		if r.claimable.Swap(false) {
			claimable = true
		}
		if free > 0 && claimable {
			limit := min(free, r.cfg.BatchSize)
			jobs, err := r.store.Claim(ctx, r.workerID, limit, time.Now().Add(r.cfg.Lease.D()))
			switch {
			case err != nil && ctx.Err() == nil:
				fails.Fail(&r.log, err, time.Now())
			case err == nil && fails.Run() > 0:
				fails.OK(&r.log, time.Now())
			}
			for i := range jobs {
				<-r.slots
				r.launch(jobs[i])
			}
			if err == nil && len(jobs) < limit {
				claimable = false
			}
			if len(jobs) > 0 && len(jobs) == limit {
				continue // there may be more
			}
		}
		select {
		case <-ctx.Done():
			return
		case e, ok := <-events:
			if ok {
				r.watchEvent(ctx, e)
			}
			switch {
			case !ok:
				events, claimable = nil, true
			case e.Kind == store.EventEnqueued && r.leading.Load() && r.peers.Load() > 0:
				if !headStarted {
					headStart.Reset(peersHeadStart)
					headStarted = true
				}
			case e.Kind == store.EventEnqueued, e.Kind == store.EventChanged:
				claimable = true
			}
		case <-headStart.C:
			headStarted, claimable = false, true
		case <-r.slotFreed:
		case <-poll.C:
			claimable = true
		}
	}
}

// launch runs a started job on a slot already taken.
func (r *Runner) launch(job abi.Job) {
	r.owned.add(job.UUID, job.Attempt)
	r.inflight.Add(1)
	r.stats.started.Add(1)
	r.work <- job // never waits: a slot was taken, so a worker is or will be free
}

// reserveSlots takes up to n free worker slots without waiting.
func (r *Runner) reserveSlots(n int) int {
	for i := 0; i < n; i++ {
		select {
		case <-r.slots:
		default:
			return i
		}
	}
	return n
}

func (r *Runner) releaseSlots(n int) {
	for i := 0; i < n; i++ {
		r.slots <- struct{}{}
	}
	if n > 0 {
		r.wakeFetch()
	}
}

// sequential reports whether a job's next in line depends on its outcome.
func (r *Runner) sequential(channel string) bool {
	return r.tree.Get(channel).Sequential
}

// wakeFetch makes the fetch loop claim now (a slot freed, jobs enqueued).
func (r *Runner) wakeFetch() {
	select {
	case r.slotFreed <- struct{}{}:
	default:
	}
}

func (r *Runner) execute(job abi.Job) {
	defer func() {
		// The code has returned: the slot is free now, not once the
		// outcome is committed (the completer batches that).
		if r.leading.Load() && !r.sequential(job.Channel) {
			r.notes.post(notice{job.UUID, job.Version}, nil)
		}
		r.slots <- struct{}{}
		r.wakeFetch()
		r.inflight.Done()
	}()
	fc, _ := r.exec.Function(job.Tenant, job.Func)
	ctx, cancel := context.WithCancelCause(r.jobCtx)
	r.live.add(job.UUID, job.Attempt, cancel)
	if r.obs != nil {
		ctx = r.obs.AttemptStart(ctx, &job)
	}
	report, endReports := r.progressFor(&job)
	o := r.exec.Run(abi.WithProgress(ctx, report), &job)
	endReports()
	r.live.remove(job.UUID)
	takenAway := errors.Is(context.Cause(ctx), errTakenAway)
	cancel(nil)
	c := completion(&job, o, fc, r.cfg.DefaultRetryInterval.D(), time.Now().UTC())
	r.metered(&job, &o, c.Ended)
	if r.obs != nil {
		r.obs.AttemptEnd(ctx, &job, &o, c.To)
	}
	switch {
	case takenAway:
		// The store already says how it ended (cancelled, requeued);
		// the report below applies to nothing.
		r.stats.cancelled.Add(1)
	case c.Cause == abi.CauseShutdown:
		r.stats.interrupted.Add(1)
	case c.To == abi.StateDone:
		r.stats.done.Add(1)
	case c.To == abi.StatePending:
		r.stats.retried.Add(1)
	default:
		r.stats.failed.Add(1)
	}
	if job.ExpectedAt != nil && c.Ended.After(*job.ExpectedAt) && c.To != abi.StatePending {
		r.stats.late.Add(1)
	}
	r.log.Debug().Str("job_uuid", job.UUID).Str("tenant", job.Tenant).Str("func", job.Func).
		Str("outcome", string(o.Kind)).Str("to", string(c.To)).Dur("took", o.Duration).Msg("attempt ended")
	r.completions <- c
}

// completer writes finished attempts in batches: whatever has arrived
// while the previous write ran goes in the next one.
func (r *Runner) completer() {
	defer r.completerWG.Done()
	// One slice for every batch: nothing keeps a batch once written.
	batch := make([]store.Completion, 0, r.cfg.BatchSize)
	fails := failing.Report{What: "recording outcomes"} // across batches: the next one fails as the last did
	for c := range r.completions {
		batch = append(batch[:0], c)
	drain:
		for len(batch) < r.cfg.BatchSize {
			select {
			case c, ok := <-r.completions:
				if !ok {
					break drain
				}
				batch = append(batch, c)
			default:
				break drain
			}
		}
		r.flush(batch, &fails)
		clear(batch) // the outcomes' logs and results go with their batch
	}
}

// flush writes a batch of outcomes, retrying for as long as the process
// runs: an attempt's outcome must not be lost to a store outage, however
// long. Meanwhile the leases of these jobs are renewed as usual, so none
// is taken back while its outcome waits (an outage longer than a lease
// lets the reaper take them back first: then the write applies to
// nothing and the jobs run again). Only a stop past its shutdown timeout
// abandons the batch.
func (r *Runner) flush(batch []store.Completion, fails *failing.Report) {
	for wait := 50 * time.Millisecond; ; wait = min(wait*2, 5*time.Second) {
		ctx, cancel := context.WithTimeout(r.abandon, 30*time.Second)
		_, err := r.store.Complete(ctx, batch)
		cancel()
		if err == nil {
			if fails.Run() > 0 {
				fails.OK(&r.log, time.Now())
			}
			r.owned.done(batch)
			r.settled(batch)
			return
		}
		if r.abandon.Err() != nil {
			// Not settled for the scheduler: the jobs still count as
			// started (a sequential channel must not move past them) until
			// the reaper takes them back and says so.
			r.log.Error().Err(err).Int("jobs", len(batch)).Msg("stopping: outcomes not recorded; their leases will lapse and the jobs come back")
			return
		}
		log := r.log.With().Int("jobs", len(batch)).Logger() // a failure's path only
		fails.Fail(&log, err, time.Now())
		select {
		case <-time.After(wait):
		case <-r.abandon.Done():
		}
	}
}

// settled tells the scheduler these outcomes are written.
func (r *Runner) settled(batch []store.Completion) {
	if !r.leading.Load() {
		return
	}
	ns := make([]notice, len(batch))
	for i, c := range batch {
		ns[i] = notice{c.UUID, c.Version}
	}
	r.notes.post(notice{}, ns)
}

// renewLoop keeps this node's leases alive while it runs, and tells the
// leader, whichever node it is, that this node takes work. It renews only
// what it runs: a job the store names as this worker's that this process
// never received is given back (owned.go).
func (r *Runner) renewLoop(ctx context.Context) {
	t := time.NewTicker(r.cfg.Lease.D() / 3)
	defer t.Stop()
	announce := func() {
		err := r.store.Announce(ctx, r.workerID)
		switch {
		case errors.Is(err, store.ErrSchemaAhead):
			r.log.Error().Err(err).Msg("the database was migrated past this binary: taking no more jobs; stop this node and upgrade it")
			r.quit(err)
		case err != nil && ctx.Err() == nil:
			r.log.Warn().Err(err).Msg("announce failed")
		case err == nil:
			if err := r.clockOffset(ctx); err != nil {
				r.log.Error().Err(err).Msg("clock off: taking no more jobs")
				r.quit(err)
			}
		}
	}
	announce()
	var strays strayWatch
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			announce()
			held, err := r.store.RenewLeases(ctx, r.workerID, time.Now().Add(r.cfg.Lease.D()))
			switch {
			case err == nil:
				strays.check(ctx, r, held)
			case ctx.Err() == nil:
				r.log.Warn().Err(err).Msg("renew leases failed")
			}
			// A cancel whose event was lost (or came before the job
			// reached its worker) is caught here, within a lease: the
			// jobs running since the last renewal are read again.
			r.checkLive(ctx, r.live.runningSince(time.Now().Add(-r.cfg.Lease.D()/3)))
		}
	}
}

// ErrClockOffset: this node's clock is further from the store's than
// runner.max_clock_offset; the node stops (DefaultMaxClockOffset says
// what a wrong clock breaks).
var ErrClockOffset = errors.New("this node's clock is off")

// clockOffset reads the store's clock and says ErrClockOffset when this
// node's is off by more than max_clock_offset beyond what the read's
// round trip leaves unknown. A failed read says nothing: the store being
// away is handled where it is used.
func (r *Runner) clockOffset(ctx context.Context) error {
	sent := time.Now()
	theirs, err := r.store.Clock(ctx)
	back := time.Now()
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn().Err(err).Msg("reading the store's clock failed")
		}
		return nil
	}
	half := back.Sub(sent) / 2
	offset := sent.Add(half).Sub(theirs) // > 0: this node is ahead
	if offset.Abs()-half <= r.cfg.MaxClockOffset.D() {
		return nil
	}
	return fmt.Errorf("%w: %s from the store's (±%s), over runner.max_clock_offset %s: set this machine's clock (NTP) and start the node again",
		ErrClockOffset, offset.Round(time.Millisecond), half.Round(time.Microsecond), r.cfg.MaxClockOffset.D())
}

// quit stops a node that must not go on (a schema ahead, a clock off):
// it takes no more jobs, leads no more, and tells Fatal why.
func (r *Runner) quit(err error) {
	r.fetchCancel()
	r.leadCancel()
	select {
	case r.fatal <- err:
	default:
	}
}

// holdLoop tells the store this worker is alive (Store.Hold) for as long
// as the runner runs, holding again soon after a lost connection, well
// within the time the leader takes to confirm a worker gone.
func (r *Runner) holdLoop(ctx context.Context) {
	for {
		since := time.Now()
		err := r.store.Hold(ctx, r.workerID)
		if ctx.Err() != nil {
			return
		}
		if time.Since(since) > time.Second { // it held: say once that it stopped
			r.log.Warn().Err(err).Msg("lost the store's liveness hold: holding again")
		} else {
			r.log.Debug().Err(err).Msg("liveness hold failed")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(holdRetry):
		}
	}
}

// leadLoop tries to lead; while leading it schedules, reaps expired
// leases and vacuums. Leadership is re-checked every leadCheck.
func (r *Runner) leadLoop(ctx context.Context) {
	for ctx.Err() == nil {
		asked := time.Now()
		ok, err := r.store.TryLead(ctx, r.cfg.NodeID, r.cfg.Lease.D())
		if err != nil && ctx.Err() == nil {
			r.log.Warn().Err(err).Msg("leader election failed")
		}
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		r.confirmLead(asked)
		r.lead(ctx)
	}
}

// The lead is a lease, as a job's claim is: the store ends the lead of a
// leader silent for a lease (frozen, paused, cut off), and another node
// may lead from then on. So a leader re-confirms every leadCheck, and
// acts only within three quarters of a lease of the last confirmation it
// asked for: a leader that wakes from a freeze longer than that does
// nothing more until the store says it still leads. The quarter left is
// the margin for the two clocks' rates and a round under way.
func (r *Runner) leadCheck() time.Duration { return min(time.Second, r.cfg.Lease.D()/4) }

// confirmLead records that the store said, for a question asked at
// asked, that this node leads.
func (r *Runner) confirmLead(asked time.Time) {
	r.leadUntil.Store(int64(asked.Sub(r.born) + r.cfg.Lease.D()*3/4))
}

// leads reports whether this node may act as the leader now: it leads,
// and its last confirmation is recent enough (leadCheck).
func (r *Runner) leads() bool {
	return r.leading.Load() && int64(time.Since(r.born)) < r.leadUntil.Load()
}

func (r *Runner) lead(ctx context.Context) {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.leading.Store(true)
	defer r.leading.Store(false)
	defer r.peers.Store(0)
	r.log.Info().Msg("leading: scheduling for every node")
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); newScheduler(r).run(lctx) }()
	go func() { defer wg.Done(); r.maintain(lctx) }()
	for _, fn := range r.whileLeading {
		wg.Add(1)
		go func() { defer wg.Done(); fn(lctx) }()
	}
	check := time.NewTicker(r.leadCheck())
	defer check.Stop()
	for {
		select {
		case <-lctx.Done():
			wg.Wait()
			return
		case <-check.C:
			asked := time.Now()
			ok, err := r.store.TryLead(lctx, r.cfg.NodeID, r.cfg.Lease.D())
			if !ok || err != nil {
				// Said at once, not once the leader's goroutines have
				// returned: a write of theirs under way may take its
				// whole timeout.
				r.leading.Store(false)
				r.log.Warn().Err(err).Msg("lost leadership")
				cancel()
				continue
			}
			r.confirmLead(asked)
		}
	}
}

// maintain reaps jobs of dead nodes and deletes old finished jobs.
func (r *Runner) maintain(ctx context.Context) {
	reap := time.NewTicker(min(r.cfg.Lease.D()/3, reapEvery))
	defer reap.Stop()
	vac := time.NewTicker(r.cfg.VacuumEvery.D())
	defer vac.Stop()
	r.vacuum(ctx)
	watch := goneWatch{self: r.workerID}
	r.reapPass(ctx, &watch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-reap.C:
			r.reapPass(ctx, &watch)
		case <-vac.C:
			r.vacuum(ctx)
		}
	}
}

// reapPass takes back the jobs whose lease lapsed and those of the
// workers the watch finds gone.
func (r *Runner) reapPass(ctx context.Context, watch *goneWatch) {
	if !r.leads() {
		return // another node may lead by now (leadCheck)
	}
	unheld, err := r.store.Unheld(ctx)
	if err != nil && ctx.Err() == nil {
		r.log.Warn().Err(err).Msg("reading the workers' liveness failed")
	}
	gone := watch.observe(time.Now(), unheld, err)
	reaped, err := r.store.ReapExpired(ctx, time.Now(), gone)
	if err != nil {
		watch.failed()
		if ctx.Err() == nil {
			r.log.Warn().Err(err).Msg("reaping expired leases failed")
		}
		return
	}
	if len(gone) > 0 {
		r.log.Warn().Strs("workers", gone).Int("jobs", len(reaped)).Msg("took back the jobs of workers gone")
	}
	for _, j := range reaped {
		r.log.Warn().Str("job_uuid", j.UUID).Str("state", string(j.State)).Msg("took back a job from a dead worker")
	}
}

// vacuum deletes old done and cancelled jobs of every channel in use, each
// with the removal_interval of its nearest channel that sets one.
func (r *Runner) vacuum(ctx context.Context) {
	if !r.leads() {
		return
	}
	counts, err := r.store.Counts(ctx, "")
	if err != nil {
		r.log.Warn().Err(err).Msg("vacuum: list channels")
		return
	}
	for _, cc := range counts {
		if cc.Counts[abi.StateDone]+cc.Counts[abi.StateCancelled] == 0 {
			continue
		}
		n, err := r.store.Vacuum(ctx, cc.Channel, time.Now().Add(-r.removalInterval(cc.Channel)))
		if err != nil {
			r.log.Warn().Err(err).Str("channel", cc.Channel).Msg("vacuum failed")
		} else if n > 0 {
			r.log.Info().Int("deleted", n).Str("channel", cc.Channel).Msg("vacuum")
		}
	}
}

// removalInterval is the removal_interval of the nearest channel, from
// the job's channel up, that sets one; else the runner's default.
func (r *Runner) removalInterval(channel string) time.Duration {
	for x := r.tree.Get(channel); x != nil; x = x.Parent {
		if x.RemovalInterval > 0 {
			return x.RemovalInterval
		}
	}
	return r.cfg.RemovalInterval.D()
}

// Channels is the live status of the channels a tenant sees, with that
// tenant's counts only: every configured channel (with the intermediate
// ones configuring creates: the operator's tree, not tenant data) and
// every channel holding the tenant's jobs. Tenant "" sees every channel
// with every tenant's counts. Paused and Blocked are the channel's own
// state: a failed job of any tenant blocks a sequential channel for all.
func (r *Runner) Channels(ctx context.Context, tenant string) ([]abi.ChannelStatus, error) {
	counts, err := r.store.Counts(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("channel status: %w", err)
	}
	failed := map[string]int{} // every tenant's failed jobs, for Blocked
	if tenant == "" {
		for _, cc := range counts {
			failed[cc.Channel] = cc.Counts[abi.StateFailed]
		}
	} else if r.tree.hasSequential() {
		if failed, err = r.store.FailedChannels(ctx); err != nil {
			return nil, fmt.Errorf("channel status: %w", err)
		}
	}
	overrides, err := r.store.ChannelOverrides(ctx)
	if err != nil {
		return nil, fmt.Errorf("channel status: %w", err)
	}
	ov := map[string]abi.ChannelOverride{}
	for _, o := range overrides {
		ov[o.Channel] = o
		r.tree.Get(o.Channel)
	}
	shown := map[string]bool{}
	show := func(c *Channel) {
		for x := c; x != nil && !shown[x.Name]; x = x.Parent {
			shown[x.Name] = true
		}
	}
	for _, cc := range counts {
		show(r.tree.Get(cc.Channel))
	}
	names := r.tree.Names()
	for _, n := range names {
		if ch, _ := r.tree.Lookup(n); ch.Configured || tenant == "" {
			show(ch)
		} else if _, ok := ov[n]; ok {
			show(ch) // an operator's setting, like the configuration
		}
	}
	// Each count adds to its channel and every ancestor: a walk of at
	// most abi.MaxChannelDepth steps per channel, not a pass over every
	// count per channel (60,000 channels took 55 s).
	type sums struct{ running, pending, failed int }
	subtree := make(map[string]*sums, len(shown))
	for _, cc := range counts {
		for x := r.tree.Get(cc.Channel); x != nil; x = x.Parent {
			t := subtree[x.Name]
			if t == nil {
				t = &sums{}
				subtree[x.Name] = t
			}
			t.running += cc.Counts[abi.StateEnqueued] + cc.Counts[abi.StateStarted]
			t.pending += cc.Counts[abi.StatePending]
			t.failed += cc.Counts[abi.StateFailed]
		}
	}
	out := []abi.ChannelStatus{}
	for _, n := range names {
		if !shown[n] {
			continue
		}
		ch, _ := r.tree.Lookup(n)
		s := abi.ChannelStatus{Name: n, Capacity: ch.Capacity, Sequential: ch.Sequential,
			Throttle: ch.Throttle.Seconds(), Paused: pausedWith(ch, ov), Configured: ch.Configured}
		if o, ok := ov[n]; ok {
			s.Override = &o
			if o.Capacity != nil {
				s.Capacity = *o.Capacity
			}
			if o.Throttle != nil {
				s.Throttle = *o.Throttle
			}
		}
		if t := subtree[n]; t != nil {
			s.Running, s.Pending, s.Failed = t.running, t.pending, t.failed
		}
		s.Blocked = ch.Sequential && failed[n] > 0
		out = append(out, s)
	}
	return out, nil
}
