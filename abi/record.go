package abi

import (
	"encoding/json"
	"fmt"
)

// Recording policies (FunctionConfig.Record, a tenant's record): which
// attempts keep a Record (docs/replay.md).
const (
	// RecordOff keeps no record.
	RecordOff = "off"
	// RecordFailures keeps the record of attempts that did not end done
	// (or nothing to do): the default.
	RecordFailures = "failures"
	// RecordAll keeps the record of every attempt.
	RecordAll = "all"
)

// CheckRecordPolicy refuses a value that is none of the policies ("" is
// "not set").
func CheckRecordPolicy(p string) error {
	switch p {
	case "", RecordOff, RecordFailures, RecordAll:
		return nil
	}
	return fmt.Errorf("%q is not a recording policy; use %q, %q or %q", p, RecordOff, RecordFailures, RecordAll)
}

// Tape entry names other than host function names: the WASI imports a
// plugin reads the world through.
const (
	TapeWalltime = "wasi.walltime" // clock_time_get(realtime): 12 bytes, sec i64 + nsec i32, little endian
	TapeNanotime = "wasi.nanotime" // clock_time_get(monotonic): 8 bytes, i64 little endian
	TapeRandom   = "wasi.random"   // random_get: the bytes
	// TapeHTTP is http_request's whole answer: the JSON of TapeHTTPAnswer.
	TapeHTTP = "http_request"
)

// TapeEntry is one nondeterministic result the host handed a plugin, in
// the order the plugin asked.
type TapeEntry struct {
	// Fn is the host function (abi's Host* names, TapeHTTP) or WASI
	// import (Tape* names).
	Fn string `json:"fn"`
	// Args sums up the call's arguments, to find the first call that
	// differs from the recorded one: a length, a clock, or a short
	// sha256 of a request.
	Args string `json:"args,omitempty"`
	// Result is what the host returned, as bytes.
	Result []byte `json:"result"`
}

// TapeHTTPAnswer is what http_request handed the plugin: a response, or
// the sandbox failure that stopped it.
type TapeHTTPAnswer struct {
	Status  int32           `json:"status,omitempty"`
	Headers json.RawMessage `json:"headers,omitempty"`
	Body    []byte          `json:"body,omitempty"`
	// Error is the message of a request that did not get a response
	// (refused, unreachable, too large): the attempt ended on it, as the
	// sandbox failure Exc, or as a trap when Exc is "".
	Error string `json:"error,omitempty"`
	Exc   string `json:"exc,omitempty"`
}

// Record is what one attempt saw of the world, enough to run it again
// without it: the input document as the plugin received it, the module's
// digest, the function's config and the tape (docs/replay.md).
type Record struct {
	JobUUID string `json:"job_uuid,omitempty"`
	Attempt int    `json:"attempt,omitempty"`
	Tenant  string `json:"tenant,omitempty"`
	// Func is module.export as the job named it.
	Func string `json:"func"`
	// Input is the input document byte for byte (the envelope with its
	// deadline, or a raw input).
	Input        []byte `json:"input"`
	PluginSHA256 string `json:"plugin_sha256"`
	// Function is the function's sidecar config; Config what config_get
	// served (the module's [config] under the function's).
	Function FunctionConfig    `json:"function"`
	Config   map[string]string `json:"config,omitempty"`
	// Shared: the module is a shared one, whose config a tenant is not
	// shown (GET /v1/plugins); ConfigWithheld says the record was served
	// without it, so a replay runs with no config.
	Shared         bool        `json:"shared,omitempty"`
	ConfigWithheld bool        `json:"config_withheld,omitempty"`
	Tape           []TapeEntry `json:"tape"`
	// Complete is false when the tape reached the size cap: the entries
	// kept are the first ones, the others were dropped.
	Complete bool `json:"complete"`
	// Outcome is how the recorded attempt ended (no logs, no exc_info).
	Outcome Outcome `json:"outcome"`
	// Size is the bytes of input and tape, the measure of the cap.
	Size int `json:"size"`
	// Wasm is the module's bytes, for the store to keep once per digest;
	// not part of the record's JSON (the API serves it apart).
	Wasm []byte `json:"-"`
}
