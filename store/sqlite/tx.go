package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// The operations of one write transaction (store.Tx): narrow statements
// the core composes. The writer's connection is the only one, so a read
// inside the transaction is as good as a lock.

// LockJobs has nothing to do: SQLite has one writer at a time, whose
// transaction holds the whole database.
func (w *wtx) LockJobs(ctx context.Context, tenant string, uuids []string) error { return nil }

func (w *wtx) LockJob(ctx context.Context, tenant, uuid string) (abi.Job, error) {
	return getJob(ctx, w, tenant, uuid)
}

// LockParents needs no lock: SQLite has one writer, and a parent's
// children are read from job_dependencies when it ends.
func (w *wtx) LockParents(ctx context.Context, tenant string, uuids []string) ([]store.JobRef, error) {
	if len(uuids) == 0 {
		return nil, nil
	}
	in, args := inList(uuids)
	rows, err := w.QueryContext(ctx, `SELECT uuid, tenant, channel, state FROM jobs WHERE tenant = ? AND uuid IN `+in, append([]any{tenant}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: read jobs: %w", err)
	}
	defer rows.Close()
	var out []store.JobRef
	for rows.Next() {
		var r store.JobRef
		if err := rows.Scan(&r.UUID, &r.Tenant, &r.Channel, &r.State); err != nil {
			return nil, fmt.Errorf("sqlite store: read jobs: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (w *wtx) WaitingChildren(ctx context.Context, parents []string) ([]abi.Job, error) {
	if len(parents) == 0 {
		return nil, nil
	}
	in, args := inList(parents)
	return queryJobs(ctx, w, `WHERE uuid IN (SELECT child FROM job_dependencies WHERE parent IN `+in+`)
		AND state = 'wait_dependencies' ORDER BY uuid`, args...)
}

func (w *wtx) ParentStates(ctx context.Context, child string) ([]abi.State, error) {
	rows, err := w.QueryContext(ctx, `SELECT p.state FROM job_dependencies d JOIN jobs p ON p.uuid = d.parent WHERE d.child = ?`, child)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: parents of %s: %w", child, err)
	}
	defer rows.Close()
	var out []abi.State
	for rows.Next() {
		var st string
		if err := rows.Scan(&st); err != nil {
			return nil, fmt.Errorf("sqlite store: parents of %s: %w", child, err)
		}
		out = append(out, abi.State(st))
	}
	return out, rows.Err()
}

// LockParentsOf needs no lock: SQLite has one writer.
func (w *wtx) LockParentsOf(ctx context.Context, child string) ([]abi.State, error) {
	return w.ParentStates(ctx, child)
}

// ActiveWithKey: the single writer already serialises inserts.
func (w *wtx) ActiveWithKey(ctx context.Context, tenant, key string) (*abi.Job, error) {
	jobs, err := queryJobs(ctx, w, `WHERE tenant = ? AND identity_key = ? AND identity_key <> ''
		AND state IN ('wait_dependencies', 'pending', 'enqueued') ORDER BY date_created, seq LIMIT 1`, tenant, key)
	if err != nil || len(jobs) == 0 {
		return nil, err
	}
	return &jobs[0], nil
}

func (w *wtx) AddDependencies(ctx context.Context, child string, parents []string) error {
	for _, p := range parents {
		if _, err := w.ExecContext(ctx, `INSERT OR IGNORE INTO job_dependencies (child, parent) VALUES (?, ?)`, child, p); err != nil {
			return fmt.Errorf("sqlite store: insert dependency of %s: %w", child, err)
		}
	}
	return nil
}

func (w *wtx) UpdateJob(ctx context.Context, _, a abi.Job) error {
	var result any
	if a.Result != nil {
		result = string(a.Result)
	}
	var exec any
	if a.ExecTime != nil {
		exec = *a.ExecTime
	}
	if _, err := w.ExecContext(ctx, `UPDATE jobs SET state = ?, priority = ?, eta = ?, channel = ?, max_retries = ?,
		description = ?, retry = ?, result = ?, exc_name = ?, exc_message = ?, exc_info = ?, date_enqueued = ?,
		date_started = ?, date_done = ?, date_cancelled = ?, exec_time = ?, late = ?, worker_id = ?, lease_until = ?,
		version = ? WHERE uuid = ?`, string(a.State), a.Priority, optMicros(a.ETA), a.Channel, a.MaxRetries,
		a.Description, a.Retry, result, a.ExcName, a.ExcMessage, a.ExcInfo, optMicros(a.DateEnqueued),
		optMicros(a.DateStarted), optMicros(a.DateDone), optMicros(a.DateCancelled), exec, a.Late, a.WorkerID,
		optMicros(a.LeaseUntil), w.nextVersion(), a.UUID); err != nil {
		return fmt.Errorf("sqlite store: update %s: %w", a.UUID, err)
	}
	return nil
}

func (w *wtx) RecordAttempt(ctx context.Context, a abi.Attempt, replace bool) error {
	q := recordAttempt
	if !replace {
		q = strings.SplitN(recordAttempt, "ON CONFLICT", 2)[0] + "ON CONFLICT (job_uuid, attempt) DO NOTHING"
	}
	logs, _ := json.Marshal(orLogs(a.Logs))
	if _, err := w.ExecContext(ctx, q, a.JobUUID, a.Attempt, a.WorkerID, a.PluginSHA256, micros(a.Started),
		optMicros(a.Ended), a.Outcome, a.ExcName, a.ExcMessage, string(logs), store.UsageText(a.Usage)); err != nil {
		return fmt.Errorf("sqlite store: record attempt %d of %s: %w", a.Attempt, a.JobUUID, err)
	}
	return nil
}

func (w *wtx) Savepoint(ctx context.Context) error {
	if _, err := w.ExecContext(ctx, `SAVEPOINT wasmq_request`); err != nil {
		return fmt.Errorf("sqlite store: savepoint: %w", err)
	}
	return nil
}

// RollbackToSavepoint leaves the version counter where it got: versions
// only need to grow, a gap is harmless.
func (w *wtx) RollbackToSavepoint(ctx context.Context) error {
	if _, err := w.ExecContext(ctx, `ROLLBACK TO SAVEPOINT wasmq_request`); err != nil {
		return fmt.Errorf("sqlite store: rollback to savepoint: %w", err)
	}
	return nil
}

func (w *wtx) ReleaseSavepoint(ctx context.Context) error {
	if _, err := w.ExecContext(ctx, `RELEASE SAVEPOINT wasmq_request`); err != nil {
		return fmt.Errorf("sqlite store: release savepoint: %w", err)
	}
	return nil
}
