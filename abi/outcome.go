package abi

import (
	"encoding/json"
	"time"
)

// OutcomeKind is how one attempt ended (docs/semantics.md §3).
type OutcomeKind string

const (
	// OutcomeDone: the function succeeded; Result holds its JSON output.
	OutcomeDone OutcomeKind = "done"
	// OutcomeNothingToDo: succeeded with nothing to do; the job ends done.
	OutcomeNothingToDo OutcomeKind = "nothing_to_do"
	// OutcomeRetry: postpone and try again (RetryAfter, IgnoreRetry).
	OutcomeRetry OutcomeKind = "retry"
	// OutcomeFailed: a guest error or an explicit final failure.
	OutcomeFailed OutcomeKind = "failed"
	// OutcomeSandbox: the sandbox stopped the guest (timeout, memory,
	// trap, exit, oversized input or output); ExcName says which.
	OutcomeSandbox OutcomeKind = "sandbox"
	// OutcomeInterrupted: the node was stopping and cut the attempt short;
	// the job goes back to pending without counting the attempt.
	OutcomeInterrupted OutcomeKind = "interrupted"
)

// Exception names recorded in Job.ExcName. Sandbox failures are distinct so
// operators and retry policies can tell them apart.
const (
	ExcError          = "wasmq.Error"          // guest returned non-zero
	ExcFailed         = "wasmq.Failed"         // guest asked for a final failure
	ExcMaxRetries     = "wasmq.MaxRetries"     // retry budget spent
	ExcTimeout        = "wasmq.Timeout"        // wall-clock limit
	ExcMemoryLimit    = "wasmq.MemoryLimit"    // memory pages limit
	ExcTrap           = "wasmq.Trap"           // unreachable, out of bounds, stack overflow...
	ExcExit           = "wasmq.Exit"           // proc_exit
	ExcInputTooLarge  = "wasmq.InputTooLarge"  // input over the function's limit
	ExcOutputTooLarge = "wasmq.OutputTooLarge" // output over the function's limit
	ExcHTTPDenied     = "wasmq.HTTPDenied"     // http_request to a host not in allowed_hosts
	ExcPluginNotFound = "wasmq.PluginNotFound" // module or export missing at run time
	ExcPluginInvalid  = "wasmq.PluginInvalid"  // module failed to compile or link
	ExcJobFoundDead   = "JobFoundDead"         // lease expired with the budget spent
	ExcCancelled      = "wasmq.Cancelled"      // cancelled by hand while it ran
	ExcReplayDiverged = "wasmq.ReplayDiverged" // a replay's plugin asked what the tape does not hold
	// ExcFuelExhausted: the attempt used its function's max_fuel. Unlike
	// a timeout it does not depend on the machine: the same input stops
	// at the same fuel on every run.
	ExcFuelExhausted = "wasmq.FuelExhausted"
	// ExcMemoryBudget: a grow of the guest's memory (or an instantiation)
	// was refused because the tenant's instances on the node, or all of
	// the node's, held their budget (tenants.max_memory, host.max_memory).
	// The memory was taken by other attempts, so the attempt is retried
	// as a retryable error is, its retry counted.
	ExcMemoryBudget = "wasmq.MemoryBudget"
)

// Usage is what one attempt used, whatever its end (docs/abi.md, "Usage
// and fuel").
type Usage struct {
	// Fuel counts the function entries and loop iterations the guest
	// executed: the unit of max_fuel and of a tenant's fuel_rate.
	Fuel int64 `json:"fuel"`
	// WallMS is the attempt's wall time in milliseconds (Outcome.Duration).
	WallMS int64 `json:"wall_ms"`
	// PeakMemory is the guest's linear memory at the end of the call, in
	// bytes: it only grows, so it is the call's peak (a pooled instance
	// starts with what its earlier calls grew).
	PeakMemory int64 `json:"peak_memory"`
	// HostCalls counts the host functions the guest called, other than
	// the kernel's memory primitives (alloc, free, length, load_*,
	// store_*, input_*, output_*) and WASI.
	HostCalls int64 `json:"host_calls"`
	// HTTPRequests, HTTPBytesOut and HTTPBytesIn count http_request calls
	// that reached the network, their request bodies and response bodies.
	HTTPRequests int64 `json:"http_requests"`
	HTTPBytesOut int64 `json:"http_bytes_out"`
	HTTPBytesIn  int64 `json:"http_bytes_in"`
}

