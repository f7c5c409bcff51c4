package host

import (
	"bytes"
	"errors"
	"fmt"
)

// instrument returns a copy of a wasm binary in which every function
// entry counts down a new mutable global and, every checkEvery calls,
// enters an empty loop.
//
// Why: with WithCloseOnContextDone wazero checks for a closed module only
// at loop headers. Code without loops — deep or exponential recursion — is
// then never interrupted, and while it runs the Go GC cannot stop the
// world, so the whole process stalls. The check is a call out to Go that
// costs ~50 ns, so it is taken every checkEvery calls, not on every call
// (docs/benchmarks.md has both costs).
//
// Function and existing global indices are untouched (the new global is
// the last one), so the name section still names functions in traps.
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
	// The counter's index: imported globals, then defined ones.
	var global uint64
	hasGlobals := false
	for _, s := range secs {
		switch s.id {
		case 2:
			n, err := importedGlobals(s.body)
			if err != nil {
				return nil, fmt.Errorf("import section: %w", err)
			}
			global += n
		case 6:
			n, _, err := readULEB(s.body, 0)
			if err != nil {
				return nil, fmt.Errorf("global section: %w", err)
			}
			global += n
			hasGlobals = true
		}
	}
	counter := []byte{0x7f, 0x01, 0x41} // i32, mutable, i32.const
	counter = appendSLEB(counter, checkEvery)
	counter = append(counter, 0x0b)

	out := make([]byte, 0, len(wasm)+len(wasm)/8)
	out = append(out, wasm[:8]...)
	emit := func(id byte, body []byte) {
		out = append(out, id)
		out = appendULEB(out, uint64(len(body)))
		out = append(out, body...)
	}
	for _, s := range secs {
		switch {
		case s.id == 6:
			n, m, _ := readULEB(s.body, 0)
			body := appendULEB(nil, n+1)
			body = append(body, s.body[m:]...)
			emit(6, append(body, counter...))
		case s.id == 10:
			code, err := instrumentCode(s.body, entryCheck(global))
			if err != nil {
				return nil, fmt.Errorf("code section: %w", err)
			}
			emit(10, code)
		default:
			// A module without globals gets a global section right
			// before the first section that must follow it.
			if !hasGlobals && (s.id == 7 || s.id == 8 || s.id == 9 || s.id == 12 || s.id == 10 || s.id == 11) {
				emit(6, append([]byte{1}, counter...))
				hasGlobals = true
			}
			emit(s.id, s.body)
		}
	}
	return out, nil
}

// checkEvery is how many function entries pass between two checks.
const checkEvery = 1024

// entryCheck is, for counter global g:
//
//	global.get g; i32.const 1; i32.sub; global.set g
//	global.get g; i32.eqz
//	if; i32.const checkEvery; global.set g; loop; end; end
func entryCheck(g uint64) []byte {
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
	return append(b, 0x03, 0x40, 0x0b, 0x0b)
}

// importedGlobals counts the global imports of an import section.
func importedGlobals(sec []byte) (uint64, error) {
	count, p, err := readULEB(sec, 0)
	if err != nil {
		return 0, err
	}
	var globals uint64
	skipName := func() error {
		n, m, err := readULEB(sec, p)
		if err != nil || p+m+int(n) > len(sec) {
			return errors.New("malformed name")
		}
		p += m + int(n)
		return nil
	}
	skipLimits := func() error {
		if p >= len(sec) {
			return errors.New("truncated limits")
		}
		flags := sec[p]
		p++
		if _, m, err := readULEB(sec, p); err != nil {
			return err
		} else {
			p += m
		}
		if flags&1 != 0 {
			_, m, err := readULEB(sec, p)
			if err != nil {
				return err
			}
			p += m
		}
		return nil
	}
	for i := uint64(0); i < count; i++ {
		if err := skipName(); err != nil {
			return 0, err
		}
		if err := skipName(); err != nil {
			return 0, err
		}
		if p >= len(sec) {
			return 0, errors.New("truncated import")
		}
		kind := sec[p]
		p++
		switch kind {
		case 0x00: // func: type index
			_, m, err := readULEB(sec, p)
			if err != nil {
				return 0, err
			}
			p += m
		case 0x01: // table: reftype, limits
			p++
			if err := skipLimits(); err != nil {
				return 0, err
			}
		case 0x02: // memory: limits
			if err := skipLimits(); err != nil {
				return 0, err
			}
		case 0x03: // global: valtype, mutability
			p += 2
			globals++
		default:
			return 0, fmt.Errorf("unknown import kind %#x", kind)
		}
	}
	return globals, nil
}

func instrumentCode(sec []byte, entry []byte) ([]byte, error) {
	count, n, err := readULEB(sec, 0)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(sec)+int(count)*(len(entry)+1))
	out = appendULEB(out, count)
	p := n
	for i := uint64(0); i < count; i++ {
		size, n, err := readULEB(sec, p)
		if err != nil {
			return nil, fmt.Errorf("body %d: %w", i, err)
		}
		body := p + n
		end := body + int(size)
		if end > len(sec) || end < body {
			return nil, fmt.Errorf("body %d runs past the section", i)
		}
		// Skip the local declarations: a vector of (count, valtype).
		groups, m, err := readULEB(sec[:end], body)
		if err != nil {
			return nil, fmt.Errorf("body %d locals: %w", i, err)
		}
		q := body + m
		for g := uint64(0); g < groups; g++ {
			_, m, err := readULEB(sec[:end], q)
			if err != nil || q+m >= end {
				return nil, fmt.Errorf("body %d locals: malformed", i)
			}
			q += m + 1 // one-byte value types only (no GC proposal)
		}
		out = appendULEB(out, size+uint64(len(entry)))
		out = append(out, sec[body:q]...)
		out = append(out, entry...)
		out = append(out, sec[q:end]...)
		p = end
	}
	if p != len(sec) {
		return nil, errors.New("trailing bytes after the last body")
	}
	return out, nil
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
