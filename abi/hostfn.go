package abi

import "errors"

// Host function names a plugin may import from module HostUserModule. The
// version is part of the name (as Benthos does), so a changed signature is
// a new name and old plugins keep working. Every pointer is an Extism
// kernel-memory offset (i64) to a block holding UTF-8 JSON or text.
const (
	HostEnvModule  = "extism:host/env"
	HostUserModule = "extism:host/user"

	// wasmq_retry_v1(seconds i64, ignore_retry i32, reason i64)
	// Marks the attempt retryable. The plugin then returns 0 or non-zero;
	// the retry wins either way. seconds <= 0 lets the function's
	// retry_pattern decide, seconds past MaxRetryDelay wait that long;
	// reason is a block offset or 0.
	HostRetry = "wasmq_retry_v1"
	// wasmq_fail_v1(message i64): final failure, never retried.
	HostFail = "wasmq_fail_v1"
	// wasmq_nothing_to_do_v1(reason i64): done, nothing was needed.
	HostNothingToDo = "wasmq_nothing_to_do_v1"
	// wasmq_enqueue_v1(request i64) -> i64: enqueues a child job for the
	// same tenant. request is the JSON body of POST /v1/jobs; the answer
	// is a block with {"uuid": "..."} or {"error": "..."}.
	HostEnqueue = "wasmq_enqueue_v1"
	// wasmq_sleep_v1(ms i64) -> i32: sleeps, cut short by the job
	// deadline; returns 0, or 1 when the deadline cut it short.
	HostSleep = "wasmq_sleep_v1"
	// wasmq_log_v1(level i32, message i64): a log line captured with the
	// job (0 debug, 1 info, 2 warn, 3 error). Extism's log_* functions are
	// captured the same way.
	HostLog = "wasmq_log_v1"
	// wasmq_now_v1() -> i64: wall-clock Unix time in nanoseconds.
	HostNow = "wasmq_now_v1"
	// wasmq_progress_v1(percent i32, message i64) -> i32: the job's
	// progress, 0 to 100, and a short message (a block offset, or 0);
	// returns 0, or 1 when percent is out of range (nothing recorded).
	// The latest report is kept on the job, written at most once a
	// second.
	HostProgress = "wasmq_progress_v1"
)

// Sentinel errors shared across packages.
var (
	// ErrNotFound: no such job (or it belongs to another tenant), module or
	// export.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: a request value is out of range or malformed.
	ErrInvalid = errors.New("invalid argument")
	// ErrConflict: the request clashes with current state (other than a
	// transition), e.g. a dependency on a job of another tenant.
	ErrConflict = errors.New("conflict")
	// ErrQuota: the tenant holds all a quota of its allows, and will
	// until it removes something (unlike a rate, waiting does not help).
	ErrQuota = errors.New("quota exceeded")
)

// FieldError names the request field a validation error is about, so the
// HTTP layer can answer {"error": {"field": ...}}.
type FieldError struct {
	Field string
	Msg   string
	// Err is the class (ErrInvalid, ErrNotFound...).
	Err error
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

func (e *FieldError) Unwrap() error { return e.Err }
