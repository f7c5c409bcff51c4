package host

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmq/wasmq/abi"
)

// bombModule is a module exporting "run" () -> i32 and a memory, whose
// functions have the given bodies (instructions, ending with the value and
// the function's end): the shapes a compile bomb takes are written here,
// in the open, rather than committed as binaries.
func bombModule(bodies ...[]byte) []byte {
	vec := func(items ...[]byte) []byte {
		out := appendULEB(nil, uint64(len(items)))
		for _, it := range items {
			out = append(out, it...)
		}
		return out
	}
	section := func(id byte, payload []byte) []byte {
		return append(appendULEB([]byte{id}, uint64(len(payload))), payload...)
	}
	name := func(s string) []byte { return append(appendULEB(nil, uint64(len(s))), s...) }
	funcs, codes := make([][]byte, len(bodies)), make([][]byte, len(bodies))
	for i, b := range bodies {
		funcs[i] = []byte{0} // type 0
		entry := b
		if len(b) == 0 || b[0] != localsDeclared {
			entry = append([]byte{0}, b...) // no locals
		}
		codes[i] = append(appendULEB(nil, uint64(len(entry))), entry...)
	}
	m := []byte("\x00asm\x01\x00\x00\x00")
	m = append(m, section(1, vec([]byte{0x60, 0, 1, 0x7f}))...)
	m = append(m, section(3, vec(funcs...))...)
	m = append(m, section(5, vec([]byte{0, 1}))...)
	m = append(m, section(7, vec(append(name("run"), 0, 0), append(name("memory"), 2, 0)))...)
	return append(m, section(10, vec(codes...))...)
}

// localsDeclared marks a body that starts with its local declarations:
// one group (no code starts with 0x01, nop, in these helpers).
const localsDeclared = 0x01

// withLocals is code in a function of n i32 locals.
func withLocals(n int, code []byte) []byte {
	b := append(appendULEB([]byte{localsDeclared}, uint64(n)), 0x7f)
	return append(b, code...)
}

// loopsOverLocals is n loops in a row, each reading its own per locals.
func loopsOverLocals(n, per int) []byte {
	var b []byte
	for i := range n {
		b = append(b, 0x03, 0x40)
		for j := range per {
			b = appendULEB(append(b, 0x20), uint64(i*per+j))
			b = append(b, 0x1a)
		}
		b = append(b, 0x0b)
	}
	return append(b, 0x41, 0, 0x0b)
}

// indirectCalls is n call_indirects through table 0.
func indirectCalls(n int) []byte {
	return append(bytes.Repeat([]byte{0x41, 0, 0x11, 0, 0, 0x1a}, n), 0x41, 0, 0x0b)
}

// nested is depth blocks, one in the other, around nothing.
func nested(depth int) []byte {
	b := bytes.Repeat([]byte{0x02, 0x40}, depth)
	b = append(b, bytes.Repeat([]byte{0x0b}, depth)...)
	return append(b, 0x41, 0, 0x0b)
}

// branchTables is n br_tables of targets entries each, all to one block.
func branchTables(n, targets int) []byte {
	one := append([]byte{0x02, 0x40, 0x41, 0, 0x0e}, appendULEB(nil, uint64(targets))...)
	one = append(one, make([]byte, targets+1)...)
	one = append(one, 0x0b)
	return append(bytes.Repeat(one, n), 0x41, 0, 0x0b)
}

// loops is n empty loops in a row.
func loops(n int) []byte {
	return append(bytes.Repeat([]byte{0x03, 0x40, 0x0b}, n), 0x41, 0, 0x0b)
}

// branches is n blocks in a row, each left by a br_if.
func branches(n int) []byte {
	return append(bytes.Repeat([]byte{0x02, 0x40, 0x41, 1, 0x0d, 0, 0x0b}, n), 0x41, 0, 0x0b)
}

// flat is about size bytes of i32 additions in one function.
func flat(size int) []byte {
	b := append([]byte{0x41, 1}, bytes.Repeat([]byte{0x41, 1, 0x6a}, size/3)...)
	return append(b, 0x1a, 0x41, 0, 0x0b) // drop, 0
}

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
		spread[i] = nested(2000)
	}
	bombs := map[string]struct {
		wasm []byte
		says string
	}{
		"deep":         {bombModule(nested(100000)), "blocks nested too deeply to compile in time"},
		"deep_spread":  {bombModule(spread...), "blocks nested too deeply to compile in time"},
		"wide_table":   {bombModule(branchTables(1, 1000000)), "br_tables too large to compile in time"},
		"tables":       {bombModule(branchTables(16, 20000)), "br_tables too large to compile in time"},
		"loops":        {bombModule(loops(10000)), "too many blocks, loops and branches to compile in time"},
		"branches":     {bombModule(branches(40000)), "too many blocks, loops and branches to compile in time"},
		"loop_locals":  {bombModule(withLocals(25000, loopsOverLocals(250, 100))), "too many locals used across too many loops"},
		"indirect":     {bombModule(indirectCalls(43000)), "too many instructions to compile in bounded memory"},
		"big_function": {bombModule(flat(2 << 20)), "bytes of code, more than the 1048576 one function may hold"},
		"functions":    {bombModule(many...), "100001 functions, more than the 100000 a module may define"},
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
		"deep_ok":  bombModule(nested(10000)),
		"table_ok": bombModule(branchTables(1, 10000)),
		"big_ok":   bombModule(flat(1<<20 - 16)),
		"loops_ok": bombModule(loops(1000)),
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
