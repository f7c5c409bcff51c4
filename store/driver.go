package store

import (
	"context"
	"errors"
	"time"

	"github.com/wasmq/wasmq/abi"
)

// ErrRetryTx is wrapped by the error of a Driver's write (Write,
// InsertPending, Enqueue, Start, Claim) when the database ended its
// transaction to break a deadlock between transactions that lock the
// same rows (or insert the same keys) in other orders, or a
// serialization conflict. Nothing of it was written.
var ErrRetryTx = errors.New("the database ended the transaction to break a deadlock; it may be run again")

// Driver is what a backend implements: narrow, named operations written
// in its own SQL, with no job rule in them. Core composes them into the
// Store every caller uses; which state a job moves to, which fields an
// action clears, how dependents settle, what an identity key means and
// which input is refused are all decided there, once (docs/architecture.md,
// "The store core").
//
// Operations outside a Tx run alone (one statement or one transaction of
// the driver's). The hot path (Enqueue, Start, Claim) stays a single
// statement per batch each, so its moves and their counts are written by
// the driver; the transitions they make are fixed by their names.
type Driver interface {
	// Write runs fn in one write transaction. At commit the driver writes
	// the count deltas fn noted (Tx.Notes) beside the jobs and publishes
	// its events to the subscribers of every process sharing the store;
	// when fn fails nothing is written or published. An error wrapping
	// ErrRetryTx means the database ended the transaction to break a
	// deadlock or a serialization conflict: nothing of it was written,
	// and running fn again may succeed.
	Write(ctx context.Context, fn func(Tx) error) error

	// GetJob reads one job with its DependsOn; tenant "" matches any.
	// A missing job (or another tenant's) is abi.ErrNotFound.
	GetJob(ctx context.Context, tenant, uuid string) (abi.Job, error)
	// ListJobs reads q.Limit jobs, newest first (date_created, seq), with
	// their DependsOn. The WHERE clause comes from JobConditions.
	ListJobs(ctx context.Context, q ListQuery) ([]abi.Job, error)
	// ListAttempts reads a job's recorded attempts, oldest first.
	ListAttempts(ctx context.Context, uuid string) ([]abi.Attempt, error)
	// AddUsage upserts the buckets (one per key), adding to what a
	// bucket holds; peak memory keeps the larger.
	AddUsage(ctx context.Context, buckets []UsageBucket) error
	// ReadUsage sums the buckets of q.Tenant ("" = all) with From <=
	// minute < To per tenant and func, ordered by tenant and func.
	ReadUsage(ctx context.Context, q UsageQuery) ([]UsageRow, error)
	// Counts reads the kept job counts of tenant ("" = all), summed per
	// channel and state, ordered by channel.
	Counts(ctx context.Context, tenant string) ([]CountRow, error)
	// FailedChannels counts the failed jobs per channel.
	FailedChannels(ctx context.Context) ([]CountRow, error)
	Running(ctx context.Context) ([]RunningJob, error)
	PendingSince(ctx context.Context, afterVersion int64, limit int) ([]Candidate, error)
	PendingDue(ctx context.Context, afterVersion int64, until time.Time, channels []string, limit int) ([]Candidate, error)
	PendingByETA(ctx context.Context, after ETACursor, until time.Time, limit int) ([]Candidate, error)
	PendingHigh(ctx context.Context) (int64, error)
	Pending(ctx context.Context, uuids []string) ([]Candidate, error)

	// Enqueue moves pending → enqueued (CauseSchedule) each job still at
	// its version; Start moves them pending → started for workerID, and
	// Claim up to limit enqueued jobs → started (CauseStart) in run order,
	// incrementing retry and attempt. Each keeps the counts and notifies
	// as a Write would.
	Enqueue(ctx context.Context, jobs []Candidate, leaseUntil time.Time) ([]string, error)
	Start(ctx context.Context, jobs []Candidate, workerID string, leaseUntil time.Time) ([]Claimed, error)
	Claim(ctx context.Context, workerID string, limit int, leaseUntil time.Time) ([]Claimed, error)
	RenewLeases(ctx context.Context, workerID string, leaseUntil time.Time) ([]Held, error)
	// InsertPending stores new jobs, each pending with no identity key
	// and no parent, in a transaction of its own: what a Write of
	// Tx.InsertJobs and NotePending would do, in one round trip where the
	// driver can. DateCreated is the driver's clock; the answer is the
	// rows as stored, in order (it may be rows itself, updated: the
	// caller gives rows it has no other use for). A uuid taken fails the whole call
	// (abi.ErrConflict, field uuid). A call failed with ErrRetryTx leaves
	// rows as they were given, to be sent again.
	InsertPending(ctx context.Context, rows []abi.Job) ([]abi.Job, error)
	// Hold and Unheld: see Store.
	Hold(ctx context.Context, workerID string) error
	Unheld(ctx context.Context) ([]string, error)
	// GetRecord reads the record (its JSON, as PutRecords was given it)
	// of a job's attempt, the job being tenant's ("" = any), and its
	// plugin's digest; abi.ErrNotFound if there is none.
	GetRecord(ctx context.Context, tenant, uuid string, attempt int) (raw []byte, sha256 string, err error)
	// GetModule reads a module kept for records; abi.ErrNotFound if gone.
	GetModule(ctx context.Context, sha256 string) ([]byte, error)
	// SetProgress writes a job's latest progress if the job is started by
	// workerID at attempt (else nothing); GetJob and ListJobs show it.
	SetProgress(ctx context.Context, uuid, workerID string, attempt int, p abi.Progress) error
	// ChannelOverrides reads the stored overrides, ordered by channel.
	ChannelOverrides(ctx context.Context) ([]abi.ChannelOverride, error)
	// ChannelStarts reads the stored last hand-over of each throttled
	// channel (PutChannelStarts).
	ChannelStarts(ctx context.Context) (map[string]time.Time, error)
	// Maintain is the leader's housekeeping, after each reap.
	Maintain(ctx context.Context) error

	// GetSchedule reads one schedule of tenant (abi.ErrNotFound if
	// missing).
	GetSchedule(ctx context.Context, tenant, name string) (Schedule, error)
	// ListSchedules reads q's schedules, each with its last job's state
	// (LastState).
	ListSchedules(ctx context.Context, q ScheduleQuery) ([]Schedule, error)
	// DueSchedules reads the schedules not paused whose NextDue is at or
	// before now, in any order, with Template empty;
	// and the earliest NextDue after now of those not paused (zero if
	// none).
	DueSchedules(ctx context.Context, now time.Time) ([]Schedule, time.Time, error)

	Subscribe(ctx context.Context) (<-chan Event, error)
	Announce(ctx context.Context, nodeID string) error
	Clock(ctx context.Context) (time.Time, error)
	// Unavailable: err, from any call, says the database cannot serve
	// now for reasons of its own (unreachable, restarting, out of disk
	// or connections, read-only, locked), not that the request was wrong:
	// the same request may succeed later.
	Unavailable(err error) bool
	// InDoubt: a write that failed with err may have committed all the
	// same (the connection broke after its commit was sent, before the
	// answer came). Ended then returns nil once that write's transaction
	// has certainly ended in the database, committed or not, so that
	// what it wrote can be read; until then an error (the database
	// unreachable, or the session still there: the driver may end it).
	// A driver whose commit cannot be lost in flight (an embedded
	// database) reports no error as in doubt.
	InDoubt(err error) bool
	Ended(ctx context.Context, err error) error
	TryLead(ctx context.Context, nodeID string, hold time.Duration) (bool, error)
	Ping(ctx context.Context) error
	Close() error
}

