package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// instrument returns a copy of a wasm binary in which every function entry
// and every loop header counts down a new mutable global and, every
// checkEvery times, calls a new import, wasmq:internal.check, which ends
// the call when its context is done; and every table.grow first calls a
// second new import, wasmq:internal.table_grow, which ends the call when
// the table would grow past host.table_limit (limits.go).
//
// Why: the guest must stop at its deadline, and while native code runs the
// Go GC cannot stop the world, so a guest that never calls out stalls the
// whole process. wazero's own answer, WithCloseOnContextDone, calls out to
// Go (~50 ns) at every loop iteration, and not at function entries, so
// loop-free recursion escapes it: byte loops such as a Rust memcpy spent
// more time in that check than in their body (half of a pooled Rust call).
// Counting down in the guest costs a few instructions per iteration and
// catches recursion too (docs/benchmarks.md has the costs).
//
// The two imports are the last imported functions, so every defined
// function's index moves up by two: calls, ref.func, exports, the start
// function, element segments and the name section are renumbered to match.
// Type and global indices are untouched (the new types and global are the
// last ones).
func instrument(wasm []byte) ([]byte, error) {
	if len(wasm) < 8 || !bytes.Equal(wasm[:4], []byte("\x00asm")) {
		return nil, errors.New("not a WebAssembly binary (bad magic)")
	}
	type section struct {
		id   byte
		body []byte
	}
	var secs []section
	for p := 8; p < len(wasm); {
		id := wasm[p]
		size, n, err := readULEB(wasm, p+1)
		if err != nil {
			return nil, fmt.Errorf("section at byte %d: %w", p, err)
		}
		start := p + 1 + n
		end := start + int(size)
		if end > len(wasm) || end < start {
			return nil, fmt.Errorf("section %d at byte %d runs past the end", id, p)
		}
		secs = append(secs, section{id, wasm[start:end]})
		p = end
	}
	var rw rewriter
	var types, globals uint64
	for _, s := range secs {
		var err error
		switch s.id {
		case 1:
			types, _, err = readULEB(s.body, 0)
		case 2:
			rw.importedFuncs, globals, err = countImports(s.body)
		}
		if err != nil {
			return nil, fmt.Errorf("section %d: %w", s.id, err)
		}
	}
	for _, s := range secs {
		if s.id == 6 {
			n, _, err := readULEB(s.body, 0)
			if err != nil {
				return nil, fmt.Errorf("global section: %w", err)
			}
			globals += n
		}
	}
	rw.check = countdown(globals, rw.importedFuncs)
	rw.grow = rw.importedFuncs + 1

	// The new entries, appended to their sections (created if missing).
	newTypes := []byte{
		0x60, 0x00, 0x00, // check: func () -> ()
		0x60, 0x03, 0x7f, 0x7f, 0x7f, 0x01, 0x7f, // table_grow: func (i32, i32, i32) -> i32
	}
	var newImports []byte
	for i, name := range []string{checkFunc, tableGrowFunc} {
		newImports = appendName(newImports, checkModule)
		newImports = appendName(newImports, name)
		newImports = append(newImports, 0x00) // func
		newImports = appendULEB(newImports, types+uint64(i))
	}
	counter := []byte{0x7f, 0x01, 0x41} // i32, mutable, i32.const
	counter = appendSLEB(counter, checkEvery)
	counter = append(counter, 0x0b)
	type entries struct {
		n    uint64
		body []byte
	}
	// The counter is exported so the host can read and set it per call:
	// how far it went is the call's fuel (meter.go).
	rw.fuelExport = append(appendName(nil, fuelExport), 0x03)
	rw.fuelExport = appendULEB(rw.fuelExport, globals)
	added := map[byte]entries{1: {2, newTypes}, 2: {addedFuncs, newImports}, 6: {1, counter}, 7: {1, rw.fuelExport}}

	out := make([]byte, 0, len(wasm)+len(wasm)/4)
	out = append(out, wasm[:8]...)
	emit := func(id byte, body []byte) {
		out = append(out, id)
		out = appendULEB(out, uint64(len(body)))
		out = append(out, body...)
	}
	emitMissing := func(before byte) {
		for _, id := range []byte{1, 2, 6, 7} {
			if e, ok := added[id]; ok && sectionOrder(id) < sectionOrder(before) {
				emit(id, append(appendULEB(nil, e.n), e.body...))
				delete(added, id)
			}
		}
	}
	for _, s := range secs {
		if s.id != 0 {
			emitMissing(s.id)
		}
		var body []byte
		var err error
		switch s.id {
		case 1, 2, 6:
			body, err = rw.appendTo(s.id, s.body, added[s.id].n, added[s.id].body)
			delete(added, s.id)
		case 7:
			body, err = rw.exports(s.body)
			delete(added, s.id)
		case 8:
			var f uint64
			if f, _, err = readULEB(s.body, 0); err == nil {
				body = appendULEB(nil, rw.fn(f))
			}
		case 9:
			body, err = rw.elements(s.body)
		case 10:
			body, err = rw.code(s.body)
		case 0:
			body, err = rw.custom(s.body)
		default:
			body = s.body
		}
		if err != nil {
			return nil, fmt.Errorf("section %d: %w", s.id, err)
		}
		emit(s.id, body)
	}
	emitMissing(0xff)
	return out, nil
}

