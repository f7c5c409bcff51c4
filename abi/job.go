// Package abi holds the types every part of wasmq shares: the job, its
// states and legal transitions, the outcome of one attempt, per-function
// configuration, the names of the host functions plugins may import, the
// rule of channel names, what the host says of a plugin module and the
// runner's counters.
//
// It is a leaf package: standard library only. host/, runner/, store/,
// enqueue/, api/ and cmd/ exchange data through these types and never
// import each other's for it.
package abi

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// Defaults of docs/semantics.md §1; a function's config or the caller may override.
const (
	DefaultPriority   = 10
	DefaultMaxRetries = 5
	RootChannel       = "root"
	// MaxDescription caps a job's description, in characters (not bytes),
	// however it is set (created, patched).
	MaxDescription = 1000
	// MaxPriority and MaxMaxRetries bound priority and max_retries
	// wherever they are set (a request, a function's configuration):
	// every store keeps them in 32-bit integer columns.
	MaxPriority   = math.MaxInt32
	MaxMaxRetries = math.MaxInt32
	// MaxIdentityKey caps an identity key, in bytes.
	MaxIdentityKey = 255
	// MaxBatch caps the jobs of one request (after batch splitting).
	MaxBatch = 10000
	// MaxSecondsFromNow bounds an eta or expected_at given in seconds: 100
	// years, well inside what a time.Duration holds.
	MaxSecondsFromNow = 100 * 365 * 24 * 3600
	// DefaultRetryInterval postpones a retry when neither the plugin nor
	// the function's retry_pattern gives a delay; [runner]
	// default_retry_interval overrides it.
	DefaultRetryInterval = 10 * time.Minute
)

// Job is one postponed call `module.function(args, kwargs)` and everything
// known about it. Field names match the HTTP API and docs/semantics.md §1.
// Its JSON form is the stable job document: every field always present,
// null when empty (MarshalJSON).
type Job struct {
	UUID        string          `json:"uuid"`
	Tenant      string          `json:"tenant"`
	Func        string          `json:"func"`
	Args        json.RawMessage `json:"args"`
	Kwargs      json.RawMessage `json:"kwargs"`
	Context     json.RawMessage `json:"context"`
	UserID      string          `json:"user_id"`
	ModelName   string          `json:"model_name"`
	FuncString  string          `json:"func_string"`
	Description string          `json:"description"`
	Channel     string          `json:"channel"`
	Priority    int             `json:"priority"`
	ETA         *time.Time      `json:"eta"`
	ExpectedAt  *time.Time      `json:"expected_at"`
	MaxRetries  int             `json:"max_retries"`
	// Retry counts the attempts that count against MaxRetries (docs/semantics.md §3).
	Retry int `json:"retry"`
	// Attempt counts every start over the job's life and is never reset.
	Attempt     int      `json:"attempt"`
	IdentityKey string   `json:"identity_key"`
	GraphUUID   string   `json:"graph_uuid"`
	DependsOn   []string `json:"depends_on"`
	State       State    `json:"state"`

	Result     json.RawMessage `json:"result"`
	ExcName    string          `json:"exc_name"`
	ExcMessage string          `json:"exc_message"`
	ExcInfo    string          `json:"exc_info"`

	DateCreated   time.Time  `json:"date_created"`
	DateEnqueued  *time.Time `json:"date_enqueued"`
	DateStarted   *time.Time `json:"date_started"`
	DateDone      *time.Time `json:"date_done"`
	DateCancelled *time.Time `json:"date_cancelled"`
	// ExecTime is seconds from DateStarted to DateDone of the last attempt.
	ExecTime *float64 `json:"exec_time"`
	// Late is set when the job finished after ExpectedAt.
	Late         bool   `json:"late"`
	WorkerID     string `json:"worker_id"`
	PluginSHA256 string `json:"plugin_sha256"`

	// Seq is the insertion sequence: the last tie-breaker of the run order.
	Seq int64 `json:"seq"`
	// LeaseUntil is when the running node's claim on the job lapses.
	LeaseUntil *time.Time `json:"lease_until"`
	// Progress is the latest progress the job reported (wasmq_progress_v1).
	Progress *Progress `json:"progress"`
	// Usage is what the last finished attempt used (null before one).
	Usage *Usage `json:"usage"`

	// Version is the store's version of the row, which every write to
	// the job changes (none while an attempt runs): the scheduler tells a
	// notice of one hand-over from the next by it. Not part of the
	// document.
	Version int64 `json:"-"`
}

