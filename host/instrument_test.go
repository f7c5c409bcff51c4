package host

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
)

func TestInstrumentedModuleBehavesTheSameAndIsInterruptible(t *testing.T) {
	wasm, err := os.ReadFile("testdata/fib.wasm")
	if err != nil {
		t.Fatal(err)
	}
	inst, err := instrument(wasm)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(true))
	defer rt.Close(ctx)
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
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := mod.ExportedFunction("fib").Call(cctx, 60); err == nil {
		t.Fatal("fib(60) finished?")
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("interrupted after %s, want about 100ms", took)
	}
}

func TestInstrumentRefusesGarbage(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("not wasm"), []byte("\x00asm\x01\x00\x00\x00\x0a\xff")} {
		if _, err := instrument(b); err == nil {
			t.Errorf("instrument(%q) succeeded", b)
		}
	}
}
