package host

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/tetratelabs/wazero/sys"
	"github.com/wasmq/wasmq/abi"
)

// Run runs one attempt of job and reports how it ended. It never panics.
// Cancelling ctx means the caller is shutting down: the attempt ends
// abi.OutcomeInterrupted, distinct from the function's own timeout.
func (h *Host) Run(ctx context.Context, job *abi.Job) (out abi.Outcome) {
	start := time.Now()
	if job == nil {
		return failed(abi.ExcError, "no job")
	}
	defer func() {
		if r := recover(); r != nil {
			h.log.Error().Str("job_uuid", job.UUID).Interface("panic", r).Msg("host panic")
			out = abi.Outcome{Kind: abi.OutcomeFailed, ExcName: abi.ExcError, ExcMessage: fmt.Sprintf("host panic: %v", r), ExcInfo: string(debug.Stack())}
		}
		out.Duration = time.Since(start)
		out.Usage.WallMS = out.Duration.Milliseconds()
	}()
	h.running.Add(1)
	defer h.running.Add(-1)
	if h.closed.Load() {
		return abi.Outcome{Kind: abi.OutcomeInterrupted, ExcMessage: "host is closed"}
	}

	modName, export, err := abi.SplitFunc(job.Func)
	if err != nil {
		return failed(abi.ExcPluginNotFound, err.Error())
	}
	h.mu.Lock()
	m := h.lookupLocked(job.Tenant, modName)
	if m == nil || m.code == nil {
		h.mu.Unlock()
		if m == nil {
			return failed(abi.ExcPluginNotFound, fmt.Sprintf("no plugin module %q", modName))
		}
		// The job's tenant reads this: no server path in it.
		loadErr := strings.ReplaceAll(m.info.LoadError, filepath.Clean(h.cfg.PluginsDir)+string(filepath.Separator), "")
		return failed(abi.ExcPluginInvalid, fmt.Sprintf("plugin module %q failed to load: %s", modName, loadErr))
	}
	code, config, shared := m.code, m.configs[export], m.info.Tenant == ""
	fc, ok := m.info.Functions[export]
	if !ok {
		exports := strings.Join(m.info.Exports, ", ")
		h.mu.Unlock()
		o := failed(abi.ExcPluginNotFound, fmt.Sprintf("plugin module %q has no function %q (exports: %s)", modName, export, exports))
		o.PluginSHA256 = code.digest
		return o
	}
	code.active++
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		code.active--
		h.maybeRetireLocked(code)
		h.mu.Unlock()
	}()

	out = h.runOn(ctx, job, code, config, export, fc)
	out.PluginSHA256 = code.digest
	if out.Record != nil {
		out.Record.Shared = shared
	}
	if retryable(out, fc) {
		out.Kind = abi.OutcomeRetry
		out.Reason = out.ExcName + ": " + out.ExcMessage
		if out.Record != nil {
			out.Record.Outcome = RecordedOutcome(out, code.digest)
		}
	}
	return out
}

// retryable reports whether a sandbox failure is retried: the function's
// retry_on says so, or the memory was taken by other attempts.
func retryable(out abi.Outcome, fc abi.FunctionConfig) bool {
	return out.Kind == abi.OutcomeSandbox && (out.ExcName == abi.ExcMemoryBudget || contains(fc.RetryOn, out.ExcName))
}

func failed(exc, msg string) abi.Outcome {
	return abi.Outcome{Kind: abi.OutcomeFailed, ExcName: exc, ExcMessage: msg}
}

func sandbox(exc, msg string) abi.Outcome {
	return abi.Outcome{Kind: abi.OutcomeSandbox, ExcName: exc, ExcMessage: msg}
}