// The functions instrument imports.
const (
	checkModule   = "wasmq:internal"
	checkFunc     = "check"
	tableGrowFunc = "table_grow"
	// addedFuncs is how many: defined functions move up by as many.
	addedFuncs = 2
	// fuelExport names the exported counter global; the colon keeps it
	// apart from any name a toolchain exports.
	fuelExport = "wasmq:fuel"
)

// checkEvery is how many function entries and loop iterations pass
// between two checks.
const checkEvery = 1024

// instantiateCheckModule provides wasmq:internal.check, which is
// checkGuest, and table_grow, which is tableGrowGuard.
func instantiateCheckModule(ctx context.Context, rt wazero.Runtime) (api.Module, error) {
	return rt.NewHostModuleBuilder(checkModule).
		NewFunctionBuilder().
		WithGoFunction(api.GoFunc(func(ctx context.Context, _ []uint64) { checkGuest(ctx) }), nil, nil).
		Export(checkFunc).
		NewFunctionBuilder().
		WithGoFunction(api.GoFunc(tableGrowGuard), []api.ValueType{i32, i32, i32}, []api.ValueType{i32}).
		Export(tableGrowFunc).
		Instantiate(ctx)
}

// checkGuest ends a guest whose context ended, or that is past its job's
// deadline (checkCall), the way wazero's own WithCloseOnContextDone would
// have stopped it.
func checkGuest(ctx context.Context) {
	meterCheck(ctx)
	select {
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			panic(sys.NewExitError(sys.ExitCodeDeadlineExceeded))
		}
		panic(sys.NewExitError(sys.ExitCodeContextCanceled))
	default:
	}
	checkCall(ctx)
}

// countdown is, for counter global g and check function f:
//
//	global.get g; i32.const 1; i32.sub; global.set g
//	global.get g; i32.eqz
//	if; i32.const checkEvery; global.set g; call f; end
func countdown(g, f uint64) []byte {
	gi := appendULEB(nil, g)
	b := append([]byte{0x23}, gi...)
	b = append(b, 0x41, 0x01, 0x6b, 0x24)
	b = append(b, gi...)
	b = append(b, 0x23)
	b = append(b, gi...)
	b = append(b, 0x45, 0x04, 0x40, 0x41)
	b = appendSLEB(b, checkEvery)
	b = append(b, 0x24)
	b = append(b, gi...)
	b = append(b, 0x10)
	b = appendULEB(b, f)
	return append(b, 0x0b)
}

