package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/host/wasmgen"
)

// footprint is what some work cost the process: Go heap bytes allocated
// (TotalAlloc counts them even once freed) and how far the resident set
// rose above where it was (the kernel's peak-RSS mark, reset first).
type footprint struct {
	alloc uint64
	rss   int64 // bytes; -1 where /proc/self is not Linux's
}

func (f footprint) String() string {
	return fmt.Sprintf("Go heap allocated %.1f MiB, peak RSS +%.1f MiB", float64(f.alloc)/(1<<20), float64(f.rss)/(1<<20))
}

func measure(t *testing.T, work func()) footprint {
	t.Helper()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rss0 := resetPeakRSS(t)
	work()
	runtime.ReadMemStats(&after)
	f := footprint{alloc: after.TotalAlloc - before.TotalAlloc, rss: -1}
	if rss0 >= 0 {
		f.rss = procStatusKB(t, "VmHWM") - rss0
	}
	return f
}

// resetPeakRSS resets VmHWM to the current RSS (Linux: clear_refs 5) and
// returns it, or -1 off Linux.
func resetPeakRSS(t *testing.T) int64 {
	t.Helper()
	if runtime.GOOS != "linux" {
		return -1
	}
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatalf("reset the peak RSS mark: %v", err)
	}
	return procStatusKB(t, "VmHWM")
}

func procStatusKB(t *testing.T, key string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return n << 10
		}
	}
	t.Fatalf("no %s in /proc/self/status", key)
	return 0
}

func (f footprint) check(t *testing.T, what string, maxAlloc uint64, maxRSS int64) {
	t.Helper()
	if f.alloc > maxAlloc {
		t.Errorf("%s: %s, want at most %d MiB allocated", what, f, maxAlloc>>20)
	}
	if f.rss > maxRSS {
		t.Errorf("%s: %s, want a peak RSS rise of at most %d MiB", what, f, maxRSS>>20)
	}
}

// A table.grow past host.table_limit ends the attempt at once with
// wasmq.MemoryLimit, whatever the delta, and never allocates the table:
// wazero has no table limit and grows a table in one Go call that no
// deadline interrupts (130 million entries: 1 GiB, seconds). Three at
// once, as on the bad day.
func TestTableGrowPastTheLimitEndsAtOnce(t *testing.T) {
	const timeout = 2 * time.Second
	dir := t.TempDir()
	for _, m := range []string{"table_bomb", "table_steps"} {
		copyFile(t, filepath.Join(examplesDir, "hostile", m+".wasm"), filepath.Join(dir, m+".wasm"))
	}
	copyFile(t, "testdata/kit.wasm", filepath.Join(dir, "kit.wasm"))
	cfg := testConfig(dir)
	cfg.Timeout = abi.Duration(timeout)
	h := newTestHost(t, cfg)
	for _, m := range []string{"table_bomb", "table_steps"} {
		t.Run(m, func(t *testing.T) {
			var slowest time.Duration
			var mu sync.Mutex
			f := measure(t, func() {
				var wg sync.WaitGroup
				for range 3 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						start := time.Now()
						o := run(t, h, job(m+".run"))
						took := time.Since(start)
						mu.Lock()
						slowest = max(slowest, took)
						mu.Unlock()
						if raceEnabled && m == "table_steps" && o.ExcName == abi.ExcTimeout {
							return // the grows below the limit outlasted the timeout
						}
						if o.Kind != abi.OutcomeSandbox || o.ExcName != abi.ExcMemoryLimit || !strings.Contains(o.ExcMessage, "host.table_limit") {
							t.Errorf("got %s %s %q, want %s naming host.table_limit", o.Kind, o.ExcName, o.ExcMessage, abi.ExcMemoryLimit)
						}
					}()
				}
				wg.Wait()
			})
			t.Logf("3 at once: slowest ended after %s; %s", slowest, f)
			margin := 100 * time.Millisecond
			if raceEnabled { // the detector slows the interruption's path tenfold
				margin = time.Second
			}
			if slowest > timeout+margin {
				t.Errorf("slowest ended after %s, want within the %s timeout plus %s", slowest, timeout, margin)
			}
			// Each table may reach the limit (8 MiB), copied as it grows:
			// tens of MiB, where the bad day took GiBs.
			f.check(t, "3 at once", 256<<20, 256<<20)
		})
	}
	if o := run(t, h, job("kit.echo")); o.Kind != abi.OutcomeDone {
		t.Errorf("the host stopped serving: %+v", o)
	}
}