func (h *Host) runOn(ctx context.Context, job *abi.Job, code *compiled, config map[string]string, export string, fc abi.FunctionConfig) abi.Outcome {
	lim := h.limitsFor(job.Tenant, fc)
	// No context.WithTimeout here: the guest's countdown checks the
	// deadline itself, and host functions that block ask for a context
	// (call.context). A call that never blocks costs no timer.
	deadline := time.Now().Add(lim.timeout)

	docBuf := docBufs.Get().(*[]byte)
	defer putDocBuf(docBuf)
	raw := fc.Input == abi.InputRaw
	var input []byte
	var err error
	if raw {
		input, err = appendRawInput((*docBuf)[:0], job.Args)
	} else {
		input, err = appendInputDocument((*docBuf)[:0], job, deadline)
	}
	*docBuf = input
	if err != nil {
		return failed(abi.ExcError, err.Error())
	}
	if uint64(len(input)) > uint64(h.cfg.MaxInput) {
		return sandbox(abi.ExcInputTooLarge, fmt.Sprintf("input of %d bytes is over the limit of %d bytes", len(input), h.cfg.MaxInput))
	}
	return h.callExport(ctx, job, code, config, export, fc, lim, deadline, input, nil)
}

// callExport runs export on an instance of code with input, recording
// the attempt as its policy says, or replaying it when play is set.
func (h *Host) callExport(ctx context.Context, job *abi.Job, code *compiled, config map[string]string, export string,
	fc abi.FunctionConfig, lim limits, deadline time.Time, input []byte, play *player) abi.Outcome {
	raw := fc.Input == abi.InputRaw
	in, err := h.acquire(ctx, deadline, code, job.Tenant, lim)
	if err != nil {
		return h.classifyStart(ctx, deadline, err, lim)
	}
	c := &in.state // reused: the instance serves one job at a time
	*c = call{
		h: h, parent: ctx, deadline: deadline,
		job: job, fc: fc, config: config, maxOutput: uint64(h.cfg.MaxOutput), allowed: fc.AllowedHosts,
		maxLogLines: h.cfg.MaxLogLines, maxLogBytes: int(h.cfg.MaxLogBytes),
	}
	released := false // once the instance is back in its pool, c is not ours
	defer func() {
		if !released {
			c.release()
		}
	}()
	in.k.reset(lim.memory)
	if in.mem != nil {
		in.mem.hit, in.mem.budget = false, ""
	}
	if uint64(len(input))+1 > lim.memory {
		in.close()
		return sandbox(abi.ExcInputTooLarge, fmt.Sprintf("input of %d bytes does not fit the memory limit of %d bytes", len(input), lim.memory))
	}
	c.inOff, c.inLen = in.k.write(input), uint64(len(input))
	if why := in.k.budget; why != "" {
		in.close()
		return sandbox(abi.ExcMemoryBudget, "the input could not be written: "+why)
	}
	policy := h.recordPolicy(job.Tenant, fc)
	switch {
	case play != nil:
		c.play = play
	case policy != abi.RecordOff:
		c.rec = newRecorder(int(h.cfg.RecordMaxBytes))
	}
	in.call = c
	c.startMeter(in, h.opts.noMeter, fc.MaxFuel)
	in.uses++
	stack := in.stack[:]
	stack[0] = 0
	callStart := time.Now()
	callErr := in.function(export).CallWithStack(withInstance(ctx, in), stack)
	callTime := time.Since(callStart)
	c.stopMeter(in)
	in.call, in.ctx = nil, instCtx{}

	out := h.outcome(ctx, in, c, callErr, int32(uint32(stack[0])), export, raw)
	if why := in.budgetRefusal(); why != "" && (out.Kind == abi.OutcomeFailed || out.Kind == abi.OutcomeSandbox) {
		// Whatever the guest made of the refused grow (a trap, an
		// exit, an error of its own), the budget is why.
		o := sandbox(abi.ExcMemoryBudget, why)
		o.ExcInfo = out.ExcName + ": " + out.ExcMessage
		out = o
	}
	if h.opts.observe != nil && callErr == nil {
		h.opts.observe(bytes.Clone(input), bytes.Clone(in.k.mem[c.outOff:c.outOff+c.outLen]), int32(uint32(stack[0])), string(in.k.block(c.errOff)))
	}
	out.Logs = c.logs
	out.CallTime = callTime
	out.Usage = c.usage(in)
	if c.logsDropped > 0 {
		out.Logs = append(out.Logs, abi.LogLine{Time: time.Now().UTC(), Level: "warn", Message: fmt.Sprintf("wasmq: %d more log lines dropped (limit %d lines, %d bytes)", c.logsDropped, c.maxLogLines, c.maxLogBytes)})
	}
	if out.Kind == abi.OutcomeFailed || out.Kind == abi.OutcomeSandbox {
		out.ExcInfo = excInfo(out, job.Func)
	}
	rec := c.rec
	c.rec, c.play = nil, nil
	c.release()
	released = true
	h.release(in, callErr == nil && c.stopped == nil, lim)
	if rec != nil {
		var why *abi.LogLine
		out.Record, why = h.keepWithinBudget(job.Tenant, keepRecord(policy, rec, out, job, code, config, fc, input))
		if why != nil {
			out.Logs = append(out.Logs, *why)
		}
		rec.put()
	}
	return out
}

