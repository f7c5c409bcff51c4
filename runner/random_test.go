package runner_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/runner"
	"github.com/wasmq/wasmq/store"
)

// TestTheSchedulersRulesHoldWhateverHappens sets random channels going
// under random traffic: jobs of two tenants with priorities, etas,
// parents, failures and retries, while an operator cancels, requeues,
// sets done and pauses channels, and a node is stopped and started again
// under its name now and then (on PostgreSQL, one of two). Afterwards,
// from what the store recorded of every attempt, it checks the
// scheduler's rules (docs/channels.md, docs/semantics.md §6–7):
//   - no channel ever ran more attempts at once than its capacity, its
//     subtree included, nor a capped tenant more than its cap;
//   - a throttled channel's hand-overs are a throttle apart, whoever led;
//   - the sequential channel ran its jobs one at a time, in key order;
//   - nothing started in a paused channel from a second after the pause;
//   - no job started before its eta, nor ran two attempts at once;
//   - once the operator stops, every job ends, unless a parent of it
//     did not end done.
func TestTheSchedulersRulesHoldWhateverHappens(t *testing.T) {
	for round := range 2 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			nodes := 1 // an embedded store is one process's
			if backend == "postgres" {
				nodes = 2
			}
			randomRun(t, nodes)
		})
	}
}

// randomChannels is the channel tree of a run and what it promises.
type randomChannels struct {
	config    string
	capacity  map[string]int // full name → capacity
	throttle  time.Duration  // of root.b
	tenantCap int            // of tenant "t2"
	workers   int
}

func newRandomChannels(r *rand.Rand) randomChannels {
	c := randomChannels{capacity: map[string]int{"root": 2 + r.IntN(4), "root.a": 1 + r.IntN(3), "root.a.x": 1 + r.IntN(2),
		"root.b": 1 + r.IntN(3), "root.s": 1}, tenantCap: 1 + r.IntN(2)}
	c.workers = c.capacity["root"] + 2 // the channels, not the workers, are the bound
	throttle := ""
	if r.IntN(2) == 0 {
		c.throttle = 150 * time.Millisecond
		throttle = ":throttle=0.15"
	}
	c.config = fmt.Sprintf("root:%d,a:%d,a.x:%d,b:%d%s,s:1:sequential", c.capacity["root"], c.capacity["root.a"],
		c.capacity["root.a.x"], c.capacity["root.b"], throttle)
	return c
}

// asked is what the test stored of a job, to check it against.
type asked struct {
	uuid, tenant, channel string
	priority              int
	eta                   *time.Time
	parents               []string
	steps                 []string // the script: a step an attempt, the last repeated
}

// runsAtLeast is how long attempt k's code ran at the least: its step's
// sleep.
func (a *asked) runsAtLeast(k int) time.Duration {
	var ms int
	if _, err := fmt.Sscanf(a.steps[min(max(k, 1), len(a.steps))-1], "ok:%d", &ms); err != nil {
		return 0
	}
	return time.Duration(ms) * time.Millisecond
}

// pauseSpan: channel was paused from from (the override stored) to to
// (its resume sent).
type pauseSpan struct {
	channel  string
	from, to time.Time
}

// leadSpan: worker led from from to to (zero while it still leads).
type leadSpan struct {
	worker   string
	from, to time.Time
}

// randomWorld is one run: its nodes, what it asked, what the operator
// did and who led.
type randomWorld struct {
	t       *testing.T
	ch      randomChannels
	stores  []store.Store
	ids     []string // node ids, one per store
	mu      sync.Mutex
	nodes   []*runner.Runner
	jobs    map[string]*asked
	order   []string
	touched map[string]bool // acted on by the operator
	pauses  []pauseSpan
	paused  map[string]time.Time
	leads   []leadSpan
}

func (w *randomWorld) startNode(i int) *runner.Runner {
	w.t.Helper()
	cfg := runner.Config{Channels: w.ch.config, NodeID: w.ids[i], Workers: w.ch.workers, Lease: abi.Duration(3 * time.Second),
		DefaultRetryInterval: abi.Duration(20 * time.Millisecond), SafetyPoll: abi.Duration(time.Second),
		ShutdownTimeout: abi.Duration(5 * time.Second), TenantMaxRunning: map[string]int{"t2": w.ch.tenantCap}}
	r, err := runner.New(cfg, w.stores[i], newHost(w.t), zerolog.Nop())
	if err != nil {
		w.t.Fatal(err)
	}
	r.WhileLeading(func(ctx context.Context) {
		w.mu.Lock()
		k := len(w.leads)
		w.leads = append(w.leads, leadSpan{worker: r.WorkerID(), from: time.Now()})
		w.mu.Unlock()
		<-ctx.Done()
		w.mu.Lock()
		w.leads[k].to = time.Now()
		w.mu.Unlock()
	})
	if err := r.Start(context.Background()); err != nil {
		w.t.Fatal(err)
	}
	return r
}