// sectionOrder is the position of a known section in a module.
func sectionOrder(id byte) int {
	// type, import, function, table, memory, tag, global, export, start,
	// element, data count, code, data
	for i, s := range []byte{1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11} {
		if s == id {
			return i
		}
	}
	return 100
}

// maxLocals caps the locals of one function, as browsers do (the JS
// embedding's limit, 50000). wazero has none short of 4G: it would
// allocate them all while compiling, and a 31-byte module declaring 4G
// locals ended the process out of memory.
const maxLocals = 50000

// Bounds of what a module may ask of the compiler. wazero's compile time
// and memory grow with a function's size and, faster, with how deeply its
// blocks nest, so an upload of a few hundred kilobytes could hold a node
// for minutes (docs/reliability.md, "Compile bombs"). Each bound is far
// above what real modules need: esbuild's 14 MB Go build has 5,307
// functions, its largest 200 KB, and a nesting work of 49 million.
const (
	// maxFunctions caps the functions a module defines (swc's 18 MB
	// Rust build: 16,382). Each costs ~20 µs to compile.
	maxFunctions = 100000
	// maxFunctionSize caps one function's code, in bytes: compiling a
	// function of 1 MiB of code takes ~3 s and ~370 MB at its peak.
	maxFunctionSize = 1 << 20
	// maxNestingWork caps the sum, over every block, loop and if, of the
	// number of blocks around it: the part of compiling that grows as the
	// square of the depth (100,000 nested blocks, 300 KB, took 86 s;
	// this bound ~2 s).
	maxNestingWork = 200_000_000
	// maxBranchTableWork caps the sum, over every br_table, of the square
	// of its targets: compiling one grows as that square (65,520 targets,
	// 64 KB, took 1.7 s; a million, 272 s and 2.5 GB; esbuild's sum is
	// 156 million, its largest table 5,490; this bound ~1 s).
	maxBranchTableWork = 2_000_000_000
	// maxControlWork caps the sum, over every function, of the square of
	// its control instructions (block, if, else, br, br_if, br_table, and
	// loop counting 4: the countdown adds a branch and a call to each).
	// Compiling a function grows as that square: 30,000 ifs in a row,
	// 150 KB, took 25 s; 10,000 empty loops, 30 KB, 35 s. esbuild's sum
	// is 345 million (largest 7,115), swc's 387 million; at this bound a
	// module costs up to ~30 s, as 8 MB of plain code does.
	maxControlWork = 1_500_000_000
	// maxVariableWork caps the sum, over every function, of its loops
	// times the square of the distinct locals it reads or writes: SSA
	// construction follows each local back through every loop (250
	// loops over 25,000 locals, 110 KB, took 37 s; 125 over 12,500, 5 s).
	// The bound allows ~3 s; real modules stay hundreds of times below
	// it (swc's sum is 41 million, sql.js's 1.1 million, esbuild's
	// 230,000).
	maxVariableWork = 10_000_000_000
	// maxFunctionWeight caps what compiling one function holds in memory,
	// in units of about 0.5 KB: an instruction weighs 1, a call 3 and a
	// call_indirect 26 (a function of 43,000 call_indirects, 256 KB, took
	// 596 MB; of 700,000 additions, 1 MiB, 370 MB). The bound is ~512 MB;
	// esbuild's heaviest function weighs ~90,000.
	maxFunctionWeight = 1_000_000
)

// controlWeight is what each control instruction adds to its function's
// count (maxControlWork).
var controlWeight = [256]uint8{0x02: 1, 0x03: 4, 0x04: 1, 0x05: 1, 0x0c: 1, 0x0d: 1, 0x0e: 1}

