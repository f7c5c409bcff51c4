package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

func (s *driver) PendingSince(ctx context.Context, afterVersion int64, limit int) ([]store.Candidate, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+candidateColumns+`
		FROM jobs WHERE state = 'pending' AND version > ? ORDER BY version LIMIT ?`, afterVersion, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: pending since %d: %w", afterVersion, err)
	}
	return scanCandidates(rows)
}

func (s *driver) PendingDue(ctx context.Context, afterVersion int64, until time.Time, channels []string, limit int) ([]store.Candidate, error) {
	in, args := inList(append([]string{""}, channels...)) // "" names no channel: an IN list is never empty
	rows, err := s.r.QueryContext(ctx, `SELECT `+candidateColumns+`
		FROM jobs INDEXED BY jobs_pending_version WHERE state = 'pending' AND version > ? AND (eta IS NULL OR eta <= ? OR channel IN `+in+`)
		ORDER BY version LIMIT ?`, append(append([]any{afterVersion, micros(until)}, args...), limit)...)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: pending due: %w", err)
	}
	return scanCandidates(rows)
}

// PendingDue and PendingHigh name their index: without statistics SQLite
// took jobs_state_channel, every pending job, the backlog included.

// PendingByETA reads jobs_pending_eta (schema v6): first the jobs with no
// eta, by version, then those with one, by (eta, version).
func (s *driver) PendingByETA(ctx context.Context, after store.ETACursor, until time.Time, limit int) ([]store.Candidate, error) {
	query := func(where string, args ...any) ([]store.Candidate, error) {
		rows, err := s.r.QueryContext(ctx, `SELECT `+candidateColumns+` FROM jobs INDEXED BY jobs_pending_eta
			WHERE state = 'pending' AND `+where+` ORDER BY eta, version LIMIT ?`, args...)
		if err != nil {
			return nil, fmt.Errorf("sqlite store: pending by eta: %w", err)
		}
		return scanCandidates(rows)
	}
	if after.ETA == nil {
		out, err := query(`eta IS NULL AND version > ?`, after.Version, limit)
		if err != nil || len(out) == limit {
			return out, err
		}
		more, err := query(`eta <= ?`, micros(until), limit-len(out))
		return append(out, more...), err
	}
	return query(`eta <= ? AND (eta, version) > (?, ?)`, micros(until), micros(*after.ETA), after.Version, limit)
}

