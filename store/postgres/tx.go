package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// The operations of one write transaction (store.Tx): narrow statements
// the core composes; the rules are there, the bookkeeping of this schema
// (pending_log, job_runs, the handed and failed flags) is here.

func (w *wtx) LockJob(ctx context.Context, tenant, uuid string) (abi.Job, error) {
	jobs, err := queryJobs(ctx, w, `WHERE uuid = $1 AND ($2 = '' OR tenant = $2) FOR UPDATE`, uuid, tenant)
	if err != nil {
		return abi.Job{}, err
	}
	if len(jobs) == 0 {
		return abi.Job{}, fmt.Errorf("job %s: %w", uuid, abi.ErrNotFound)
	}
	return jobs[0], nil
}

func (w *wtx) LockJobs(ctx context.Context, tenant string, uuids []string) error {
	// FOR UPDATE above ORDER BY: the rows are locked as sorted.
	if _, err := w.Exec(ctx, `SELECT 1 FROM jobs WHERE uuid = ANY($1) AND ($2 = '' OR tenant = $2) ORDER BY uuid FOR UPDATE`, uuids, tenant); err != nil {
		return fmt.Errorf("postgres store: lock jobs: %w", err)
	}
	return nil
}

// LockParents share-locks the parents (FOR SHARE, in uuid order, as
// LockJobs), so that an outcome, a start or an action moving a parent
// waits for the new child's commit, or the child for theirs, while the
// children of one parent do not wait for each other. Before that it
// marks has_children where a parent has none yet (its first child
// writes the row, once), so that an outcome statement that waited reads
// the mark from the row it updates (its subqueries would read a snapshot
// from before the child's commit). Both statements go in one round trip.
func (w *wtx) LockParents(ctx context.Context, tenant string, uuids []string) ([]store.JobRef, error) {
	b := &pgx.Batch{}
	b.Queue(`UPDATE jobs SET has_children = true WHERE uuid = ANY($1) AND tenant = $2 AND NOT has_children`, uuids, tenant)
	b.Queue(`SELECT uuid, tenant, channel, state FROM jobs WHERE uuid = ANY($1) AND tenant = $2 ORDER BY uuid FOR SHARE`, uuids, tenant)
	br := w.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, fmt.Errorf("postgres store: mark parents: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("postgres store: lock parents: %w", err)
	}
	return collect(rows, "lock parents", pgx.RowToStructByPos[store.JobRef])
}

// WaitingChildren locks the children it reads: the core writes them back.
func (w *wtx) WaitingChildren(ctx context.Context, parents []string) ([]abi.Job, error) {
	return queryJobs(ctx, w, `WHERE uuid IN (SELECT child FROM job_dependencies WHERE parent = ANY($1))
		AND state = 'wait_dependencies' ORDER BY uuid FOR UPDATE`, parents)
}

func (w *wtx) ParentStates(ctx context.Context, child string) ([]abi.State, error) {
	return w.parentStates(ctx, `SELECT p.state FROM job_dependencies d JOIN jobs p ON p.uuid = d.parent WHERE d.child = $1`, child)
}

// LockParentsOf locks as LockParents does; the mark is there since the
// child was stored.
func (w *wtx) LockParentsOf(ctx context.Context, child string) ([]abi.State, error) {
	return w.parentStates(ctx, `SELECT p.state FROM job_dependencies d JOIN jobs p ON p.uuid = d.parent WHERE d.child = $1
		ORDER BY p.uuid FOR SHARE OF p`, child)
}

func (w *wtx) parentStates(ctx context.Context, sql, child string) ([]abi.State, error) {
	rows, err := w.Query(ctx, sql, child)
	if err != nil {
		return nil, fmt.Errorf("postgres store: parents of %s: %w", child, err)
	}
	states, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres store: parents of %s: %w", child, err)
	}
	out := make([]abi.State, len(states))
	for i, s := range states {
		out[i] = abi.State(s)
	}
	return out, nil
}