// leadersAround lists who led within a second of at, for a failure's
// message.
func (w *randomWorld) leadersAround(at time.Time) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	for _, l := range w.leads {
		if l.from.Before(at.Add(time.Second)) && (l.to.IsZero() || l.to.After(at.Add(-time.Second))) {
			fmt.Fprintf(&b, "\n  %s led %s–%s", l.worker, l.from.Format("15:04:05.000000"), l.to.Format("15:04:05.000000"))
		}
	}
	return b.String()
}

// randomRun runs one random world on nodes nodes (on PostgreSQL each its
// own store, sharing the database) for five seconds, then checks it.
func randomRun(t *testing.T, nodes int) {
	seed := uint64(time.Now().UnixNano())
	defer func() {
		if t.Failed() {
			t.Logf("seed %d", seed)
		}
	}()
	r := rand.New(rand.NewPCG(seed, 0))
	w := &randomWorld{t: t, ch: newRandomChannels(r), jobs: map[string]*asked{}, touched: map[string]bool{},
		paused: map[string]time.Time{}}
	w.stores = newStores(t, nodes)
	for i := range nodes {
		w.ids = append(w.ids, fmt.Sprintf("node-%d-%s", i, uuid.NewString()[:6]))
		w.nodes = append(w.nodes, w.startNode(i))
	}
	t.Cleanup(func() {
		w.mu.Lock()
		nodes := slices.Clone(w.nodes)
		w.mu.Unlock()
		for _, n := range nodes {
			n.Stop(context.Background()) // its lead's end takes w.mu
		}
	})
	t.Logf("channels %s, tenant t2 capped at %d, %d workers, %d nodes", w.ch.config, w.ch.tenantCap, w.ch.workers, nodes)

	ctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	var wg sync.WaitGroup
	actors := []func(context.Context, *rand.Rand){w.produce, w.operate, w.churn}
	for i, act := range actors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			act(ctx, rand.New(rand.NewPCG(seed, uint64(i+1))))
		}()
	}
	wg.Wait()
	w.resumeAll()
	jobs := w.settled(45 * time.Second)
	w.check(jobs)
}

// produce stores batches of one to four jobs every few milliseconds.
func (w *randomWorld) produce(ctx context.Context, r *rand.Rand) {
	channels := []string{"root", "root.a", "root.a.x", "root.a.y", "root.b", "root.s"}
	for ctx.Err() == nil {
		var batch []store.NewJob
		var plan []*asked
		now := time.Now()
		for range 1 + r.IntN(4) {
			a := &asked{uuid: uuid.NewString(), tenant: []string{"t1", "t2"}[r.IntN(2)], channel: channels[r.IntN(len(channels))],
				priority: r.IntN(4) * 5}
			nj := store.NewJob{UUID: a.uuid, Tenant: a.tenant, Func: "testkit.script", Channel: a.channel, Priority: a.priority,
				Description: a.channel}
			steps := fmt.Sprintf(`["ok:%d"]`, 5+r.IntN(40))
			if a.channel != "root.s" { // the sequential channel's jobs all succeed, unparented: its order is checked
				switch k := r.IntN(10); {
				case k < 2:
					steps, nj.MaxRetries = fmt.Sprintf(`["fail:x","ok:%d"]`, 5+r.IntN(40)), 3
				case k < 3:
					steps = `["final:x"]`
				}
				w.mu.Lock()
				for range r.IntN(3) {
					if len(w.order) == 0 {
						break
					}
					p := w.jobs[w.order[len(w.order)-1-r.IntN(min(len(w.order), 30))]]
					if p.tenant == a.tenant && p.channel != "root.s" && !slices.Contains(a.parents, p.uuid) {
						a.parents = append(a.parents, p.uuid)
					}
				}
				w.mu.Unlock()
			}
			if r.IntN(4) == 0 {
				eta := now.Add(time.Duration(r.IntN(1500)) * time.Millisecond).UTC()
				a.eta, nj.ETA = &eta, &eta
			}
			nj.Args, nj.DependsOn = json.RawMessage(steps), a.parents
			if err := json.Unmarshal(nj.Args, &a.steps); err != nil {
				panic(err)
			}
			batch, plan = append(batch, nj), append(plan, a)
		}
		if _, err := w.stores[r.IntN(len(w.stores))].Insert(context.Background(), batch); err != nil {
			w.t.Errorf("insert: %v", err)
			return
		}
		w.mu.Lock()
		for _, a := range plan {
			w.jobs[a.uuid] = a
			w.order = append(w.order, a.uuid)
		}
		w.mu.Unlock()
		sleep(ctx, time.Duration(5+r.IntN(30))*time.Millisecond)
	}
}

