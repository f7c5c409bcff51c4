package host

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/wasmq/wasmq/abi"
)

// The extism:host/env kernel, implemented in Go.
//
// Extism's own kernel is a wasm module with its own linear memory; the
// official PDKs only ever see i64 offsets into it. Here that memory is a Go
// byte slice per instance (the arena): offsets are indices into it, 0 is the
// null block. Blocks are bump-allocated and the arena is reset before every
// call, so nothing a job allocated is visible to the next job.

type instKey struct{}

// instCtx is the context a job's call runs under: the caller's, carrying
// the instance. Each instance has one, set per call (no allocation), and
// host functions find the instance with a type assertion instead of a
// Value lookup: dozens of host calls per job make that count.
type instCtx struct {
	context.Context
	in *instance
}

func (c *instCtx) Value(key any) any {
	if key == (instKey{}) {
		return c.in
	}
	return c.Context.Value(key)
}

// instanceOf returns the instance ctx carries, or nil.
func instanceOf(ctx context.Context) *instance {
	if c, ok := ctx.(*instCtx); ok {
		return c.in
	}
	in, _ := ctx.Value(instKey{}).(*instance)
	return in
}

// current returns the instance a host function was called for.
func current(ctx context.Context) *instance {
	in := instanceOf(ctx)
	if in == nil || in.call == nil {
		panic(fmt.Errorf("wasmq host function called outside a job"))
	}
	return in
}

// kernel is the per-instance arena.
type kernel struct {
	mem    []byte
	blocks map[uint64]uint64 // offset → length of live blocks
	limit  uint64
	hit    bool // an alloc was refused because of limit
	// refused is the largest refused allocation: one bigger than
	// max_output is, in practice, an output being built.
	refused uint64
	vars    map[string][]byte
	varSz   int
	// acct is the tenant's account, counted what the arena holds there
	// (the most of its length since it was made: a kept arena keeps its
	// bytes, and a pooled job then counts nothing), budget why an alloc
	// was refused for a budget (memory.go).
	acct    *tenantMemory
	counted uint64
	budget  string
}

// uncount gives back what k is counted for, once.
func (k *kernel) uncount() {
	k.acct.release(k.counted)
	k.counted = 0
}

const maxVarBytes = 1 << 20

func (k *kernel) reset(limit uint64) {
	if cap(k.mem) > 1<<20 {
		k.mem = nil // do not keep a big arena alive between jobs
		k.uncount()
	}
	k.mem = append(k.mem[:0], 0) // offset 0 is the null block
	if k.blocks == nil {
		k.blocks = make(map[uint64]uint64)
	} else {
		clear(k.blocks)
	}
	k.limit = limit
	k.hit = false
	k.refused = 0
	k.budget = ""
}

func (k *kernel) alloc(n uint64) uint64 {
	if n == 0 {
		return 0
	}
	top := uint64(len(k.mem))
	if top+n > k.limit || top+n < top {
		k.hit = true
		k.refused = max(k.refused, n)
		return 0
	}
	if top+n > k.counted {
		if why := k.acct.grow(top + n - k.counted); why != "" {
			k.budget = why
			return 0
		}
		k.counted = top + n
	}
	if top+n <= uint64(cap(k.mem)) {
		k.mem = k.mem[:top+n]
		clear(k.mem[top:])
	} else {
		k.mem = append(k.mem, make([]byte, n)...)
	}
	k.blocks[top] = n
	return top
}

func (k *kernel) free(off uint64) {
	n, ok := k.blocks[off]
	if !ok {
		return
	}
	delete(k.blocks, off)
	if off+n == uint64(len(k.mem)) {
		k.mem = k.mem[:off]
	}
}

func (k *kernel) block(off uint64) []byte {
	n, ok := k.blocks[off]
	if !ok {
		return nil
	}
	return k.mem[off : off+n]
}

func (k *kernel) write(b []byte) uint64 {
	off := k.alloc(uint64(len(b)))
	if off != 0 {
		copy(k.mem[off:], b)
	}
	return off
}

// answer writes what host function fn answers the guest into the kernel
// arena. A write refused (memory_limit, or a memory budget) ends the
// attempt: the offset 0 it would return means "no value" to the guest,
// which would go on without its config, its var, its response or the
// uuid of the child it enqueued.
func (in *instance) answer(fn string, b []byte) uint64 {
	off := in.k.write(b)
	if off == 0 && len(b) > 0 {
		exc, why := abi.ExcMemoryLimit, fmt.Sprintf("over the memory limit of %d bytes", in.k.limit)
		if in.k.budget != "" {
			exc, why = abi.ExcMemoryBudget, in.k.budget
		}
		in.call.stop(exc, fmt.Sprintf("%s: its answer of %d bytes does not fit kernel memory: %s", fn, len(b), why))
	}
	return off
}

