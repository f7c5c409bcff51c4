package host

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/wasmq/wasmq/abi"
)

// Limits a module is held to before it runs, and table growth while it
// runs. wazero checks neither: a memory or a table may start at 4 GiB or
// 1<<27 entries (1 GiB), and table.grow has no limit short of 4G entries.
// Worse, it grows a table in one Go call that no deadline interrupts: a
// grow of 130 million entries was measured running 9 s under a 2 s
// timeout and taking 1 GiB, three at once 4.4 GiB (docs/reliability.md).
//
// So the host refuses at load a module that could never run (checkShape),
// and instrument puts a call to tableGrowGuard before every table.grow: it
// ends the attempt before wazero allocates anything. Memory growth needs
// no guard: limitedMemory refuses it.

// shape is what the host checks of a module before compiling it.
type shape struct {
	// memMin is the initial size of its largest memory, in bytes.
	memMin uint64
	// tables are the initial entries of its tables, by table index.
	tables []uint64
	// tableImports name the tables it imports, which the host has none of.
	tableImports []string
	// types are its function types, by type index: the value types of
	// their parameters and results, as encoded.
	types []funcType
	// funcImports and memImports are what checkImports holds to the
	// host's functions before the module is compiled.
	funcImports []funcImport
	memImports  []string
}

type funcType struct{ params, results []byte }

type funcImport struct {
	module, name string
	typ          uint64
}

// shapeOf reads the import, table and memory sections of a module, and
// checks that no vector of the sections instrument does not parse claims
// more elements or bytes than its section holds (boundsNote).
func shapeOf(wasm []byte) (shape, error) {
	var s shape
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return s, errors.New("not a WebAssembly binary (bad magic)")
	}
	for p := 8; p < len(wasm); {
		id := wasm[p]
		size, n, err := readULEB(wasm, p+1)
		if err != nil {
			return s, fmt.Errorf("section at byte %d: %w", p, err)
		}
		start := p + 1 + n
		end := start + int(size)
		if end > len(wasm) || end < start {
			return s, fmt.Errorf("section %d at byte %d runs past the end", id, p)
		}
		body := wasm[start:end]
		switch id {
		case 0:
			err = nameBounds(body)
		case 1:
			s.types, err = typeBounds(body)
		case 3, 13: // functions, tags
			err = countBound(body)
		case 11:
			err = dataBounds(body)
		case 2:
			err = s.imports(body)
		case 4:
			err = vector(body, func(q int) (int, error) {
				n, q, err := tableType(body, q)
				s.tables = append(s.tables, n)
				return q, err
			})
		case 5:
			err = vector(body, func(q int) (int, error) {
				pages, q, err := readLimits(body, q)
				s.memMin = max(s.memMin, min(pages, 1<<32)*wasmPage)
				return q, err
			})
		}
		if err != nil {
			return s, fmt.Errorf("section %d: %w", id, err)
		}
		p = end
	}
	return s, nil
}

// boundsNote: wazero's decoder allocates what a length claims before it
// reads the elements, so a module of a few dozen bytes that claims 4G
// parameters ended the process out of memory, 4G functions allocated
// 16 GiB, and a 4 GiB data segment took 35 s and 4 GiB of RSS, at upload.
// instrument bounds what it parses (imports, globals, exports, elements,
// code, function names), shapeOf the rest: an element takes at least one
// byte, so no count may exceed the bytes left.

// errOverclaim is a length larger than the bytes that follow it.
var errOverclaim = errors.New("a length runs past its section")

// countBound checks the element count of a vector section.
func countBound(body []byte) error {
	n, m, err := readULEB(body, 0)
	if err == nil && n > uint64(len(body)-m) {
		err = fmt.Errorf("%w: %d entries claimed in %d bytes", errOverclaim, n, len(body))
	}
	return err
}

// typeBounds checks the parameter and result vectors of the function
// types; it stops at the first other form (GC proposal types), which
// wazero refuses unless that proposal is enabled.
// It returns the function types it read, up to the first that is not one.
func typeBounds(body []byte) ([]funcType, error) {
	if err := countBound(body); err != nil {
		return nil, err
	}
	n, p, _ := readULEB(body, 0)
	var types []funcType
	for i := uint64(0); i < n && p < len(body) && body[p] == 0x60; i++ {
		p++
		var vts [2][]byte // parameters, results
		for k := range vts {
			c, m, err := readULEB(body, p)
			if err != nil {
				return nil, err
			}
			p += m
			if c > uint64(len(body)-p) {
				return nil, fmt.Errorf("%w: type %d claims %d value types in %d bytes", errOverclaim, i, c, len(body)-p)
			}
			start := p
			for j := uint64(0); j < c; j++ {
				if p, err = valType(body, p); err != nil {
					return nil, err
				}
			}
			vts[k] = body[start:p]
		}
		types = append(types, funcType{vts[0], vts[1]})
	}
	return types, nil
}