// rewriter renumbers function indices around the new imports.
type rewriter struct {
	importedFuncs uint64
	check         []byte
	// grow is the index of the table_grow import.
	grow uint64
	// fuelExport is the export entry of the counter global.
	fuelExport []byte
	// nesting, tables, flow and variables are the module's nesting,
	// br_table, control and variable work so far (maxNestingWork,
	// maxBranchTableWork, maxControlWork, maxVariableWork); control and
	// loops are the current function's counts, and locals the distinct
	// locals it uses.
	nesting, tables, flow, variables int
	control, loops, weight           int
	locals                           map[uint64]struct{}
}

// fn is the new index of function f.
func (rw *rewriter) fn(f uint64) uint64 {
	if f >= rw.importedFuncs {
		return f + addedFuncs
	}
	return f
}

// appendTo adds n entries to a vector section; global initializers are
// renumbered (ref.func).
func (rw *rewriter) appendTo(id byte, body []byte, n uint64, entry []byte) ([]byte, error) {
	count, p, err := readULEB(body, 0)
	if err != nil {
		return nil, err
	}
	out := appendULEB(make([]byte, 0, len(body)+len(entry)+5), count+n)
	if id != 6 {
		out = append(out, body[p:]...)
		return append(out, entry...), nil
	}
	for i := uint64(0); i < count; i++ {
		if p+2 > len(body) {
			return nil, errors.New("truncated global")
		}
		out = append(out, body[p:p+2]...) // valtype, mutability
		if out, p, err = rw.expr(out, body, p+2); err != nil {
			return nil, err
		}
	}
	if p != len(body) {
		return nil, errors.New("trailing bytes")
	}
	return append(out, entry...), nil
}

func (rw *rewriter) exports(body []byte) ([]byte, error) {
	n, p, err := readULEB(body, 0)
	if err != nil {
		return nil, err
	}
	out := appendULEB(make([]byte, 0, len(body)+len(rw.fuelExport)+8), n+1)
	for i := uint64(0); i < n; i++ {
		q, err := skipName(body, p)
		if err != nil || q >= len(body) {
			return nil, errors.New("malformed export")
		}
		kind := body[q]
		idx, m, err := readULEB(body, q+1)
		if err != nil {
			return nil, err
		}
		out = append(out, body[p:q+1]...)
		if kind == 0x00 {
			idx = rw.fn(idx)
		}
		out = appendULEB(out, idx)
		p = q + 1 + m
	}
	if p != len(body) {
		return nil, errors.New("trailing bytes")
	}
	return append(out, rw.fuelExport...), nil
}

func (rw *rewriter) elements(body []byte) ([]byte, error) {
	n, p, err := readULEB(body, 0)
	if err != nil {
		return nil, err
	}
	out := appendULEB(make([]byte, 0, len(body)+len(body)/8), n)
	u32 := func() (uint64, error) {
		v, m, err := readULEB(body, p)
		if err == nil {
			out = appendULEB(out, v)
			p += m
		}
		return v, err
	}
	byte1 := func() error {
		if p >= len(body) {
			return errors.New("truncated element segment")
		}
		out = append(out, body[p])
		p++
		return nil
	}
	for i := uint64(0); i < n; i++ {
		flags, err := u32()
		if err != nil {
			return nil, err
		}
		if flags > 7 {
			return nil, fmt.Errorf("element segment kind %d", flags)
		}
		if flags&1 == 0 { // active: [table index] offset expression
			if flags&2 != 0 {
				if _, err := u32(); err != nil {
					return nil, err
				}
			}
			if out, p, err = rw.expr(out, body, p); err != nil {
				return nil, err
			}
		}
		if flags&3 != 0 { // elemkind or reftype
			if err := byte1(); err != nil {
				return nil, err
			}
		}
		count, m, err := readULEB(body, p)
		if err != nil {
			return nil, err
		}
		p += m
		out = appendULEB(out, count)
		for j := uint64(0); j < count; j++ {
			if flags&4 != 0 {
				if out, p, err = rw.expr(out, body, p); err != nil {
					return nil, err
				}
				continue
			}
			f, m, err := readULEB(body, p)
			if err != nil {
				return nil, err
			}
			p += m
			out = appendULEB(out, rw.fn(f))
		}
	}
	if p != len(body) {
		return nil, errors.New("trailing bytes")
	}
	return out, nil
}

