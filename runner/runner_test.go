package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/host"
	"github.com/wasmq/wasmq/runner"
	"github.com/wasmq/wasmq/store"
	"github.com/wasmq/wasmq/store/pgtest"
	"github.com/wasmq/wasmq/store/postgres"
	"github.com/wasmq/wasmq/store/sqlite"
)

var cacheDir = filepath.Join(os.TempDir(), "wasmq-runner-test-cache")

// node is one runner on a fresh store with the real testkit plugin.
type node struct {
	t     *testing.T
	store store.Store
	r     *runner.Runner
	h     *host.Host
}

// backend is the store the tests run on; TestOnPostgreSQL switches it.
var backend = "sqlite"

func newStore(t testing.TB) store.Store {
	t.Helper()
	if backend == "postgres" {
		return openPostgres(t, pgtest.DSN(t))
	}
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "wasmq.db"), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newStores opens n stores on one database, as n nodes would: on
// PostgreSQL only (an embedded store belongs to one process).
func newStores(t testing.TB, n int) []store.Store {
	t.Helper()
	if backend != "postgres" {
		if n != 1 {
			t.Fatalf("%d nodes on an embedded store", n)
		}
		return []store.Store{newStore(t)}
	}
	dsn := pgtest.DSN(t)
	var out []store.Store
	for range n {
		out = append(out, openPostgres(t, dsn))
	}
	return out
}

