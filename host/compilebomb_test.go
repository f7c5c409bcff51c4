package host

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/host/wasmgen"
)

// A module of a few hundred kilobytes could hold a node's compiler for
// minutes and gigabytes: wazero's time grows as the square of how deeply
// blocks nest (100,000 deep, 300 KB: 86 s) and of a br_table's targets
// (a million, 1 MB: 272 s and 2.5 GB), of the blocks, loops and
// branches in one function (10,000 empty loops, 30 KB: 35 s), with its
// loops times the square of the locals it uses (250 over 25,000, 110 KB:
// 37 s), and its memory with one function's instructions (8 MB: 2.8 GB;
// 43,000 call_indirects, 256 KB: 596 MB). Each shape is refused before wazero sees it, on
// upload as at load, naming what is too large; the same shapes within the
// bounds load and run.
func TestCompileBombsAreRefusedBeforeCompiling(t *testing.T) {
	many := make([][]byte, maxFunctions+1)
	for i := range many {
		many[i] = []byte{0x41, 0, 0x0b}
	}
	spread := make([][]byte, 100)
	for i := range spread {
		spread[i] = wasmgen.Nested(2000)
	}
	bombs := map[string]struct {
		wasm []byte
		says string
	}{
		"deep":         {wasmgen.Module(wasmgen.Nested(100000)), "blocks nested too deeply to compile in time"},
		"deep_spread":  {wasmgen.Module(spread...), "blocks nested too deeply to compile in time"},
		"wide_table":   {wasmgen.Module(wasmgen.BranchTables(1, 1000000)), "br_tables too large to compile in time"},
		"tables":       {wasmgen.Module(wasmgen.BranchTables(16, 20000)), "br_tables too large to compile in time"},
		"loops":        {wasmgen.Module(wasmgen.Loops(10000)), "too many blocks, loops and branches to compile in time"},
		"branches":     {wasmgen.Module(wasmgen.Branches(40000)), "too many blocks, loops and branches to compile in time"},
		"loop_locals":  {wasmgen.Module(wasmgen.WithLocals(25000, wasmgen.LoopsOverLocals(250, 100))), "too many locals used across too many loops"},
		"indirect":     {wasmgen.Module(wasmgen.IndirectCalls(43000)), "too many instructions to compile in bounded memory"},
		"big_function": {wasmgen.Module(wasmgen.Flat(2 << 20)), "bytes of code, more than the 1048576 one function may hold"},
		"functions":    {wasmgen.Module(many...), "100001 functions, more than the 100000 a module may define"},
	}
	dir := t.TempDir()
	for name, b := range bombs {
		if err := os.WriteFile(filepath.Join(dir, name+".wasm"), b.wasm, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var h *Host
	f := measure(t, func() { h = newTestHost(t, testConfig(dir)) })
	loaded := map[string]abi.ModuleInfo{}
	for _, m := range h.Modules("") {
		loaded[m.Name] = m
	}
	for name, b := range bombs {
		if m := loaded[name]; !strings.Contains(m.LoadError, b.says) {
			t.Errorf("%s (%d bytes): load error %q, want it to say %q", name, len(b.wasm), m.LoadError, b.says)
		}
		if _, err := h.Install("acme", name, b.wasm); !errors.Is(err, abi.ErrInvalid) || !strings.Contains(err.Error(), b.says) {
			t.Errorf("install %s: %v, want %v saying %q", name, err, abi.ErrInvalid, b.says)
		}
		if fileExists(filepath.Join(dir, "acme", name+".wasm")) {
			t.Errorf("install %s: the refused module was written", name)
		}
	}
	t.Logf("loading and installing them: %s", f)
	f.check(t, "loading and installing the bombs", 64<<20, 64<<20)

	// Within the bounds: as deep as esbuild's deepest function three times
	// over, a table twice its largest, a function five times its largest,
	// and five times the loops of swc's loopiest. They load and run.
	fine := map[string][]byte{
		"deep_ok":  wasmgen.Module(wasmgen.Nested(10000)),
		"table_ok": wasmgen.Module(wasmgen.BranchTables(1, 10000)),
		"big_ok":   wasmgen.Module(wasmgen.Flat(1<<20 - 16)),
		"loops_ok": wasmgen.Module(wasmgen.Loops(1000)),
	}
	for name, wasm := range fine {
		if _, err := h.Install("", name, wasm); err != nil {
			t.Errorf("install %s (%d bytes): %v", name, len(wasm), err)
			continue
		}
		if o := run(t, h, job(name+".run")); o.Kind != abi.OutcomeDone {
			t.Errorf("%s.run: %s %s %q", name, o.Kind, o.ExcName, o.ExcMessage)
		}
	}
}