func (k *kernel) check(off, n uint64) {
	if off == 0 || off+n > uint64(len(k.mem)) || off+n < off {
		panic(fmt.Errorf("kernel memory access out of bounds: offset %d length %d (kernel memory is %d bytes)", off, n, len(k.mem)))
	}
}

// str reads block off as text for messages; 0 is "".
func (k *kernel) str(off uint64) string {
	if off == 0 {
		return ""
	}
	b := k.block(off)
	if b == nil {
		panic(fmt.Errorf("no kernel block at offset %d", off))
	}
	return string(b)
}

type hostFn struct {
	name    string
	fn      api.GoModuleFunc
	params  []api.ValueType
	results []api.ValueType
}

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

func vt(v ...api.ValueType) []api.ValueType { return v }

// envFunctions is the extism:host/env module: every function the Extism
// go-sdk provides, with the same signatures.
func envFunctions() []hostFn {
	k := func(ctx context.Context) *kernel { return &current(ctx).k }
	fns := []hostFn{
		{"alloc", func(ctx context.Context, _ api.Module, s []uint64) { s[0] = k(ctx).alloc(s[0]) }, vt(i64), vt(i64)},
		{"free", func(ctx context.Context, _ api.Module, s []uint64) { k(ctx).free(s[0]) }, vt(i64), nil},
		{"length", func(ctx context.Context, _ api.Module, s []uint64) { s[0] = k(ctx).blocks[s[0]] }, vt(i64), vt(i64)},
		{"length_unsafe", func(ctx context.Context, _ api.Module, s []uint64) { s[0] = k(ctx).blocks[s[0]] }, vt(i64), vt(i64)},
		{"load_u8", func(ctx context.Context, _ api.Module, s []uint64) {
			kk := k(ctx)
			kk.check(s[0], 1)
			s[0] = uint64(kk.mem[s[0]])
		}, vt(i64), vt(i32)},
		{"load_u64", func(ctx context.Context, _ api.Module, s []uint64) {
			kk := k(ctx)
			kk.check(s[0], 8)
			s[0] = binary.LittleEndian.Uint64(kk.mem[s[0]:])
		}, vt(i64), vt(i64)},
		{"store_u8", func(ctx context.Context, _ api.Module, s []uint64) {
			kk := k(ctx)
			kk.check(s[0], 1)
			kk.mem[s[0]] = byte(s[1])
		}, vt(i64, i32), nil},
		{"store_u64", func(ctx context.Context, _ api.Module, s []uint64) {
			kk := k(ctx)
			kk.check(s[0], 8)
			binary.LittleEndian.PutUint64(kk.mem[s[0]:], s[1])
		}, vt(i64, i64), nil},
		{"input_length", func(ctx context.Context, _ api.Module, s []uint64) { s[0] = current(ctx).call.inLen }, nil, vt(i64)},
		{"input_offset", func(ctx context.Context, _ api.Module, s []uint64) { s[0] = current(ctx).call.inOff }, nil, vt(i64)},
		{"input_load_u8", func(ctx context.Context, _ api.Module, s []uint64) {
			in := current(ctx)
			if s[0] >= in.call.inLen {
				panic(fmt.Errorf("input_load_u8: offset %d past the input (%d bytes)", s[0], in.call.inLen))
			}
			s[0] = uint64(in.k.mem[in.call.inOff+s[0]])
		}, vt(i64), vt(i32)},
		{"input_load_u64", func(ctx context.Context, _ api.Module, s []uint64) {
			in := current(ctx)
			if s[0]+8 > in.call.inLen || s[0]+8 < s[0] {
				panic(fmt.Errorf("input_load_u64: offset %d past the input (%d bytes)", s[0], in.call.inLen))
			}
			s[0] = binary.LittleEndian.Uint64(in.k.mem[in.call.inOff+s[0]:])
		}, vt(i64), vt(i64)},
		{"input_set", func(ctx context.Context, _ api.Module, s []uint64) {
			in := current(ctx)
			in.k.check(s[0], s[1])
			in.call.inOff, in.call.inLen = s[0], s[1]
		}, vt(i64, i64), nil},
		{"output_set", func(ctx context.Context, _ api.Module, s []uint64) {
			in := current(ctx)
			c := in.call
			if s[1] > c.maxOutput {
				c.stop(abi.ExcOutputTooLarge, fmt.Sprintf("output of %d bytes is over the limit of %d bytes", s[1], c.maxOutput))
			}
			if s[1] > 0 {
				in.k.check(s[0], s[1])
			}
			c.outOff, c.outLen = s[0], s[1]
		}, vt(i64, i64), nil},
		{"output_length", func(ctx context.Context, _ api.Module, s []uint64) { s[0] = current(ctx).call.outLen }, nil, vt(i64)},
		{"output_offset", func(ctx context.Context, _ api.Module, s []uint64) { s[0] = current(ctx).call.outOff }, nil, vt(i64)},
		{"error_set", func(ctx context.Context, _ api.Module, s []uint64) { current(ctx).call.errOff = s[0] }, vt(i64), nil},
		{"error_get", func(ctx context.Context, _ api.Module, s []uint64) { s[0] = current(ctx).call.errOff }, nil, vt(i64)},
		{"reset", func(ctx context.Context, _ api.Module, s []uint64) {
			in := current(ctx)
			in.k.reset(in.k.limit)
			in.call.inOff, in.call.inLen, in.call.outOff, in.call.outLen, in.call.errOff = 0, 0, 0, 0, 0
		}, nil, nil},
		{"memory_bytes", func(ctx context.Context, _ api.Module, s []uint64) { s[0] = uint64(len(k(ctx).mem)) }, nil, vt(i64)},
		{"config_get", func(ctx context.Context, _ api.Module, s []uint64) {
			in := current(ctx)
			v, ok := in.call.config[in.k.str(s[0])]
			if !ok {
				s[0] = 0
				return
			}
			s[0] = in.answer("config_get", []byte(v))
		}, vt(i64), vt(i64)},
		{"var_get", func(ctx context.Context, _ api.Module, s []uint64) {
			in := current(ctx)
			v, ok := in.k.vars[in.k.str(s[0])]
			if !ok {
				s[0] = 0
				return
			}
			s[0] = in.answer("var_get", v)
		}, vt(i64), vt(i64)},
		{"var_set", func(ctx context.Context, _ api.Module, s []uint64) {
			in := current(ctx)
			name := in.k.str(s[0])
			if old, ok := in.k.vars[name]; ok {
				in.k.varSz -= len(name) + len(old)
				delete(in.k.vars, name)
			}
			if s[1] == 0 {
				return
			}
			v := in.k.block(s[1])
			if in.k.varSz+len(name)+len(v) > maxVarBytes {
				panic(fmt.Errorf("var_set: vars over the limit of %d bytes", maxVarBytes))
			}
			if in.k.vars == nil {
				in.k.vars = map[string][]byte{}
			}
			in.k.vars[name] = append([]byte(nil), v...)
			in.k.varSz += len(name) + len(v)
		}, vt(i64, i64), nil},
		{"http_request", func(ctx context.Context, _ api.Module, s []uint64) {
			in := current(ctx)
			s[0] = in.httpRequest(in.call.context(), s[0], s[1])
		}, vt(i64, i64), vt(i64)},
		{"http_status_code", func(ctx context.Context, _ api.Module, s []uint64) {
			s[0] = uint64(uint32(current(ctx).call.httpStatus))
		}, nil, vt(i32)},
		{"http_headers", func(ctx context.Context, _ api.Module, s []uint64) {
			in := current(ctx)
			if in.call.httpHeaders == nil {
				s[0] = 0
				return
			}
			s[0] = in.answer("http_headers", in.call.httpHeaders)
		}, nil, vt(i64)},
		// Everything is captured (bounded per attempt), so report trace.
		{"get_log_level", func(ctx context.Context, _ api.Module, s []uint64) { s[0] = 0 }, nil, vt(i32)},
	}
	for _, lv := range []string{"trace", "debug", "info", "warn", "error"} {
		fns = append(fns, hostFn{"log_" + lv, func(ctx context.Context, _ api.Module, s []uint64) {
			in := current(ctx)
			in.call.log(lv, in.k.str(s[0]))
			in.k.free(s[0])
		}, vt(i64), nil})
	}
	return fns
}

