package host

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/tetratelabs/wazero"
	"github.com/wasmq/wasmq/abi"
)

// benchModules are the modules benchmarked: a small and a big one. The
// example plugins are used when they are built.
func benchModules(b *testing.B) map[string]string {
	mods := map[string]string{"small-kit": "testdata/kit.wasm"}
	for name, path := range map[string]string{
		"small-testkit": "../plugins/examples/testkit/testkit.wasm",
		"big-go":        goExamplePath(),
	} {
		if _, err := os.Stat(path); err == nil {
			mods[name] = path
		}
	}
	// Any other Extism module with an `echo` export, e.g. a local build.
	if p := os.Getenv("WASMQ_BENCH_BIG"); p != "" {
		mods["big-env"] = p
	}
	return mods
}

func BenchmarkCompile(b *testing.B) {
	for name, path := range benchModules(b) {
		wasm, err := os.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name+"/cold", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				h := &Host{cfg: Config{}.WithDefaults(), codes: map[string]*compiled{}, log: zerolog.Nop()}
				h.cfg.CacheDir = ""
				if err := h.startRuntime(context.Background()); err != nil {
					b.Fatal(err)
				}
				if _, err := h.compile(context.Background(), wasm); err != nil {
					b.Fatal(err)
				}
				h.rt.Close(context.Background())
			}
		})
		b.Run(name+"/from-cache", func(b *testing.B) {
			cache := b.TempDir()
			for i := -1; i < b.N; i++ { // the first round fills the cache
				if i == 0 {
					b.ResetTimer()
				}
				h := &Host{cfg: Config{}.WithDefaults(), codes: map[string]*compiled{}, log: zerolog.Nop()}
				h.cfg.CacheDir = cache
				if err := h.startRuntime(context.Background()); err != nil {
					b.Fatal(err)
				}
				if _, err := h.compile(context.Background(), wasm); err != nil {
					b.Fatal(err)
				}
				h.rt.Close(context.Background())
			}
		})
	}
}

func benchFunc(name string) string {
	switch name {
	case "small-kit":
		return "version"
	case "small-testkit", "big-go", "big-env":
		return "echo"
	}
	return ""
}

// BenchmarkRun measures Host.Run end to end (input document, instance,
// call, outcome) with a fresh instance per job and with a pooled one.
func BenchmarkRun(b *testing.B) {
	for name, path := range benchModules(b) {
		for _, iso := range []string{IsolationFresh, IsolationPooled} {
			b.Run(name+"/"+iso, func(b *testing.B) {
				dir := b.TempDir()
				copyFile(b, path, filepath.Join(dir, "m.wasm"))
				cfg := testConfig(dir)
				cfg.Isolation = iso
				h := newTestHost(b, cfg)
				j := job("m." + benchFunc(name))
				j.Args, j.Kwargs, j.Context = jsonRaw(`["x"]`), jsonRaw(`{}`), jsonRaw(`{}`)
				if o := h.Run(context.Background(), j); o.Kind != abi.OutcomeDone {
					b.Fatalf("%+v", o)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if o := h.Run(context.Background(), j); o.Kind != abi.OutcomeDone {
						b.Fatalf("%+v", o)
					}
				}
			})
		}
	}
}

// BenchmarkEntryLoop measures what termination checks cost: fib(20) is
// 21,891 calls and no loop, count(100000) 100,000 loop iterations and no
// call. "plain" has no check (and cannot be interrupted), "wazero" is
// wazero's WithCloseOnContextDone, "countdown" is instrument().
func BenchmarkEntryLoop(b *testing.B) {
	wasm, err := os.ReadFile("testdata/fib.wasm")
	if err != nil {
		b.Fatal(err)
	}
	inst, err := instrument(wasm)
	if err != nil {
		b.Fatal(err)
	}
	for _, v := range []struct {
		name      string
		code      []byte
		closeOnCD bool
	}{{"plain", wasm, false}, {"wazero", wasm, true}, {"countdown", inst, false}} {
		for _, fn := range []struct {
			name string
			arg  uint64
		}{{"fib", 20}, {"count", 100000}} {
			b.Run(fn.name+"/"+v.name, func(b *testing.B) {
				ctx := context.Background()
				rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(v.closeOnCD))
				defer rt.Close(ctx)
				if _, err := instantiateCheckModule(ctx, rt); err != nil {
					b.Fatal(err)
				}
				mod, err := rt.Instantiate(ctx, v.code)
				if err != nil {
					b.Fatal(err)
				}
				f := mod.ExportedFunction(fn.name)
				cctx, cancel := context.WithTimeout(ctx, time.Hour)
				defer cancel()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := f.Call(cctx, fn.arg); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestRecursionIsInterruptedAndDoesNotStallTheGC: without instrument() a
// loop-free recursion runs past its deadline and a GC waits for it.
func TestRecursionIsInterruptedAndDoesNotStallTheGC(t *testing.T) {
	h, _ := kitHost(t, "[functions.recurse]\ntimeout = \"200ms\"\n")
	done := make(chan abi.Outcome, 1)
	start := time.Now()
	go func() { done <- run(t, h, job("kit.recurse")) }()
	time.Sleep(50 * time.Millisecond) // let the guest get going
	gcStart := time.Now()
	runtime.GC()
	gcTook := time.Since(gcStart)
	o := <-done
	if o.ExcName != abi.ExcTimeout {
		t.Fatalf("got %s %s", o.Kind, o.ExcName)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("recursion stopped after %s, want about 200ms", took)
	}
	if gcTook > 500*time.Millisecond {
		t.Errorf("a GC during the recursion took %s", gcTook)
	}
	t.Logf("stopped after %s; GC during the guest took %s", time.Since(start), gcTook)
}

func jsonRaw(s string) []byte { return []byte(s) }

// goExamplePath is where the Go example plugin is built.
func goExamplePath() string {
	matches, _ := filepath.Glob("../plugins/examples/go*/*.wasm")
	if len(matches) > 0 {
		return matches[0]
	}
	return "../plugins/examples/go/go.wasm"
}

// BenchmarkRecording measures what each recording policy costs a pooled
// call that reads the world: testkit's sleep with ms = 0 reads
// wasmq_now_v1 twice and sleeps once, three taped calls. Under
// "failures" the attempt ends done and its tape is dropped; under "all"
// it is kept.
func BenchmarkRecording(b *testing.B) {
	path := "../plugins/examples/testkit/testkit.wasm"
	for _, policy := range []string{abi.RecordOff, abi.RecordFailures, abi.RecordAll} {
		b.Run(policy, func(b *testing.B) {
			dir := b.TempDir()
			copyFile(b, path, filepath.Join(dir, "m.wasm"))
			cfg := testConfig(dir)
			cfg.Record = policy
			h := newTestHost(b, cfg)
			j := job("m.sleep")
			j.Args, j.Kwargs, j.Context = jsonRaw(`[]`), jsonRaw(`{"ms":0}`), jsonRaw(`{}`)
			if o := h.Run(context.Background(), j); o.Kind != abi.OutcomeDone || (o.Record != nil) != (policy == abi.RecordAll) {
				b.Fatalf("%+v", o)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if o := h.Run(context.Background(), j); o.Kind != abi.OutcomeDone {
					b.Fatalf("%+v", o)
				}
			}
		})
	}
}