// Tx is one write transaction of a Driver.
type Tx interface {
	// Now is the transaction's clock: every date it writes.
	Now() time.Time
	// Notes collects the events and count deltas published at commit.
	Notes() *Notes

	// LockJob reads a job (tenant "" = any) and keeps it from other
	// writers until the transaction ends; abi.ErrNotFound if missing.
	LockJob(ctx context.Context, tenant, uuid string) (abi.Job, error)
	// LockJobs keeps the jobs of uuids (tenant "" = any; missing ones
	// skipped) from other writers until the transaction ends, locking
	// them in one order whatever the order given: two transactions
	// locking overlapping sets this way wait for each other instead of
	// deadlocking.
	LockJobs(ctx context.Context, tenant string, uuids []string) error
	// LockParents reads the jobs of tenant a new job depends on, in any
	// order (missing ones, and other tenants', are absent from the
	// answer), and keeps them from other writers until the transaction
	// ends, marked as having children. A parent that ends at the same
	// time then either ends first, and its new state is read here, or
	// after, and finds the new job among its children when it settles
	// them (Completed.HasChildren).
	LockParents(ctx context.Context, tenant string, uuids []string) ([]JobRef, error)
	// WaitingChildren reads the jobs in wait_dependencies that depend on
	// any of parents.
	WaitingChildren(ctx context.Context, parents []string) ([]abi.Job, error)
	// ParentStates reads the states of a job's parents still stored.
	ParentStates(ctx context.Context, child string) ([]abi.State, error)
	// DeleteFinished deletes the done and cancelled jobs of the channel
	// finished before olderThan, with their attempts, records, progress
	// and dependency rows as a child, then the modules no record refers
	// to any more. It answers how many, and which of them are parents of
	// jobs still stored: a job waiting for a parent that goes counts it
	// as done, and the core settles it in the same transaction.
	DeleteFinished(ctx context.Context, channel string, olderThan time.Time) (int, []string, error)
	// LockParentsOf is ParentStates for a job about to wait for its
	// parents again (a requeue), holding them as LockParents does: a
	// parent ending at the same time either ends first, and its state is
	// read here, or after, and finds the job waiting when it settles its
	// children.
	LockParentsOf(ctx context.Context, child string) ([]abi.State, error)
	// ActiveWithKey reads the oldest job of tenant holding key in
	// wait_dependencies, pending or enqueued, or nil; until the
	// transaction ends no other writer passes this call for the same
	// (tenant, key).
	ActiveWithKey(ctx context.Context, tenant, key string) (*abi.Job, error)

	// LockTenant keeps every other writer's LockTenant of the same tenant
	// waiting until the transaction ends (a quota's count and insert).
	LockTenant(ctx context.Context, tenant string) error
	// TenantCounts reads tenant's job counts as this transaction sees
	// them, per channel and state, like Driver.Counts.
	TenantCounts(ctx context.Context, tenant string) ([]CountRow, error)
	// InsertJobs stores new rows, whose state Core decided, and returns
	// them as stored (Seq set), in the same order. A uuid taken is an
	// abi.ErrConflict naming "uuid".
	InsertJobs(ctx context.Context, jobs []abi.Job) ([]abi.Job, error)
	AddDependencies(ctx context.Context, child string, parents []string) error
	// Savepoint marks where RollbackToSavepoint returns (undoing what
	// was written since, and leaving the transaction usable after a
	// failed statement); ReleaseSavepoint forgets the mark. One mark at
	// a time: a group commit's request in progress.
	Savepoint(ctx context.Context) error
	RollbackToSavepoint(ctx context.Context) error
	ReleaseSavepoint(ctx context.Context) error
	// UpdateJob writes after's state, dates, outcome and patchable fields
	// over the job read as before (a new version), with the driver's own
	// bookkeeping of the move.
	UpdateJob(ctx context.Context, before, after abi.Job) error
	// RecordAttempt writes an attempt that ended; replace says whether it
	// overwrites one already recorded under the same number.
	RecordAttempt(ctx context.Context, a abi.Attempt, replace bool) error
	// PutChannelOverride replaces the override of o.Channel, or deletes
	// it when o is Empty.
	PutChannelOverride(ctx context.Context, o abi.ChannelOverride) error
	// PutChannelStarts keeps, for each channel named, the later of its
	// stored last hand-over and the one given.
	PutChannelStarts(ctx context.Context, starts map[string]time.Time) error
	// ExpiredJobs reads, locked, the enqueued and started jobs whose
	// lease ended before now, and the started jobs of the workers in gone;
	// it forgets the workers in gone.
	ExpiredJobs(ctx context.Context, now time.Time, gone []string) ([]abi.Job, error)
	// StartedBy reads, locked, the jobs among uuids still started by
	// workerID.
	StartedBy(ctx context.Context, workerID string, uuids []string) ([]abi.Job, error)
	// Complete applies the outcomes, each only while its job is still
	// started by that worker at that attempt, records their attempts (a
	// silent success excepted: WithCurrent tells it) and returns those it
	// applied.
	Complete(ctx context.Context, outcomes []Outcome) ([]Completed, error)
	// PutRecords writes attempts' records (raw: the record's JSON),
	// replacing one of the same (job, attempt), and each module once per
	// digest; a module being removed meanwhile (Vacuum) is written again.
	PutRecords(ctx context.Context, recs []RecordRow) error

	// LockSchedule reads a schedule and keeps it from other writers until
	// the transaction ends; abi.ErrNotFound if missing.
	LockSchedule(ctx context.Context, tenant, name string) (Schedule, error)
	// InsertSchedule stores a new row; a name taken is abi.ErrConflict
	// naming "name".
	InsertSchedule(ctx context.Context, s Schedule) error
	// CountSchedules is how many schedules tenant has.
	CountSchedules(ctx context.Context, tenant string) (int, error)
	// UpdateSchedule writes every column of s over its row.
	UpdateSchedule(ctx context.Context, s Schedule) error
	// SetNextDue writes n.Next as the NextDue of n's schedule if its row
	// is still at n.Version and n.Anchor (else nothing).
	SetNextDue(ctx context.Context, n NextDue) error
	// DeleteSchedule removes a row; false if there was none.
	DeleteSchedule(ctx context.Context, tenant, name string) (bool, error)
}