// userFunctions is wasmq's extism:host/user module (abi/hostfn.go).
func userFunctions() []hostFn {
	return []hostFn{
		{abi.HostRetry, func(ctx context.Context, _ api.Module, s []uint64) {
			in := current(ctx)
			in.call.retry = &abi.ControlRetry{
				Seconds:     float64(int64(s[0])),
				IgnoreRetry: uint32(s[1]) != 0,
				Reason:      in.k.str(s[2]),
			}
		}, vt(i64, i32, i64), nil},
		{abi.HostFail, func(ctx context.Context, _ api.Module, s []uint64) {
			in := current(ctx)
			msg := in.k.str(s[0])
			in.call.fail = &msg
		}, vt(i64), nil},
		{abi.HostNothingToDo, func(ctx context.Context, _ api.Module, s []uint64) {
			in := current(ctx)
			r := in.k.str(s[0])
			in.call.nothing = &r
		}, vt(i64), nil},
		{abi.HostEnqueue, func(ctx context.Context, _ api.Module, s []uint64) {
			in := current(ctx)
			req := in.k.block(s[0])
			if !in.call.taping() {
				s[0] = in.answer(abi.HostEnqueue, in.enqueue(in.call.context(), req))
				return
			}
			s[0] = in.answer(abi.HostEnqueue, in.call.world(abi.HostEnqueue, argsDigest(req),
				func() []byte { return in.enqueue(in.call.context(), req) },
				func() []byte {
					return enqueueAnswer("error", "replay: this enqueue is not on the tape; a replay enqueues no job")
				}))
		}, vt(i64), vt(i64)},
		{abi.HostSleep, func(ctx context.Context, _ api.Module, s []uint64) {
			c := current(ctx).call
			if !c.taping() {
				s[0] = sleep(c.context(), int64(s[0]))
				return
			}
			// A replay does not wait: it answers as the recorded sleep did.
			args := strconv.FormatInt(int64(s[0]), 10)
			if r, ok := c.replayed(abi.HostSleep, args); ok && len(r) == 1 {
				s[0] = uint64(r[0])
				return
			}
			s[0] = sleep(c.context(), int64(s[0]))
			if c.rec != nil {
				c.rec.add(abi.HostSleep, args, []byte{byte(s[0])})
			}
		}, vt(i64), vt(i32)},
		{abi.HostLog, func(ctx context.Context, _ api.Module, s []uint64) {
			in := current(ctx)
			lv := map[uint32]string{0: "debug", 1: "info", 2: "warn", 3: "error"}[uint32(s[0])]
			if lv == "" {
				lv = "info"
			}
			in.call.log(lv, in.k.str(s[1]))
		}, vt(i32, i64), nil},
		{abi.HostNow, func(ctx context.Context, _ api.Module, s []uint64) {
			c := current(ctx).call
			if r, ok := c.replayed(abi.HostNow, ""); ok && len(r) == 8 {
				s[0] = binary.LittleEndian.Uint64(r)
				return
			}
			s[0] = uint64(time.Now().UnixNano())
			if c.rec != nil {
				c.rec.add64(abi.HostNow, s[0])
			}
		}, nil, vt(i64)},
		{abi.HostProgress, func(ctx context.Context, _ api.Module, s []uint64) {
			in := current(ctx)
			percent := int32(uint32(s[0]))
			var msg string
			if s[1] != 0 {
				msg = in.k.str(s[1])
			}
			s[0] = 0
			if !in.call.progress(percent, msg) {
				s[0] = 1
			}
		}, vt(i32, i64), vt(i32)},
	}
}