// A loop of table.grow under the limit still ends at its deadline: the
// guard checks it before every grow, not only every checkEvery loop
// iterations.
func TestTableGrowsStopAtTheDeadline(t *testing.T) {
	const timeout = 100 * time.Millisecond
	dir := t.TempDir()
	copyFile(t, filepath.Join(examplesDir, "hostile", "table_steps.wasm"), filepath.Join(dir, "table_steps.wasm"))
	cfg := testConfig(dir)
	cfg.Timeout = abi.Duration(timeout)
	cfg.TableLimit = 1 << 24 // 168 grows of 100,000 entries, each copying the table
	h := newTestHost(t, cfg)
	start := time.Now()
	o := run(t, h, job("table_steps.run"))
	took := time.Since(start)
	if o.Kind != abi.OutcomeSandbox || o.ExcName != abi.ExcTimeout {
		t.Fatalf("got %s %s %q, want %s", o.Kind, o.ExcName, o.ExcMessage, abi.ExcTimeout)
	}
	t.Logf("ended after %s", took)
	// Unstopped, the grows take seconds (5.6 s on the development
	// machine). The margin is one grow's copy of a table of up to 16M
	// entries, which a busy machine stretches past 100 ms.
	const margin = 500 * time.Millisecond
	if took > timeout+margin && !raceEnabled {
		t.Errorf("ended after %s, want within the %s timeout plus %s", took, timeout, margin)
	}
}

// A table may grow up to host.table_limit entries; the grow that would
// pass it is the one stopped.
func TestTableGrowsUpToTheLimit(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, filepath.Join(examplesDir, "hostile", "table_steps.wasm"), filepath.Join(dir, "table_steps.wasm"))
	cfg := testConfig(dir)
	cfg.TableLimit = 250001 // the table starts with 1 entry and grows 100,000 at a time
	h := newTestHost(t, cfg)
	o := run(t, h, job("table_steps.run"))
	if o.Kind != abi.OutcomeSandbox || o.ExcName != abi.ExcMemoryLimit || !strings.Contains(o.ExcMessage, "from 200001 by 100000 entries") {
		t.Fatalf("got %s %s %q, want the grow from 200001 entries stopped", o.Kind, o.ExcName, o.ExcMessage)
	}
}

// A module that could never run (its memory or a table starts over the
// limit) is refused when it is loaded, uploaded or checked, naming the
// key, instead of loading fine and failing every job.
func TestModulesThatCouldNeverRunAreRefusedAtLoad(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"oversized_table":  filepath.Join(examplesDir, "hostile", "oversized_table.wasm"),
		"oversized_memory": filepath.Join(examplesDir, "hostile", "oversized_memory.wasm"),
		"bigmem":           "testdata/bigmem.wasm", // 4 GiB, unexported
		"mem32mib":         "testdata/mem32mib.wasm",
		"kit":              "testdata/kit.wasm",
	}
	for name, src := range files {
		copyFile(t, src, filepath.Join(dir, name+".wasm"))
	}
	cfg := testConfig(dir) // memory_limit 16 MiB
	var h *Host
	f := measure(t, func() { h = newTestHost(t, cfg) })
	want := map[string]string{
		"oversized_table":  "table 0 starts with 130000000 entries, over host.table_limit of 1048576",
		"oversized_memory": "memory starts at 4GiB, over host.memory_limit of 16MiB",
		"bigmem":           "memory starts at 4GiB, over host.memory_limit of 16MiB",
		"mem32mib":         "memory starts at 32MiB, over host.memory_limit of 16MiB",
	}
	loaded := map[string]abi.ModuleInfo{}
	for _, m := range h.Modules("") {
		loaded[m.Name] = m
	}
	for name, msg := range want {
		if m := loaded[name]; !strings.Contains(m.LoadError, msg) {
			t.Errorf("%s: load error %q, want it to say %q", name, m.LoadError, msg)
		}
		if o := run(t, h, job(name+".run")); o.Kind != abi.OutcomeFailed || o.ExcName != abi.ExcPluginInvalid || !strings.Contains(o.ExcMessage, msg) {
			t.Errorf("%s: run got %s %s %q", name, o.Kind, o.ExcName, o.ExcMessage)
		}
	}
	if m := loaded["kit"]; m.LoadError != "" {
		t.Errorf("kit: %s", m.LoadError)
	}
	t.Logf("loading them: %s", f)
	f.check(t, "loading", 64<<20, 128<<20)

	// Under the host's limit, but over the function's own.
	fnDir := t.TempDir()
	copyFile(t, "testdata/mem32mib.wasm", filepath.Join(fnDir, "mem32_fn.wasm"))
	writeFile(t, filepath.Join(fnDir, "mem32_fn.toml"), "[functions.run]\nmemory_limit = \"8MiB\"\n")
	fnCfg := testConfig(fnDir)
	fnCfg.MemoryLimit = 64 << 20
	const fnMsg = "functions.run.memory_limit of 8MiB is below the 32MiB the module's memory starts with"
	if m := newTestHost(t, fnCfg).Modules("")[0]; !strings.Contains(m.LoadError, fnMsg) {
		t.Errorf("mem32_fn: load error %q, want it to say %q", m.LoadError, fnMsg)
	}

	// Upload: refused before anything is written.
	for name, src := range files {
		if name == "kit" {
			continue
		}
		wasm, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		_, err = h.Install("acme", "up_"+name, wasm)
		if !errors.Is(err, abi.ErrInvalid) || !strings.Contains(err.Error(), want[name]) {
			t.Errorf("install %s: %v, want %v saying %q", name, err, abi.ErrInvalid, want[name])
		}
		if fileExists(filepath.Join(dir, "acme", "up_"+name+".wasm")) {
			t.Errorf("install %s: the refused module was written", name)
		}
	}

	// plugins check, with the defaults (memory_limit 256 MiB): 32 MiB passes.
	for _, c := range []struct{ path, msg string }{
		{files["oversized_table"], "over host.table_limit"},
		{files["oversized_memory"], "memory starts at 4GiB, over host.memory_limit of 256MiB"},
		{files["bigmem"], "memory starts at 4GiB, over host.memory_limit of 256MiB"},
		{filepath.Join(fnDir, "mem32_fn.wasm"), fnMsg},
	} {
		_, errs := CheckFile(c.path)
		if !strings.Contains(fmt.Sprint(errs), c.msg) {
			t.Errorf("CheckFile(%s) = %v, want it to say %q", c.path, errs, c.msg)
		}
	}
	if _, errs := CheckFile(files["mem32mib"]); len(errs) != 0 {
		t.Errorf("CheckFile(mem32mib) = %v, want it accepted under the default memory_limit", errs)
	}
	// With the node's own limits, what that node would refuse.
	if _, errs := CheckFileWith(Config{MemoryLimit: 16 << 20}, files["mem32mib"]); !strings.Contains(fmt.Sprint(errs), "over host.memory_limit of 16MiB") {
		t.Errorf("CheckFileWith(memory_limit 16MiB, mem32mib) = %v, want it refused naming host.memory_limit", errs)
	}
}

