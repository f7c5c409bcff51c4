package runner_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
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
)

// spinFuel is what each spin job uses: the hostile corpus's endless loop,
// stopped by its max_fuel (wasmq.FuelExhausted) at exactly this fuel, a
// few milliseconds of CPU. Every job costs the same, so a tenant's fuel
// is its jobs times spinFuel, and the ratio is measured over hundreds of
// jobs of the smaller tenant.
const spinFuel = 1_000_000

// spinNode is a runner whose host has spin.run, the endless loop under
// max_fuel spinFuel.
func spinNode(t *testing.T, st store.Store, workers int, tweak func(*runner.Config)) *runner.Runner {
	t.Helper()
	wasm, err := os.ReadFile("../plugins/examples/hostile/infinite_loop.wasm")
	if err != nil {
		t.Fatalf("the hostile corpus must be built (make plugins): %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "spin.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "spin.toml"), []byte("[functions.run]\nmax_fuel = "+strconv.Itoa(spinFuel)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := host.New(host.Config{PluginsDir: dir, CacheDir: cacheDir, Timeout: abi.Duration(5 * time.Second)}.WithDefaults(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })
	cfg := runner.Config{Channels: "root:" + strconv.Itoa(workers), Workers: workers, NodeID: "node-" + uuid.NewString()[:8],
		Lease: abi.Duration(3 * time.Second), SafetyPoll: abi.Duration(time.Second), ShutdownTimeout: abi.Duration(5 * time.Second)}
	tweak(&cfg)
	r, err := runner.New(cfg, st, h, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// spinFor runs the node for d with jobs of both tenants always waiting,
// stops it (which writes the usage aggregate) and returns each tenant's
// fuel from the aggregate.
func spinFor(t *testing.T, st store.Store, rs []*runner.Runner, d time.Duration, jobs map[string]int) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	began := time.Now()
	for tenant, n := range jobs {
		batch := make([]store.NewJob, n)
		for i := range batch {
			batch[i] = store.NewJob{UUID: uuid.NewString(), Tenant: tenant, Func: "spin.run", Channel: "root", Priority: 10}
		}
		if _, err := st.Insert(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range rs {
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(d)
	for _, r := range rs {
		if err := r.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := st.Usage(ctx, store.UsageQuery{From: began.Add(-time.Minute), To: time.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	fuel := map[string]int64{}
	attempts := map[string]int64{}
	for _, row := range rows {
		if row.Fuel != row.Attempts*spinFuel {
			t.Errorf("%s: %d attempts used %d fuel, want %d each", row.Tenant, row.Attempts, row.Fuel, spinFuel)
		}
		fuel[row.Tenant] += row.Fuel
		attempts[row.Tenant] += row.Attempts
	}
	// Each attempt is one job's only one: nothing here runs a job twice
	// or counts an attempt twice.
	for tenant := range jobs {
		cs, err := st.Counts(ctx, tenant)
		if err != nil {
			t.Fatal(err)
		}
		var ended int64
		for _, c := range cs {
			ended += int64(c.Counts[abi.StateFailed] + c.Counts[abi.StateDone])
		}
		if attempts[tenant] != ended {
			t.Errorf("tenant %s: %d attempts metered for %d jobs ended", tenant, attempts[tenant], ended)
		}
	}
	for tenant, n := range jobs {
		if fuel[tenant] >= int64(n)*spinFuel {
			t.Fatalf("tenant %s ran all its %d jobs: the queue was not saturated", tenant, n)
		}
	}
	return fuel
}

// Two tenants, one with a tenth of the other's fuel_rate, both with more
// CPU-bound jobs waiting than the workers can run, use fuel in that
// proportion: the rates are far above what two workers spend, so the
// token buckets never bind and fair share decides, weighing each tenant
// by its rate. 15 s of two workers run several hundred jobs, some
// fifty of them the smaller tenant's: its share is a whole number of
// jobs, so the check needs at least 40 of them (±2.5 % a job).
func TestFuelRatesShareTheWorkersInProportion(t *testing.T) {
	if testing.Short() || raceOn {
		t.Skip("runs 15 s of CPU-bound jobs")
	}
	st := newStore(t)
	r := spinNode(t, st, 2, func(c *runner.Config) {
		c.TenantFuelRate = map[string]float64{"big": 1e12, "small": 1e11}
	})
	fuel := spinFor(t, st, []*runner.Runner{r}, 15*time.Second, map[string]int{"big": 30000, "small": 10000})
	ratio := float64(fuel["big"]) / float64(fuel["small"])
	t.Logf("fuel used: big %d (%d jobs), small %d (%d jobs): ratio %.2f", fuel["big"], fuel["big"]/spinFuel, fuel["small"], fuel["small"]/spinFuel, ratio)
	if fuel["small"] < 40*spinFuel {
		t.Fatalf("the small tenant ran %d jobs: too few to measure a ratio", fuel["small"]/spinFuel)
	}
	if ratio < 9 || ratio > 11 {
		t.Fatalf("fuel ratio %.2f, want 10 ± 10%%", ratio)
	}
}

// A tenant whose fuel_rate is below what the workers could spend waits
// for its bucket: over 10 s it uses its burst plus 10 s of its rate, give
// or take the jobs running when the bucket ran dry (one a worker), while
// another tenant without a rate, beside it, uses the workers it leaves.
func TestATenantOverItsFuelRateWaits(t *testing.T) {
	if testing.Short() || raceOn {
		t.Skip("runs 10 s of CPU-bound jobs")
	}
	const rate, burst, workers = 4 * spinFuel, 2 * spinFuel, 2
	st := newStore(t)
	r := spinNode(t, st, workers, func(c *runner.Config) {
		c.TenantFuelRate = map[string]float64{"capped": rate}
		c.TenantFuelBurst = map[string]float64{"capped": burst}
	})
	d := 10 * time.Second
	fuel := spinFor(t, st, []*runner.Runner{r}, d, map[string]int{"capped": 1000, "free": 30000})
	want := burst + rate*d.Seconds()
	t.Logf("capped tenant used %d fuel (%d jobs) in %s at %d/s, burst %d: want %.0f; the free one %d jobs",
		fuel["capped"], fuel["capped"]/spinFuel, d, rate, burst, want, fuel["free"]/spinFuel)
	if got := float64(fuel["capped"]); got > want+workers*spinFuel || got < want-workers*spinFuel-rate /* a round late */ {
		t.Fatalf("capped tenant used %.0f fuel, want %.0f ± %d", got, want, workers*spinFuel)
	}
	if fuel["free"] < 2*fuel["capped"] {
		t.Fatalf("the tenant without a rate ran %d jobs beside the capped one's %d: it waited", fuel["free"]/spinFuel, fuel["capped"]/spinFuel)
	}
}

// On several nodes a fuel_rate holds for the tenant's work on all of
// them: the leader charges every node's attempts, from the finished
// events of their completions. Two nodes of one worker each on one
// PostgreSQL database; charged with its own workers' fuel only, the
// leader let the capped tenant use about twice its rate.
func TestAFuelRateHoldsForTheWorkOfEveryNode(t *testing.T) {
	if testing.Short() || raceOn {
		t.Skip("runs 10 s of CPU-bound jobs")
	}
	const rate, burst = 4 * spinFuel, 2 * spinFuel
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	open := func() store.Store {
		s, err := postgres.Open(ctx, dsn, true)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	capped := func(c *runner.Config) {
		c.Channels = "root:2" // the cluster's capacity: one worker on each node
		c.TenantFuelRate = map[string]float64{"capped": rate}
		c.TenantFuelBurst = map[string]float64{"capped": burst}
	}
	st := open()
	nodes := []*runner.Runner{spinNode(t, st, 1, capped), spinNode(t, open(), 1, capped)}
	d := 10 * time.Second
	fuel := spinFor(t, st, nodes, d, map[string]int{"capped": 1000, "free": 30000})
	want := burst + rate*d.Seconds()
	t.Logf("capped tenant used %d fuel on two nodes in %s at %d/s, burst %d: want %.0f", fuel["capped"], d, rate, burst, want)
	// Above the rate is the failure this test is for (61e6 when the
	// other node's fuel went uncharged). Below it, the two nodes' start-up
	// (a leader to elect, the module to compile on each) may take up to a
	// second or two of the ten: seen at 35e6 once in eight runs.
	if got := float64(fuel["capped"]); got > want+2*spinFuel || got < want-2*spinFuel-2*rate {
		t.Fatalf("capped tenant used %.0f fuel on two nodes, want %.0f (+%d, −%d)", got, want, 2*spinFuel, 2*spinFuel+2*rate)
	}
	// Both nodes ran the capped tenant's jobs (each ended
	// wasmq.FuelExhausted: failed): the follower's fuel was charged too,
	// not only absent.
	workers := map[string]int{}
	for page := ""; ; {
		res, err := st.List(ctx, store.Filter{Tenant: "capped", States: []abi.State{abi.StateFailed}, Limit: 500, Cursor: page})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range res.Jobs {
			workers[j.WorkerID]++
		}
		if page = res.NextCursor; page == "" {
			break
		}
	}
	t.Logf("capped jobs per worker: %v", workers)
	if len(workers) < 2 {
		t.Fatalf("the capped tenant's jobs ran on %d node(s), want both", len(workers))
	}
}
