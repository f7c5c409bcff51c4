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
	"time"
)

// Defaults of docs/semantics.md §1; a function's config or the caller may override.
const (
	DefaultPriority   = 10
	DefaultMaxRetries = 5
	RootChannel       = "root"
	// MaxDescription caps a job's description, in characters (not bytes),
	// however it is set (created, patched).
	MaxDescription = 1000
	// DefaultRetryInterval postpones a retry when neither the plugin nor
	// the function's retry_pattern gives a delay; [runner]
	// default_retry_interval overrides it.
	DefaultRetryInterval = 10 * time.Minute
)

// Job is one postponed call `module.function(args, kwargs)` and everything
// known about it. Field names match the HTTP API and docs/semantics.md §1.
type Job struct {
	UUID        string          `json:"uuid"`
	Tenant      string          `json:"tenant"`
	Func        string          `json:"func"`
	Args        json.RawMessage `json:"args"`
	Kwargs      json.RawMessage `json:"kwargs"`
	Context     json.RawMessage `json:"context"`
	UserID      string          `json:"user_id,omitempty"`
	ModelName   string          `json:"model_name,omitempty"`
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
	IdentityKey string   `json:"identity_key,omitempty"`
	GraphUUID   string   `json:"graph_uuid,omitempty"`
	DependsOn   []string `json:"depends_on"`
	State       State    `json:"state"`

	Result     json.RawMessage `json:"result"`
	ExcName    string          `json:"exc_name,omitempty"`
	ExcMessage string          `json:"exc_message,omitempty"`
	ExcInfo    string          `json:"exc_info,omitempty"`

	DateCreated   time.Time  `json:"date_created"`
	DateEnqueued  *time.Time `json:"date_enqueued"`
	DateStarted   *time.Time `json:"date_started"`
	DateDone      *time.Time `json:"date_done"`
	DateCancelled *time.Time `json:"date_cancelled"`
	// ExecTime is seconds from DateStarted to DateDone of the last attempt.
	ExecTime *float64 `json:"exec_time"`
	// Late is set when the job finished after ExpectedAt.
	Late         bool   `json:"late"`
	WorkerID     string `json:"worker_id,omitempty"`
	PluginSHA256 string `json:"plugin_sha256,omitempty"`

	// Seq is the insertion sequence: the last tie-breaker of the run order.
	Seq int64 `json:"seq"`
	// LeaseUntil is when the running node's claim on the job lapses.
	LeaseUntil *time.Time `json:"lease_until,omitempty"`
	// Progress is the latest progress the job reported (wasmq_progress_v1).
	Progress *Progress `json:"progress,omitempty"`
}

// Attempt records one start of a job: who ran it, on which module digest,
// how it ended and what the plugin logged.
type Attempt struct {
	JobUUID      string     `json:"job_uuid"`
	Attempt      int        `json:"attempt"`
	WorkerID     string     `json:"worker_id"`
	PluginSHA256 string     `json:"plugin_sha256,omitempty"`
	Started      time.Time  `json:"started"`
	Ended        *time.Time `json:"ended"`
	Outcome      string     `json:"outcome"`
	ExcName      string     `json:"exc_name,omitempty"`
	ExcMessage   string     `json:"exc_message,omitempty"`
	Logs         []LogLine  `json:"logs"`
}

// LogLine is one line a plugin logged during an attempt.
type LogLine struct {
	Time    time.Time `json:"time"`
	Level   string    `json:"level"`
	Message string    `json:"message"`
}