// Notes is what one write transaction tells the world at commit.
type Notes struct {
	Events Events
	Counts CountDeltas
}

// Moved notes a job's move for counts and for the scheduler.
func (n *Notes) moved(before, after abi.Job) {
	n.Counts.Moved(before, after)
	if before.State.Running() && !after.State.Running() {
		n.Events.Finished(after.UUID, before.Channel, before.Version)
	}
	if after.State == abi.StatePending {
		n.Events.Job(EventPending, after.UUID, after.Channel)
	}
}

// NotePending notes new pending jobs, as stored: their counts and the
// event that lets schedulers read exactly them.
func NotePending(n *Notes, stored []abi.Job) {
	for _, j := range stored {
		n.Counts.Add(j.Tenant, j.Channel, j.State, 1)
		n.Events.Job(EventPending, j.UUID, j.Channel)
	}
}

// WritePending is Driver.InsertPending through the driver's Write, for
// a driver that has no shorter way.
func WritePending(ctx context.Context, d interface {
	Write(ctx context.Context, fn func(Tx) error) error
}, rows []abi.Job) ([]abi.Job, error) {
	var stored []abi.Job
	err := d.Write(ctx, func(tx Tx) error {
		var err error
		if stored, err = tx.InsertJobs(ctx, rows); err != nil {
			return err
		}
		NotePending(tx.Notes(), stored)
		return nil
	})
	return stored, err
}