func (s *driver) PendingHigh(ctx context.Context) (int64, error) {
	var v int64
	if err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM jobs INDEXED BY jobs_pending_version WHERE state = 'pending'`).Scan(&v); err != nil {
		return 0, fmt.Errorf("sqlite store: highest pending version: %w", err)
	}
	return v, nil
}

func (s *driver) Pending(ctx context.Context, uuids []string) ([]store.Candidate, error) {
	var out []store.Candidate
	for len(uuids) > 0 { // an IN list has at most 32,766 parameters
		n := min(len(uuids), 10000)
		in, args := inList(uuids[:n])
		rows, err := s.r.QueryContext(ctx, `SELECT `+candidateColumns+` FROM jobs WHERE uuid IN `+in+` AND state = 'pending'`, args...)
		if err != nil {
			return nil, fmt.Errorf("sqlite store: pending jobs: %w", err)
		}
		cs, err := scanCandidates(rows)
		if err != nil {
			return nil, err
		}
		out, uuids = append(out, cs...), uuids[n:]
	}
	return out, nil
}

const candidateColumns = `uuid, tenant, channel, priority, eta, expected_at, date_created, seq, version`

func scanCandidates(rows *sql.Rows) ([]store.Candidate, error) {
	defer rows.Close()
	var out []store.Candidate
	for rows.Next() {
		var c store.Candidate
		var eta, expected sql.NullInt64
		var created int64
		if err := rows.Scan(&c.UUID, &c.Tenant, &c.Channel, &c.Priority, &eta, &expected, &created, &c.Seq, &c.Version); err != nil {
			return nil, err
		}
		c.ETA, c.ExpectedAt = fromMicros(eta), fromMicros(expected)
		c.DateCreated = time.UnixMicro(created).UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}

func (s *driver) Enqueue(ctx context.Context, jobs []store.Candidate, leaseUntil time.Time) ([]string, error) {
	var moved []string
	err := s.write(ctx, func(w *wtx) error {
		stmt, err := w.PrepareContext(ctx, `UPDATE jobs SET state = 'enqueued', date_enqueued = ?, lease_until = ?, version = ?
			WHERE uuid = ? AND state = 'pending' AND version = ?`)
		if err != nil {
			return fmt.Errorf("sqlite store: enqueue: %w", err)
		}
		defer stmt.Close()
		for _, c := range jobs {
			res, err := stmt.ExecContext(ctx, micros(w.now), micros(leaseUntil), w.nextVersion(), c.UUID, c.Version)
			if err != nil {
				return fmt.Errorf("sqlite store: enqueue %s: %w", c.UUID, err)
			}
			if n, _ := res.RowsAffected(); n == 1 {
				moved = append(moved, c.UUID)
				w.notes.Events.Add(store.EventEnqueued, c.Channel)
				w.notes.Counts.Add(c.Tenant, c.Channel, abi.StatePending, -1)
				w.notes.Counts.Add(c.Tenant, c.Channel, abi.StateEnqueued, 1)
			}
		}
		return nil
	})
	return moved, err
}

func (s *driver) Claim(ctx context.Context, workerID string, limit int, leaseUntil time.Time) ([]store.Claimed, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []store.Claimed
	err := s.write(ctx, func(w *wtx) error {
		// INDEXED BY: without fresh statistics the planner prefers
		// jobs_state_channel and sorts every enqueued job on each claim.
		rows, err := w.QueryContext(ctx, `SELECT uuid FROM jobs INDEXED BY jobs_enqueued_order WHERE state = 'enqueued'
			ORDER BY priority, expected_at IS NULL, expected_at, date_created, seq LIMIT ?`, limit)
		if err != nil {
			return fmt.Errorf("sqlite store: claim: %w", err)
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if len(ids) == 0 {
			return nil
		}
		// One version for the batch: versions order pending jobs only, and
		// these leave pending.
		in, args := inList(ids)
		head := []any{micros(w.now), workerID, micros(leaseUntil), w.nextVersion()}
		if _, err := w.ExecContext(ctx, `UPDATE jobs SET state = 'started', retry = retry + 1, attempt = attempt + 1,
			date_started = ?, date_done = NULL, exec_time = NULL, worker_id = ?, lease_until = ?, version = ?
			WHERE state = 'enqueued' AND uuid IN `+in, append(head, args...)...); err != nil {
			return fmt.Errorf("sqlite store: start jobs: %w", err)
		}
		out, err = startedJobs(ctx, w, ids)
		for _, j := range out {
			w.notes.Counts.Add(j.Tenant, j.Channel, abi.StateEnqueued, -1)
			w.notes.Counts.Add(j.Tenant, j.Channel, abi.StateStarted, 1)
		}
		return err
	})
	return out, err
}

// Start takes each still-pending job at its version through enqueued to
// started in one transaction.
func (s *driver) Start(ctx context.Context, jobs []store.Candidate, workerID string, leaseUntil time.Time) ([]store.Claimed, error) {
	if len(jobs) == 0 {
		return nil, nil
	}
	var out []store.Claimed
	err := s.write(ctx, func(w *wtx) error {
		stmt, err := w.PrepareContext(ctx, `UPDATE jobs SET state = 'started', retry = retry + 1, attempt = attempt + 1,
			date_enqueued = ?, date_started = ?, date_done = NULL, exec_time = NULL, worker_id = ?, lease_until = ?, version = ?
			WHERE uuid = ? AND state = 'pending' AND version = ?`)
		if err != nil {
			return fmt.Errorf("sqlite store: start: %w", err)
		}
		defer stmt.Close()
		version := w.nextVersion()
		var ids []string
		for _, c := range jobs {
			res, err := stmt.ExecContext(ctx, micros(w.now), micros(w.now), workerID, micros(leaseUntil), version, c.UUID, c.Version)
			if err != nil {
				return fmt.Errorf("sqlite store: start %s: %w", c.UUID, err)
			}
			if n, _ := res.RowsAffected(); n == 1 {
				ids = append(ids, c.UUID)
				w.notes.Counts.Add(c.Tenant, c.Channel, abi.StatePending, -1)
				w.notes.Counts.Add(c.Tenant, c.Channel, abi.StateStarted, 1)
			}
		}
		if len(ids) == 0 {
			return nil
		}
		out, err = startedJobs(ctx, w, ids)
		return err
	})
	return out, err
}

func inList(ids []string) (string, []any) {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return `(?` + strings.Repeat(",?", len(ids)-1) + `)`, args
}

// startedJobs reads jobs just started back in run order (without parents:
// a worker does not need them). Their attempts are not written now: the
// job row holds the running one, and it is recorded when it ends
// (store.WithCurrent).
func startedJobs(ctx context.Context, w *wtx, ids []string) ([]store.Claimed, error) {
	in, args := inList(ids)
	return scanJobs(ctx, w, `WHERE uuid IN `+in+`
		ORDER BY priority, expected_at IS NULL, expected_at, date_created, seq`, args...)
}

// Complete writes each outcome with the statement of its state,
// prepared once per batch (parsing them per job cost more than running
// them), then finds in one query which done jobs have dependents.
func (w *wtx) Complete(ctx context.Context, os []store.Outcome) ([]store.Completed, error) {
	stmts := map[string]*sql.Stmt{}
	defer func() {
		for _, st := range stmts {
			st.Close()
		}
	}()
	prep := func(q string) (*sql.Stmt, error) {
		if st, ok := stmts[q]; ok {
			return st, nil
		}
		st, err := w.PrepareContext(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("sqlite store: complete: %w", err)
		}
		stmts[q] = st
		return st, nil
	}
	var out []store.Completed
	var done []any
	for _, c := range os {
		uncount := 0
		if c.UncountRetry {
			uncount = 1
		}
		var result any
		if len(c.Result) > 0 {
			result = string(c.Result)
		}
		ended := micros(c.Ended)
		var q string
		var args []any
		switch c.To {
		case abi.StateDone:
			q = `UPDATE jobs SET state = 'done', result = ?, exc_name = '', exc_message = '',
				exc_info = '', date_done = ?, exec_time = (? - date_started) / 1e6,
				late = (expected_at IS NOT NULL AND expected_at < ?), lease_until = NULL, plugin_sha256 = ?, usage = ?, version = ?
				WHERE uuid = ? AND state = 'started' AND worker_id = ? AND attempt = ? RETURNING tenant, channel, date_started`
			args = []any{result, ended, ended, ended, c.PluginSHA256, store.UsageText(c.Usage), w.nextVersion(), c.UUID, c.WorkerID, c.Attempt}
		case abi.StatePending:
			q = `UPDATE jobs SET state = 'pending', eta = ?, result = ?, retry = MAX(retry - ?, 0),
				exc_name = ?, exc_message = ?, exc_info = ?, exec_time = (? - date_started) / 1e6,
				date_enqueued = NULL, worker_id = '', lease_until = NULL, plugin_sha256 = ?, usage = ?, version = ?
				WHERE uuid = ? AND state = 'started' AND worker_id = ? AND attempt = ? RETURNING tenant, channel, date_started`
			args = []any{optMicros(c.ETA), result, uncount, c.ExcName, c.ExcMessage, c.ExcInfo, ended,
				c.PluginSHA256, store.UsageText(c.Usage), w.nextVersion(), c.UUID, c.WorkerID, c.Attempt}
		default:
			q = `UPDATE jobs SET state = 'failed', result = ?, exc_name = ?, exc_message = ?,
				exc_info = ?, exec_time = (? - date_started) / 1e6, late = (expected_at IS NOT NULL AND expected_at < ?),
				lease_until = NULL, plugin_sha256 = ?, usage = ?, version = ?
				WHERE uuid = ? AND state = 'started' AND worker_id = ? AND attempt = ? RETURNING tenant, channel, date_started`
			args = []any{result, c.ExcName, c.ExcMessage, c.ExcInfo, ended, ended,
				c.PluginSHA256, store.UsageText(c.Usage), w.nextVersion(), c.UUID, c.WorkerID, c.Attempt}
		}
		st, err := prep(q)
		if err != nil {
			return nil, err
		}
		d := store.Completed{UUID: c.UUID, State: c.To}
		var started int64
		err = st.QueryRowContext(ctx, args...).Scan(&d.Tenant, &d.Channel, &started)
		if errors.Is(err, sql.ErrNoRows) {
			continue // taken back (lease expired, requeued) meanwhile: not ours to write
		}
		if err != nil {
			return nil, fmt.Errorf("sqlite store: complete %s: %w", c.UUID, err)
		}
		out = append(out, d)
		if c.To == abi.StateDone {
			done = append(done, c.UUID)
		}
		if !c.Silent {
			st, err := prep(recordAttempt)
			if err != nil {
				return nil, err
			}
			logs, _ := json.Marshal(orLogs(c.Logs))
			if _, err := st.ExecContext(ctx, c.UUID, c.Attempt, c.WorkerID, c.PluginSHA256, started, ended,
				c.Outcome, c.ExcName, c.ExcMessage, string(logs), store.UsageText(c.Usage)); err != nil {
				return nil, fmt.Errorf("sqlite store: record attempt %d of %s: %w", c.Attempt, c.UUID, err)
			}
		}
	}
	if len(done) == 0 {
		return out, nil
	}
	// Most done jobs have no dependents: one query finds the few that do.
	rows, err := w.QueryContext(ctx, `SELECT DISTINCT parent FROM job_dependencies WHERE parent IN (?`+strings.Repeat(",?", len(done)-1)+`)`, done...)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: complete: %w", err)
	}
	parents := map[string]bool{}
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			rows.Close()
			return nil, err
		}
		parents[p] = true
	}
	rows.Close()
	for i := range out {
		out[i].HasChildren = parents[out[i].UUID]
	}
	return out, rows.Err()
}

func orLogs(l []abi.LogLine) []abi.LogLine {
	if l == nil {
		return []abi.LogLine{}
	}
	return l
}

func (s *driver) RenewLeases(ctx context.Context, workerID string, leaseUntil time.Time) ([]store.Held, error) {
	var held []store.Held
	err := s.write(ctx, func(w *wtx) error {
		rows, err := w.QueryContext(ctx, `UPDATE jobs SET lease_until = ? WHERE state = 'started' AND worker_id = ? RETURNING uuid, attempt`,
			micros(leaseUntil), workerID)
		if err != nil {
			return fmt.Errorf("sqlite store: renew leases: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var h store.Held
			if err := rows.Scan(&h.UUID, &h.Attempt); err != nil {
				return fmt.Errorf("sqlite store: renew leases: %w", err)
			}
			held = append(held, h)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("sqlite store: renew leases: %w", err)
		}
		return nil
	})
	return held, err
}

// StartedBy: the writer's lock keeps the jobs read until the transaction
// ends.
func (w *wtx) StartedBy(ctx context.Context, workerID string, uuids []string) ([]abi.Job, error) {
	if len(uuids) == 0 {
		return nil, nil
	}
	in, args := inList(uuids)
	return queryJobs(ctx, w, `WHERE state = 'started' AND worker_id = ? AND uuid IN `+in, append([]any{workerID}, args...)...)
}

// ExpiredJobs reads the enqueued and started jobs whose lease lapsed, and
// the started jobs of the gone workers; the writer's lock keeps them
// until the transaction ends.
func (w *wtx) ExpiredJobs(ctx context.Context, now time.Time, gone []string) ([]abi.Job, error) {
	expired, err := queryJobs(ctx, w, `WHERE state IN ('enqueued', 'started') AND lease_until < ?`, micros(now))
	if err != nil || len(gone) == 0 {
		return expired, err
	}
	in, args := inList(gone)
	orphans, err := queryJobs(ctx, w, `WHERE state = 'started' AND lease_until >= ? AND worker_id IN `+in, append([]any{micros(now)}, args...)...)
	return append(expired, orphans...), err
}

// Hold: one process at a time opens the file (its lock), so a worker is
// alive exactly while this process holds it.
func (s *driver) Hold(ctx context.Context, workerID string) error {
	s.heldMu.Lock()
	s.held[workerID]++
	s.heldMu.Unlock()
	store.Holding(ctx)
	<-ctx.Done()
	s.heldMu.Lock()
	if s.held[workerID]--; s.held[workerID] == 0 {
		delete(s.held, workerID)
	}
	s.heldMu.Unlock()
	return ctx.Err()
}

// Unheld names every worker with started jobs that this process does not
// hold: the workers of a process that ended (killed, or stopped before
// its outcomes could be written), since no other process can be running.
func (s *driver) Unheld(ctx context.Context) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT DISTINCT worker_id FROM jobs WHERE state = 'started' ORDER BY worker_id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: unheld workers: %w", err)
	}
	defer rows.Close()
	var out []string
	s.heldMu.Lock()
	defer s.heldMu.Unlock()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("sqlite store: unheld workers: %w", err)
		}
		if s.held[id] == 0 {
			out = append(out, id)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite store: unheld workers: %w", err)
	}
	return out, nil
}

// Maintain: the embedded store needs no housekeeping after a reap.
func (s *driver) Maintain(context.Context) error { return nil }

func (w *wtx) DeleteFinished(ctx context.Context, channel string, olderThan time.Time) (int, []string, error) {
	sub := `SELECT uuid FROM jobs WHERE state IN ('done', 'cancelled')
		AND COALESCE(date_done, date_cancelled, date_created) < ? AND channel = ?`
	args := []any{micros(olderThan), channel}
	parents, err := w.strings(ctx, `SELECT DISTINCT parent FROM job_dependencies WHERE parent IN (`+sub+`)`, args...)
	if err != nil {
		return 0, nil, fmt.Errorf("sqlite store: vacuum: parents: %w", err)
	}
	for _, q := range []struct{ what, sql string }{
		{"attempts", `DELETE FROM job_attempts WHERE job_uuid IN (` + sub + `)`},
		{"records", `DELETE FROM records WHERE job_uuid IN (` + sub + `)`},
		{"dependencies", `DELETE FROM job_dependencies WHERE child IN (` + sub + `)`},
		{"progress", `DELETE FROM job_progress WHERE job_uuid IN (` + sub + `)`},
	} {
		if _, err := w.ExecContext(ctx, q.sql, args...); err != nil {
			return 0, nil, fmt.Errorf("sqlite store: vacuum %s: %w", q.what, err)
		}
	}
	if _, err := w.ExecContext(ctx, `DELETE FROM record_modules WHERE NOT EXISTS (
			SELECT 1 FROM records r WHERE r.plugin_sha256 = record_modules.sha256)`); err != nil {
		return 0, nil, fmt.Errorf("sqlite store: vacuum modules: %w", err)
	}
	rows, err := w.QueryContext(ctx, `DELETE FROM jobs WHERE uuid IN (`+sub+`) RETURNING tenant, state`, args...)
	if err != nil {
		return 0, nil, fmt.Errorf("sqlite store: vacuum jobs: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var tenant, state string
		if err := rows.Scan(&tenant, &state); err != nil {
			return 0, nil, fmt.Errorf("sqlite store: vacuum jobs: %w", err)
		}
		w.notes.Counts.Add(tenant, channel, abi.State(state), -1)
		n++
	}
	return n, parents, rows.Err()
}

// strings reads one column of text.
func (w *wtx) strings(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := w.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// recordAttempt writes down an attempt that ended: (job_uuid, attempt,
// worker_id, plugin_sha256, started, ended, outcome, exc_name,
// exc_message, logs, usage).
const recordAttempt = `INSERT INTO job_attempts (job_uuid, attempt, worker_id, plugin_sha256, started, ended, outcome,
	exc_name, exc_message, logs, usage) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (job_uuid, attempt) DO UPDATE SET worker_id = excluded.worker_id, plugin_sha256 = excluded.plugin_sha256,
		started = excluded.started, ended = excluded.ended, outcome = excluded.outcome, exc_name = excluded.exc_name,
		exc_message = excluded.exc_message, logs = excluded.logs, usage = excluded.usage`
