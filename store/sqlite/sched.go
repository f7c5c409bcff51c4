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

func (s *Store) PendingSince(ctx context.Context, afterVersion int64, limit int) ([]store.Candidate, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+candidateColumns+`
		FROM jobs WHERE state = 'pending' AND version > ? ORDER BY version LIMIT ?`, afterVersion, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: pending since %d: %w", afterVersion, err)
	}
	return scanCandidates(rows)
}

func (s *Store) Pending(ctx context.Context, uuids []string) ([]store.Candidate, error) {
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

func (s *Store) Enqueue(ctx context.Context, jobs []store.Candidate, leaseUntil time.Time) ([]string, error) {
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
				w.events.Add(store.EventEnqueued, c.Channel)
				w.counts.Add(c.Tenant, c.Channel, abi.StatePending, -1)
				w.counts.Add(c.Tenant, c.Channel, abi.StateEnqueued, 1)
			}
		}
		return nil
	})
	return moved, err
}

func (s *Store) Claim(ctx context.Context, workerID string, limit int, leaseUntil time.Time) ([]store.Claimed, error) {
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
			w.counts.Add(j.Tenant, j.Channel, abi.StateEnqueued, -1)
			w.counts.Add(j.Tenant, j.Channel, abi.StateStarted, 1)
		}
		return err
	})
	return out, err
}