// code instruments and renumbers every function body.
func (rw *rewriter) code(sec []byte) ([]byte, error) {
	count, p, err := readULEB(sec, 0)
	if err != nil {
		return nil, err
	}
	if count > maxFunctions {
		return nil, fmt.Errorf("%d functions, more than the %d a module may define", count, maxFunctions)
	}
	out := make([]byte, 0, len(sec)+len(sec)/4)
	out = appendULEB(out, count)
	var body []byte
	for i := uint64(0); i < count; i++ {
		size, n, err := readULEB(sec, p)
		if err != nil {
			return nil, fmt.Errorf("body %d: %w", i, err)
		}
		start := p + n
		end := start + int(size)
		if end > len(sec) || end < start {
			return nil, fmt.Errorf("body %d runs past the section", i)
		}
		if size > maxFunctionSize {
			return nil, fmt.Errorf("body %d: %d bytes of code, more than the %d one function may hold", i, size, maxFunctionSize)
		}
		if body, err = rw.body(body[:0], sec[start:end]); err != nil {
			return nil, fmt.Errorf("body %d: %w", i, err)
		}
		out = appendULEB(out, uint64(len(body)))
		out = append(out, body...)
		p = end
	}
	if p != len(sec) {
		return nil, errors.New("trailing bytes after the last body")
	}
	return out, nil
}

func (rw *rewriter) body(out, b []byte) ([]byte, error) {
	// The local declarations: a vector of (count, valtype).
	groups, q, err := readULEB(b, 0)
	if err != nil {
		return nil, fmt.Errorf("locals: %w", err)
	}
	var locals uint64
	for g := uint64(0); g < groups; g++ {
		n, m, err := readULEB(b, q)
		if err != nil || q+m >= len(b) {
			return nil, errors.New("locals: malformed")
		}
		if locals += n; locals > maxLocals {
			return nil, fmt.Errorf("more than %d locals in one function", maxLocals)
		}
		q += m + 1 // one-byte value types only (no GC proposal)
	}
	out = append(out, b[:q]...)
	out = append(out, rw.check...)
	rw.control, rw.loops, rw.weight = 0, 0, 0
	if rw.locals == nil {
		rw.locals = map[uint64]struct{}{}
	}
	clear(rw.locals)
	out, q, err = rw.instrs(out, b, q)
	rw.flow += rw.control * rw.control
	if rw.loops > 0 {
		d := len(rw.locals)
		if rw.variables += rw.loops * d * d; err == nil && rw.variables > maxVariableWork {
			err = fmt.Errorf("too many locals used across too many loops to compile in time: the variable work (the sum over functions of their loops times the square of the locals they use) passes %d, with %d loops and %d locals in this function", maxVariableWork, rw.loops, d)
		}
	}
	if err == nil && q != len(b) {
		err = errors.New("code after the final end")
	}
	return out, err
}

// expr copies a constant expression (up to its end), renumbering ref.func.
func (rw *rewriter) expr(out, b []byte, p int) ([]byte, int, error) {
	return rw.instrs(out, b, p)
}

