// Package wasmgen writes WebAssembly modules of chosen shapes, for tests:
// the compile bombs of docs/reliability.md ("Compile bombs") are made
// here, in the open, rather than committed as binaries. Standard library
// only.
package wasmgen

import "bytes"

// uleb appends v as an unsigned LEB128.
func uleb(b []byte, v uint64) []byte {
	for ; v >= 0x80; v >>= 7 {
		b = append(b, byte(v)|0x80)
	}
	return append(b, byte(v))
}

// Module is a module exporting "run" () -> i32 and a memory, whose
// functions have the given bodies (instructions, ending with the value and
// the function's end; WithLocals declares locals).
func Module(bodies ...[]byte) []byte {
	vec := func(items ...[]byte) []byte {
		out := uleb(nil, uint64(len(items)))
		for _, it := range items {
			out = append(out, it...)
		}
		return out
	}
	section := func(id byte, payload []byte) []byte {
		return append(uleb([]byte{id}, uint64(len(payload))), payload...)
	}
	name := func(s string) []byte { return append(uleb(nil, uint64(len(s))), s...) }
	funcs, codes := make([][]byte, len(bodies)), make([][]byte, len(bodies))
	for i, b := range bodies {
		funcs[i] = []byte{0} // type 0
		entry := b
		if len(b) == 0 || b[0] != localsDeclared {
			entry = append([]byte{0}, b...) // no locals
		}
		codes[i] = append(uleb(nil, uint64(len(entry))), entry...)
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

// WithLocals is code in a function of n i32 locals.
func WithLocals(n int, code []byte) []byte {
	b := append(uleb([]byte{localsDeclared}, uint64(n)), 0x7f)
	return append(b, code...)
}

// LoopsOverLocals is n loops in a row, each reading its own per locals.
func LoopsOverLocals(n, per int) []byte {
	var b []byte
	for i := range n {
		b = append(b, 0x03, 0x40)
		for j := range per {
			b = uleb(append(b, 0x20), uint64(i*per+j))
			b = append(b, 0x1a)
		}
		b = append(b, 0x0b)
	}
	return append(b, 0x41, 0, 0x0b)
}

// IndirectCalls is n call_indirects through table 0.
func IndirectCalls(n int) []byte {
	return append(bytes.Repeat([]byte{0x41, 0, 0x11, 0, 0, 0x1a}, n), 0x41, 0, 0x0b)
}

// Nested is depth blocks, one in the other, around nothing.
func Nested(depth int) []byte {
	b := bytes.Repeat([]byte{0x02, 0x40}, depth)
	b = append(b, bytes.Repeat([]byte{0x0b}, depth)...)
	return append(b, 0x41, 0, 0x0b)
}

// BranchTables is n br_tables of targets entries each, all to one block.
func BranchTables(n, targets int) []byte {
	one := append([]byte{0x02, 0x40, 0x41, 0, 0x0e}, uleb(nil, uint64(targets))...)
	one = append(one, make([]byte, targets+1)...)
	one = append(one, 0x0b)
	return append(bytes.Repeat(one, n), 0x41, 0, 0x0b)
}

// Loops is n empty loops in a row.
func Loops(n int) []byte {
	return append(bytes.Repeat([]byte{0x03, 0x40, 0x0b}, n), 0x41, 0, 0x0b)
}

// Branches is n blocks in a row, each left by a br_if.
func Branches(n int) []byte {
	return append(bytes.Repeat([]byte{0x02, 0x40, 0x41, 1, 0x0d, 0, 0x0b}, n), 0x41, 0, 0x0b)
}

// Flat is about size bytes of i32 additions in one function.
func Flat(size int) []byte {
	b := append([]byte{0x41, 1}, bytes.Repeat([]byte{0x41, 1, 0x6a}, size/3)...)
	return append(b, 0x1a, 0x41, 0, 0x0b) // drop, 0
}

// BlocksOverLocals is n blocks in a row, each left by a br_if, reading
// and writing locals of their own, in a function of 50,000 locals: a
// shape whose counts real functions reach, so no shape bound refuses it
// (5,000 of them, 70 KB, took wazero 53 s and 1.3 GB).
func BlocksOverLocals(n int) []byte {
	var code []byte
	for i := range n {
		code = uleb(append(code, 0x02, 0x40, 0x20), uint64(i*7%50000))
		code = uleb(append(code, 0x0d, 0, 0x41, 1, 0x21), uint64((i*13+1)%50000))
		code = append(code, 0x0b)
	}
	return WithLocals(50000, append(code, 0x41, 0, 0x0b))
}

// Hoard grows the memory to pages pages (64 KiB each) and writes a byte
// every 4 KiB of it, so that all of it is resident, and returns 0: a job
// that succeeds and leaves its instance holding that memory.
func Hoard(pages int) []byte {
	code := append([]byte{0x41}, sleb(nil, int64(pages-1))...)
	code = append(code, 0x40, 0x00, 0x1a) // memory.grow, drop
	code = append(code, 0x03, 0x40)       // loop
	code = append(code, 0x20, 0, 0x41, 1, 0x3a, 0, 0)
	code = append(code, 0x20, 0, 0x41, 0x80, 0x20, 0x6a, 0x22, 0, 0x41)
	code = sleb(code, int64(pages)<<16)
	code = append(code, 0x49, 0x0d, 0, 0x0b) // lt_u, br_if, end
	return WithLocals(1, append(code, 0x41, 0, 0x0b))
}

// HoardAndSpin grows and writes the memory as Hoard does, then loops
// until the sandbox stops it: a job holding that memory for as long as
// its timeout.
func HoardAndSpin(pages int) []byte {
	code := Hoard(pages)
	code = code[:len(code)-3]                      // i32.const 0, end
	code = append(code, 0x03, 0x40, 0x0c, 0, 0x0b) // loop, br 0, end
	return append(code, 0x41, 0, 0x0b)
}

// sleb appends v as a signed LEB128.
func sleb(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
