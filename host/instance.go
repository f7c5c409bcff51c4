package host

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"
	"github.com/wasmq/wasmq/abi"
)

// instance is one live wasm instance with its kernel arena. It serves one
// job at a time; call is that job's state.
type instance struct {
	h      *Host
	code   *compiled
	tenant string
	mod    api.Module
	mem    *limitedMemory
	fuel   api.MutableGlobal // the countdown's counter (meter.go)
	fns    map[string]api.Function
	k      kernel
	uses   int
	call   *call
	// tableGrown is the entries its tables grew by; held is what it
	// holds while idle, in Host's idle list (pool.go).
	tableGrown         uint64
	held               uint64
	idle               bool
	idlePrev, idleNext *instance
	// ctx, state and stack are the current call's, kept to save
	// allocations.
	ctx   instCtx
	state call
	stack [1]uint64
}

// call is the state of one attempt on an instance.
type call struct {
	h *Host
	// parent is the caller's context and deadline ends the attempt; the
	// guest's countdown checks both (checkCall). ctx, with that deadline,
	// is made only for host functions that block (context).
	parent   context.Context
	deadline time.Time
	ctx      context.Context
	cancel   func()

	job        *abi.Job
	fc         abi.FunctionConfig
	config     map[string]string
	inOff      uint64
	inLen      uint64
	outOff     uint64
	outLen     uint64
	errOff     uint64
	maxOutput  uint64
	allowed    []string
	httpStatus int32
	// httpHeaders is the JSON of the last response's headers.
	httpHeaders []byte

	logs        []abi.LogLine
	logBytes    int
	logsDropped int
	maxLogLines int
	maxLogBytes int

	retry   *abi.ControlRetry
	fail    *string
	nothing *string
	// stopped is set by a host function that ends the guest with a
	// classified sandbox failure; the panic that follows only unwinds.
	stopped *sandboxError

	// rec keeps the attempt's tape when its recording policy is not
	// off; play serves a replay from one (tape.go). Both nil otherwise.
	rec   *recorder
	play  *player
	meter meter
}

// context is the attempt's context, for host functions that block: the
// caller's, ending at the deadline or when Close gives up waiting.
func (c *call) context() context.Context {
	if c.ctx == nil {
		ctx, cancel := context.WithDeadline(c.parent, c.deadline)
		stop := context.AfterFunc(c.h.killCtx, cancel)
		c.ctx, c.cancel = ctx, func() { stop(); cancel() }
	}
	return c.ctx
}

// release frees the context made by context, if any.
func (c *call) release() {
	if c.cancel != nil {
		c.cancel()
		c.ctx, c.cancel = nil, nil
	}
}

func (c *call) expired() bool { return !time.Now().Before(c.deadline) }

// checkCall is run by the guest's countdown (instrument): it ends the
// call when its deadline passed or the host gives up waiting on Close.
// The caller's context is checked by the countdown itself.
func checkCall(ctx context.Context) {
	in := instanceOf(ctx)
	if in == nil || in.call == nil {
		return
	}
	if in.call.expired() {
		panic(sys.NewExitError(sys.ExitCodeDeadlineExceeded))
	}
	select {
	case <-in.h.killCtx.Done():
		panic(sys.NewExitError(sys.ExitCodeContextCanceled))
	default:
	}
}

type sandboxError struct{ exc, msg string }

func (e *sandboxError) Error() string { return e.msg }

// stop ends the guest with a classified sandbox failure.
func (c *call) stop(exc, msg string) {
	c.stopped = &sandboxError{exc, msg}
	panic(c.stopped)
}

// limitedMemory backs a guest's linear memory so that its limit can change
// per call (each function has its own memory_limit) and a refused grow is
// known to be the memory limit, not a guest bug. Its buffer comes from,
// and goes back to, memPools.
type limitedMemory struct {
	buf []byte
	// dirty is how much of buf[:cap(buf)] may hold non-zero bytes: the
	// guest's memory, and what an earlier owner of the buffer left.
	dirty uint64
	max   uint64
	limit uint64
	hit   bool
	// acct is the tenant's account (nil in tests of the memory alone),
	// counted what it holds there, and budget why a grow was refused
	// for a budget (memory.go).
	acct    *tenantMemory
	counted uint64
	budget  string
}

