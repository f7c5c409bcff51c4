package host

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wasmq/wasmq/abi"
)

// recorder is one attempt's tape while it runs. Results go into one
// buffer reused across attempts (recorders are pooled), so an attempt
// whose record is dropped at its end — a success under the default
// policy, "failures" — costs appends and no allocation.
type recorder struct {
	entries []tapeRef
	buf     []byte
	size    int
	max     int
	// complete turns false at the first entry over max; every later
	// entry is dropped too, so the tape kept is the attempt's first calls.
	complete bool
}

type tapeRef struct {
	fn, args string
	off, n   int
}

var recorders = sync.Pool{New: func() any { return new(recorder) }}

func newRecorder(max int) *recorder {
	r := recorders.Get().(*recorder)
	r.entries, r.buf, r.size, r.max, r.complete = r.entries[:0], r.buf[:0], 0, max, true
	return r
}

// put returns r to the pool, unless it grew past what is worth keeping.
func (r *recorder) put() {
	if cap(r.buf) <= 1<<20 {
		recorders.Put(r)
	}
}

func (r *recorder) add(fn, args string, result []byte) {
	if !r.complete {
		return
	}
	n := len(fn) + len(args) + len(result)
	if r.size+n > r.max {
		r.complete = false
		return
	}
	r.size += n
	r.entries = append(r.entries, tapeRef{fn, args, len(r.buf), len(result)})
	r.buf = append(r.buf, result...)
}

// tape copies the entries out of the reused buffer.
func (r *recorder) tape() []abi.TapeEntry {
	out := make([]abi.TapeEntry, len(r.entries))
	buf := make([]byte, len(r.buf))
	copy(buf, r.buf)
	for i, e := range r.entries {
		out[i] = abi.TapeEntry{Fn: e.fn, Args: e.args, Result: buf[e.off : e.off+e.n : e.off+e.n]}
	}
	return out
}

// Divergence is the first call of a replay that the tape did not hold.
type Divergence struct {
	// Index is the call's position among the tape's calls, from 1 (the
	// monotonic clock's reads aside, as the replay counts them).
	Index int `json:"index"`
	// Want is the tape's entry there (nil: the tape had ended).
	Want *abi.TapeEntry `json:"want,omitempty"`
	// Got is the call the plugin made (no result).
	Got abi.TapeEntry `json:"got"`
}

func (d *Divergence) String() string {
	got := d.Got.Fn + "(" + d.Got.Args + ")"
	if d.Want == nil {
		return fmt.Sprintf("call %d: %s, past the end of the tape", d.Index, got)
	}
	return fmt.Sprintf("call %d: %s, the tape holds %s(%s)", d.Index, got, d.Want.Fn, d.Want.Args)
}

// player serves one replay's host calls from a tape.
type player struct {
	tape []abi.TapeEntry
	next int
	// strict: the recorded module runs again, so a call the tape does
	// not hold ends the run (wasmq.ReplayDiverged). Otherwise (a new
	// build) the tape serves calls as long as they match, then clocks and
	// random bytes come from the real ones and HTTP and enqueue are
	// refused.
	strict bool
	// incomplete: the tape is a prefix (the record hit its size cap); a
	// call past its end is not a divergence.
	incomplete bool
	off        bool
	div        *Divergence
	// nano serves wasi.nanotime apart from the ordered tape (nanoNext
	// its position): a language runtime reads the monotonic clock on its
	// own (Go's scheduler and GC), as often as the instance's history
	// makes it, so the number of these reads is no divergence.
	nanoNext int
	nanoLast int64
}

// nanotime serves the monotonic clock: the recorded reads in order, then
// one microsecond more each read.
func (p *player) nanotime() int64 {
	for ; p.nanoNext < len(p.tape); p.nanoNext++ {
		if e := p.tape[p.nanoNext]; e.Fn == abi.TapeNanotime && len(e.Result) == 8 {
			p.nanoNext++
			p.nanoLast = int64(binary.LittleEndian.Uint64(e.Result))
			return p.nanoLast
		}
	}
	p.nanoLast += int64(time.Microsecond)
	return p.nanoLast
}

// take returns the tape's result for the call fn(args), or ok false when
// the replay is off the tape (the call is then the caller's to serve or
// refuse). A strict replay stops the guest at a divergence.
func (c *call) take(fn, args string) (result []byte, ok bool) {
	p := c.play
	if p.off {
		return nil, false
	}
	for p.next < len(p.tape) && p.tape[p.next].Fn == abi.TapeNanotime {
		p.next++
	}
	if p.next < len(p.tape) {
		if e := p.tape[p.next]; e.Fn == fn && e.Args == args {
			p.next++
			return e.Result, true
		}
	} else if p.incomplete {
		p.off = true
		return nil, false
	}
	d := &Divergence{Index: TapeCalls(p.tape[:p.next]) + 1, Got: abi.TapeEntry{Fn: fn, Args: args}}
	if p.next < len(p.tape) {
		want := p.tape[p.next]
		want.Result = nil
		d.Want = &want
	}
	p.div, p.off = d, true
	if p.strict {
		c.stop(abi.ExcReplayDiverged, "replay diverged at "+d.String())
	}
	return nil, false
}