// dataBounds checks that every data segment holds the bytes it claims.
func dataBounds(body []byte) error {
	return vector(body, func(q int) (int, error) {
		flags, m, err := readULEB(body, q)
		if err != nil {
			return 0, err
		}
		q += m
		switch flags {
		case 0: // active, memory 0: offset expression
			q, err = skipExpr(body, q)
		case 1: // passive
		case 2: // active: memory index, offset expression
			if _, m, err = readULEB(body, q); err == nil {
				q, err = skipExpr(body, q+m)
			}
		default:
			return 0, fmt.Errorf("data segment kind %d", flags)
		}
		if err != nil {
			return 0, err
		}
		n, m, err := readULEB(body, q)
		if err != nil {
			return 0, err
		}
		q += m
		if n > uint64(len(body)-q) {
			return 0, fmt.Errorf("%w: a data segment claims %d bytes, %d are left", errOverclaim, n, len(body)-q)
		}
		return q + int(n), nil
	})
}

// nameBounds checks the module name of a name section (instrument checks
// the function and local names).
func nameBounds(body []byte) error {
	name, p, err := readName(body, 0)
	if err != nil || name != "name" {
		return err
	}
	for p < len(body) {
		id := body[p]
		size, m, err := readULEB(body, p+1)
		if err != nil {
			return err
		}
		p += 1 + m
		if size > uint64(len(body)-p) {
			return fmt.Errorf("%w: name subsection %d", errOverclaim, id)
		}
		if id == 0 {
			if q, err := skipName(body[:p+int(size)], p); err != nil || q != p+int(size) {
				return fmt.Errorf("%w: the module name", errOverclaim)
			}
		}
		p += int(size)
	}
	return nil
}

// imports records the tables an import section asks for.
func (s *shape) imports(body []byte) error {
	return vector(body, func(q int) (int, error) {
		mod, q, err := readName(body, q)
		if err != nil {
			return 0, err
		}
		name, q, err := readName(body, q)
		if err != nil || q >= len(body) {
			return 0, errors.New("truncated import")
		}
		kind := body[q]
		q++
		switch kind {
		case 0x00: // func: type index
			typ, m, err := readULEB(body, q)
			s.funcImports = append(s.funcImports, funcImport{mod, name, typ})
			return q + m, err
		case 0x01: // table
			s.tableImports = append(s.tableImports, mod+"."+name)
			n, q, err := tableType(body, q)
			s.tables = append(s.tables, n)
			return q, err
		case 0x02: // memory: refused by checkImports
			s.memImports = append(s.memImports, mod+"."+name)
			_, q, err := readLimits(body, q)
			return q, err
		case 0x03: // global: valtype, mutability
			q, err := valType(body, q)
			return q + 1, err
		}
		return 0, fmt.Errorf("unknown import kind %#x", kind)
	})
}

// vector calls item for each element of a vector at the start of b; item
// returns the position after its element.
func vector(b []byte, item func(p int) (int, error)) error {
	n, p, err := readULEB(b, 0)
	if err != nil {
		return err
	}
	for i := uint64(0); i < n; i++ {
		if p, err = item(p); err != nil {
			return err
		}
		if p > len(b) {
			return errors.New("truncated vector")
		}
	}
	if p != len(b) {
		return errors.New("trailing bytes")
	}
	return nil
}

// tableType reads a table type at p, with its initializer when it has one
// (0x40 0x00 prefix), and returns its minimum.
func tableType(b []byte, p int) (initial uint64, next int, err error) {
	withInit := p+1 < len(b) && b[p] == 0x40 && b[p+1] == 0x00
	if withInit {
		p += 2
	}
	if p, err = valType(b, p); err != nil {
		return 0, 0, err
	}
	if initial, p, err = readLimits(b, p); err != nil {
		return 0, 0, err
	}
	if withInit {
		p, err = skipExpr(b, p)
	}
	return initial, p, err
}

