// Package store keeps jobs durably. Store is the one interface callers
// use; Core implements it once, with every job rule, over a Driver that
// speaks a database's SQL (postgres/, sqlite/). Both pass storetest, the
// conformance suite.
//
// Core owns every state change: each moves jobs only along the
// transitions of abi.CheckTransition, and the drivers write them with the
// from-state (or a row lock) in the statement, so two callers racing on
// one job cannot both win.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/wasmq/wasmq/abi"
)

// ErrSchemaAhead: the database was migrated to a schema newer than this
// binary's while it ran. The node must stop: what it writes would miss
// what the new schema adds (docs/config.md, Upgrading).
var ErrSchemaAhead = errors.New("the database schema is newer than this wasmq binary")

// Quota bounds what one tenant's jobs may hold (Store.InsertUnder);
// 0 leaves a bound off.
type Quota struct {
	// MaxPending: jobs waiting to run (wait_dependencies, pending,
	// enqueued).
	MaxPending int
	// MaxChannels: distinct channels holding the tenant's jobs, in any
	// state, until they are vacuumed.
	MaxChannels int
}

// QuotaError says a Quota refused the jobs; Field names what passed it.
type QuotaError struct {
	Field string // "max_pending", "max_channels" or "max_schedules"
	Msg   string
}

func (e *QuotaError) Error() string { return e.Msg }

// Unwrap: max_schedules is a quota waiting does not lift (abi.ErrQuota);
// the jobs' quotas lift as jobs run.
func (e *QuotaError) Unwrap() error {
	if e.Field == "max_schedules" {
		return abi.ErrQuota
	}
	return nil
}

// NewJob is a job ready to insert: validated, defaults applied, channel
// normalised. Building one from a request is the caller's job (the
// enqueue service); the store only enforces integrity.
type NewJob struct {
	UUID        string // set by the caller (UUIDv4 or v7), must be unique
	Tenant      string
	Func        string
	Args        json.RawMessage // JSON list, never nil
	Kwargs      json.RawMessage // JSON object, never nil
	Context     json.RawMessage // JSON object, never nil
	UserID      string
	ModelName   string
	FuncString  string
	Description string
	Channel     string
	Priority    int
	ETA         *time.Time
	ExpectedAt  *time.Time
	MaxRetries  int
	IdentityKey string
	GraphUUID   string
	// DependsOn holds parent uuids: jobs already stored (same tenant) or
	// earlier entries of the same Insert call.
	DependsOn []string
}

// Inserted is the answer for one NewJob: the stored job, or the existing
// active job with the same identity key.
type Inserted struct {
	Job          abi.Job
	Deduplicated bool
}

// Filter selects jobs for List. Empty fields do not filter.
type Filter struct {
	Tenant      string // "" = every tenant (admin)
	States      []abi.State
	Channel     string // exact channel, or prefix when ending with ".*"
	Func        string
	GraphUUID   string
	IdentityKey string
	Query       string // substring of uuid, func, description, func_string
	UserID      string
	ModelName   string
	// Created and Ended bound date_created and the date a job ended
	// (date_done, else date_cancelled: a failed job has no end date on
	// its row): After is inclusive, Before exclusive.
	CreatedAfter, CreatedBefore *time.Time
	EndedAfter, EndedBefore     *time.Time
	// ArgsHas is a JSON scalar that must be one of the job's args;
	// KwargsHas maps keys to the JSON scalar each must hold in kwargs
	// (JSONMatch: the same meaning on every store).
	ArgsHas   json.RawMessage
	KwargsHas map[string]json.RawMessage
	Limit     int    // default 50, max 1000
	Cursor    string // opaque, from Page.NextCursor
}

// Page is one page of List, newest first.
type Page struct {
	Jobs       []abi.Job
	NextCursor string // "" when there is no more
}

// Patch changes fields of a job not yet started; nil fields are kept.
type Patch struct {
	Priority    *int
	ETA         **time.Time // pointer to nil clears the eta
	Channel     *string
	MaxRetries  *int
	Description *string
}