// operate acts on random jobs (never the sequential channel's) and
// pauses and resumes channels.
func (w *randomWorld) operate(ctx context.Context, r *rand.Rand) {
	for ctx.Err() == nil {
		sleep(ctx, time.Duration(20+r.IntN(60))*time.Millisecond)
		w.mu.Lock()
		var pick []string
		for range 1 + r.IntN(3) {
			if len(w.order) == 0 {
				break
			}
			id := w.order[r.IntN(len(w.order))]
			if w.jobs[id].channel != "root.s" {
				pick = append(pick, id)
				w.touched[id] = true
			}
		}
		node := w.nodes[r.IntN(len(w.nodes))]
		st := w.stores[0]
		w.mu.Unlock()
		var err error
		switch k := r.IntN(12); {
		case len(pick) == 0:
		case k < 2:
			_, err = st.Cancel(context.Background(), "", pick[0])
		case k < 5:
			_, err = st.Requeue(context.Background(), "", pick[0])
		case k < 6:
			_, err = st.SetDone(context.Background(), "", pick[0], nil)
		case k < 8:
			_, err = st.Act(context.Background(), "", []abi.Cause{abi.CauseCancel, abi.CauseRequeue, abi.CauseSetDone}[r.IntN(3)], pick)
		default:
			err = w.pauseOrResume(node, []string{"root.a", "root.a.x", "root.b"}[r.IntN(3)], r)
		}
		if err != nil && !errors.Is(err, abi.ErrIllegalTransition) && !errors.Is(err, abi.ErrConflict) {
			w.t.Errorf("operator: %v", err)
			return
		}
	}
}

// pauseOrResume pauses a running channel, or resumes a paused one that
// has been paused for half a second or more.
func (w *randomWorld) pauseOrResume(node *runner.Runner, channel string, r *rand.Rand) error {
	w.mu.Lock()
	since, paused := w.paused[channel]
	w.mu.Unlock()
	if paused {
		if time.Since(since) < 500*time.Millisecond+time.Duration(r.IntN(1500))*time.Millisecond {
			return nil
		}
		return w.resume(node, channel)
	}
	if _, err := node.SetChannel(context.Background(), channel, func(o *abi.ChannelOverride) { o.Paused = ptr(true) }); err != nil {
		return err
	}
	w.mu.Lock()
	w.paused[channel] = time.Now()
	w.mu.Unlock()
	return nil
}

func (w *randomWorld) resume(node *runner.Runner, channel string) error {
	w.mu.Lock()
	since := w.paused[channel]
	w.pauses = append(w.pauses, pauseSpan{channel, since, time.Now()})
	delete(w.paused, channel)
	w.mu.Unlock()
	_, err := node.SetChannel(context.Background(), channel, func(o *abi.ChannelOverride) { o.Paused = nil })
	return err
}

func (w *randomWorld) resumeAll() {
	w.mu.Lock()
	var chs []string
	for ch := range w.paused {
		chs = append(chs, ch)
	}
	node := w.nodes[0]
	w.mu.Unlock()
	for _, ch := range chs {
		if err := w.resume(node, ch); err != nil {
			w.t.Fatalf("resume %s: %v", ch, err)
		}
	}
}