// openPostgres opens a store on dsn, closed when the test ends.
func openPostgres(t testing.TB, dsn string) store.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), dsn, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newHost(t testing.TB) *host.Host {
	t.Helper()
	wasm, err := os.ReadFile("../plugins/examples/testkit/testkit.wasm")
	if err != nil {
		t.Fatalf("the testkit plugin must be built (make plugins): %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "testkit.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := host.New(host.Config{PluginsDir: dir, CacheDir: cacheDir, Timeout: abi.Duration(5 * time.Second)}.WithDefaults(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })
	return h
}

func start(t *testing.T, channels string, st store.Store, tweak ...func(*runner.Config)) *node {
	t.Helper()
	cfg := runner.Config{Channels: channels, NodeID: "node-" + uuid.NewString()[:8], Lease: abi.Duration(3 * time.Second),
		DefaultRetryInterval: abi.Duration(20 * time.Millisecond), SafetyPoll: abi.Duration(time.Second),
		ShutdownTimeout: abi.Duration(5 * time.Second)}
	for _, f := range tweak {
		f(&cfg)
	}
	n := &node{t: t, store: st, h: newHost(t)}
	r, err := runner.New(cfg, st, n.h, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	n.r = r
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Stop(context.Background()) })
	return n
}

type spec struct {
	tenant   string
	name     string
	fn       string
	args     string
	kwargs   string
	channel  string
	priority int
	retries  int
	eta      *time.Time
	deps     []string
}

// add stores jobs in order; spec.deps name earlier specs.
func add(t *testing.T, st store.Store, specs ...spec) map[string]string {
	t.Helper()
	ids := map[string]string{}
	var njs []store.NewJob
	for _, s := range specs {
		id := uuid.NewString()
		ids[s.name] = id
		if s.fn == "" {
			s.fn = "script"
		}
		if s.args == "" {
			s.args = `["ok"]`
		}
		if s.kwargs == "" {
			s.kwargs = `{}`
		}
		if s.channel == "" {
			s.channel = "root"
		}
		switch s.priority {
		case 0:
			s.priority = 10
		case -1: // priority 0, which the zero value cannot say
			s.priority = 0
		}
		var deps []string
		for _, d := range s.deps {
			deps = append(deps, ids[d])
		}
		if s.tenant == "" {
			s.tenant = "default"
		}
		njs = append(njs, store.NewJob{UUID: id, Tenant: s.tenant, Func: "testkit." + s.fn, Args: json.RawMessage(s.args),
			Kwargs: json.RawMessage(s.kwargs), Context: json.RawMessage(`{}`), Description: s.name,
			Channel: abi.NormalizeChannel(s.channel), Priority: s.priority, MaxRetries: s.retries, ETA: s.eta, DependsOn: deps})
	}
	if _, err := st.Insert(context.Background(), njs); err != nil {
		t.Fatal(err)
	}
	return ids
}

func get(t *testing.T, st store.Store, id string) abi.Job {
	t.Helper()
	j, err := st.Get(context.Background(), "", id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// waitState waits until every job is in state, failing after timeout.
func waitState(t *testing.T, st store.Store, timeout time.Duration, state abi.State, ids ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		all := true
		for _, id := range ids {
			if get(t, st, id).State != state {
				all = false
				break
			}
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, id := range ids {
				j := get(t, st, id)
				fmt.Fprintf(&b, "\n  %s %s retry=%d attempt=%d exc=%s %s", j.Description, j.State, j.Retry, j.Attempt, j.ExcName, j.ExcMessage)
			}
			t.Fatalf("jobs not %s after %v:%s", state, timeout, b.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// span is when a job ran, by the plugin's own clock.
type span struct {
	name       string
	start, end time.Time
}

func spans(t *testing.T, st store.Store, ids map[string]string) []span {
	t.Helper()
	var out []span
	for name, id := range ids {
		var r struct {
			StartedNS int64 `json:"started_ns"`
			EndedNS   int64 `json:"ended_ns"`
		}
		j := get(t, st, id)
		if err := json.Unmarshal(j.Result, &r); err != nil || r.StartedNS == 0 {
			t.Fatalf("%s result %s: %v", name, j.Result, err)
		}
		out = append(out, span{name, time.Unix(0, r.StartedNS), time.Unix(0, r.EndedNS)})
	}
	sort.Slice(out, func(i, k int) bool { return out[i].start.Before(out[k].start) })
	return out
}

// maxConcurrent is the largest number of spans overlapping at once among
// those whose name has the prefix.
func maxConcurrent(ss []span, prefix string) int {
	best := 0
	for _, a := range ss {
		if !strings.HasPrefix(a.name, prefix) {
			continue
		}
		n := 0
		for _, b := range ss {
			if strings.HasPrefix(b.name, prefix) && !b.start.After(a.start) && b.end.After(a.start) {
				n++
			}
		}
		best = max(best, n)
	}
	return best
}

func names(ss []span) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.name)
	}
	return out
}

func TestNestedCapacitiesStartByPriorityWithinLimits(t *testing.T) {
	// docs/semantics.md §6: root:4,A:4,B:1; A1..A6 (p10), B1, B2 (p5) → B1, A1, A2, A3 first.
	st := newStore(t)
	var specs []spec
	for i := 1; i <= 6; i++ {
		specs = append(specs, spec{name: fmt.Sprintf("A%d", i), args: `["ok:300"]`, channel: "A"})
	}
	specs = append(specs, spec{name: "B1", args: `["ok:300"]`, channel: "B", priority: 5}, spec{name: "B2", args: `["ok:300"]`, channel: "B", priority: 5})
	ids := add(t, st, specs...)
	n := start(t, "root:4,A:4,B:1", st)
	all := make([]string, 0, len(ids))
	for _, id := range ids {
		all = append(all, id)
	}
	waitState(t, n.store, 10*time.Second, abi.StateDone, all...)
	ss := spans(t, st, ids)
	first := names(ss[:4])
	sort.Strings(first)
	if strings.Join(first, ",") != "A1,A2,A3,B1" {
		t.Fatalf("first four starts %v, want A1 A2 A3 B1 (all: %v)", first, names(ss))
	}
	if c := maxConcurrent(ss, ""); c > 4 {
		t.Fatalf("root capacity 4 exceeded: %d at once", c)
	}
	if c := maxConcurrent(ss, "B"); c != 1 {
		t.Fatalf("channel B ran %d at once, want 1", c)
	}
}

// Tenants share: a round gathers only what it could pick of each tenant's
// jobs (a channel's free room), so x's jobs queued on the full channel A
// do not hide its job on B, which starts in the first round, long before
// A's first job ends and brings another.
func TestAJobInAFreeChannelIsNotHiddenByItsTenantsJobsOnAFullOne(t *testing.T) {
	st := newStore(t)
	var specs []spec
	for i := 1; i <= 6; i++ {
		specs = append(specs, spec{tenant: "x", name: fmt.Sprintf("A%d", i), args: `["ok:3000"]`, channel: "A"})
	}
	specs = append(specs, spec{tenant: "x", name: "xB", args: `["ok:10"]`, channel: "B"},
		spec{tenant: "y", name: "yB", args: `["ok:3000"]`, channel: "B"})
	ids := add(t, st, specs...)
	start(t, "root:4,A:1,B:4", st, func(c *runner.Config) { c.SafetyPoll = abi.Duration(time.Minute) })
	waitState(t, st, 10*time.Second, abi.StateDone, ids["A1"], ids["xB"])
	ran := map[string]span{}
	for _, s := range spans(t, st, map[string]string{"A1": ids["A1"], "xB": ids["xB"]}) {
		ran[s.name] = s
	}
	if a1, xb := ran["A1"], ran["xB"]; !xb.start.Before(a1.end) {
		t.Fatalf("xB started at %v, A1 ran %v–%v: xB waited for A1 to end", xb.start, a1.start, a1.end)
	}
}

func TestRootCapacityOneRunsInPriorityThenCreationOrder(t *testing.T) {
	// docs/semantics.md §6: root:1; A(p10), B(p5), C(p10), D(p0) → D, B, A, C.
	st := newStore(t)
	ids := add(t, st, spec{name: "A"}, spec{name: "B", priority: 5}, spec{name: "C"}, spec{name: "D", priority: -1})
	n := start(t, "root:1", st)
	waitState(t, n.store, 10*time.Second, abi.StateDone, ids["A"], ids["B"], ids["C"], ids["D"])
	if got := strings.Join(names(spans(t, st, ids)), ","); got != "D,B,A,C" {
		t.Fatalf("start order %s, want D,B,A,C", got)
	}
}

func ptr[T any](v T) *T { return &v }

func TestRetryBudget(t *testing.T) {
	st := newStore(t)
	n := start(t, "root:4", st)
	for _, max := range []int{1, 3} {
		ids := add(t, st, spec{name: "r", args: `["retry"]`, retries: max})
		waitState(t, n.store, 10*time.Second, abi.StateFailed, ids["r"])
		j := get(t, st, ids["r"])
		if j.Attempt != max || j.Retry != max {
			t.Fatalf("max_retries %d: ran %d times (retry %d)", max, j.Attempt, j.Retry)
		}
		want := fmt.Sprintf("Max. retries (%d) reached: ", max)
		if j.ExcName != abi.ExcMaxRetries || !strings.HasPrefix(j.ExcMessage, want) {
			t.Fatalf("exc %s %q, want %s %q...", j.ExcName, j.ExcMessage, abi.ExcMaxRetries, want)
		}
	}
	t.Run("max_retries 0 retries forever", func(t *testing.T) {
		ids := add(t, st, spec{name: "forever", args: `["retry"]`, retries: 0})
		deadline := time.Now().Add(10 * time.Second)
		for get(t, st, ids["forever"]).Attempt < 6 {
			if time.Now().After(deadline) {
				t.Fatal("a job with max_retries 0 stopped being retried")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if j := get(t, st, ids["forever"]); j.State == abi.StateFailed {
			t.Fatalf("failed: %s", j.ExcMessage)
		}
	})
}

func TestIgnoredRetriesDoNotCount(t *testing.T) {
	st := newStore(t)
	n := start(t, "root:4", st)
	ids := add(t, st, spec{name: "j", args: `["retry_ignore:0","retry_ignore:0","ok"]`, retries: 1})
	waitState(t, n.store, 10*time.Second, abi.StateDone, ids["j"])
	if j := get(t, st, ids["j"]); j.Attempt != 3 || j.Retry != 1 {
		t.Fatalf("attempt %d retry %d, want 3 and 1", j.Attempt, j.Retry)
	}
}

func TestExplicitRetrySecondsPostponeTheJob(t *testing.T) {
	st := newStore(t)
	n := start(t, "root:4", st)
	ids := add(t, st, spec{name: "j", args: `["retry:1","ok"]`, retries: 3})
	waitState(t, n.store, 10*time.Second, abi.StateDone, ids["j"])
	at, err := st.Attempts(context.Background(), "", ids["j"])
	if err != nil || len(at) != 2 {
		t.Fatalf("attempts %v %v", at, err)
	}
	if gap := at[1].Started.Sub(*at[0].Ended); gap < time.Second || gap > 1500*time.Millisecond {
		t.Fatalf("second attempt %v after the first, want ~1s", gap)
	}
}

func TestSequentialChannelBlocksOnFailedJob(t *testing.T) {
	for _, unblock := range []string{"requeue", "cancel", "set done"} {
		t.Run(unblock, func(t *testing.T) {
			st := newStore(t)
			ids := add(t, st, spec{name: "S1", args: `["fail:boom","ok"]`, channel: "S"},
				spec{name: "S2", channel: "S"}, spec{name: "S3", channel: "S"})
			n := start(t, "root:4,S:1:sequential", st)
			waitState(t, n.store, 5*time.Second, abi.StateFailed, ids["S1"])
			time.Sleep(300 * time.Millisecond)
			if s2, s3 := get(t, st, ids["S2"]), get(t, st, ids["S3"]); s2.State != abi.StatePending || s3.State != abi.StatePending {
				t.Fatalf("sequential channel ran past a failed job: S2 %s, S3 %s", s2.State, s3.State)
			}
			ctx := context.Background()
			var err error
			switch unblock {
			case "requeue":
				_, err = st.Requeue(ctx, "", ids["S1"])
			case "cancel":
				_, err = st.Cancel(ctx, "", ids["S1"])
			case "set done":
				_, err = st.SetDone(ctx, "", ids["S1"], nil)
			}
			if err != nil {
				t.Fatal(err)
			}
			waitState(t, n.store, 5*time.Second, abi.StateDone, ids["S2"], ids["S3"])
			s2, s3 := get(t, st, ids["S2"]), get(t, st, ids["S3"])
			if !s2.DateDone.Before(*s3.DateStarted) {
				t.Fatal("S3 started before S2 ended")
			}
			if unblock == "requeue" {
				s1 := get(t, st, ids["S1"])
				if s1.State != abi.StateDone || !s1.DateDone.Before(*s2.DateStarted) {
					t.Fatalf("requeued S1 did not run first: %s", s1.State)
				}
			}
		})
	}
}

func TestThrottleSpacesStarts(t *testing.T) {
	// docs/semantics.md §6: root:4,T:2:throttle=N; T1, T2, T3 → N apart, T3 after T1 or T2 ends.
	st := newStore(t)
	ids := add(t, st, spec{name: "T1", channel: "T"}, spec{name: "T2", channel: "T"}, spec{name: "T3", channel: "T"})
	n := start(t, "root:4,T:2:throttle=0.4", st)
	waitState(t, n.store, 10*time.Second, abi.StateDone, ids["T1"], ids["T2"], ids["T3"])
	// The throttle spaces the hand-overs to workers (date_enqueued);
	// starts follow within the claim latency.
	var enq []time.Time
	for _, id := range ids {
		enq = append(enq, *get(t, st, id).DateEnqueued)
	}
	sort.Slice(enq, func(i, k int) bool { return enq[i].Before(enq[k]) })
	for i := 1; i < len(enq); i++ {
		if gap := enq[i].Sub(enq[i-1]); gap < 400*time.Millisecond {
			t.Fatalf("job %d handed over %v after the previous; throttle is 400ms", i+1, gap)
		}
	}
	ss := spans(t, st, ids)
	for i := 1; i < len(ss); i++ {
		if gap := ss[i].start.Sub(ss[i-1].start); gap < 300*time.Millisecond {
			t.Fatalf("%s started %v after %s; throttle is 400ms", ss[i].name, gap, ss[i-1].name)
		}
	}
}

func TestETAStartsPromptlyWhenDue(t *testing.T) {
	st := newStore(t)
	n := start(t, "root:4", st)
	// A first job warms the instance pool: this measures scheduling, not
	// the compilation of a cold module.
	warm := add(t, st, spec{name: "warm"})
	waitState(t, n.store, 5*time.Second, abi.StateDone, warm["warm"])
	eta := time.Now().Add(500 * time.Millisecond)
	ids := add(t, st, spec{name: "e", eta: &eta})
	waitState(t, n.store, 5*time.Second, abi.StateDone, ids["e"])
	s := spans(t, st, ids)[0]
	if s.start.Before(eta) {
		t.Fatalf("started %v before its eta", eta.Sub(s.start))
	}
	if late := s.start.Sub(eta); late > 100*time.Millisecond {
		t.Fatalf("started %v after its eta, want within 100ms", late)
	}
}

func TestDependencyGraphs(t *testing.T) {
	st := newStore(t)
	n := start(t, "root:4", st)
	t.Run("chain and fan-in run parents first", func(t *testing.T) {
		ids := add(t, st, spec{name: "a", args: `["ok:50"]`}, spec{name: "b", args: `["ok:50"]`},
			spec{name: "c", deps: []string{"a", "b"}}, spec{name: "d", deps: []string{"c"}})
		waitState(t, n.store, 5*time.Second, abi.StateDone, ids["a"], ids["b"], ids["c"], ids["d"])
		a, b, c, d := get(t, st, ids["a"]), get(t, st, ids["b"]), get(t, st, ids["c"]), get(t, st, ids["d"])
		if c.DateStarted.Before(*a.DateDone) || c.DateStarted.Before(*b.DateDone) || d.DateStarted.Before(*c.DateDone) {
			t.Fatal("a child started before its parents were done")
		}
	})
	t.Run("a failed parent holds its dependents until requeued and done", func(t *testing.T) {
		ids := add(t, st, spec{name: "p", args: `["fail:x","ok"]`}, spec{name: "k", deps: []string{"p"}})
		waitState(t, n.store, 5*time.Second, abi.StateFailed, ids["p"])
		time.Sleep(200 * time.Millisecond)
		if k := get(t, st, ids["k"]); k.State != abi.StateWaitDependencies {
			t.Fatalf("dependent of a failed job is %s", k.State)
		}
		if _, err := st.Requeue(context.Background(), "", ids["p"]); err != nil {
			t.Fatal(err)
		}
		waitState(t, n.store, 5*time.Second, abi.StateDone, ids["p"], ids["k"])
	})
	t.Run("cancel cascades to dependents transitively", func(t *testing.T) {
		ids := add(t, st, spec{name: "p", args: `["fail:x"]`}, spec{name: "k", deps: []string{"p"}}, spec{name: "g", deps: []string{"k"}})
		waitState(t, n.store, 5*time.Second, abi.StateFailed, ids["p"])
		if _, err := st.Cancel(context.Background(), "", ids["p"]); err != nil {
			t.Fatal(err)
		}
		waitState(t, n.store, time.Second, abi.StateCancelled, ids["p"], ids["k"], ids["g"])
	})
}

func TestIdentityKeyDeduplicatesWhileWaiting(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	mk := func() store.NewJob {
		return store.NewJob{UUID: uuid.NewString(), Tenant: "default", Func: "testkit.script", Args: json.RawMessage(`["ok:200"]`),
			Kwargs: json.RawMessage(`{}`), Context: json.RawMessage(`{}`), Channel: "root", Priority: 10, IdentityKey: "sync-42"}
	}
	first, _ := st.Insert(ctx, []store.NewJob{mk()})
	again, _ := st.Insert(ctx, []store.NewJob{mk()})
	if !again[0].Deduplicated || again[0].Job.UUID != first[0].Job.UUID {
		t.Fatal("a pending job with the same identity key did not deduplicate")
	}
	n := start(t, "root:1", st)
	waitState(t, n.store, 5*time.Second, abi.StateStarted, first[0].Job.UUID)
	during, _ := st.Insert(ctx, []store.NewJob{mk()})
	if during[0].Deduplicated {
		t.Fatal("a started job blocked a new job with its identity key")
	}
	waitState(t, n.store, 5*time.Second, abi.StateDone, first[0].Job.UUID, during[0].Job.UUID)
}

func TestGracefulStopReturnsRunningJobsUncounted(t *testing.T) {
	st := newStore(t)
	ids := add(t, st, spec{name: "long1", args: `["ok:5000"]`, retries: 1}, spec{name: "long2", args: `["ok:5000"]`, retries: 1},
		spec{name: "queued", retries: 1})
	// The shutdown timeout also bounds the writing of the interrupted
	// outcomes: 1 s, not less, for a loaded machine.
	n := start(t, "root:2", st, func(c *runner.Config) { c.ShutdownTimeout = abi.Duration(time.Second) })
	waitState(t, n.store, 5*time.Second, abi.StateStarted, ids["long1"], ids["long2"])
	if err := n.r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	n.r.Stop(context.Background()) // twice is fine
	for _, name := range []string{"long1", "long2", "queued"} {
		j := get(t, st, ids[name])
		if j.State != abi.StatePending || j.Retry != 0 {
			t.Fatalf("%s after stop: %s retry %d, want pending retry 0", name, j.State, j.Retry)
		}
	}
	// A new node picks them all up and runs each once more.
	n2 := start(t, "root:4", st)
	waitState(t, n2.store, 15*time.Second, abi.StateDone, ids["long1"], ids["long2"], ids["queued"])
	if j := get(t, st, ids["queued"]); j.Attempt != 1 {
		t.Fatalf("queued job ran %d times", j.Attempt)
	}
}

func TestJobsOfADeadWorkerComeBack(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	ids := add(t, st, spec{name: "orphan", retries: 3}, spec{name: "spent", retries: 1})
	// A node that claimed both jobs and died: nobody renews its lease.
	cands, _ := st.PendingSince(ctx, 0, 10)
	if _, err := st.Enqueue(ctx, cands, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if c, err := st.Claim(ctx, "dead-node", 10, time.Now().Add(300*time.Millisecond)); err != nil || len(c) != 2 {
		t.Fatalf("claim %v %v", c, err)
	}
	n := start(t, "root:4", st, func(c *runner.Config) { c.Lease = abi.Duration(time.Second) })
	waitState(t, n.store, 5*time.Second, abi.StateDone, ids["orphan"])
	waitState(t, n.store, 5*time.Second, abi.StateFailed, ids["spent"])
	if j := get(t, st, ids["orphan"]); j.Attempt != 2 || j.Retry != 2 {
		t.Fatalf("orphan: attempt %d retry %d; the death counts as an attempt", j.Attempt, j.Retry)
	}
	if j := get(t, st, ids["spent"]); j.ExcName != abi.ExcJobFoundDead {
		t.Fatalf("spent: %s %s", j.ExcName, j.ExcMessage)
	}
}

// A start can commit while its answer is lost with the connection (the
// database went away at that instant): the store says this node runs a
// job it never received, and its renewals would keep the job started for
// good. The node finds it a stray at two renewals and gives it back; it
// runs, its retry budget untouched by the start that never ran.
func TestAJobStartedUnbeknownToItsNodeRunsAfterAll(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	ids := add(t, st, spec{name: "lost", retries: 1})
	cfg := runner.Config{Channels: "root:2", NodeID: "node-" + uuid.NewString()[:8], Lease: abi.Duration(1500 * time.Millisecond),
		SafetyPoll: abi.Duration(time.Second), ShutdownTimeout: abi.Duration(5 * time.Second)}
	r, err := runner.New(cfg, st, newHost(t), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	cands, err := st.PendingSince(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if started, err := st.Start(ctx, cands, r.WorkerID(), time.Now().Add(time.Minute)); err != nil || len(started) != 1 {
		t.Fatalf("start for the node's worker: %v %v", started, err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Stop(context.Background()) })
	waitState(t, st, 10*time.Second, abi.StateDone, ids["lost"])
	if j := get(t, st, ids["lost"]); j.Attempt != 2 || j.Retry != 1 {
		t.Fatalf("attempt %d retry %d, want the second attempt and one retry counted", j.Attempt, j.Retry)
	}
	at, err := st.Attempts(ctx, "default", ids["lost"])
	if err != nil || len(at) != 2 || at[0].Outcome != "dead" || at[1].Outcome != "done" {
		t.Fatalf("attempts %+v %v, want the lost one then the one that ran", at, err)
	}
}

func TestAutovacuumDeletesOldFinishedJobs(t *testing.T) {
	st := newStore(t)
	ids := add(t, st, spec{name: "old"}, spec{name: "failed", args: `["fail:x"]`})
	n := start(t, "root:4,keep:1:removal_interval=365", st)
	waitState(t, n.store, 5*time.Second, abi.StateDone, ids["old"])
	waitState(t, n.store, 5*time.Second, abi.StateFailed, ids["failed"])
	// The default interval is 30 days: nothing is old enough yet.
	if k, _ := st.Vacuum(context.Background(), "root", time.Now().Add(-30*24*time.Hour)); k != 0 {
		t.Fatalf("vacuumed %d fresh jobs", k)
	}
	if k, _ := st.Vacuum(context.Background(), "root", time.Now().Add(time.Second)); k != 1 {
		t.Fatalf("vacuum deleted %d jobs, want the done one only", k)
	}
	if _, err := st.Get(context.Background(), "", ids["failed"]); err != nil {
		t.Fatal("a failed job was vacuumed")
	}
}

func TestChannelStatus(t *testing.T) {
	st := newStore(t)
	ids := add(t, st, spec{name: "f", args: `["fail:x"]`, channel: "S"}, spec{name: "w", channel: "S"})
	n := start(t, "root:2,S:1:sequential,P:1:paused", st)
	waitState(t, n.store, 5*time.Second, abi.StateFailed, ids["f"])
	chs, err := n.r.Channels(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]abi.ChannelStatus{}
	for _, c := range chs {
		byName[c.Name] = c
	}
	s := byName["root.S"]
	if !s.Sequential || !s.Blocked || s.Failed != 1 || s.Pending != 1 || s.Capacity != 1 {
		t.Fatalf("root.S status %+v", s)
	}
	if !byName["root.P"].Paused || byName["root"].Capacity != 2 {
		t.Fatalf("status %+v", chs)
	}
}

// TestOnPostgreSQL runs every runner test again on the PostgreSQL store.
func TestOnPostgreSQL(t *testing.T) {
	pgtest.DSN(t) // skip (or fail under CI) before switching
	backend = "postgres"
	defer func() { backend = "sqlite" }()
	for _, c := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"NestedCapacitiesStartByPriorityWithinLimits", TestNestedCapacitiesStartByPriorityWithinLimits},
		{"ANodeWhoseClockIsOffDoesNotStart", TestANodeWhoseClockIsOffDoesNotStart},
		{"ANodeWhoseClockGoesOffStops", TestANodeWhoseClockGoesOffStops},
		{"RootCapacityOneRunsInPriorityThenCreationOrder", TestRootCapacityOneRunsInPriorityThenCreationOrder},
		{"RetryBudget", TestRetryBudget},
		{"IgnoredRetriesDoNotCount", TestIgnoredRetriesDoNotCount},
		{"ExplicitRetrySecondsPostponeTheJob", TestExplicitRetrySecondsPostponeTheJob},
		{"SequentialChannelBlocksOnFailedJob", TestSequentialChannelBlocksOnFailedJob},
		{"ThrottleSpacesStarts", TestThrottleSpacesStarts},
		{"ETAStartsPromptlyWhenDue", TestETAStartsPromptlyWhenDue},
		{"DependencyGraphs", TestDependencyGraphs},
		{"IdentityKeyDeduplicatesWhileWaiting", TestIdentityKeyDeduplicatesWhileWaiting},
		{"GracefulStopReturnsRunningJobsUncounted", TestGracefulStopReturnsRunningJobsUncounted},
		{"JobsOfADeadWorkerComeBack", TestJobsOfADeadWorkerComeBack},
		{"AJobStartedUnbeknownToItsNodeRunsAfterAll", TestAJobStartedUnbeknownToItsNodeRunsAfterAll},
		{"AutovacuumDeletesOldFinishedJobs", TestAutovacuumDeletesOldFinishedJobs},
		{"ChannelStatus", TestChannelStatus},
		{"TenantsTakeTurnsAtEqualPriority", TestTenantsTakeTurnsAtEqualPriority},
		{"AJobInAFreeChannelIsNotHiddenByItsTenantsJobsOnAFullOne", TestAJobInAFreeChannelIsNotHiddenByItsTenantsJobsOnAFullOne},
		{"ASlowFloodDoesNotStarveAnotherTenant", TestASlowFloodDoesNotStarveAnotherTenant},
		{"TenantMaxRunningIsACapAcrossChannels", TestTenantMaxRunningIsACapAcrossChannels},
		{"ConcurrentProducersAreAllSeenWithoutThePoll", TestConcurrentProducersAreAllSeenWithoutThePoll},
		{"TheSchedulersRulesHoldWhateverHappens", TestTheSchedulersRulesHoldWhateverHappens},
	} {
		t.Run(c.name, c.fn)
	}
}

func TestTenantsTakeTurnsAtEqualPriority(t *testing.T) {
	st := newStore(t)
	var specs []spec
	for i := 1; i <= 5; i++ {
		specs = append(specs, spec{tenant: "flood", name: fmt.Sprintf("F%d", i)})
	}
	specs = append(specs, spec{tenant: "small", name: "S1"}, spec{tenant: "small", name: "S2"})
	ids := add(t, st, specs...)
	n := start(t, "root:1", st)
	all := []string{}
	for _, id := range ids {
		all = append(all, id)
	}
	waitState(t, n.store, 10*time.Second, abi.StateDone, all...)
	// Turns go by slot time, so the exact interleaving depends on how long
	// each job held its slot: the small tenant's jobs both start among the
	// first four, and each tenant's own order is kept.
	order := names(spans(t, st, ids))
	got := strings.Join(order, ",")
	if slices.Index(order, "S2") > 3 || slices.Index(order, "S1") > slices.Index(order, "S2") {
		t.Fatalf("start order %s: the small tenant waited behind the flood", got)
	}
	var floods []string
	for _, n := range order {
		if strings.HasPrefix(n, "F") {
			floods = append(floods, n)
		}
	}
	if strings.Join(floods, ",") != "F1,F2,F3,F4,F5" {
		t.Fatalf("start order %s: the flood's own order was not kept", got)
	}
}

func TestTenantMaxRunningIsACapAcrossChannels(t *testing.T) {
	st := newStore(t)
	ids := add(t, st, spec{tenant: "capped", name: "C1", args: `["ok:200"]`}, spec{tenant: "capped", name: "C2", args: `["ok:200"]`, channel: "x"},
		spec{tenant: "capped", name: "C3", args: `["ok:200"]`}, spec{tenant: "other", name: "O1", args: `["ok:200"]`})
	n := start(t, "root:4,x:2", st, func(c *runner.Config) { c.TenantMaxRunning = map[string]int{"capped": 1} })
	waitState(t, n.store, 10*time.Second, abi.StateDone, ids["C1"], ids["C2"], ids["C3"], ids["O1"])
	ss := spans(t, st, ids)
	if c := maxConcurrent(ss, "C"); c != 1 {
		t.Fatalf("tenant capped at 1 ran %d jobs at once", c)
	}
	if c := maxConcurrent(ss, ""); c < 2 {
		t.Fatal("the other tenant waited for the capped one")
	}
}

// TestConcurrentProducersAreAllSeenWithoutThePoll: many producers insert
// at once, so transactions commit out of the order in which they took
// their versions; every job still starts at once, not on the safety poll.
func TestConcurrentProducersAreAllSeenWithoutThePoll(t *testing.T) {
	st := newStore(t)
	start(t, "root:100", st, func(c *runner.Config) { c.SafetyPoll = abi.Duration(time.Hour) })
	var mu sync.Mutex
	var ids []string
	var wg sync.WaitGroup
	for p := 0; p < 8; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				got := add(t, st, spec{name: "j"})
				mu.Lock()
				ids = append(ids, got["j"])
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	waitState(t, st, 10*time.Second, abi.StateDone, ids...)
}