// Start takes each still-pending job at its version through enqueued to
// started in one transaction.
func (s *Store) Start(ctx context.Context, jobs []store.Candidate, workerID string, leaseUntil time.Time) ([]store.Claimed, error) {
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
				w.counts.Add(c.Tenant, c.Channel, abi.StatePending, -1)
				w.counts.Add(c.Tenant, c.Channel, abi.StateStarted, 1)
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

func (s *Store) Complete(ctx context.Context, cs []store.Completion) ([]string, error) {
	var applied []string
	err := s.write(ctx, func(w *wtx) error {
		var done []string
		// Statements are prepared once per batch: parsing them per job
		// costed more than running them.
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
		queryRow := func(q string, args ...any) *sql.Row {
			st, err := prep(q)
			if err != nil {
				return w.QueryRowContext(ctx, q, args...) // reports the same error
			}
			return st.QueryRowContext(ctx, args...)
		}
		for _, c := range cs {
			if err := abi.CheckTransition(abi.StateStarted, c.To, c.Cause); err != nil {
				return fmt.Errorf("complete %s: %w", c.UUID, err)
			}
			ended := c.Ended
			if ended.IsZero() {
				ended = w.now
			}
			uncount := 0
			if c.UncountRetry {
				uncount = 1
			}
			var result any
			if len(c.Result) > 0 {
				result = string(c.Result)
			}
			var tenant, channel string
			var started int64
			var err error
			switch c.To {
			case abi.StateDone:
				err = queryRow(`UPDATE jobs SET state = 'done', result = ?, exc_name = '', exc_message = '',
					exc_info = '', date_done = ?, exec_time = (? - date_started) / 1e6,
					late = (expected_at IS NOT NULL AND expected_at < ?), lease_until = NULL, plugin_sha256 = ?, version = ?
					WHERE uuid = ? AND state = 'started' AND worker_id = ? AND attempt = ? RETURNING tenant, channel, date_started`,
					result, micros(ended), micros(ended), micros(ended), c.PluginSHA256, w.nextVersion(), c.UUID, c.WorkerID, c.Attempt).Scan(&tenant, &channel, &started)
			case abi.StatePending:
				err = queryRow(`UPDATE jobs SET state = 'pending', eta = ?, result = ?, retry = MAX(retry - ?, 0),
					exc_name = ?, exc_message = ?, exc_info = ?, exec_time = (? - date_started) / 1e6,
					date_enqueued = NULL, worker_id = '', lease_until = NULL, plugin_sha256 = ?, version = ?
					WHERE uuid = ? AND state = 'started' AND worker_id = ? AND attempt = ? RETURNING tenant, channel, date_started`,
					optMicros(c.ETA), result, uncount, c.ExcName, c.ExcMessage, c.ExcInfo, micros(ended),
					c.PluginSHA256, w.nextVersion(), c.UUID, c.WorkerID, c.Attempt).Scan(&tenant, &channel, &started)
			case abi.StateFailed:
				err = queryRow(`UPDATE jobs SET state = 'failed', result = ?, exc_name = ?, exc_message = ?,
					exc_info = ?, exec_time = (? - date_started) / 1e6, late = (expected_at IS NOT NULL AND expected_at < ?),
					lease_until = NULL, plugin_sha256 = ?, version = ?
					WHERE uuid = ? AND state = 'started' AND worker_id = ? AND attempt = ? RETURNING tenant, channel, date_started`,
					result, c.ExcName, c.ExcMessage, c.ExcInfo, micros(ended), micros(ended),
					c.PluginSHA256, w.nextVersion(), c.UUID, c.WorkerID, c.Attempt).Scan(&tenant, &channel, &started)
			}
			if errors.Is(err, sql.ErrNoRows) {
				continue // taken back (lease expired, requeued) meanwhile: not ours to write
			}
			if err != nil {
				return fmt.Errorf("sqlite store: complete %s: %w", c.UUID, err)
			}
			applied = append(applied, c.UUID)
			w.counts.Add(tenant, channel, abi.StateStarted, -1)
			w.counts.Add(tenant, channel, c.To, 1)
			logs, _ := json.Marshal(orLogs(c.Logs))
			outcome := string(c.To)
			if c.Cause == abi.CauseShutdown {
				outcome = "interrupted"
			} else if c.To == abi.StatePending {
				outcome = "retry"
			}
			// A done job's row says all a silent last attempt would
			// (store.WithCurrent); a requeue writes it down first.
			if !(c.To == abi.StateDone && string(logs) == "[]") {
				st, err := prep(recordAttempt)
				if err != nil {
					return err
				}
				if _, err := st.ExecContext(ctx, c.UUID, c.Attempt, c.WorkerID, c.PluginSHA256, started, micros(ended),
					outcome, c.ExcName, c.ExcMessage, string(logs)); err != nil {
					return fmt.Errorf("sqlite store: record attempt %d of %s: %w", c.Attempt, c.UUID, err)
				}
			}
			// A failed job needs no event of its own: the finished event
			// already brings a round, which checks sequential channels.
			w.events.Job(store.EventFinished, c.UUID, channel)
			switch c.To {
			case abi.StateDone:
				done = append(done, c.UUID)
			case abi.StatePending:
				w.events.Job(store.EventPending, c.UUID, channel)
			}
		}
		if len(done) == 0 {
			return nil
		}
		// Most done jobs have no dependents: one query finds the few that do.
		args := make([]any, len(done))
		for i, d := range done {
			args[i] = d
		}
		rows, err := w.QueryContext(ctx, `SELECT DISTINCT parent FROM job_dependencies WHERE parent IN (?`+strings.Repeat(",?", len(done)-1)+`)`, args...)
		if err != nil {
			return err
		}
		var parents []string
		for rows.Next() {
			var p string
			if err := rows.Scan(&p); err != nil {
				rows.Close()
				return err
			}
			parents = append(parents, p)
		}
		rows.Close()
		return settleChildren(ctx, w, parents)
	})
	return applied, err
}

func orLogs(l []abi.LogLine) []abi.LogLine {
	if l == nil {
		return []abi.LogLine{}
	}
	return l
}

func (s *Store) RenewLeases(ctx context.Context, workerID string, leaseUntil time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(w *wtx) error {
		res, err := w.ExecContext(ctx, `UPDATE jobs SET lease_until = ? WHERE state = 'started' AND worker_id = ?`,
			micros(leaseUntil), workerID)
		if err != nil {
			return fmt.Errorf("sqlite store: renew leases: %w", err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return int(n), err
}

func (s *Store) ReapExpired(ctx context.Context, now time.Time) ([]store.Reaped, error) {
	var out []store.Reaped
	err := s.write(ctx, func(w *wtx) error {
		rows, err := w.QueryContext(ctx, `SELECT uuid, state, retry, max_retries, attempt, worker_id, channel, tenant, date_started FROM jobs
			WHERE state IN ('enqueued', 'started') AND lease_until < ?`, micros(now))
		if err != nil {
			return fmt.Errorf("sqlite store: expired leases: %w", err)
		}
		type dead struct {
			uuid, state, worker, channel string
			tenant                       string
			retry, max, attempt          int
			started                      sql.NullInt64
		}
		var ds []dead
		for rows.Next() {
			var d dead
			if err := rows.Scan(&d.uuid, &d.state, &d.retry, &d.max, &d.attempt, &d.worker, &d.channel, &d.tenant, &d.started); err != nil {
				rows.Close()
				return err
			}
			ds = append(ds, d)
		}
		rows.Close()
		for _, d := range ds {
			to := abi.StatePending
			if d.state == string(abi.StateStarted) && d.max > 0 && d.retry >= d.max {
				to = abi.StateFailed
			}
			if err := abi.CheckTransition(abi.State(d.state), to, abi.CauseDead); err != nil {
				return err
			}
			msg := fmt.Sprintf("worker %s stopped renewing its lease", d.worker)
			if to == abi.StateFailed {
				_, err = w.ExecContext(ctx, `UPDATE jobs SET state = 'failed', exc_name = ?, exc_message = ?,
					lease_until = NULL, version = ? WHERE uuid = ?`,
					abi.ExcJobFoundDead, fmt.Sprintf("Job found dead after %d attempts: %s", d.retry, msg), w.nextVersion(), d.uuid)
				w.events.Add(store.EventChanged, d.channel)
			} else {
				_, err = w.ExecContext(ctx, `UPDATE jobs SET state = 'pending', date_enqueued = NULL, worker_id = '',
					lease_until = NULL, version = ? WHERE uuid = ?`, w.nextVersion(), d.uuid)
				w.events.Job(store.EventPending, d.uuid, d.channel)
			}
			if err != nil {
				return fmt.Errorf("sqlite store: reap %s: %w", d.uuid, err)
			}
			w.counts.Add(d.tenant, d.channel, abi.State(d.state), -1)
			w.counts.Add(d.tenant, d.channel, to, 1)
			if d.state == string(abi.StateStarted) && d.started.Valid {
				if _, err := w.ExecContext(ctx, recordAttempt, d.uuid, d.attempt, d.worker, "", d.started.Int64, micros(now),
					"dead", abi.ExcJobFoundDead, msg, "[]"); err != nil {
					return fmt.Errorf("sqlite store: record attempt %d of %s: %w", d.attempt, d.uuid, err)
				}
			}
			w.events.Job(store.EventFinished, d.uuid, d.channel)
			out = append(out, store.Reaped{UUID: d.uuid, State: to})
		}
		return nil
	})
	return out, err
}

func (s *Store) Vacuum(ctx context.Context, channel string, olderThan time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(w *wtx) error {
		sub := `SELECT uuid FROM jobs WHERE state IN ('done', 'cancelled')
			AND COALESCE(date_done, date_cancelled, date_created) < ? AND channel = ?`
		args := []any{micros(olderThan), channel}
		if _, err := w.ExecContext(ctx, `DELETE FROM job_attempts WHERE job_uuid IN (`+sub+`)`, args...); err != nil {
			return fmt.Errorf("sqlite store: vacuum attempts: %w", err)
		}
		if _, err := w.ExecContext(ctx, `DELETE FROM job_dependencies WHERE child IN (`+sub+`)`, args...); err != nil {
			return fmt.Errorf("sqlite store: vacuum dependencies: %w", err)
		}
		rows, err := w.QueryContext(ctx, `DELETE FROM jobs WHERE uuid IN (`+sub+`) RETURNING tenant, state`, args...)
		if err != nil {
			return fmt.Errorf("sqlite store: vacuum jobs: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var tenant, state string
			if err := rows.Scan(&tenant, &state); err != nil {
				return fmt.Errorf("sqlite store: vacuum jobs: %w", err)
			}
			w.counts.Add(tenant, channel, abi.State(state), -1)
			n++
		}
		return rows.Err()
	})
	return int(n), err
}

// recordAttempt writes down an attempt that ended: (job_uuid, attempt,
// worker_id, plugin_sha256, started, ended, outcome, exc_name,
// exc_message, logs).
const recordAttempt = `INSERT INTO job_attempts (job_uuid, attempt, worker_id, plugin_sha256, started, ended, outcome,
	exc_name, exc_message, logs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (job_uuid, attempt) DO UPDATE SET worker_id = excluded.worker_id, plugin_sha256 = excluded.plugin_sha256,
		started = excluded.started, ended = excluded.ended, outcome = excluded.outcome, exc_name = excluded.exc_name,
		exc_message = excluded.exc_message, logs = excluded.logs`