// churn stops a node now and then, as a deploy does, and starts it
// again under its name.
func (w *randomWorld) churn(ctx context.Context, r *rand.Rand) {
	for ctx.Err() == nil {
		sleep(ctx, time.Duration(700+r.IntN(1500))*time.Millisecond)
		i := r.IntN(len(w.nodes))
		w.mu.Lock()
		old := w.nodes[i]
		w.mu.Unlock()
		old.Stop(context.Background())
		n := w.startNode(i)
		w.mu.Lock()
		w.nodes[i] = n
		w.mu.Unlock()
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// settled waits until no job is left to run (every job ended, or waiting
// behind a parent that did not end done) and returns them all.
func (w *randomWorld) settled(within time.Duration) map[string]abi.Job {
	w.t.Helper()
	deadline := time.Now().Add(within)
	for {
		jobs := map[string]abi.Job{}
		for f := (store.Filter{Limit: 1000}); ; {
			page, err := w.stores[0].List(context.Background(), f)
			if err != nil {
				w.t.Fatal(err)
			}
			for _, j := range page.Jobs {
				jobs[j.UUID] = j
			}
			if f.Cursor = page.NextCursor; f.Cursor == "" {
				break
			}
		}
		var stuck []string
		for _, id := range w.order {
			j, ok := jobs[id]
			if !ok {
				w.t.Fatalf("job %s (%s) is not in the store", id, w.jobs[id].channel)
			}
			if j.State == abi.StateDone || j.State == abi.StateFailed || j.State == abi.StateCancelled {
				continue
			}
			if j.State == abi.StateWaitDependencies && slices.ContainsFunc(w.jobs[id].parents, func(p string) bool {
				return jobs[p].State != abi.StateDone
			}) {
				continue
			}
			stuck = append(stuck, fmt.Sprintf("%s %s in %s (eta %v, parents %v)", id, j.State, j.Channel, j.ETA, w.jobs[id].parents))
		}
		if len(stuck) == 0 {
			return jobs
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("%d of %d jobs left to run %v after the operator stopped:\n  %s", len(stuck), len(w.order), within,
				strings.Join(stuck, "\n  "))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// run is one attempt as the store recorded it.
type run struct {
	job             *asked
	attempt         int
	worker, outcome string
	start, end      time.Time
}

func (x run) String() string {
	return fmt.Sprintf("%s attempt %d in %s on %s, %s–%s, %s", x.job.uuid[:8], x.attempt, x.job.channel, x.worker,
		x.start.Format("15:04:05.000000"), x.end.Format("15:04:05.000000"), x.outcome)
}

// at lists the runs under way at instant at.
func at(runs []run, at time.Time) string {
	var b strings.Builder
	for _, x := range runs {
		if !x.start.After(at) && x.end.After(at) {
			fmt.Fprintf(&b, "\n  %s", x)
		}
	}
	return b.String()
}

func (w *randomWorld) check(jobs map[string]abi.Job) {
	t := w.t
	t.Helper()
	var runs []run
	byJob := map[string][]run{}
	for _, id := range w.order {
		at, err := w.stores[0].Attempts(context.Background(), "", id)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range at {
			if a.Ended == nil {
				t.Fatalf("job %s (%s): attempt %d has not ended, yet the job is %s", id, w.jobs[id].channel, a.Attempt, jobs[id].State)
			}
			x := run{w.jobs[id], a.Attempt, a.WorkerID, a.Outcome, a.Started, *a.Ended}
			if a.Outcome == "cancelled" || a.Outcome == "requeued" {
				// Ended by an operator while started in the store: its
				// code may have returned before (its slot is free from
				// then, its outcome not yet written), not before its sleep.
				x.end = minTime(x.end, x.start.Add(x.job.runsAtLeast(a.Attempt)))
			}
			runs = append(runs, x)
			byJob[id] = append(byJob[id], x)
		}
	}
	w.mu.Lock() // a node may take the lead while the world is checked
	leads := len(w.leads)
	w.mu.Unlock()
	t.Logf("%d jobs, %d attempts, %d pauses, %d leads", len(w.order), len(runs), len(w.pauses), leads)
	if len(runs) < len(w.order)/3 {
		t.Fatalf("only %d attempts for %d jobs: the run exercised too little", len(runs), len(w.order))
	}
	for ch, capacity := range w.ch.capacity {
		in := filterRuns(runs, func(x run) bool { return x.job.channel == ch || strings.HasPrefix(x.job.channel, ch+".") })
		if n, when := mostAtOnce(in); n > capacity {
			t.Errorf("channel %s (capacity %d) ran %d attempts at once at %s:%s%s", ch, capacity, n,
				when.Format("15:04:05.000000"), at(in, when), w.leadersAround(when))
		}
	}
	t2 := filterRuns(runs, func(x run) bool { return x.job.tenant == "t2" })
	if n, when := mostAtOnce(t2); n > w.ch.tenantCap {
		t.Errorf("tenant t2 (max_running %d) ran %d attempts at once at %s:%s%s", w.ch.tenantCap, n,
			when.Format("15:04:05.000000"), at(t2, when), w.leadersAround(when))
	}
	for id, rs := range byJob {
		if n, when := mostAtOnce(rs); n > 1 {
			t.Errorf("job %s ran %d attempts at once at %s:%s", id, n, when.Format("15:04:05.000000"), at(rs, when))
		}
		a := w.jobs[id]
		if first := slices.MinFunc(rs, func(x, y run) int { return x.start.Compare(y.start) }); a.eta != nil && !w.touched[id] && first.start.Before(*a.eta) {
			t.Errorf("job %s started %v before its eta", id, a.eta.Sub(first.start))
		}
	}
	w.checkThrottle(jobs)
	w.checkSequential(runs, jobs)
	w.checkPauses(runs)
}

// checkThrottle: in root.b, each job's last hand-over (date_enqueued, on
// jobs handed over once) comes a throttle after the one before.
func (w *randomWorld) checkThrottle(jobs map[string]abi.Job) {
	if w.ch.throttle == 0 {
		return
	}
	var handed []abi.Job
	for _, j := range jobs {
		if j.Channel == "root.b" && j.DateEnqueued != nil && j.Attempt == 1 {
			handed = append(handed, j)
		}
	}
	slices.SortFunc(handed, func(a, b abi.Job) int { return a.DateEnqueued.Compare(*b.DateEnqueued) })
	for i := 1; i < len(handed); i++ {
		if gap := handed[i].DateEnqueued.Sub(*handed[i-1].DateEnqueued); gap < w.ch.throttle {
			w.t.Errorf("root.b (throttle %v) handed %s over %v after %s, at %s (started on %s, %s)%s", w.ch.throttle,
				handed[i].UUID[:8], gap, handed[i-1].UUID[:8], handed[i].DateEnqueued.Format("15:04:05.000000"),
				handed[i].WorkerID, handed[i-1].WorkerID, w.leadersAround(*handed[i].DateEnqueued))
		}
	}
}

// checkSequential: root.s started its jobs in key order (priority, then
// creation), among the jobs stored by the time each started.
func (w *randomWorld) checkSequential(runs []run, jobs map[string]abi.Job) {
	seq := filterRuns(runs, func(x run) bool { return x.job.channel == "root.s" })
	slices.SortFunc(seq, func(x, y run) int { return x.start.Compare(y.start) })
	for i, x := range seq {
		xc := jobs[x.job.uuid].DateCreated
		for _, y := range seq[i+1:] {
			// y was stored well before x started, and comes first.
			yc := jobs[y.job.uuid].DateCreated
			if !yc.Before(x.start.Add(-200 * time.Millisecond)) {
				continue
			}
			if y.job.priority < x.job.priority || (y.job.priority == x.job.priority && yc.Before(xc)) {
				w.t.Errorf("root.s started %s (priority %d) at %s before %s (priority %d), stored earlier",
					x.job.uuid, x.job.priority, x.start.Format("15:04:05.000"), y.job.uuid, y.job.priority)
				return
			}
		}
	}
}

// checkPauses: nothing started in a paused channel's subtree from a
// second after its pause (the nodes hear of it) to its resume.
func (w *randomWorld) checkPauses(runs []run) {
	for _, p := range w.pauses {
		from := p.from.Add(time.Second)
		for _, x := range runs {
			if (x.job.channel == p.channel || strings.HasPrefix(x.job.channel, p.channel+".")) && x.start.After(from) && x.start.Before(p.to) {
				w.t.Errorf("job %s of %s started at %s, %v after %s was paused (resumed at %s)", x.job.uuid, x.job.channel,
					x.start.Format("15:04:05.000"), x.start.Sub(p.from), p.channel, p.to.Format("15:04:05.000"))
			}
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func filterRuns(runs []run, keep func(run) bool) []run {
	var out []run
	for _, x := range runs {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}

// mostAtOnce is the largest number of runs overlapping at one instant
// (an end and a start at the same instant do not overlap), and when.
func mostAtOnce(runs []run) (int, time.Time) {
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, x := range runs {
		edges = append(edges, edge{x.start, 1}, edge{x.end, -1})
	}
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return cmp.Compare(a.delta, b.delta) // ends first
	})
	n, best, when := 0, 0, time.Time{}
	for _, e := range edges {
		if n += e.delta; n > best {
			best, when = n, e.at
		}
	}
	return best, when
}