// classifyStart maps an instantiation (or _initialize) failure.
func (h *Host) classifyStart(ctx context.Context, deadline time.Time, err error, lim limits) abi.Outcome {
	var se *sandboxError
	switch {
	case errors.As(err, &se):
		return sandbox(se.exc, se.msg)
	case ctx.Err() != nil:
		return abi.Outcome{Kind: abi.OutcomeInterrupted, ExcMessage: "interrupted while instantiating: " + ctx.Err().Error()}
	case errors.Is(err, errMemoryAtStart):
		return sandbox(abi.ExcMemoryLimit, err.Error())
	case !time.Now().Before(deadline):
		return sandbox(abi.ExcTimeout, fmt.Sprintf("instantiation did not finish within %s", lim.timeout))
	}
	var ee *sys.ExitError
	if errors.As(err, &ee) {
		return sandbox(abi.ExcExit, fmt.Sprintf("exited with code %d while initializing", ee.ExitCode()))
	}
	o := sandbox(abi.ExcTrap, "instantiate: "+firstLine(err.Error()))
	o.ExcInfo = err.Error()
	return o
}

func (h *Host) outcome(ctx context.Context, in *instance, c *call, err error, rc int32, export string, raw bool) abi.Outcome {
	if err != nil {
		return h.classifyError(ctx, in, c, err)
	}
	if c.fail != nil {
		return failed(abi.ExcFailed, *c.fail)
	}
	if c.retry != nil {
		return retryOutcome(c.retry)
	}
	if rc != 0 {
		msg := fmt.Sprintf("%s returned %d", export, rc)
		if c.errOff != 0 {
			if b := in.k.block(c.errOff); b != nil {
				msg = string(b)
			}
		}
		return failed(abi.ExcError, msg)
	}
	if c.nothing != nil {
		return abi.Outcome{Kind: abi.OutcomeNothingToDo, Reason: *c.nothing}
	}
	var output []byte
	if c.outLen > 0 {
		output = in.k.mem[c.outOff : c.outOff+c.outLen]
	}
	if raw {
		return rawOutcome(output)
	}
	return resultOutcome(output)
}

// rawOutcome reads the output of an input = "raw" function: the result as
// it is, JSON when it parses, else text; no control document, since a
// plugin written for any Extism host does not know of one.
func rawOutcome(output []byte) abi.Outcome {
	switch {
	case len(output) == 0:
		return abi.Outcome{Kind: abi.OutcomeDone, Result: json.RawMessage("null")}
	case validJSON(output):
		return abi.Outcome{Kind: abi.OutcomeDone, Result: jsonResult(output)}
	}
	return abi.Outcome{Kind: abi.OutcomeDone, Result: textResult(output)}
}