// instrs copies instructions from b[p:] to out until the end that closes
// the body (or the expression), renumbering function indices, adding the
// countdown at every loop header and the guard before every table.grow.
// It returns the position after that end.
func (rw *rewriter) instrs(out, b []byte, p int) ([]byte, int, error) {
	depth := 0
	var err error
	// imm skips n LEB128 immediates.
	imm := func(q, n int) int {
		for ; n > 0 && err == nil; n-- {
			var m int
			_, m, err = readULEB(b, q)
			q += m
		}
		return q
	}
	memarg := func(q int) int {
		var align uint64
		var m int
		align, m, err = readULEB(b, q)
		if err != nil {
			return q
		}
		if align&0x40 != 0 { // multi-memory: a memory index follows
			return imm(q+m, 2)
		}
		return imm(q+m, 1)
	}
	for p < len(b) {
		op := b[p]
		q := p + 1
		switch op {
		case 0x10, 0x12: // call, return_call
			rw.weight += 3
		case 0x11, 0x13: // call_indirect, return_call_indirect
			rw.weight += 26
		default:
			rw.weight++
		}
		if rw.weight > maxFunctionWeight {
			return nil, 0, fmt.Errorf("too many instructions to compile in bounded memory: the function's weight (an instruction 1, a call 3, a call_indirect 26) passes %d at byte %d", maxFunctionWeight, p)
		}
		if w := controlWeight[op]; w > 0 {
			if rw.control += int(w); rw.flow+rw.control*rw.control > maxControlWork {
				return nil, 0, fmt.Errorf("too many blocks, loops and branches to compile in time: the control work (the sum over functions of the square of their count, a loop counting 4) passes %d at byte %d, %d in this function", maxControlWork, p, rw.control)
			}
		}
		switch {
		case op == 0x02 || op == 0x03 || op == 0x04: // block, loop, if
			depth++
			if rw.nesting += depth; rw.nesting > maxNestingWork {
				return nil, 0, fmt.Errorf("blocks nested too deeply to compile in time: the nesting work (the sum over every block of the blocks around it) passes %d at byte %d, %d deep", maxNestingWork, p, depth)
			}
			if q >= len(b) {
				return nil, 0, errors.New("truncated block type")
			}
			if c := b[q]; c == 0x40 || c >= 0x6f && c <= 0x7f {
				q++
			} else {
				_, m, e := readSLEB(b, q) // a type index, s33
				q, err = q+m, e
			}
			if err == nil && op == 0x03 {
				rw.loops++
				out = append(out, b[p:q]...)
				out = append(out, rw.check...)
				p = q
				continue
			}
		case op == 0x0b: // end
			if depth == 0 {
				return append(out, op), q, nil
			}
			depth--
		case op == 0x10 || op == 0x12 || op == 0xd2: // call, return_call, ref.func
			f, m, e := readULEB(b, q)
			if e != nil {
				return nil, 0, e
			}
			out = append(out, op)
			out = appendULEB(out, rw.fn(f))
			p = q + m
			continue
		case op <= 0x01, op == 0x05, op == 0x0f, op == 0x1a, op == 0x1b, op == 0xd1,
			op >= 0x45 && op <= 0xc4:
			// no immediate
		case op >= 0x20 && op <= 0x22: // local.get, local.set, local.tee
			var x uint64
			var m int
			x, m, err = readULEB(b, q)
			q += m
			if rw.locals != nil {
				rw.locals[x] = struct{}{}
			}
		case op == 0x0c || op == 0x0d || op >= 0x23 && op <= 0x26 || op == 0x3f || op == 0x40:
			q = imm(q, 1)
		case op == 0xd0: // ref.null reftype
			q++
		case op == 0x0e: // br_table
			var n uint64
			var m int
			if n, m, err = readULEB(b, q); err == nil && n > uint64(len(b)) {
				err = errors.New("br_table longer than its function")
			}
			if rw.tables += int(n) * int(n); err == nil && rw.tables > maxBranchTableWork {
				err = fmt.Errorf("br_tables too large to compile in time: the sum of the squares of their targets passes %d at byte %d, a table of %d targets", maxBranchTableWork, p, n)
			}
			q = imm(q+m, int(n)+1)
		case op == 0x11 || op == 0x13: // call_indirect, return_call_indirect
			q = imm(q, 2)
		case op == 0x1c: // select t*
			var n uint64
			var m int
			if n, m, err = readULEB(b, q); err == nil && n > uint64(len(b)) {
				err = errors.New("select type vector longer than its function")
			}
			q += m + int(n)
		case op >= 0x28 && op <= 0x3e:
			q = memarg(q)
		case op == 0x41 || op == 0x42:
			var m int
			_, m, err = readSLEB(b, q)
			q += m
		case op == 0x43:
			q += 4
		case op == 0x44:
			q += 8
		case op == 0xfc:
			var sub uint64
			var m int
			sub, m, err = readULEB(b, q)
			q += m
			switch {
			case sub <= 7:
			case sub == 8, sub == 10, sub == 12, sub == 14:
				q = imm(q, 2)
			case sub == 15: // table.grow x: [ref, delta] -> [old size or -1]
				// i32.const x; table.size x; call table_grow:
				// [ref, delta, x, size] -> [ref, delta].
				var x uint64
				x, m, err = readULEB(b, q)
				if err != nil {
					break
				}
				out = append(out, 0x41)
				out = appendSLEB(out, int64(x))
				out = append(out, 0xfc, 0x10)
				out = appendULEB(out, x)
				out = append(out, 0x10)
				out = appendULEB(out, rw.grow)
				q += m
			case sub <= 17:
				q = imm(q, 1)
			default:
				return nil, 0, fmt.Errorf("unknown instruction 0xfc %d at byte %d", sub, p)
			}
		case op == 0xfd:
			var sub uint64
			var m int
			sub, m, err = readULEB(b, q)
			q += m
			switch {
			case sub <= 11 || sub == 92 || sub == 93: // loads and stores
				q = memarg(q)
			case sub == 12 || sub == 13: // v128.const, i8x16.shuffle
				q += 16
			case sub >= 21 && sub <= 34: // extract and replace lane
				q++
			case sub >= 84 && sub <= 91: // load and store lane
				q = memarg(q) + 1
			case sub > 0xff:
				return nil, 0, fmt.Errorf("unknown instruction 0xfd %d at byte %d", sub, p)
			}
		case op == 0xfe:
			var sub uint64
			var m int
			sub, m, err = readULEB(b, q)
			q += m
			if sub == 0x03 { // atomic.fence
				q++
			} else {
				q = memarg(q)
			}
		default:
			return nil, 0, fmt.Errorf("unknown instruction %#x at byte %d", op, p)
		}
		if err != nil {
			return nil, 0, err
		}
		if q > len(b) || q <= p {
			return nil, 0, errors.New("truncated instruction")
		}
		out = append(out, b[p:q]...)
		p = q
	}
	return nil, 0, errors.New("missing end")
}