func newLimitedMemory(capBytes, maxBytes, limit uint64, acct *tenantMemory) *limitedMemory {
	m := &limitedMemory{max: maxBytes, limit: limit, acct: acct}
	m.buf, m.dirty = takeMemory(min(capBytes, limit))
	return m
}

func (m *limitedMemory) Reallocate(size uint64) []byte {
	if size > m.limit || size > m.max {
		m.hit = true
		return nil
	}
	if size > m.counted {
		if why := m.acct.grow(size - m.counted); why != "" {
			m.budget = why
			return nil
		}
		m.counted = size
	}
	old := uint64(len(m.buf))
	if size > uint64(cap(m.buf)) {
		// Growth is geometric (the pool's sizes are powers of two), so a
		// guest growing page by page copies its memory a few times only.
		// The old buffer is left to the GC, not recycled: wazero may
		// still hold it.
		nb, dirty := takeMemory(min(max(size, 2*uint64(cap(m.buf))), m.limit))
		copy(nb[:old], m.buf)
		m.buf, m.dirty = nb[:old], max(dirty, old)
	}
	m.buf = m.buf[:size]
	if m.dirty > old {
		clear(m.buf[old:min(size, m.dirty)]) // wasm memory grows zeroed
	}
	m.dirty = max(m.dirty, size)
	return m.buf
}

// Free is called by wazero when the module is closed, which the host does
// only once the guest stopped: the buffer can serve another instance.
func (m *limitedMemory) Free() {
	m.uncount()
	putMemory(m.buf, m.dirty)
	m.buf = nil
}

// uncount gives back what m is counted for, once.
func (m *limitedMemory) uncount() {
	m.acct.release(m.counted)
	m.counted = 0
}

func (m *limitedMemory) size() uint64 { return uint64(len(m.buf)) }

// Linear memories are recycled: a new instance then clears only the bytes
// the last owner used instead of allocating its memory (which the GC
// zeroes, then scans and frees). memPools[k] holds buffers whose capacity
// is at least 1<<k bytes.
const (
	minPooledMemory = 18 // 256 KiB: most small modules never grow past it
	maxPooledMemory = 24 // 16 MiB
)

var memPools [maxPooledMemory + 1]sync.Pool

type pooledMemory struct {
	buf   []byte
	dirty uint64
}

// takeMemory returns an empty buffer of capacity at least n and how many
// of its bytes may be non-zero.
func takeMemory(n uint64) ([]byte, uint64) {
	k := uint(minPooledMemory)
	for k <= maxPooledMemory && uint64(1)<<k < n {
		k++
	}
	if k > maxPooledMemory {
		return make([]byte, 0, n), 0
	}
	if p, _ := memPools[k].Get().(*pooledMemory); p != nil {
		return p.buf, p.dirty
	}
	return make([]byte, 0, uint64(1)<<k), 0
}

func putMemory(buf []byte, dirty uint64) {
	c := uint64(cap(buf))
	if c < 1<<minPooledMemory {
		return
	}
	k := uint(minPooledMemory)
	for k < maxPooledMemory && uint64(1)<<(k+1) <= c {
		k++
	}
	if c > 1<<(maxPooledMemory+1) {
		return
	}
	memPools[k].Put(&pooledMemory{buf[:0], min(dirty, c)})
}

// stdioWriter sends a guest's stdout/stderr (WASI) to the job's log.
type stdioWriter struct {
	in    *instance
	level string
	mu    sync.Mutex
}

func (w *stdioWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if c := w.in.call; c != nil {
		msg := string(p)
		for len(msg) > 0 && (msg[len(msg)-1] == '\n' || msg[len(msg)-1] == '\r') {
			msg = msg[:len(msg)-1]
		}
		if msg != "" {
			c.log(w.level, msg)
		}
	}
	return len(p), nil
}