// valType skips a value or reference type: one byte, or (ref null? ht)
// with a heap type index.
func valType(b []byte, p int) (int, error) {
	if p >= len(b) {
		return 0, errors.New("truncated type")
	}
	if b[p] == 0x63 || b[p] == 0x64 {
		_, m, err := readSLEB(b, p+1)
		return p + 1 + m, err
	}
	return p + 1, nil
}

// readLimits reads limits (flags, min, optional max) and returns the minimum.
func readLimits(b []byte, p int) (uint64, int, error) {
	if p >= len(b) {
		return 0, 0, errors.New("truncated limits")
	}
	flags := b[p]
	min, m, err := readULEB(b, p+1)
	if err != nil {
		return 0, 0, err
	}
	p += 1 + m
	if flags&1 != 0 {
		_, m, err := readULEB(b, p)
		if err != nil {
			return 0, 0, err
		}
		p += m
	}
	return min, p, nil
}

func readName(b []byte, p int) (string, int, error) {
	q, err := skipName(b, p)
	if err != nil {
		return "", 0, err
	}
	_, m, _ := readULEB(b, p)
	return string(b[p+m : q]), q, nil
}

// skipExpr returns the position after the constant expression at p.
func skipExpr(b []byte, p int) (int, error) {
	var rw rewriter
	_, q, err := rw.instrs(nil, b, p)
	return q, err
}

// checkShape names every reason a module of shape s could never run
// under c.
func (c Config) checkShape(s shape) []error {
	var errs []error
	for _, name := range s.tableImports {
		errs = append(errs, fmt.Errorf("imports table %s; the host provides none (the module must define its own)", name))
	}
	if s.memMin > uint64(c.MemoryLimit) {
		errs = append(errs, fmt.Errorf("memory starts at %s, over host.memory_limit of %s: it could never run", ByteSize(s.memMin), c.MemoryLimit))
	}
	for i, n := range s.tables {
		if n > uint64(c.TableLimit) {
			errs = append(errs, fmt.Errorf("table %d starts with %d entries, over host.table_limit of %d: it could never run", i, n, c.TableLimit))
		}
	}
	return errs
}

// checkFunctionMemory names every function whose own memory_limit is
// below the memory the module starts with: it could never run.
func checkFunctionMemory(path string, sc sidecar, minMemory uint64) []error {
	fns := make([]string, 0, len(sc.Functions))
	for fn := range sc.Functions {
		fns = append(fns, fn)
	}
	sort.Strings(fns)
	var errs []error
	for _, fn := range fns {
		v, err := ParseByteSize(sc.Functions[fn].MemoryLimit)
		if sc.Functions[fn].MemoryLimit == "" || err != nil || v < wasmPage || uint64(v) >= minMemory {
			continue
		}
		errs = append(errs, fmt.Errorf("%s: functions.%s.memory_limit of %s is below the %s the module's memory starts with: %s could never run",
			sidecarPath(path), fn, v, ByteSize(minMemory), fn))
	}
	return errs
}

// tableGrowGuard is wasmq:internal.table_grow, which instrument calls
// before every table.grow with (delta, table index, table size): it
// returns delta when the table stays within host.table_limit, and
// otherwise ends the attempt (wasmq.MemoryLimit) before wazero allocates.
// It checks the deadline too: a loop of grows checks it otherwise only
// every checkEvery iterations, and each grow copies the table, so a
// guest under a large limit could spend seconds past its deadline.
//
// It ends the attempt rather than return -1 as a refused memory.grow
// does: wazero would then still allocate nothing, but a guest that ignores
// the result would spin until its timeout, named a timeout. No toolchain
// grows a table by a million entries; one that tries is stopped at once,
// with the reason.
func tableGrowGuard(ctx context.Context, s []uint64) {
	checkGuest(ctx)
	delta, table, size := uint32(s[0]), uint32(s[1]), uint32(s[2])
	limit := uint64(DefaultTableLimit)
	in := instanceOf(ctx)
	if in != nil {
		limit = uint64(in.h.cfg.TableLimit)
	}
	if uint64(size)+uint64(delta) <= limit {
		if in != nil {
			in.tableGrown += uint64(delta) // what it holds when pooled
		}
		return // s[0] is delta
	}
	msg := fmt.Sprintf("table limit reached: table.grow of table %d from %d by %d entries would pass host.table_limit of %d entries", table, size, delta, limit)
	if in != nil && in.call != nil {
		in.call.stop(abi.ExcMemoryLimit, msg)
	}
	panic(errors.New(msg))
}