// Candidate is what the scheduler keeps in memory about a pending job.
type Candidate struct {
	UUID        string
	Tenant      string
	Channel     string
	Priority    int
	ETA         *time.Time
	ExpectedAt  *time.Time
	DateCreated time.Time
	Seq         int64
	// Version changes on every write to the job; Enqueue is conditional
	// on it so a job changed since it was read is not enqueued stale.
	Version int64
}

// ETACursor is a position in PendingByETA's order: the last job read.
// The zero cursor is the start; {ETA: t, Version: math.MaxInt64} is the
// first job due after t.
type ETACursor struct {
	ETA     *time.Time
	Version int64
}

// After returns the cursor past c.
func (c Candidate) After() ETACursor { return ETACursor{ETA: c.ETA, Version: c.Version} }

// RunningJob is an enqueued or started job as the scheduler counts it.
type RunningJob struct {
	UUID, Channel, Tenant string
	// Version is the job's version when the scheduler counted it: the
	// pending version it handed over, or the running one it read. A
	// notice of an earlier hand-over names an earlier version.
	Version int64
}

// Claimed is a started job handed to a worker.
type Claimed = abi.Job

// Completion is a worker's report of one finished attempt. The store
// applies it only if the job is still started by that worker (a job taken
// back after a lease expiry is not overwritten).
type Completion struct {
	UUID     string
	WorkerID string
	Attempt  int // the job's Attempt when it was claimed
	// Version is the job's Version when it was claimed (nothing changes
	// it while it runs): the finished event names the hand-over by it.
	Version int64
	// To is the resulting state: done, pending (retry or shutdown) or failed.
	To    abi.State
	Cause abi.Cause // CauseDone, CauseRetry, CauseFail or CauseShutdown
	// ETA for a postponed job (To == pending).
	ETA          *time.Time
	Result       json.RawMessage
	ExcName      string
	ExcMessage   string
	ExcInfo      string
	Ended        time.Time
	PluginSHA256 string
	Logs         []abi.LogLine
	// UncountRetry undoes the start's retry+1 (ignore_retry, shutdown).
	UncountRetry bool
	// Record is the attempt's record for replay, if its policy kept one
	// (docs/replay.md): written with the attempt, in its transaction.
	Record *abi.Record
	// Usage is what the attempt used (nil: not metered, e.g. it never
	// reached the host); kept on the job row and the attempt.
	Usage *abi.Usage
}

// Reaped is a job taken back from a dead worker.
// Held is a job started under a worker, at an attempt.
type Held struct {
	UUID    string
	Attempt int
}

type Reaped struct {
	UUID  string
	State abi.State // pending, or failed with exc_name JobFoundDead
}

// ChannelCount is the number of jobs per state in one channel.
type ChannelCount struct {
	Channel string
	Counts  map[abi.State]int
}

// Event tells listeners that jobs changed. Events are hints: a listener
// re-reads the store; a lost event is caught by the listener's safety poll.
type Event struct {
	Kind     EventKind
	Channels []string `json:"Channels,omitempty"` // channels concerned, when known
	// UUIDs are the jobs concerned, on EventPending (they became
	// pending) and EventFinished (they left enqueued/started): the
	// scheduler reads exactly those, and keeps its running counts from
	// them. Nil means "some jobs": re-read.
	UUIDs []string `json:"UUIDs,omitempty"`
	// Versions, on EventFinished, are a version each of UUIDs had while
	// the hand-over that ended ran (its start's, or the one the ending
	// write found), in the same order; absent when unknown (an event of
	// a node from before them). A scheduler that handed a job over again
	// since — read pending at a later version — knows the notice is not
	// about the hand-over it counts now.
	Versions []int64 `json:"Versions,omitempty"`
	// Jobs, on EventPending, are the UUIDs' candidates as they were at
	// commit, when the writer had them at hand and they fit in one
	// notification (a small plain insert): what Pending(UUIDs) would have
	// answered then, without the read.
	Jobs []Candidate `json:"Jobs,omitempty"`
	// Node is the node that announced itself, on EventNode.
	Node string `json:"Node,omitempty"`
	// Fuel is what the attempts that ended used, per tenant, on
	// EventFinished: the leader's scheduler charges every node's attempts
	// to the tenants' fuel_rate buckets from it (runner/fuel.go).
	Fuel map[string]int64 `json:"Fuel,omitempty"`
	// FuelBy is the worker whose attempts used Fuel: its own scheduler
	// charged them already, when they ended.
	FuelBy string `json:"FuelBy,omitempty"`
}