// sleep is wasmq_sleep_v1: it ends a little before the job's deadline
// (returning 1) so the guest can still wrap up, e.g. ask for a retry.
func sleep(ctx context.Context, ms int64) uint64 {
	d := time.Duration(ms) * time.Millisecond
	cut := false
	if dl, ok := ctx.Deadline(); ok {
		reserve := min(time.Until(dl)/10, 100*time.Millisecond)
		if left := time.Until(dl) - reserve; d >= left {
			d, cut = max(left, 0), true
		}
	}
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			panic(ctx.Err()) // the caller is stopping
		}
	}
	if cut {
		return 1
	}
	return 0
}

// progress hands a plugin's progress report to whoever runs the attempt
// (abi.WithProgress): a percent outside 0–100 is refused, the message is
// made valid UTF-8 without NUL and cut to abi.MaxProgressMessage
// characters, since a plugin is untrusted.
func (c *call) progress(percent int32, msg string) bool {
	if percent < 0 || percent > 100 {
		return false
	}
	msg = strings.ReplaceAll(strings.ToValidUTF8(msg, "\uFFFD"), "\x00", "")
	if r := []rune(msg); len(r) > abi.MaxProgressMessage {
		msg = string(r[:abi.MaxProgressMessage])
	}
	if f := abi.ProgressOf(c.parent); f != nil {
		f(abi.Progress{Percent: int(percent), Message: msg, Updated: time.Now().UTC()})
	}
	return true
}

func instantiateHostModule(ctx context.Context, rt wazero.Runtime, name string, fns []hostFn) (api.Module, error) {
	b := rt.NewHostModuleBuilder(name)
	for _, f := range fns {
		b.NewFunctionBuilder().WithGoModuleFunction(f.fn, f.params, f.results).WithName(f.name).Export(f.name)
	}
	return b.Instantiate(ctx)
}

// log keeps a plugin log line, within the per-attempt caps.
func (c *call) log(level, msg string) {
	if len(c.logs) >= c.maxLogLines || c.logBytes+len(msg) > c.maxLogBytes {
		c.logsDropped++
		return
	}
	if !utf8.ValidString(msg) {
		msg = string([]rune(msg))
	}
	c.logBytes += len(msg)
	c.logs = append(c.logs, abi.LogLine{Time: time.Now().UTC(), Level: level, Message: msg})
}
