package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

func (s *Store) PendingSince(ctx context.Context, afterVersion int64, limit int) ([]store.Candidate, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.pool.Query(ctx, `SELECT uuid, tenant, channel, priority, eta, expected_at, date_created, seq, version
		FROM jobs WHERE state = 'pending' AND version > $1 ORDER BY version LIMIT $2`, afterVersion, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres store: pending since %d: %w", afterVersion, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Candidate, error) {
		var c store.Candidate
		err := r.Scan(&c.UUID, &c.Tenant, &c.Channel, &c.Priority, &c.ETA, &c.ExpectedAt, &c.DateCreated, &c.Seq, &c.Version)
		c.DateCreated = c.DateCreated.UTC()
		return c, err
	})
}

// Enqueue is one statement for the whole batch, each row conditional on
// the version the scheduler read.
func (s *Store) Enqueue(ctx context.Context, jobs []store.Candidate, leaseUntil time.Time) ([]string, error) {
	if len(jobs) == 0 {
		return nil, nil
	}
	ids := make([]string, len(jobs))
	vers := make([]int64, len(jobs))
	for i, c := range jobs {
		ids[i], vers[i] = c.UUID, c.Version
	}
	var moved []string
	err := s.write(ctx, func(w *wtx) error {
		rows, err := w.Query(ctx, `UPDATE jobs j SET state = 'enqueued', date_enqueued = $1, lease_until = $2,
			version = nextval('job_version')
			FROM unnest($3::text[], $4::bigint[]) AS c(uuid, version)
			WHERE j.uuid = c.uuid AND j.state = 'pending' AND j.version = c.version
			RETURNING j.uuid, j.channel`, w.now, leaseUntil, ids, vers)
		if err != nil {
			return fmt.Errorf("postgres store: enqueue: %w", err)
		}
		var chans []string
		for rows.Next() {
			var id, ch string
			if err := rows.Scan(&id, &ch); err != nil {
				rows.Close()
				return err
			}
			moved, chans = append(moved, id), append(chans, ch)
		}
		rows.Close()
		if len(moved) > 0 {
			w.emit(store.EventEnqueued, chans...)
		}
		return rows.Err()
	})
	return moved, err
}

// Claim starts up to limit enqueued jobs for workerID in one statement;
// SKIP LOCKED lets concurrent claimers take disjoint jobs without waiting.
func (s *Store) Claim(ctx context.Context, workerID string, limit int, leaseUntil time.Time) ([]store.Claimed, error) {
	if limit <= 0 {
		return nil, nil
	}
	now := time.Now().UTC()
	rows, err := s.pool.Query(ctx, `WITH picked AS (
			SELECT seq FROM jobs WHERE state = 'enqueued'
			ORDER BY priority, expected_at NULLS LAST, date_created, seq
			LIMIT $1 FOR UPDATE SKIP LOCKED),
		started AS (
			UPDATE jobs j SET state = 'started', retry = retry + 1, attempt = attempt + 1, date_started = $2,
				date_done = NULL, exec_time = NULL, worker_id = $3, lease_until = $4, version = nextval('job_version')
			FROM picked WHERE j.seq = picked.seq
			RETURNING j.*),
		attempts AS (
			INSERT INTO job_attempts (job_uuid, attempt, worker_id, started)
			SELECT uuid, attempt, worker_id, date_started FROM started
			ON CONFLICT (job_uuid, attempt) DO UPDATE SET worker_id = EXCLUDED.worker_id, started = EXCLUDED.started,
				ended = NULL, outcome = '', exc_name = '', exc_message = '', logs = '[]')
		SELECT `+jobColumns+` FROM started`, limit, now, workerID, leaseUntil)
	if err != nil {
		return nil, fmt.Errorf("postgres store: claim: %w", err)
	}
	jobs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (abi.Job, error) { return scanJob(r) })
	if err != nil {
		return nil, fmt.Errorf("postgres store: claim: %w", err)
	}
	sort.Slice(jobs, func(i, k int) bool { return runsBefore(jobs[i], jobs[k]) })
	if err := fillDeps(ctx, s.pool, jobs); err != nil {
		return nil, err
	}
	return jobs, nil
}