// custom renumbers the function names of the name section; other custom
// sections are copied.
func (rw *rewriter) custom(body []byte) ([]byte, error) {
	p, err := skipName(body, 0)
	if err != nil {
		return nil, err
	}
	if string(body[:p]) != "\x04name" {
		return body, nil
	}
	out := append(make([]byte, 0, len(body)+16), body[:p]...)
	for p < len(body) {
		id := body[p]
		size, m, err := readULEB(body, p+1)
		if err != nil {
			return nil, err
		}
		start := p + 1 + m
		end := start + int(size)
		if end > len(body) || end < start {
			return nil, errors.New("name subsection runs past the end")
		}
		sub := body[start:end]
		switch id {
		case 1: // function names
			sub, err = rw.nameMap(sub, false)
		case 2, 3: // local and label names, by function
			sub, err = rw.nameMap(sub, true)
		}
		if err != nil {
			return nil, fmt.Errorf("name subsection %d: %w", id, err)
		}
		out = append(out, id)
		out = appendULEB(out, uint64(len(sub)))
		out = append(out, sub...)
		p = end
	}
	return out, nil
}

// nameMap renumbers the function indices of a name map (or, indirect,
// of a map of name maps).
func (rw *rewriter) nameMap(b []byte, indirect bool) ([]byte, error) {
	n, p, err := readULEB(b, 0)
	if err != nil {
		return nil, err
	}
	out := appendULEB(make([]byte, 0, len(b)+8), n)
	for i := uint64(0); i < n; i++ {
		f, m, err := readULEB(b, p)
		if err != nil {
			return nil, err
		}
		out = appendULEB(out, rw.fn(f))
		p += m
		q := p
		if indirect {
			inner, m, err := readULEB(b, q)
			if err != nil {
				return nil, err
			}
			q += m
			for j := uint64(0); j < inner; j++ {
				if _, m, err = readULEB(b, q); err != nil {
					return nil, err
				}
				if q, err = skipName(b, q+m); err != nil {
					return nil, err
				}
			}
		} else if q, err = skipName(b, q); err != nil {
			return nil, err
		}
		out = append(out, b[p:q]...)
		p = q
	}
	if p != len(b) {
		return nil, errors.New("trailing bytes")
	}
	return out, nil
}