// UsageRow is what a tenant's function used over a time range
// (GET /v1/usage): the sums of its attempts' usage, the largest peak
// memory.
type UsageRow struct {
	Tenant   string `json:"tenant"`
	Func     string `json:"func"`
	Attempts int64  `json:"attempts"`
	Usage
}

// Add adds u2 to u.
func (u *Usage) Add(u2 Usage) {
	u.Fuel += u2.Fuel
	u.WallMS += u2.WallMS
	u.PeakMemory = max(u.PeakMemory, u2.PeakMemory)
	u.HostCalls += u2.HostCalls
	u.HTTPRequests += u2.HTTPRequests
	u.HTTPBytesOut += u2.HTTPBytesOut
	u.HTTPBytesIn += u2.HTTPBytesIn
}

// Outcome is what the host reports for one attempt.
type Outcome struct {
	Kind   OutcomeKind     `json:"kind"`
	Result json.RawMessage `json:"result,omitempty"`
	// RetryAfter is the delay the plugin asked for; 0 lets the function's
	// retry_pattern or the default interval decide.
	RetryAfter  time.Duration `json:"retry_after,omitempty"`
	IgnoreRetry bool          `json:"ignore_retry,omitempty"`
	// Reason is the human text of a retry or nothing-to-do outcome.
	Reason       string        `json:"reason,omitempty"`
	ExcName      string        `json:"exc_name,omitempty"`
	ExcMessage   string        `json:"exc_message,omitempty"`
	ExcInfo      string        `json:"exc_info,omitempty"`
	Logs         []LogLine     `json:"logs,omitempty"`
	PluginSHA256 string        `json:"plugin_sha256,omitempty"`
	Duration     time.Duration `json:"duration"`
	// CallTime is the export call in the sandbox alone (Duration also
	// counts taking or making the instance and reading the outcome).
	CallTime time.Duration `json:"-"`
	// Record is what the attempt saw of the world, when its recording
	// policy keeps it (docs/replay.md); the store writes it with the
	// attempt.
	Record *Record `json:"-"`
	// Usage is filled on every attempt that reached the host.
	Usage Usage `json:"usage"`
}

// Input is the JSON document a plugin reads as its input.
type Input struct {
	Args    json.RawMessage `json:"args"`
	Kwargs  json.RawMessage `json:"kwargs"`
	Context json.RawMessage `json:"context"`
}

// Control is the structured output a plugin may return instead of a plain
// result, to signal an outcome other than done without a host function:
//
//	{"wasmq": {"retry": {"seconds": 30, "ignore_retry": false, "reason": "busy"}}}
//	{"wasmq": {"fail": {"message": "bad account"}}}
//	{"wasmq": {"nothing_to_do": {"reason": "already synced"}}}
//	{"wasmq": {"result": <any JSON>}}   // done, with a result that itself has a "wasmq" key
//
// A document with any other top-level key, or none, is a plain result.
type Control struct {
	Retry       *ControlRetry   `json:"retry,omitempty"`
	Fail        *ControlFail    `json:"fail,omitempty"`
	NothingToDo *ControlReason  `json:"nothing_to_do,omitempty"`
	Result      json.RawMessage `json:"result,omitempty"`
}

type ControlRetry struct {
	Seconds     float64 `json:"seconds,omitempty"`
	IgnoreRetry bool    `json:"ignore_retry,omitempty"`
	Reason      string  `json:"reason,omitempty"`
}

type ControlFail struct {
	Message string `json:"message"`
}

type ControlReason struct {
	Reason string `json:"reason,omitempty"`
}