// JobDoc is the JSON form of a Job: the same fields in the same order,
// each text field that may be empty a pointer, so that an empty one is
// null rather than "" or absent. Clients test one thing, null, for "not
// set" (docs/api.md, "The job document").
type JobDoc struct {
	UUID          string          `json:"uuid"`
	Tenant        string          `json:"tenant"`
	Func          string          `json:"func"`
	Args          json.RawMessage `json:"args"`
	Kwargs        json.RawMessage `json:"kwargs"`
	Context       json.RawMessage `json:"context"`
	UserID        *string         `json:"user_id"`
	ModelName     *string         `json:"model_name"`
	FuncString    string          `json:"func_string"`
	Description   string          `json:"description"`
	Channel       string          `json:"channel"`
	Priority      int             `json:"priority"`
	ETA           *time.Time      `json:"eta"`
	ExpectedAt    *time.Time      `json:"expected_at"`
	MaxRetries    int             `json:"max_retries"`
	Retry         int             `json:"retry"`
	Attempt       int             `json:"attempt"`
	IdentityKey   *string         `json:"identity_key"`
	GraphUUID     *string         `json:"graph_uuid"`
	DependsOn     []string        `json:"depends_on"`
	State         State           `json:"state"`
	Result        json.RawMessage `json:"result"`
	ExcName       *string         `json:"exc_name"`
	ExcMessage    *string         `json:"exc_message"`
	ExcInfo       *string         `json:"exc_info"`
	DateCreated   time.Time       `json:"date_created"`
	DateEnqueued  *time.Time      `json:"date_enqueued"`
	DateStarted   *time.Time      `json:"date_started"`
	DateDone      *time.Time      `json:"date_done"`
	DateCancelled *time.Time      `json:"date_cancelled"`
	ExecTime      *float64        `json:"exec_time"`
	Late          bool            `json:"late"`
	WorkerID      *string         `json:"worker_id"`
	PluginSHA256  *string         `json:"plugin_sha256"`
	Seq           int64           `json:"seq"`
	LeaseUntil    *time.Time      `json:"lease_until"`
	Progress      *Progress       `json:"progress"`
	Usage         *Usage          `json:"usage"`
}

func nullable(s *string) *string {
	if *s == "" {
		return nil
	}
	return s
}

// Doc returns the job's JSON form, for answers that add fields to it.
func (j *Job) Doc() *JobDoc {
	d := j.doc()
	return &d
}

// AppendJSON appends the job's document (Doc's JSON) to b. The document
// is built on the stack: a batch answer writes a thousand of them, and
// each Doc was an allocation of its own.
func (j *Job) AppendJSON(b []byte) ([]byte, error) {
	d := j.doc()
	return d.AppendJSON(b)
}

func (j *Job) doc() JobDoc {
	return JobDoc{
		UUID: j.UUID, Tenant: j.Tenant, Func: j.Func, Args: j.Args, Kwargs: j.Kwargs, Context: j.Context,
		UserID: nullable(&j.UserID), ModelName: nullable(&j.ModelName), FuncString: j.FuncString,
		Description: j.Description, Channel: j.Channel, Priority: j.Priority, ETA: j.ETA, ExpectedAt: j.ExpectedAt,
		MaxRetries: j.MaxRetries, Retry: j.Retry, Attempt: j.Attempt, IdentityKey: nullable(&j.IdentityKey),
		GraphUUID: nullable(&j.GraphUUID), DependsOn: j.DependsOn, State: j.State, Result: j.Result,
		ExcName: nullable(&j.ExcName), ExcMessage: nullable(&j.ExcMessage), ExcInfo: nullable(&j.ExcInfo),
		DateCreated: j.DateCreated, DateEnqueued: j.DateEnqueued, DateStarted: j.DateStarted, DateDone: j.DateDone,
		DateCancelled: j.DateCancelled, ExecTime: j.ExecTime, Late: j.Late, WorkerID: nullable(&j.WorkerID),
		PluginSHA256: nullable(&j.PluginSHA256), Seq: j.Seq, LeaseUntil: j.LeaseUntil, Progress: j.Progress,
		Usage: j.Usage,
	}
}

// MarshalJSON writes the job document: every field, null when empty.
// Hot answers encode Doc() instead: encoding/json scans a Marshaler's
// output again, which made a job 6 times as costly to encode.
func (j Job) MarshalJSON() ([]byte, error) { return json.Marshal(j.Doc()) }

// Attempt records one start of a job: who ran it, on which module digest,
// how it ended and what the plugin logged.
type Attempt struct {
	JobUUID      string     `json:"job_uuid"`
	Attempt      int        `json:"attempt"`
	WorkerID     string     `json:"worker_id"`
	PluginSHA256 string     `json:"plugin_sha256"`
	Started      time.Time  `json:"started"`
	Ended        *time.Time `json:"ended"`
	Outcome      string     `json:"outcome"`
	ExcName      string     `json:"exc_name"`
	ExcMessage   string     `json:"exc_message"`
	Logs         []LogLine  `json:"logs"`
	// Usage is what the attempt used; absent for an attempt that did not
	// reach the host (reaped, requeued, cancelled) or ended before
	// metering existed.
	Usage *Usage `json:"usage,omitempty"`
}

// LogLine is one line a plugin logged during an attempt.
type LogLine struct {
	Time    time.Time `json:"time"`
	Level   string    `json:"level"`
	Message string    `json:"message"`
}

// CheckText refuses what no store keeps as text, naming field: invalid
// UTF-8 and NUL.
func CheckText(field, s string) error {
	if !utf8.ValidString(s) {
		return &FieldError{Field: field, Msg: "is not valid UTF-8", Err: ErrInvalid}
	}
	if strings.IndexByte(s, 0) >= 0 {
		return &FieldError{Field: field, Msg: "must not contain NUL (\\u0000)", Err: ErrInvalid}
	}
	return nil
}

// CheckDescription applies a job's description rules: text a store
// keeps, at most MaxDescription characters. A function's configured
// description, which jobs take, follows them too.
func CheckDescription(d string) error {
	if err := CheckText("description", d); err != nil {
		return err
	}
	if n := utf8.RuneCountInString(d); n > MaxDescription {
		return &FieldError{Field: "description", Msg: fmt.Sprintf("at most %d characters (this one has %d)", MaxDescription, n), Err: ErrInvalid}
	}
	return nil
}