type EventKind string

const (
	EventPending  EventKind = "pending"  // jobs became pending (new, retried, requeued, promoted)
	EventEnqueued EventKind = "enqueued" // the scheduler enqueued jobs: workers may claim
	EventFinished EventKind = "finished" // jobs left enqueued/started: capacity freed
	EventChanged  EventKind = "changed"  // anything else (cancel, patch, failed job requeued...)
	EventNode     EventKind = "node"     // a node is alive and takes work (Announce)
	EventChannels EventKind = "channels" // a channel override changed: re-read them
)

// EventResync is what a subscriber receives after its buffer overflowed
// and events were dropped: re-read everything.
var EventResync = Event{Kind: EventChanged}

// Store is the durable home of jobs. All methods are safe for concurrent
// use. Errors wrap abi.ErrNotFound, abi.ErrIllegalTransition,
// abi.ErrInvalid or abi.ErrConflict where one applies.
type Store interface {
	// Schedules: periodic jobs (store/schedules.go).
	Schedules

	// Insert stores jobs atomically: all or none. A job whose identity key
	// matches an active job (wait_dependencies, pending, enqueued) of the
	// same tenant is not created; the existing job is returned with
	// Deduplicated set. A job whose parents are not all done starts in
	// wait_dependencies (cancelled if a parent is cancelled and the others
	// are finished). Dependencies on unknown or other tenants' jobs, or
	// cycles, fail the whole call with abi.ErrInvalid.
	Insert(ctx context.Context, jobs []NewJob) ([]Inserted, error)
	// InsertUnder is Insert within the quota of the jobs' tenant (all of
	// one tenant): the count and the insert are one step for every node
	// sharing the store, so concurrent callers never pass the quota
	// together. A refusal is a *QuotaError and stores nothing.
	InsertUnder(ctx context.Context, q Quota, jobs []NewJob) ([]Inserted, error)
	// InsertEach is many InsertUnder calls in one transaction (group
	// commit): each request is stored or refused alone, with its own
	// error in its InsertResult; the error returned means the
	// transaction failed and nothing was stored.
	InsertEach(ctx context.Context, reqs []InsertRequest) ([]InsertResult, error)

	// Get returns one job; tenant "" matches any tenant. Another tenant's
	// job is abi.ErrNotFound.
	Get(ctx context.Context, tenant, uuid string) (abi.Job, error)
	List(ctx context.Context, f Filter) (Page, error)
	// Attempts returns a job's attempts, oldest first.
	Attempts(ctx context.Context, tenant, uuid string) ([]abi.Attempt, error)
	// AddUsage adds per-minute usage buckets to the kept aggregate (one
	// statement for the batch); buckets of the same key add up.
	AddUsage(ctx context.Context, buckets []UsageBucket) error
	// Usage sums the aggregate per tenant and function over whole
	// minutes in [From, To); tenant "" is every tenant.
	Usage(ctx context.Context, q UsageQuery) ([]UsageRow, error)
	// Counts returns per-channel per-state counts (tenant "" = all). It
	// runs on every enqueue under a max_pending quota, so a store keeps
	// the counts beside the jobs rather than scanning them (CountDeltas);
	// the conformance suite checks them against the jobs.
	Counts(ctx context.Context, tenant string) ([]ChannelCount, error)

	// Requeue, SetDone and Cancel are the manual actions of docs/semantics.md §2;
	// a state they do not apply to is abi.ErrIllegalTransition. Cancel
	// cascades to dependents; SetDone promotes them.
	Requeue(ctx context.Context, tenant, uuid string) (abi.Job, error)
	SetDone(ctx context.Context, tenant, uuid string, result json.RawMessage) (abi.Job, error)
	Cancel(ctx context.Context, tenant, uuid string) (abi.Job, error)
	// Act applies a manual action (requeue, set done, cancel) to each of
	// the given jobs of tenant ("" = any), in one transaction, by the
	// same rules as one job's action; a job gone, another tenant's, or in
	// a state the action does not apply to is skipped. It returns the
	// uuids it changed. Bulk actions call it a page at a time.
	Act(ctx context.Context, tenant string, cause abi.Cause, uuids []string) ([]string, error)
	// Update patches a job in wait_dependencies, pending or failed.
	Update(ctx context.Context, tenant, uuid string, p Patch) (abi.Job, error)

	// PendingSince returns pending jobs whose Version is > afterVersion,
	// ordered by Version, at most limit. The scheduler calls it with the
	// highest Version it has seen to learn of new and changed jobs.
	PendingSince(ctx context.Context, afterVersion int64, limit int) ([]Candidate, error)
	// PendingDue is PendingSince narrowed to what the scheduler holds: of
	// the pending jobs whose Version is > afterVersion, those due by until
	// (no eta, or an eta at or before it) or in one of channels (the
	// sequential ones, whose order needs every job), ordered by Version,
	// at most limit. The jobs beyond until are passed over in the store,
	// so a backlog of future jobs costs the scheduler nothing; it reads
	// them with PendingByETA when they come within its horizon.
	PendingDue(ctx context.Context, afterVersion int64, until time.Time, channels []string, limit int) ([]Candidate, error)
	// PendingByETA returns the pending jobs due by until after the cursor,
	// in the order (no eta first, by Version; then by eta, Version), at
	// most limit. An index answers it: the rows read are the rows
	// returned, however many jobs wait beyond until.
	PendingByETA(ctx context.Context, after ETACursor, until time.Time, limit int) ([]Candidate, error)
	// PendingHigh is the highest Version of a pending job (0: none), where
	// the scheduler's incremental reads start after a full read.
	PendingHigh(ctx context.Context) (int64, error)
	// Pending returns those of the given jobs that are pending now. The
	// scheduler reads the jobs an EventPending names with it: unlike the
	// incremental PendingSince, it cannot miss a job whose transaction
	// took its version before another's and committed after.
	Pending(ctx context.Context, uuids []string) ([]Candidate, error)
	// Enqueue moves the given jobs pending → enqueued, each only if its
	// Version still matches; returns the uuids it moved. leaseUntil bounds
	// how long an enqueued job may wait for a worker.
	Enqueue(ctx context.Context, jobs []Candidate, leaseUntil time.Time) ([]string, error)
	// Running lists every enqueued and started job: the scheduler counts
	// from it, then follows EventFinished uuids.
	Running(ctx context.Context) ([]RunningJob, error)
	// FailedChannels returns the channels having at least one failed job.
	FailedChannels(ctx context.Context) (map[string]int, error)

	// Start moves the given pending jobs, each only if its Version still
	// matches, through enqueued to started for workerID in one step:
	// Enqueue then Claim, with no other worker able to take them between.
	// The leader uses it for its own free workers. Returns the started
	// jobs in run order (as Claim does, without their DependsOn: a worker
	// does not need it).
	Start(ctx context.Context, jobs []Candidate, workerID string, leaseUntil time.Time) ([]Claimed, error)
	// Claim moves up to limit enqueued jobs to started for workerID, in
	// run order, never handing one job to two callers; retry and attempt
	// are incremented and the lease set. DependsOn is not filled.
	Claim(ctx context.Context, workerID string, limit int, leaseUntil time.Time) ([]Claimed, error)
	// Complete applies finished attempts in one transaction, promotes the
	// dependents of jobs that reached done, and returns the uuids applied.
	Complete(ctx context.Context, cs []Completion) ([]string, error)
	// SetProgress keeps a running job's latest progress, while the job
	// is still started by workerID at attempt; the job shows it (Get,
	// List) from then on.
	SetProgress(ctx context.Context, uuid, workerID string, attempt int, p abi.Progress) error
	// RenewLeases extends the lease of every job started by workerID and
	// returns those jobs, so the worker can tell whether it runs them all.
	RenewLeases(ctx context.Context, workerID string, leaseUntil time.Time) ([]Held, error)
	// Disown takes back jobs started under workerID that its process does
	// not run: a start committed whose answer never reached the process
	// (its connection broke in between). Only jobs still started by that
	// worker at that attempt are taken; each goes back to pending, its
	// retry not counted (it never ran), with the attempt recorded.
	Disown(ctx context.Context, workerID string, jobs []Held) ([]Reaped, error)
	// ReapExpired takes back enqueued and started jobs whose lease ended
	// before now, and the started jobs of the workers in gone, whatever
	// their lease (docs/semantics.md §8).
	ReapExpired(ctx context.Context, now time.Time, gone []string) ([]Reaped, error)
	// Hold tells the store that workerID is alive until ctx ends or the
	// store's connection for it is lost; it returns then, and the caller
	// holds again. A process that dies lets go at once (PostgreSQL ends
	// its session; the embedded store has one process), so the leader can
	// take back its jobs in seconds instead of when their leases lapse.
	Hold(ctx context.Context, workerID string) error
	// Unheld names the workers known to have held and holding no more,
	// plus, on a store only one process can open, every worker with
	// started jobs that this process does not hold. The leader confirms
	// a worker gone before passing it to ReapExpired.
	Unheld(ctx context.Context) ([]string, error)
	// Vacuum deletes done and cancelled jobs of exactly this channel
	// finished before olderThan, with their records; returns how many.
	// The runner walks the channels in use, since each may have its own
	// removal interval.
	Vacuum(ctx context.Context, channel string, olderThan time.Time) (int, error)

	// Record reads the record of a job's attempt (tenant "" = any):
	// abi.ErrNotFound when the job is another tenant's or the attempt kept
	// none. RecordModule reads the wasm bytes the record refers to, kept
	// while a record does.
	Record(ctx context.Context, tenant, uuid string, attempt int) (abi.Record, error)
	RecordModule(ctx context.Context, tenant, uuid string, attempt int) ([]byte, error)

	// Subscribe delivers change events (NOTIFY on PostgreSQL, in-process
	// on SQLite, from any process sharing the store) until ctx ends.
	Subscribe(ctx context.Context) (<-chan Event, error)
	// Announce tells every subscriber, in any process, that nodeID is
	// alive and runs jobs: the leader shares work among the nodes it
	// heard from lately. It fails with ErrSchemaAhead once the database
	// has been migrated past this binary.
	Announce(ctx context.Context, nodeID string) error
	// Clock reads the store's clock, the reference every node's clock is
	// held to: nodes compare their leases, etas and dates, each written
	// with its own clock (the runner's max_clock_offset).
	Clock(ctx context.Context) (time.Time, error)
	// Unavailable says whether err, from any call, means the store cannot
	// serve now (unreachable, restarting, out of disk, read-only, a write
	// that lost every run to other writers' locks...): the API answers
	// 503 with Retry-After, not 500.
	Unavailable(err error) bool
	// TryLead tries to become (or stay) the scheduling leader among the
	// processes sharing this store; returns whether this process leads.
	// A leader keeps the lead by calling again within hold: one silent
	// for longer (frozen, paused, cut off) loses it, so that another
	// process can lead. A lead once lost is reported lost (false) even if
	// it could be taken again at once; the next call takes it anew.
	TryLead(ctx context.Context, nodeID string, hold time.Duration) (bool, error)

	// ChannelOverrides lists the channel overrides, by channel name.
	ChannelOverrides(ctx context.Context) ([]abi.ChannelOverride, error)
	// SetChannelOverride stores o for its channel (replacing any), or
	// deletes the channel's override when o is Empty, and publishes
	// EventChannels to every node.
	SetChannelOverride(ctx context.Context, o abi.ChannelOverride) error
	// ChannelStarts reads when each throttled channel last handed a job
	// over, as MarkChannelStarts kept it: a new leader spaces its first
	// hand-over in the channel from there, not from its own start.
	ChannelStarts(ctx context.Context) (map[string]time.Time, error)
	// MarkChannelStarts keeps the hand-overs a leader made in throttled
	// channels (each channel's latest is kept).
	MarkChannelStarts(ctx context.Context, starts map[string]time.Time) error

	// Ping checks the store is reachable (readiness).
	Ping(ctx context.Context) error
	Close() error
}
