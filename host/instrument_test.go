package host

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/sys"
)

func TestInstrumentedModuleBehavesTheSameAndIsInterruptible(t *testing.T) {
	ctx := context.Background()
	rt, inst := instrumentedRuntime(t, "testdata/fib.wasm")
	mod, err := rt.Instantiate(ctx, inst)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := mod.ExportedFunction("g").Call(ctx); err != nil || r[0] != 5 {
		t.Errorf("existing global: %v %v", r, err)
	}
	if r, err := mod.ExportedFunction("fib").Call(ctx, 20); err != nil || r[0] != 6765 {
		t.Errorf("fib(20) = %v %v", r, err)
	}
	if r, err := mod.ExportedFunction("count").Call(ctx, 100000); err != nil || r[0] != 100000 {
		t.Errorf("count(100000) = %v %v", r, err)
	}
	for _, c := range []struct {
		fn  string
		arg uint64
	}{{"fib", 60}, {"count", 1 << 31}} {
		cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		start := time.Now()
		_, err := mod.ExportedFunction(c.fn).Call(cctx, c.arg)
		cancel()
		var ee *sys.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != sys.ExitCodeDeadlineExceeded {
			t.Fatalf("%s(%d): %v, want a deadline exit", c.fn, c.arg, err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("%s interrupted after %s, want about 100ms", c.fn, took)
		}
	}
}

// The renumbering around the new import keeps every function reference:
// exports, the start function, calls, tables (call_indirect), ref.func and
// the names shown in traps.
func TestInstrumentRenumbersFunctions(t *testing.T) {
	ctx := context.Background()
	rt, inst := instrumentedRuntime(t, "testdata/renumber.wasm")
	if _, err := rt.NewHostModuleBuilder("env").NewFunctionBuilder().
		WithFunc(func(x int32) int32 { return x * 10 }).Export("times10").Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	mod, err := rt.Instantiate(ctx, inst)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]uint64{"started": 1, "direct": 42, "indirect": 7, "reffunc": 9, "imported": 30} {
		if r, err := mod.ExportedFunction(name).Call(ctx); err != nil || r[0] != want {
			t.Errorf("%s() = %v %v, want %d", name, r, err, want)
		}
	}
	_, err = mod.ExportedFunction("boom").Call(ctx)
	if err == nil || !strings.Contains(err.Error(), ".explode()") {
		t.Errorf("trap names %v, want .explode()", err)
	}
}

func TestInstrumentRefusesGarbage(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("not wasm"), []byte("\x00asm\x01\x00\x00\x00\x0a\xff")} {
		if _, err := instrument(b); err == nil {
			t.Errorf("instrument(%q) succeeded", b)
		}
	}
}

// instrument never panics, and what wazero accepts it keeps acceptable.
func FuzzInstrument(f *testing.F) {
	for _, p := range []string{"testdata/fib.wasm", "testdata/kit.wasm", "testdata/renumber.wasm", "testdata/scribble.wasm",
		"testdata/startloop.wasm", "testdata/initloop.wasm", "testdata/bigmem.wasm"} {
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
		inst, err := instrument(wasm)
		if err != nil {
			return
		}
		if _, err := shapeOf(wasm); err != nil {
			return // e.g. a length wazero would allocate before refusing
		}
		cm, err := rt.CompileModule(ctx, wasm)
		if err != nil {
			return
		}
		cm.Close(ctx)
		cm, err = rt.CompileModule(ctx, inst)
		if err != nil {
			t.Fatalf("wazero accepts the module but not its instrumented copy: %v", err)
		}
		cm.Close(ctx)
	})
}

// instrumentedRuntime instruments a test module and gives a runtime that
// provides its check import; the runtime closes with the test.
func instrumentedRuntime(t *testing.T, file string) (wazero.Runtime, []byte) {
	t.Helper()
	wasm, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := instrument(wasm)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	t.Cleanup(func() { rt.Close(ctx) })
	if _, err := instantiateCheckModule(ctx, rt); err != nil {
		t.Fatal(err)
	}
	return rt, inst
}