// A module of a few dozen bytes that claims a huge length is refused
// before wazero decodes it: wazero allocates what a length claims first
// (4G parameters ended the process out of memory, a 4 GiB data segment
// took 35 s and 4 GiB of RSS), and an upload would do it.
func TestModulesThatClaimHugeLengthsAreRefusedCheaply(t *testing.T) {
	h := newTestHost(t, testConfig(t.TempDir()))
	for name, msg := range map[string]string{
		"lie_locals":  "more than 50000 locals in one function",
		"lie_params":  "type 0 claims 4294967295 value types",
		"lie_funcs":   "4294967295 entries claimed in 5 bytes",
		"lie_data":    "a data segment claims 4294967295 bytes",
		"lie_modname": "the module name",
	} {
		wasm, err := os.ReadFile("testdata/" + name + ".wasm")
		if err != nil {
			t.Fatal(err)
		}
		var took time.Duration
		f := measure(t, func() {
			start := time.Now()
			_, err = h.Install("", name, wasm)
			took = time.Since(start)
		})
		if !errors.Is(err, abi.ErrInvalid) || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: %v, want %v saying %q", name, err, abi.ErrInvalid, msg)
		}
		if took > 100*time.Millisecond {
			t.Errorf("%s: refused after %s, want at once", name, took)
		}
		f.check(t, name, 16<<20, 64<<20)
		if _, errs := CheckFile("testdata/" + name + ".wasm"); !strings.Contains(fmt.Sprint(errs), msg) {
			t.Errorf("CheckFile(%s) = %v, want it to say %q", name, errs, msg)
		}
	}
}