// unused counts the tape's calls a replay did not reach.
func (p *player) unused() int { return TapeCalls(p.tape[p.next:]) }

// TapeCalls counts a tape's calls, the monotonic clock's reads aside: a
// language runtime makes them on its own.
func TapeCalls(tape []abi.TapeEntry) int {
	n := 0
	for _, e := range tape {
		if e.Fn != abi.TapeNanotime {
			n++
		}
	}
	return n
}

// world answers a nondeterministic call: from the tape when replaying,
// else from real(), kept on the tape when recording. Off the tape,
// refuse (if not nil) answers instead of real: a replay reaches nothing
// outside the host.
func (c *call) world(fn, args string, real, refuse func() []byte) []byte {
	if c.play != nil {
		if r, ok := c.take(fn, args); ok {
			return r
		}
		if refuse != nil {
			return refuse()
		}
		return real()
	}
	r := real()
	if c.rec != nil {
		c.rec.add(fn, args, r)
	}
	return r
}

// taping says whether a call records or replays: false, the host
// functions take their direct path.
func (c *call) taping() bool { return c.rec != nil || c.play != nil }

// replayed is the tape's answer when replaying and on the tape. The
// clock, sleep and random host functions use it and note instead of
// world: a result recorded from the stack costs no allocation, so a
// "failures" attempt that ends done costs appends only.
func (c *call) replayed(fn, args string) ([]byte, bool) {
	if c.play == nil {
		return nil, false
	}
	return c.take(fn, args)
}

// add64 records an 8-byte little-endian result.
func (r *recorder) add64(fn string, v uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	r.add(fn, "", b[:])
}

// argsDigest sums up a request's bytes: enough to tell two apart.
func argsDigest(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// The WASI clock and random source of an instance, set once at
// instantiation, follow the instance's current call.

func (in *instance) walltime() (sec int64, nsec int32) {
	c := in.call
	if c == nil {
		t := time.Now()
		return t.Unix(), int32(t.Nanosecond())
	}
	if r, ok := c.replayed(abi.TapeWalltime, ""); ok {
		if len(r) != 12 {
			c.stop(abi.ExcReplayDiverged, "replay: a wasi.walltime entry of the tape is not 12 bytes")
		}
		return int64(binary.LittleEndian.Uint64(r)), int32(binary.LittleEndian.Uint32(r[8:]))
	}
	t := time.Now()
	sec, nsec = t.Unix(), int32(t.Nanosecond())
	if c.rec != nil {
		var b [12]byte
		binary.LittleEndian.PutUint64(b[:], uint64(sec))
		binary.LittleEndian.PutUint32(b[8:], uint32(nsec))
		c.rec.add(abi.TapeWalltime, "", b[:])
	}
	return sec, nsec
}

// monoStart makes nanotime monotonic from the process's start, as
// wazero's own nanotime does.
var monoStart = time.Now()

func (in *instance) nanotime() int64 {
	c := in.call
	if c == nil || !c.taping() {
		return int64(time.Since(monoStart))
	}
	if c.play != nil {
		return c.play.nanotime()
	}
	v := int64(time.Since(monoStart))
	c.rec.add64(abi.TapeNanotime, uint64(v))
	return v
}

// instRand is an instance's WASI random source.
type instRand struct{ in *instance }

func (r instRand) Read(p []byte) (int, error) {
	c := r.in.call
	if c == nil || !c.taping() {
		return cryptoRead(p)
	}
	args := strconv.Itoa(len(p))
	if res, ok := c.replayed(abi.TapeRandom, args); ok {
		if len(res) != len(p) {
			c.stop(abi.ExcReplayDiverged, "replay: a wasi.random entry of the tape is not the length asked for")
		}
		return copy(p, res), nil
	}
	n, err := cryptoRead(p)
	if c.rec != nil {
		c.rec.add(abi.TapeRandom, args, p[:n])
	}
	return n, err
}

// tapedFetch is http_request when recording or replaying. The tape keeps
// the whole answer, failures included, and sums up the request: method,
// URL, headers and body. Off the tape a replay refuses the request.
func (in *instance) tapedFetch(ctx context.Context, doc httpRequestDoc, u *url.URL, body []byte) httpAnswer {
	c := in.call
	hdr, _ := json.Marshal(doc.Headers) // map keys sorted: a stable digest
	args := strings.ToUpper(doc.Method) + " " + u.Redacted() + " " + argsDigest(hdr, body)
	r := c.world(abi.TapeHTTP, args, func() []byte {
		b, _ := json.Marshal(in.fetch(ctx, doc, u, body))
		return b
	}, func() []byte {
		b, _ := json.Marshal(httpError(abi.ExcHTTPDenied, fmt.Sprintf("replay: http_request %s %s is not on the tape; a replay performs no real HTTP", strings.ToUpper(doc.Method), u.Redacted())))
		return b
	})
	var a httpAnswer
	if err := json.Unmarshal(r, &a); err != nil {
		c.stop(abi.ExcReplayDiverged, "replay: an http_request entry of the tape is not an answer: "+err.Error())
	}
	return a
}