// appendRawInput appends the input of an input = "raw" function: the
// job's first argument, a string as its bytes, {"base64": "..."} decoded,
// any other JSON value as its text; no argument is an empty input.
func appendRawInput(b []byte, args json.RawMessage) ([]byte, error) {
	t := bytes.TrimSpace(args)
	if len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return b, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(t, &list); err != nil {
		return b, fmt.Errorf("args is not a JSON list: %w", err)
	}
	if len(list) == 0 {
		return b, nil
	}
	first := bytes.TrimSpace(list[0])
	switch first[0] {
	case '"':
		var s string
		if err := json.Unmarshal(first, &s); err != nil {
			return b, fmt.Errorf("args[0]: %w", err)
		}
		return append(b, s...), nil
	case '{':
		var obj map[string]json.RawMessage
		if json.Unmarshal(first, &obj) == nil && len(obj) == 1 && obj["base64"] != nil {
			var enc string
			if err := json.Unmarshal(obj["base64"], &enc); err != nil {
				return b, fmt.Errorf("args[0].base64 must be a string of standard base64: %w", err)
			}
			out, err := base64.StdEncoding.AppendDecode(b, []byte(enc))
			if err != nil {
				return b, fmt.Errorf("args[0].base64 is not standard base64: %w", err)
			}
			return out, nil
		}
	}
	return append(b, first...), nil
}

// excInfoLogLines is how many of an attempt's last log lines exc_info
// repeats: enough to see what the plugin was doing, short enough to read.
const excInfoLogLines = 10