var errMemoryAtStart = errors.New("initial memory is over the limit")

// newInstance instantiates code for tenant and runs _initialize (Go
// wasip1 reactors need it before any other export), under ctx.
func (h *Host) newInstance(ctx context.Context, deadline time.Time, code *compiled, tenant string, memLimit uint64) (*instance, error) {
	in := &instance{h: h, code: code, tenant: tenant, fns: make(map[string]api.Function, 4)}
	in.k.acct = h.memoryOf(tenant)
	in.k.reset(memLimit)
	if code.minMemory > memLimit {
		return nil, fmt.Errorf("%w: the module starts with %d bytes, limit %d", errMemoryAtStart, code.minMemory, memLimit)
	}
	alloc := experimental.MemoryAllocatorFunc(func(capBytes, maxBytes uint64) experimental.LinearMemory {
		in.mem = newLimitedMemory(capBytes, maxBytes, memLimit, in.k.acct)
		return in.mem
	})
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions(). // _start of a command module is never run; _initialize is run below
		// The clocks and random bytes follow the current call, which
		// may record them or replay them (tape.go).
		WithWalltime(in.walltime, sys.ClockResolution(time.Microsecond)).
		WithNanotime(in.nanotime, sys.ClockResolution(1)).
		WithSysNanosleep().
		WithRandSource(instRand{in}).
		WithStdin(eofReader{}).
		WithStdout(&stdioWriter{in: in, level: "info"}).
		WithStderr(&stdioWriter{in: in, level: "warn"})
	ictx := experimental.WithMemoryAllocator(ctx, alloc)
	ictx = context.WithValue(ictx, instKey{}, in)
	// Host functions called from _initialize need a call to report to.
	in.call = &call{h: h, parent: ctx, deadline: deadline,
		maxLogLines: h.cfg.MaxLogLines, maxLogBytes: int(h.cfg.MaxLogBytes), maxOutput: uint64(h.cfg.MaxOutput)}
	c := in.call
	defer func() { c.release(); in.call = nil }()
	mod, err := h.instantiate(ictx, code, cfg)
	if err != nil {
		// wazero may leave unfreed the memory of a module it could not
		// make: uncounted here, once.
		in.k.uncount()
		if in.mem != nil {
			in.mem.uncount()
		}
		if why := in.budgetRefusal(); why != "" {
			return nil, &sandboxError{abi.ExcMemoryBudget, why}
		}
		if c.stopped != nil { // e.g. a start function's table.grow
			return nil, c.stopped
		}
		if in.mem != nil && in.mem.hit {
			return nil, fmt.Errorf("%w: %v", errMemoryAtStart, err)
		}
		return nil, err
	}
	in.mod = mod
	in.fuel = fuelGlobal(mod)
	if code.hasInit {
		if _, err := mod.ExportedFunction("_initialize").Call(ictx); err != nil {
			in.close()
			if c.stopped != nil {
				return nil, c.stopped
			}
			if why := in.budgetRefusal(); why != "" {
				return nil, &sandboxError{abi.ExcMemoryBudget, why}
			}
			return nil, fmt.Errorf("_initialize: %w", err)
		}
	}
	return in, nil
}

// instantiate turns wazero's panic on a refused initial memory (an
// unexported memory whose minimum is over the limit) into an error.
func (h *Host) instantiate(ctx context.Context, code *compiled, cfg wazero.ModuleConfig) (mod api.Module, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("instantiate: %v", r)
		}
	}()
	return code.rt.InstantiateModule(ctx, code.cm, cfg)
}

func (in *instance) close() {
	if in.mod != nil {
		in.mod.Close(context.Background()) // frees in.mem, uncounting it
	}
	in.k.uncount()
}

func (in *instance) function(name string) api.Function {
	f := in.fns[name]
	if f == nil {
		f = in.mod.ExportedFunction(name)
		in.fns[name] = f
	}
	return f
}

func cryptoRead(p []byte) (int, error) { return rand.Read(p) }

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