// countImports counts the function and global imports of an import section.
func countImports(sec []byte) (funcs, globals uint64, err error) {
	count, p, err := readULEB(sec, 0)
	if err != nil {
		return 0, 0, err
	}
	skipLimits := func() error {
		if p >= len(sec) {
			return errors.New("truncated limits")
		}
		flags := sec[p]
		p++
		for i := 0; i < 1+int(flags&1); i++ {
			_, m, err := readULEB(sec, p)
			if err != nil {
				return err
			}
			p += m
		}
		return nil
	}
	for i := uint64(0); i < count; i++ {
		if p, err = skipName(sec, p); err != nil {
			return 0, 0, err
		}
		if p, err = skipName(sec, p); err != nil {
			return 0, 0, err
		}
		if p >= len(sec) {
			return 0, 0, errors.New("truncated import")
		}
		kind := sec[p]
		p++
		switch kind {
		case 0x00: // func: type index
			_, m, err := readULEB(sec, p)
			if err != nil {
				return 0, 0, err
			}
			p += m
			funcs++
		case 0x01: // table: reftype, limits
			p++
			if err := skipLimits(); err != nil {
				return 0, 0, err
			}
		case 0x02: // memory: limits
			if err := skipLimits(); err != nil {
				return 0, 0, err
			}
		case 0x03: // global: valtype, mutability
			p += 2
			globals++
		default:
			return 0, 0, fmt.Errorf("unknown import kind %#x", kind)
		}
	}
	return funcs, globals, nil
}

// skipName returns the position after the name (a length-prefixed string)
// at p.
func skipName(b []byte, p int) (int, error) {
	n, m, err := readULEB(b, p)
	if err != nil || p+m+int(n) > len(b) || p+m+int(n) < p {
		return 0, errors.New("malformed name")
	}
	return p + m + int(n), nil
}

func appendName(b []byte, s string) []byte {
	b = appendULEB(b, uint64(len(s)))
	return append(b, s...)
}

func appendSLEB(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func readULEB(b []byte, p int) (uint64, int, error) {
	var v uint64
	for i := 0; i < 10; i++ {
		if p+i >= len(b) {
			return 0, 0, errors.New("truncated LEB128")
		}
		c := b[p+i]
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v, i + 1, nil
		}
	}
	return 0, 0, errors.New("LEB128 too long")
}

// readSLEB reads a signed LEB128; only its length matters here.
func readSLEB(b []byte, p int) (int64, int, error) {
	var v int64
	for i := 0; i < 10; i++ {
		if p+i >= len(b) {
			return 0, 0, errors.New("truncated LEB128")
		}
		c := b[p+i]
		v |= int64(c&0x7f) << (7 * i)
		if c < 0x80 {
			if i < 9 && c&0x40 != 0 {
				v |= -1 << (7 * (i + 1))
			}
			return v, i + 1, nil
		}
	}
	return 0, 0, errors.New("LEB128 too long")
}

func appendULEB(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}