// ActiveWithKey: inserts of one key wait for each other until commit
// (an advisory lock per tenant and key), so the second sees the first.
// Jobs that came back to pending (retry, dead worker, requeue) count too,
// even if a newer one has the key.
func (w *wtx) ActiveWithKey(ctx context.Context, tenant, key string) (*abi.Job, error) {
	if _, err := w.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2 || chr(31) || $3))`,
		identityLockClass, tenant, key); err != nil {
		return nil, fmt.Errorf("postgres store: lock identity key: %w", err)
	}
	jobs, err := queryJobs(ctx, w, `WHERE tenant = $1 AND identity_key = $2 AND identity_key <> ''
		AND state IN ('wait_dependencies', 'pending', 'enqueued') ORDER BY date_created, seq LIMIT 1`, tenant, key)
	if err != nil || len(jobs) == 0 {
		return nil, err
	}
	return &jobs[0], nil
}

func (w *wtx) AddDependencies(ctx context.Context, child string, parents []string) error {
	if _, err := w.Exec(ctx, `INSERT INTO job_dependencies (child, parent)
		SELECT $1, p FROM unnest($2::text[]) WITH ORDINALITY AS x(p, i) ORDER BY i ON CONFLICT DO NOTHING`, child, parents); err != nil {
		return fmt.Errorf("postgres store: insert dependencies of %s: %w", child, err)
	}
	return nil
}

// updateJobSQL writes a job's new row in one statement, with this
// schema's bookkeeping of the move: the old pending version leaves
// pending_log and a new pending one enters it; a job that leaves started
// leaves its batch's job_runs row ($20).
const updateJobSQL = `WITH old AS (SELECT version, run_id FROM jobs WHERE uuid = $1),
	unlogged AS (DELETE FROM pending_log WHERE version = (SELECT version FROM old)),
	run_left AS (UPDATE job_runs SET remaining = remaining - 1 WHERE $20 AND id = (SELECT run_id FROM old) AND remaining > 1),
	run_gone AS (DELETE FROM job_runs WHERE $20 AND id = (SELECT run_id FROM old) AND remaining <= 1),
	upd AS (UPDATE jobs SET state = $2, priority = $3, eta = $4, channel = $5, max_retries = $6, description = $7,
		retry = $8, result = $9::json, exc_name = $10, exc_message = $11, exc_info = $12, date_enqueued = $13,
		date_started = $14, date_done = $15, date_cancelled = $16, exec_time = $17, late = $18, worker_id = $19,
		lease_until = $21, handed = false, failed = ($2 = 'failed'),
		run_id = CASE WHEN $20 THEN NULL ELSE run_id END, version = nextval('job_version')
		WHERE uuid = $1 RETURNING ` + candidateColumns + `, state)
	INSERT INTO pending_log (` + candidateColumns + `) SELECT ` + candidateColumns + ` FROM upd WHERE state = 'pending'`

func (w *wtx) UpdateJob(ctx context.Context, before, a abi.Job) error {
	var result *string
	if a.Result != nil {
		r := string(a.Result)
		result = &r
	}
	if _, err := w.Exec(ctx, updateJobSQL, a.UUID, string(a.State), a.Priority, a.ETA, a.Channel, a.MaxRetries,
		a.Description, a.Retry, result, a.ExcName, a.ExcMessage, a.ExcInfo, a.DateEnqueued, a.DateStarted,
		a.DateDone, a.DateCancelled, a.ExecTime, a.Late, a.WorkerID, before.State == abi.StateStarted, a.LeaseUntil); err != nil {
		return fmt.Errorf("postgres store: update %s: %w", a.UUID, err)
	}
	return nil
}

func (w *wtx) RecordAttempt(ctx context.Context, a abi.Attempt, replace bool) error {
	conflict := `DO NOTHING`
	if replace {
		conflict = `DO UPDATE SET worker_id = EXCLUDED.worker_id, plugin_sha256 = EXCLUDED.plugin_sha256,
			started = EXCLUDED.started, ended = EXCLUDED.ended, outcome = EXCLUDED.outcome,
			exc_name = EXCLUDED.exc_name, exc_message = EXCLUDED.exc_message, logs = EXCLUDED.logs, usage = EXCLUDED.usage`
	}
	logs, _ := json.Marshal(orLogs(a.Logs))
	_, err := w.Exec(ctx, `INSERT INTO job_attempts (job_uuid, attempt, worker_id, plugin_sha256, started, ended,
		outcome, exc_name, exc_message, logs, usage) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::json, $11::json)
		ON CONFLICT (job_uuid, attempt) `+conflict,
		a.JobUUID, a.Attempt, a.WorkerID, a.PluginSHA256, a.Started, a.Ended, a.Outcome, a.ExcName, a.ExcMessage, string(logs), store.UsageText(a.Usage))
	if err != nil {
		return fmt.Errorf("postgres store: record attempt %d of %s: %w", a.Attempt, a.JobUUID, err)
	}
	return nil
}

// ExpiredJobs drops the lapsed batches (job_runs) and those of the gone
// workers, reads their jobs still started in them, and the jobs handed
// out but not claimed in time; it unlists the gone workers (nodes).
func (w *wtx) ExpiredJobs(ctx context.Context, now time.Time, gone []string) ([]abi.Job, error) {
	if len(gone) > 0 {
		if _, err := w.Exec(ctx, `DELETE FROM nodes WHERE worker_id = ANY($1)`, gone); err != nil {
			return nil, fmt.Errorf("postgres store: unlist gone workers: %w", err)
		}
	}
	rows, err := w.Query(ctx, `DELETE FROM job_runs WHERE id IN (
		SELECT id FROM job_runs WHERE lease_until < $1 OR worker_id = ANY($2) FOR UPDATE SKIP LOCKED) RETURNING id, uuids`, now, gone)
	if err != nil {
		return nil, fmt.Errorf("postgres store: expired leases: %w", err)
	}
	var runs []int64
	var uuids []string
	for rows.Next() {
		var id int64
		var ids []string
		if err := rows.Scan(&id, &ids); err != nil {
			rows.Close()
			return nil, fmt.Errorf("postgres store: expired leases: %w", err)
		}
		runs, uuids = append(runs, id), append(uuids, ids...)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres store: expired leases: %w", err)
	}
	started, err := queryJobs(ctx, w, `WHERE uuid = ANY($1) AND state = 'started' AND run_id = ANY($2) FOR UPDATE`, uuids, runs)
	if err != nil {
		return nil, err
	}
	handed, err := queryJobs(ctx, w, `WHERE handed AND state = 'enqueued' AND lease_until < $1 FOR UPDATE SKIP LOCKED`, now)
	if err != nil {
		return nil, err
	}
	return append(started, handed...), nil
}

func (w *wtx) StartedBy(ctx context.Context, workerID string, uuids []string) ([]abi.Job, error) {
	return queryJobs(ctx, w, `WHERE uuid = ANY($1) AND state = 'started' AND worker_id = $2 FOR UPDATE`, uuids, workerID)
}

func orLogs(l []abi.LogLine) []abi.LogLine {
	if l == nil {
		return []abi.LogLine{}
	}
	return l
}

// quotaLockClass is the first key of the transaction lock (second key:
// hashtext(tenant)) that makes a tenant's quota check and insert one
// step, for the store's inserts and the SQL functions' alike.
const quotaLockClass = 0x777170

func (w *wtx) LockTenant(ctx context.Context, tenant string) error {
	if _, err := w.Exec(ctx, `SELECT pg_advisory_xact_lock($1::int, hashtext($2::text))`, quotaLockClass, tenant); err != nil {
		return fmt.Errorf("postgres store: lock tenant %s: %w", tenant, err)
	}
	return nil
}

func (w *wtx) TenantCounts(ctx context.Context, tenant string) ([]store.CountRow, error) {
	rows, err := w.Query(ctx, countsSQL, tenant)
	if err != nil {
		return nil, fmt.Errorf("postgres store: counts of %s: %w", tenant, err)
	}
	return collect(rows, "counts", pgx.RowToStructByPos[store.CountRow])
}

func (w *wtx) Savepoint(ctx context.Context) error {
	if _, err := w.Exec(ctx, `SAVEPOINT wasmq_request`); err != nil {
		return fmt.Errorf("postgres store: savepoint: %w", err)
	}
	return nil
}

func (w *wtx) RollbackToSavepoint(ctx context.Context) error {
	if _, err := w.Exec(ctx, `ROLLBACK TO SAVEPOINT wasmq_request`); err != nil {
		return fmt.Errorf("postgres store: rollback to savepoint: %w", err)
	}
	return nil
}

func (w *wtx) ReleaseSavepoint(ctx context.Context) error {
	if _, err := w.Exec(ctx, `RELEASE SAVEPOINT wasmq_request`); err != nil {
		return fmt.Errorf("postgres store: release savepoint: %w", err)
	}
	return nil
}