func runsBefore(a, b abi.Job) bool {
	if a.Priority != b.Priority {
		return a.Priority < b.Priority
	}
	if (a.ExpectedAt == nil) != (b.ExpectedAt == nil) {
		return a.ExpectedAt != nil
	}
	if a.ExpectedAt != nil && !a.ExpectedAt.Equal(*b.ExpectedAt) {
		return a.ExpectedAt.Before(*b.ExpectedAt)
	}
	if !a.DateCreated.Equal(b.DateCreated) {
		return a.DateCreated.Before(b.DateCreated)
	}
	return a.Seq < b.Seq
}

// Complete sends every completion of the batch in one pipelined round
// trip inside one transaction; each applies only while the job is still
// started by that worker and attempt.
func (s *Store) Complete(ctx context.Context, cs []store.Completion) ([]string, error) {
	var applied []string
	err := s.write(ctx, func(w *wtx) error {
		b := &pgx.Batch{}
		for _, c := range cs {
			if err := abi.CheckTransition(abi.StateStarted, c.To, c.Cause); err != nil {
				return fmt.Errorf("complete %s: %w", c.UUID, err)
			}
			ended := c.Ended
			if ended.IsZero() {
				ended = w.now
			}
			var result *string
			if len(c.Result) > 0 {
				r := string(c.Result)
				result = &r
			}
			uncount := 0
			if c.UncountRetry {
				uncount = 1
			}
			logs, _ := json.Marshal(orLogs(c.Logs))
			outcome := string(c.To)
			if c.Cause == abi.CauseShutdown {
				outcome = "interrupted"
			} else if c.To == abi.StatePending {
				outcome = "retry"
			}
			var eta *time.Time
			if c.To == abi.StatePending {
				eta = c.ETA
			}
			b.Queue(`WITH upd AS (
				UPDATE jobs SET state = $1, result = $2::json, exc_name = $3, exc_message = $4, exc_info = $5,
					exec_time = EXTRACT(EPOCH FROM ($6 - date_started)),
					date_done = CASE WHEN $1 = 'done' THEN $6 ELSE date_done END,
					late = (expected_at IS NOT NULL AND expected_at < $6 AND $1 <> 'pending'),
					eta = CASE WHEN $1 = 'pending' THEN $7 ELSE eta END,
					retry = GREATEST(retry - $8, 0),
					worker_id = CASE WHEN $1 = 'pending' THEN '' ELSE worker_id END,
					date_enqueued = CASE WHEN $1 = 'pending' THEN NULL ELSE date_enqueued END,
					lease_until = NULL, plugin_sha256 = $9, version = nextval('job_version')
				WHERE uuid = $10 AND state = 'started' AND worker_id = $11 AND attempt = $12
				RETURNING uuid, channel),
			att AS (
				UPDATE job_attempts SET ended = $6, outcome = $13, exc_name = $3, exc_message = $4,
					plugin_sha256 = $9, logs = $14::json
				WHERE job_uuid = $10 AND attempt = $12 AND EXISTS (SELECT 1 FROM upd))
			SELECT uuid, channel FROM upd`,
				string(c.To), result, c.ExcName, c.ExcMessage, c.ExcInfo, ended, eta, uncount, c.PluginSHA256,
				c.UUID, c.WorkerID, c.Attempt, outcome, string(logs))
		}
		br := w.SendBatch(ctx, b)
		var done []string
		for _, c := range cs {
			var id, ch string
			err := br.QueryRow().Scan(&id, &ch)
			if err == pgx.ErrNoRows {
				continue // taken back meanwhile: not ours to write
			}
			if err != nil {
				br.Close()
				return fmt.Errorf("postgres store: complete %s: %w", c.UUID, err)
			}
			applied = append(applied, id)
			w.emit(store.EventFinished, ch)
			switch c.To {
			case abi.StateDone:
				done = append(done, id)
			case abi.StatePending:
				w.emit(store.EventPending, ch)
			case abi.StateFailed:
				w.emit(store.EventChanged, ch)
			}
		}
		if err := br.Close(); err != nil {
			return fmt.Errorf("postgres store: complete: %w", err)
		}
		if len(done) == 0 {
			return nil
		}
		// Most done jobs have no dependents: one query finds the few that do.
		rows, err := w.Query(ctx, `SELECT DISTINCT parent FROM job_dependencies WHERE parent = ANY($1)`, done)
		if err != nil {
			return err
		}
		parents, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
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
	tag, err := s.pool.Exec(ctx, `UPDATE jobs SET lease_until = $1 WHERE state = 'started' AND worker_id = $2`, leaseUntil, workerID)
	if err != nil {
		return 0, fmt.Errorf("postgres store: renew leases: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

func (s *Store) ReapExpired(ctx context.Context, now time.Time) ([]store.Reaped, error) {
	var out []store.Reaped
	err := s.write(ctx, func(w *wtx) error {
		rows, err := w.Query(ctx, `SELECT uuid, state, retry, max_retries, attempt, worker_id, channel FROM jobs
			WHERE state IN ('enqueued', 'started') AND lease_until < $1 FOR UPDATE SKIP LOCKED`, now)
		if err != nil {
			return fmt.Errorf("postgres store: expired leases: %w", err)
		}
		type dead struct {
			uuid, state         string
			retry, max, attempt int
			worker, channel     string
		}
		ds, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (dead, error) {
			var d dead
			return d, r.Scan(&d.uuid, &d.state, &d.retry, &d.max, &d.attempt, &d.worker, &d.channel)
		})
		if err != nil {
			return err
		}
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
				_, err = w.Exec(ctx, `UPDATE jobs SET state = 'failed', exc_name = $1, exc_message = $2,
					lease_until = NULL, version = nextval('job_version') WHERE uuid = $3`,
					abi.ExcJobFoundDead, fmt.Sprintf("Job found dead after %d attempts: %s", d.retry, msg), d.uuid)
				w.emit(store.EventChanged, d.channel)
			} else {
				_, err = w.Exec(ctx, `UPDATE jobs SET state = 'pending', date_enqueued = NULL, worker_id = '',
					lease_until = NULL, version = nextval('job_version') WHERE uuid = $1`, d.uuid)
				w.emit(store.EventPending, d.channel)
			}
			if err != nil {
				return fmt.Errorf("postgres store: reap %s: %w", d.uuid, err)
			}
			if d.state == string(abi.StateStarted) {
				if _, err := w.Exec(ctx, `UPDATE job_attempts SET ended = $1, outcome = 'dead', exc_name = $2, exc_message = $3
					WHERE job_uuid = $4 AND attempt = $5`, now, abi.ExcJobFoundDead, msg, d.uuid, d.attempt); err != nil {
					return err
				}
			}
			w.emit(store.EventFinished, d.channel)
			out = append(out, store.Reaped{UUID: d.uuid, State: to})
		}
		return nil
	})
	return out, err
}

func (s *Store) Vacuum(ctx context.Context, channel string, olderThan time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(w *wtx) error {
		tag, err := w.Exec(ctx, `WITH gone AS (
				DELETE FROM jobs WHERE state IN ('done', 'cancelled') AND channel = $1
				AND COALESCE(date_done, date_cancelled, date_created) < $2 RETURNING uuid),
			a AS (DELETE FROM job_attempts WHERE job_uuid IN (SELECT uuid FROM gone)),
			d AS (DELETE FROM job_dependencies WHERE child IN (SELECT uuid FROM gone))
			SELECT 1 FROM gone`, channel, olderThan)
		if err != nil {
			return fmt.Errorf("postgres store: vacuum: %w", err)
		}
		n = tag.RowsAffected()
		return nil
	})
	return int(n), err
}
