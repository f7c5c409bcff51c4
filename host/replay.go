package host

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/wasmq/wasmq/abi"
)

// recordPolicy is the policy of a tenant's function: the tenant's, over
// the function's sidecar, over the host's.
func (h *Host) recordPolicy(tenant string, fc abi.FunctionConfig) string {
	if p := h.cfg.TenantRecord[tenant]; p != "" {
		return p
	}
	if fc.Record != "" {
		return fc.Record
	}
	return h.cfg.Record
}

// keepRecord turns an ended attempt's recorder into its record, or nil
// when the policy drops it: "failures" keeps the attempts that did not
// end done, and no policy keeps an interrupted attempt (it does not
// count; the job runs it again).
func keepRecord(policy string, r *recorder, out abi.Outcome, job *abi.Job, code *compiled, config map[string]string, fc abi.FunctionConfig, input []byte) *abi.Record {
	switch {
	case out.Kind == abi.OutcomeInterrupted:
		return nil
	case policy == abi.RecordFailures && (out.Kind == abi.OutcomeDone || out.Kind == abi.OutcomeNothingToDo):
		return nil
	}
	return &abi.Record{
		JobUUID: job.UUID, Attempt: job.Attempt, Tenant: job.Tenant, Func: job.Func,
		Input: bytes.Clone(input), PluginSHA256: code.digest, Function: fc, Config: config,
		Tape: r.tape(), Complete: r.complete, Outcome: RecordedOutcome(out, code.digest),
		Size: len(input) + r.size, Wasm: code.wasm,
	}
}

// RecordedOutcome is what a record keeps of an outcome: how it ended and
// what it used, not its logs, timings or exc_info.
func RecordedOutcome(o abi.Outcome, digest string) abi.Outcome {
	return abi.Outcome{Kind: o.Kind, Result: o.Result, RetryAfter: o.RetryAfter, IgnoreRetry: o.IgnoreRetry,
		Reason: o.Reason, ExcName: o.ExcName, ExcMessage: o.ExcMessage, PluginSHA256: digest, Usage: o.Usage}
}

// Replayed is how a replay ended.
type Replayed struct {
	Outcome abi.Outcome
	// Divergence is the first call the tape did not hold, if any.
	Divergence *Divergence
	// Used and Unused count the tape's entries served and not reached
	// (the monotonic clock aside).
	Used, Unused int
}

// Same says whether a replay repeated the recorded attempt: the same
// outcome (kind, result, exception, reason) and, for the recorded module,
// the whole tape and nothing else.
func (r Replayed) Same(recorded abi.Outcome, strict bool) bool {
	if strict && (r.Divergence != nil || r.Unused > 0) {
		return false
	}
	return SameOutcome(recorded, r.Outcome)
}

// SameOutcome compares what two outcomes say, not when or how long.
func SameOutcome(a, b abi.Outcome) bool {
	return a.Kind == b.Kind && a.ExcName == b.ExcName && a.ExcMessage == b.ExcMessage &&
		a.Reason == b.Reason && a.IgnoreRetry == b.IgnoreRetry && a.RetryAfter == b.RetryAfter &&
		bytes.Equal(bytes.TrimSpace(a.Result), bytes.TrimSpace(b.Result))
}

// Replay runs a recorded attempt again on wasm: with the record's input
// document byte for byte, its function config, and every
// nondeterministic host call served from its tape. Nothing reaches the
// world: no HTTP, no child job. Strict replays the recorded module (wasm
// must have the record's digest) and ends at the first call the tape does
// not hold (wasmq.ReplayDiverged); otherwise wasm is a new build, served
// from the tape as long as its calls match, then by the real clocks and
// random bytes, with HTTP and enqueue refused. The replay is never stored.
func (h *Host) Replay(ctx context.Context, rec *abi.Record, wasm []byte, strict bool) (Replayed, error) {
	if rec == nil {
		return Replayed{}, fmt.Errorf("replay: no record")
	}
	modName, export, err := abi.SplitFunc(rec.Func)
	if err != nil {
		return Replayed{}, fmt.Errorf("replay: %w", err)
	}
	if err := checkFunctionExtras(rec.Function); err != nil {
		return Replayed{}, fmt.Errorf("replay: the record's function.%w", err)
	}
	h.compileMu.Lock()
	code, err := h.compile(ctx, wasm)
	h.compileMu.Unlock()
	if err != nil {
		return Replayed{}, fmt.Errorf("replay: module %s: %w", modName, err)
	}
	if strict && code.digest != rec.PluginSHA256 {
		return Replayed{}, fmt.Errorf("replay: the module's sha256 is %s, the record's %s", code.digest, rec.PluginSHA256)
	}
	if !contains(code.exports, export) {
		return Replayed{}, fmt.Errorf("replay: module %s has no function %q", modName, export)
	}
	h.running.Add(1)
	defer h.running.Add(-1)
	job := &abi.Job{UUID: rec.JobUUID, Tenant: rec.Tenant, Func: rec.Func, Attempt: rec.Attempt}
	lim := h.limitsFor(rec.Tenant, rec.Function)
	lim.isolated = true // a fresh instance, as nothing of another job may carry over
	play := &player{tape: rec.Tape, strict: strict, incomplete: !rec.Complete}
	start := time.Now()
	out := h.callExport(ctx, job, code, rec.Config, export, rec.Function, lim, time.Now().Add(lim.timeout), rec.Input, play)
	out.Duration = time.Since(start)
	out.PluginSHA256 = code.digest
	if retryable(out, rec.Function) {
		out.Kind = abi.OutcomeRetry
		out.Reason = out.ExcName + ": " + out.ExcMessage
	}
	return Replayed{Outcome: out, Divergence: play.div, Used: TapeCalls(rec.Tape[:play.next]), Unused: play.unused()}, nil
}