// excInfo is what an operator reads to act on a failure, in one text: the
// failure and the plugin's own error, the sandbox's details (for a trap
// the wasm stack, with function names when the module has a name
// section), and the last lines the plugin logged.
func excInfo(o abi.Outcome, fn string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s in %s: %s\n", orDefault(o.ExcName, abi.ExcError), fn, o.ExcMessage)
	if o.ExcInfo != "" {
		b.WriteString(strings.TrimRight(o.ExcInfo, "\n"))
		b.WriteByte('\n')
	}
	logs := o.Logs
	if len(logs) > excInfoLogLines {
		fmt.Fprintf(&b, "last %d of %d log lines:\n", excInfoLogLines, len(logs))
		logs = logs[len(logs)-excInfoLogLines:]
	} else if len(logs) > 0 {
		b.WriteString("log:\n")
	}
	for _, l := range logs {
		fmt.Fprintf(&b, "  %s %-5s %s\n", l.Time.UTC().Format("15:04:05.000"), l.Level, l.Message)
	}
	return b.String()
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// retryOutcome reads the delay a plugin asked for with the bound a
// retry_pattern keeps (abi.MaxRetryDelay): past it the delay would
// overflow time.Duration, and the job would fall back to its pattern or
// retry at a date in the past, depending on by how much.
func retryOutcome(r *abi.ControlRetry) abi.Outcome {
	o := abi.Outcome{Kind: abi.OutcomeRetry, IgnoreRetry: r.IgnoreRetry, Reason: r.Reason}
	if r.Seconds > 0 {
		o.RetryAfter = time.Duration(min(r.Seconds, abi.MaxRetryDelay) * float64(time.Second))
	}
	return o
}

// resultOutcome reads a successful output: a control document, a JSON
// result, or anything else stored by textResult.
func resultOutcome(output []byte) abi.Outcome {
	if len(bytes.TrimSpace(output)) == 0 {
		return abi.Outcome{Kind: abi.OutcomeDone, Result: json.RawMessage("null")}
	}
	if !validJSON(output) {
		return abi.Outcome{Kind: abi.OutcomeDone, Result: textResult(output)}
	}
	result := jsonResult(output)
	t := bytes.TrimSpace(output)
	// A control document has exactly one key, "wasmq": anything else is a
	// plain result, told apart without decoding the whole output.
	if t[0] != '{' || !bytes.HasPrefix(bytes.TrimLeft(t[1:], " \t\r\n"), []byte(`"wasmq"`)) {
		return abi.Outcome{Kind: abi.OutcomeDone, Result: result}
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(output, &top); err != nil || len(top) != 1 || top["wasmq"] == nil {
		return abi.Outcome{Kind: abi.OutcomeDone, Result: result}
	}
	var ctl abi.Control
	dec := json.NewDecoder(bytes.NewReader(top["wasmq"]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ctl); err != nil {
		return failed(abi.ExcError, fmt.Sprintf("output has a \"wasmq\" control key but is not a control document: %v", err))
	}
	switch {
	case ctl.Fail != nil:
		return failed(abi.ExcFailed, ctl.Fail.Message)
	case ctl.Retry != nil:
		return retryOutcome(ctl.Retry)
	case ctl.NothingToDo != nil:
		return abi.Outcome{Kind: abi.OutcomeNothingToDo, Reason: ctl.NothingToDo.Reason}
	case ctl.Result != nil:
		return abi.Outcome{Kind: abi.OutcomeDone, Result: jsonResult(ctl.Result)}
	}
	return failed(abi.ExcError, "control document {\"wasmq\": ...} names none of retry, fail, nothing_to_do, result")
}

// textResult stores an output that is not JSON: as a JSON string when it
// is UTF-8 without NUL (the store would mend NUL into U+FFFD) and that
// string is no longer than its base64 form, else as {"base64":
// "<standard base64>"}; so never more than 4/3 of the output plus 16
// bytes. (json.Marshal of the string escaped each invalid byte as \ufffd,
// each control byte as \u00XX and < > & as \u003c: up to six bytes a
// byte, a 4 MiB binary output stored as 24 MiB.)
func textResult(output []byte) json.RawMessage {
	b64 := len(`{"base64":""}`) + base64.StdEncoding.EncodedLen(len(output))
	if utf8.Valid(output) && bytes.IndexByte(output, 0) < 0 {
		if n := jsonTextLen(output); n <= b64 {
			return appendJSONText(make([]byte, 0, n), output)
		}
	}
	r := make([]byte, 0, b64)
	r = append(r, `{"base64":"`...)
	r = base64.StdEncoding.AppendEncode(r, output)
	return append(r, `"}`...)
}

// jsonResult stores a JSON output as it is, unless it is not UTF-8 (JSON
// strings may hold any byte): the store would mend it into one JSON string
// of the whole document, escaped up to six bytes a byte, so it is stored
// as {"base64": ...} instead.
func jsonResult(output []byte) json.RawMessage {
	if !utf8.Valid(output) {
		return textResult(output)
	}
	return json.RawMessage(bytes.Clone(output))
}

// jsonTextEscapes holds the JSON escape of each byte appendJSONText
// escapes ("" for a byte written as it is).
var jsonTextEscapes = func() (e [256]string) {
	for c := 0; c < 0x20; c++ {
		e[c] = fmt.Sprintf(`\u%04x`, c)
	}
	e['\b'], e['\f'], e['\n'], e['\r'], e['\t'] = `\b`, `\f`, `\n`, `\r`, `\t`
	e['"'], e['\\'] = `\"`, `\\`
	return e
}()

// jsonTextLen is the length of appendJSONText(nil, s).
func jsonTextLen(s []byte) int {
	n := 2
	for _, c := range s {
		if e := jsonTextEscapes[c]; e != "" {
			n += len(e)
		} else {
			n++
		}
	}
	return n
}

// appendJSONText appends valid UTF-8 s as a JSON string escaping only what
// JSON requires (quote, backslash, control bytes), not < > & as
// encoding/json does.
func appendJSONText(b, s []byte) []byte {
	b = append(b, '"')
	start := 0
	for i, c := range s {
		if e := jsonTextEscapes[c]; e != "" {
			b = append(b, s[start:i]...)
			b = append(b, e...)
			start = i + 1
		}
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func (h *Host) classifyError(ctx context.Context, in *instance, c *call, err error) abi.Outcome {
	if c.stopped != nil {
		return sandbox(c.stopped.exc, c.stopped.msg)
	}
	if ctx.Err() != nil {
		return abi.Outcome{Kind: abi.OutcomeInterrupted, ExcMessage: "interrupted: " + ctx.Err().Error()}
	}
	if h.closed.Load() {
		return abi.Outcome{Kind: abi.OutcomeInterrupted, ExcMessage: "interrupted: the host was closed"}
	}
	var ee *sys.ExitError
	if errors.As(err, &ee) {
		switch ee.ExitCode() {
		case sys.ExitCodeDeadlineExceeded, sys.ExitCodeContextCanceled:
			return sandbox(abi.ExcTimeout, fmt.Sprintf("did not finish within its timeout (deadline %s)", c.deadline.UTC().Format(time.RFC3339Nano)))
		}
		return sandbox(abi.ExcExit, fmt.Sprintf("exited with code %d (proc_exit)", ee.ExitCode()))
	}
	if c.expired() {
		return sandbox(abi.ExcTimeout, "did not finish within its timeout")
	}
	if in.k.hit && in.k.refused > c.maxOutput {
		o := sandbox(abi.ExcOutputTooLarge, fmt.Sprintf("a kernel block of %d bytes was refused: over the output limit of %d bytes and the memory limit of %d bytes", in.k.refused, c.maxOutput, in.k.limit))
		o.ExcInfo = err.Error()
		return o
	}
	if (in.mem != nil && in.mem.hit) || in.k.hit {
		o := sandbox(abi.ExcMemoryLimit, fmt.Sprintf("memory limit of %d bytes reached: %s", in.k.limit, firstLine(err.Error())))
		o.ExcInfo = err.Error()
		return o
	}
	o := sandbox(abi.ExcTrap, firstLine(err.Error()))
	o.ExcInfo = err.Error()
	return o
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// docBufs holds the buffers input documents are built in (they are copied
// into the kernel arena).
var docBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func putDocBuf(b *[]byte) {
	if cap(*b) <= 64<<10 {
		docBufs.Put(b)
	}
}

// appendInputDocument appends {"args", "kwargs", "context"} to b: the
// caller's context keys, overlaid with what the host knows about the
// attempt. Args and kwargs are copied as they are; the document is written
// by hand: encoding/json on a map was 40% of a pooled call.
func appendInputDocument(b []byte, job *abi.Job, deadline time.Time) ([]byte, error) {
	caller, err := callerContext(job.Context)
	if err != nil {
		return b, err
	}
	b = append(b, `{"args":`...)
	b = append(b, orJSON(job.Args, "[]")...)
	b = append(b, `,"kwargs":`...)
	b = append(b, orJSON(job.Kwargs, "{}")...)
	b = append(b, `,"context":{"job_uuid":`...)
	b = appendJSONString(b, job.UUID)
	b = append(b, `,"tenant":`...)
	b = appendJSONString(b, job.Tenant)
	b = append(b, `,"channel":`...)
	b = appendJSONString(b, job.Channel)
	b = append(b, `,"retry":`...)
	b = strconv.AppendInt(b, int64(job.Retry), 10)
	b = append(b, `,"attempt":`...)
	b = strconv.AppendInt(b, int64(job.Attempt), 10)
	b = append(b, `,"max_retries":`...)
	b = strconv.AppendInt(b, int64(job.MaxRetries), 10)
	b = append(b, `,"priority":`...)
	b = strconv.AppendInt(b, int64(job.Priority), 10)
	b = append(b, `,"deadline":"`...)
	b = deadline.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	// user and model: the job's own fields win, else the caller's keys.
	hostUser := job.UserID != "" || caller["user"] == nil
	if hostUser {
		b = append(b, `,"user":`...)
		b = appendJSONString(b, job.UserID)
	}
	hostModel := job.ModelName != "" || caller["model"] == nil
	if hostModel {
		b = append(b, `,"model":`...)
		b = appendJSONString(b, job.ModelName)
	}
	if caller["records"] == nil {
		b = append(b, `,"records":[]`...)
	}
	if len(caller) == 0 {
		return append(b, "}}"...), nil
	}
	keys := make([]string, 0, len(caller))
	for k := range caller {
		switch k {
		case "job_uuid", "tenant", "channel", "retry", "attempt", "max_retries", "priority", "deadline":
			continue
		case "user":
			if hostUser {
				continue
			}
		case "model":
			if hostModel {
				continue
			}
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b = append(b, ',')
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = append(b, caller[k]...)
	}
	return append(b, "}}"...), nil
}

// callerContext decodes the caller's context keys (nil when there are
// none; the values stay raw JSON).
func callerContext(raw json.RawMessage) (map[string]json.RawMessage, error) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || bytes.Equal(t, []byte("null")) || bytes.Equal(t, []byte("{}")) {
		return nil, nil
	}
	var caller map[string]json.RawMessage
	if err := json.Unmarshal(t, &caller); err != nil {
		return nil, fmt.Errorf("job context is not a JSON object: %w", err)
	}
	return caller, nil
}

// appendJSONString appends s as a JSON string (invalid UTF-8 becomes
// U+FFFD, as encoding/json does).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r < 0x20:
			b = append(b, `\u00`...)
			b = append(b, "0123456789abcdef"[r>>4], "0123456789abcdef"[r&0xf])
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return append(b, '"')
}

func orJSON(v json.RawMessage, def string) json.RawMessage {
	if t := bytes.TrimSpace(v); len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return json.RawMessage(def)
	}
	return v
}

// withInstance returns the instance's context for a call under ctx.
func withInstance(ctx context.Context, in *instance) context.Context {
	in.ctx = instCtx{ctx, in}
	return &in.ctx
}

// acquire takes an idle pooled instance of code for tenant, or makes one.
func (h *Host) acquire(ctx context.Context, deadline time.Time, code *compiled, tenant string, lim limits) (*instance, error) {
	if !lim.isolated {
		h.mu.Lock()
		idle := code.pools[tenant]
		for len(idle) > 0 {
			in := idle[len(idle)-1]
			idle = idle[:len(idle)-1]
			h.unpoolLocked(in)
			if in.mod.IsClosed() || in.mem != nil && in.mem.size() > lim.memory {
				// Closed by a deadline that fired as its last call
				// returned, or grew past this function's limit under
				// another function.
				in.close()
				continue
			}
			code.pools[tenant] = idle
			h.mu.Unlock()
			if in.mem != nil {
				in.mem.limit = lim.memory
			}
			return in, nil
		}
		code.pools[tenant] = idle
		h.mu.Unlock()
	}
	return h.newInstance(ctx, deadline, code, tenant, lim.memory)
}

// release puts a healthy instance back in its pool, or discards it.
func (h *Host) release(in *instance, healthy bool, lim limits) {
	keep := healthy && !lim.isolated && in.uses < h.cfg.MaxUses &&
		(in.mem == nil || in.mem.size() <= uint64(h.cfg.RecycleMemory))
	if keep {
		h.mu.Lock()
		c := in.code
		if c.refs > 0 && len(c.pools[in.tenant]) < int(h.poolSize.Load()) && !h.closed.Load() {
			closing := h.poolLocked(in)
			h.mu.Unlock()
			for _, old := range closing {
				old.close()
			}
			return
		}
		h.mu.Unlock()
	}
	in.close()
}