// The guard sits before every table.grow of every table, and leaves the
// module otherwise as it was: the committed hostile modules instrument to
// binaries wazero accepts.
func TestInstrumentGuardsEveryTableGrow(t *testing.T) {
	wasm, err := os.ReadFile(filepath.Join(examplesDir, "hostile", "table_steps.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	inst, err := instrument(wasm)
	if err != nil {
		t.Fatal(err)
	}
	// table.size 0; call grow (function index 1: after the check import).
	guard := []byte{0x41, 0x00, 0xfc, 0x10, 0x00, 0x10, 0x01, 0xfc, 0x0f, 0x00}
	if n := bytes.Count(inst, guard); n != 1 {
		t.Errorf("%d guarded table.grow, want 1", n)
	}
	rt, inst := instrumentedRuntime(t, filepath.Join(examplesDir, "hostile", "table_bomb.wasm"))
	mod, err := rt.Instantiate(context.Background(), inst)
	if err != nil {
		t.Fatal(err)
	}
	_, err = mod.ExportedFunction("run").Call(context.Background())
	if err == nil || !strings.Contains(err.Error(), "host.table_limit") {
		t.Errorf("table_bomb outside a job: %v, want the default table limit", err)
	}
}

// shapeOf never panics, and reads every module wazero accepts. wazero only
// sees what passes instrument and the length checks, as in the host.
func FuzzShapeOf(f *testing.F) {
	for _, p := range []string{"testdata/kit.wasm", "testdata/renumber.wasm", "testdata/bigmem.wasm", "testdata/mem32mib.wasm",
		filepath.Join(examplesDir, "hostile", "oversized_table.wasm"), filepath.Join(examplesDir, "hostile", "table_steps.wasm")} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	f.Fuzz(func(t *testing.T, wasm []byte) {
		s, err := shapeOf(wasm)
		if errors.Is(err, errOverclaim) {
			return // wazero would allocate what is claimed, then refuse
		}
		if _, ierr := instrument(wasm); ierr != nil {
			return // the host never compiles it
		}
		cm, cerr := rt.CompileModule(ctx, wasm)
		if cerr != nil {
			return
		}
		defer cm.Close(ctx)
		if err != nil {
			t.Fatalf("wazero accepts the module, shapeOf does not: %v", err)
		}
		for _, m := range cm.ExportedMemories() {
			if uint64(m.Min())*wasmPage > s.memMin {
				t.Fatalf("memory starts at %d pages, shapeOf says %d bytes", m.Min(), s.memMin)
			}
		}
	})
}

// Idle instances keep the memory their last job grew, for the next job.
// Pools were bounded in count only: six jobs of a module that grew its
// memory to 32 MiB left 192 MiB idle after they ended (a node of 100
// workers: 3.2 GiB a module). Now the idle instances of every pool hold
// at most host.pool_memory together; pooling one more closes the one
// pooled longest ago, of any module, and an instance larger than the
// whole budget is not pooled.
func TestIdleInstancesHoldAtMostPoolMemory(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MemoryLimit, cfg.Timeout, cfg.PoolMemory = 128<<20, abi.Duration(60e9), 100<<20
	cfg.RecycleMemory = 256 << 20 // the budget decides, not the recycling mark
	h := newTestHost(t, cfg)
	h.SetPoolSize(16)
	for name, wasm := range map[string][]byte{
		"hoard": wasmgen.Module(wasmgen.Hoard(512)), "small": wasmgen.Module(wasmgen.Hoard(128)), "huge": wasmgen.Module(wasmgen.Hoard(2048)),
	} {
		if _, err := h.Install("", name, wasm); err != nil {
			t.Fatal(err)
		}
	}
	idle := func(after string, instances int, mib uint64) {
		t.Helper()
		if st := h.Stats(); st.IdleInstances != instances || st.IdleBytes != mib<<20 {
			t.Errorf("after %s: %d idle instances holding %d bytes, want %d holding %d MiB (pool_memory: 100 MiB)", after, st.IdleInstances, st.IdleBytes, instances, mib)
		}
	}
	// Six tenants, so six instances whatever the timing (one tenant's
	// jobs could take turns on one instance, which grows again for each).
	for i := range 6 {
		if o := run(t, h, tenantJob(fmt.Sprint("t", i), "hoard.run")); o.Kind != abi.OutcomeDone {
			t.Errorf("hoard.run: %s %s %q", o.Kind, o.ExcName, o.ExcMessage)
		}
	}
	idle("six jobs of 32 MiB", 3, 96)
	for _, fn := range []string{"small.run", "huge.run"} {
		if o := run(t, h, job(fn)); o.Kind != abi.OutcomeDone {
			t.Fatalf("%s: %s %s %q", fn, o.Kind, o.ExcName, o.ExcMessage)
		}
	}
	idle("a job of 8 MiB (the oldest of 32 closed) and one of 128 (larger than the budget)", 3, 2*32+8)
	// What was evicted is made again when needed, and runs.
	for range 3 {
		if o := run(t, h, job("hoard.run")); o.Kind != abi.OutcomeDone {
			t.Errorf("hoard.run after the evictions: %+v", o)
		}
	}
}