// CountRow is one number of Counts.
type CountRow struct {
	Channel string
	State   abi.State
	N       int
}

// JobRef is who owns a job and where it stands.
type JobRef struct {
	UUID, Tenant, Channel string
	State                 abi.State
}

// Outcome is a Completion as a driver writes it: checked, with its
// attempt's outcome named.
type Outcome struct {
	Completion
	Outcome string // done, failed, retry or interrupted
	// Silent: a done attempt with nothing to record beyond the job row.
	Silent bool
}

// RecordRow is one attempt's record as a driver writes it.
type RecordRow struct {
	JobUUID      string
	Attempt      int
	PluginSHA256 string
	Complete     bool
	Size         int
	Raw          []byte // the record's JSON
	Wasm         []byte // the module, written if its digest is not kept yet
}

// Completed is a job an Outcome was applied to.
type Completed struct {
	UUID, Tenant, Channel string
	State                 abi.State
	// HasChildren: done, with jobs depending on it.
	HasChildren bool
}

// ListQuery is a checked Filter with the page's bounds.
type ListQuery struct {
	Filter
	Limit int // rows to read: the page size plus one
	// After is the cursor's position: rows strictly older.
	After *Cursor
}

// Cursor is a position in the newest-first order of List.
type Cursor struct {
	Created time.Time
	Seq     int64
}
