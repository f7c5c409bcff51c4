package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

func (s *driver) PendingSince(ctx context.Context, afterVersion int64, limit int) ([]store.Candidate, error) {
	return s.candidates(ctx, `FROM pending_log WHERE version > $1 ORDER BY version LIMIT $2`, afterVersion, limit)
}

func (s *driver) PendingDue(ctx context.Context, afterVersion int64, until time.Time, channels []string, limit int) ([]store.Candidate, error) {
	if channels == nil {
		channels = []string{}
	}
	return s.candidates(ctx, `FROM pending_log WHERE version > $1 AND (eta IS NULL OR eta <= $2 OR channel = ANY($3))
		ORDER BY version LIMIT $4`, afterVersion, until, channels, limit)
}

// PendingByETA reads pending_log_eta (migration 11): first the jobs with
// no eta, by version, then those with one, by (eta, version).
func (s *driver) PendingByETA(ctx context.Context, after store.ETACursor, until time.Time, limit int) ([]store.Candidate, error) {
	var out []store.Candidate
	if after.ETA == nil {
		cs, err := s.candidates(ctx, `FROM pending_log WHERE eta IS NULL AND version > $1 ORDER BY eta, version LIMIT $2`,
			after.Version, limit)
		if err != nil || len(cs) == limit {
			return cs, err
		}
		out, limit = cs, limit-len(cs)
		cs, err = s.candidates(ctx, `FROM pending_log WHERE eta <= $1 ORDER BY eta, version LIMIT $2`, until, limit)
		return append(out, cs...), err
	}
	return s.candidates(ctx, `FROM pending_log WHERE eta <= $1 AND (eta, version) > ($2, $3) ORDER BY eta, version LIMIT $4`,
		until, *after.ETA, after.Version, limit)
}

func (s *driver) PendingHigh(ctx context.Context) (int64, error) {
	var v int64
	if err := s.pool.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM pending_log`).Scan(&v); err != nil {
		return 0, fmt.Errorf("postgres store: highest pending version: %w", err)
	}
	return v, nil
}

func (s *driver) Pending(ctx context.Context, uuids []string) ([]store.Candidate, error) {
	return s.candidates(ctx, `FROM jobs WHERE uuid = ANY($1) AND state || '' = 'pending'`, uuids)
}

func (s *driver) candidates(ctx context.Context, from string, args ...any) ([]store.Candidate, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+candidateColumns+` `+from, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres store: pending jobs: %w", err)
	}
	return collectCandidates(rows)
}

const candidateColumns = `uuid, tenant, channel, priority, eta, expected_at, date_created, seq, version`

func collectCandidates(rows pgx.Rows) ([]store.Candidate, error) {
	// One scratch row and one list of its fields for the whole result, as
	// jobScanner does: a scheduler reads the candidates by the thousand.
	var c store.Candidate
	dest := []any{&c.UUID, &c.Tenant, &c.Channel, &c.Priority, &c.ETA, &c.ExpectedAt, &c.DateCreated, &c.Seq, &c.Version}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Candidate, error) {
		c = store.Candidate{}
		err := r.Scan(dest...)
		c.DateCreated = c.DateCreated.UTC()
		return c, err
	})
}

// Enqueue is one statement for the whole batch, each row conditional on
// the version the scheduler read.
//
// In the statements that join a batch of uuids to jobs, concatenating
// the empty string to the state ("state || …") hides it from the
// planner on purpose: with statistics taken
// before a burst (autovacuum analyzes a minute later) it believed a state
// had almost no rows and scanned a state index once per row of the batch
// (300 jobs: 60 ms instead of 4). The uuid index is the plan we want.
func (s *driver) Enqueue(ctx context.Context, jobs []store.Candidate, leaseUntil time.Time) ([]string, error) {
	if len(jobs) == 0 {
		return nil, nil
	}
	ids, vers := idsAndVersions(jobs)
	var moved []string
	err := s.writeOn(ctx, s.fast, func(w *wtx) error {
		rows, err := w.Query(ctx, `WITH unlogged AS (DELETE FROM pending_log WHERE version = ANY($4)),
			upd AS (UPDATE jobs j SET state = 'enqueued', date_enqueued = $1, lease_until = $2,
				handed = true, version = nextval('job_version')
				FROM unnest($3::text[], $4::bigint[]) AS c(uuid, version)
				WHERE j.uuid = c.uuid AND j.state || '' = 'pending' AND j.version = c.version
				RETURNING j.uuid, j.tenant, j.channel, j.state),
			`+countedCTE("upd", "pending")+`
			SELECT uuid, channel FROM upd`, w.now, leaseUntil, ids, vers)
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
			w.notes.Events.Add(store.EventEnqueued, chans...)
		}
		return rows.Err()
	})
	return moved, err
}

// Claim starts up to limit enqueued jobs for workerID in one statement;
// SKIP LOCKED lets concurrent claimers take disjoint jobs without waiting.
func (s *driver) Claim(ctx context.Context, workerID string, limit int, leaseUntil time.Time) ([]store.Claimed, error) {
	if limit <= 0 {
		return nil, nil
	}
	now := time.Now().UTC()
	rows, err := s.fast.Query(ctx, claimSQL, limit, now, workerID, leaseUntil)
	if err != nil {
		return nil, ended(fmt.Errorf("postgres store: claim: %w", err))
	}
	return collectStarted(rows, "claim", limit)
}

// idsAndVersions are the arrays a batch statement unnests.
func idsAndVersions(jobs []store.Candidate) ([]string, []int64) {
	ids := make([]string, len(jobs))
	vers := make([]int64, len(jobs))
	for i, c := range jobs {
		ids[i], vers[i] = c.UUID, c.Version
	}
	return ids, vers
}

// Start is Claim for jobs the caller picked: one statement takes each
// still-pending job at its version through enqueued to started.
func (s *driver) Start(ctx context.Context, jobs []store.Candidate, workerID string, leaseUntil time.Time) ([]store.Claimed, error) {
	if len(jobs) == 0 {
		return nil, nil
	}
	ids, vers := idsAndVersions(jobs)
	now := time.Now().UTC()
	rows, err := s.fast.Query(ctx, startSQL, ids, vers, workerID, leaseUntil, now)
	if err != nil {
		return nil, ended(fmt.Errorf("postgres store: start: %w", err))
	}
	return collectStarted(rows, "start", len(jobs))
}

// collectStarted reads up to n started jobs into a slice made for n (at
// most 4,096; a larger claim grows it): a start's jobs are large, and
// growing the slice row by row allocated them twice.
func collectStarted(rows pgx.Rows, op string, n int) ([]store.Claimed, error) {
	jobs, err := collectJobs(make([]abi.Job, 0, min(n, 4096)), rows)
	if err != nil {
		return nil, ended(fmt.Errorf("postgres store: %s: %w", op, err))
	}
	store.SortByRunOrder(jobs)
	return jobs, nil
}

// startedRun: a batch moved to started also inserts its job_runs row
// (the lease the node renews), numbered beforehand so that the job rows
// can name it. The started rows come straight from the UPDATE's
// RETURNING (no CTE holding whole rows beyond this one).
func startedRun(pick, set, from, where string, was abi.State) string {
	return `WITH ` + pick + `run AS (SELECT nextval('job_runs_id_seq') AS id),
		upd AS (
			UPDATE jobs j SET state = 'started', retry = retry + 1, attempt = attempt + 1, ` + set + `,
				date_done = NULL, exec_time = NULL, worker_id = $3, lease_until = $4, handed = false,
				run_id = (SELECT id FROM run), version = nextval('job_version')
			FROM ` + from + ` WHERE ` + where + `
			RETURNING ` + startedColumns + `),
		lease AS (
			INSERT INTO job_runs (id, worker_id, lease_until, remaining, uuids)
			SELECT (SELECT id FROM run), $3, $4, COUNT(*), array_agg(uuid) FROM upd HAVING COUNT(*) > 0),
		` + countedCTE("upd", string(was)) + `
		SELECT * FROM upd`
}

// startedColumns: the attempt is not written at start: the job row holds
// it while it runs, and it is recorded once, when it ends. Nor are the
// parents read: a worker does not need them.
var startedColumns = qualified(jobColumns, "j.")

func qualified(cols, prefix string) string {
	parts := strings.Split(cols, ",")
	for i, c := range parts {
		parts[i] = prefix + strings.TrimSpace(c)
	}
	return strings.Join(parts, ", ")
}

// $2 is read before the statement runs; a job enqueued in between must
// not look started before it was enqueued.
var claimSQL = startedRun(`picked AS (
			SELECT uuid FROM jobs WHERE handed AND state = 'enqueued'
			ORDER BY priority, expected_at NULLS LAST, date_created, seq
			LIMIT $1 FOR UPDATE SKIP LOCKED), `,
	`date_started = GREATEST($2::timestamptz, j.date_enqueued)`,
	`picked`, `j.uuid = picked.uuid`, abi.StateEnqueued)

var startSQL = startedRun(`unlogged AS (DELETE FROM pending_log WHERE version = ANY($2)), `, `date_enqueued = $5, date_started = $5`,
	`unnest($1::text[], $2::bigint[]) AS c(id, ver)`,
	`j.uuid = c.id AND j.state || '' = 'pending' AND j.version = c.ver`, abi.StatePending)

// Complete applies the whole batch in one statement (arrays unnested
// server-side); each outcome applies only while the job is still started
// by that worker and attempt. A done job has children to settle if it is
// marked so (LockParents) — the mark is read from the row updated, so it
// holds a child committed while this statement waited for the row — or
// if the EXISTS over job_dependencies, which reads the statement's
// snapshot, finds one: that is how a node of a version before the mark
// (migration 18), which does not mark, finds its children during an
// upgrade.
func (w *wtx) Complete(ctx context.Context, os []store.Outcome) ([]store.Completed, error) {
	n := len(os)
	var (
		ids, workers, states, excNames, excMsgs, excInfos, shas, outcomes, logs = make([]string, 0, n),
			make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n),
			make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		attempts, uncounts = make([]int32, 0, n), make([]int32, 0, n)
		silent             = make([]bool, 0, n)
		usages             = make([]*string, 0, n)
		results            = make([]*string, 0, n)
		endeds             = make([]time.Time, 0, n)
		etas               = make([]*time.Time, 0, n)
	)
	for _, c := range os {
		var result *string
		if len(c.Result) > 0 {
			r := string(c.Result)
			result = &r
		}
		var uncount int32
		if c.UncountRetry {
			uncount = 1
		}
		l, _ := json.Marshal(orLogs(c.Logs))
		ids, workers, states = append(ids, c.UUID), append(workers, c.WorkerID), append(states, string(c.To))
		excNames, excMsgs, excInfos = append(excNames, c.ExcName), append(excMsgs, c.ExcMessage), append(excInfos, c.ExcInfo)
		shas, outcomes, logs = append(shas, c.PluginSHA256), append(outcomes, c.Outcome), append(logs, string(l))
		attempts, uncounts, silent = append(attempts, int32(c.Attempt)), append(uncounts, uncount), append(silent, c.Silent)
		results, endeds, etas = append(results, result), append(endeds, c.Ended), append(etas, c.ETA)
		usages = append(usages, store.UsageText(c.Usage))
	}
	rows, err := w.Query(ctx, `WITH c AS (
			SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[], $7::text[],
				$8::text[], $9::timestamptz[], $10::timestamptz[], $11::int[], $12::text[], $13::text[], $14::text[], $15::bool[], $16::text[])
			AS c(uuid, worker, attempt, st, result, en, em, ei, ended, eta, uncount, sha, outcome, logs, silent, usage)),
		upd AS (
			UPDATE jobs j SET state = c.st, result = c.result::json, exc_name = c.en, exc_message = c.em,
				exc_info = c.ei, exec_time = EXTRACT(EPOCH FROM (c.ended - j.date_started)),
				date_done = CASE WHEN c.st = 'done' THEN c.ended ELSE j.date_done END,
				late = (j.expected_at IS NOT NULL AND j.expected_at < c.ended AND c.st <> 'pending'),
				eta = CASE WHEN c.st = 'pending' THEN c.eta ELSE j.eta END,
				retry = GREATEST(j.retry - c.uncount, 0),
				worker_id = CASE WHEN c.st = 'pending' THEN '' ELSE j.worker_id END,
				date_enqueued = CASE WHEN c.st = 'pending' THEN NULL ELSE j.date_enqueued END,
				failed = (c.st = 'failed'),
				lease_until = NULL, plugin_sha256 = c.sha, usage = c.usage::json, version = nextval('job_version')
			FROM c WHERE j.uuid = c.uuid AND j.state || '' = 'started' AND j.worker_id = c.worker AND j.attempt = c.attempt
			RETURNING j.uuid, j.channel, j.state, j.date_started, j.version, j.run_id,
				j.tenant, j.priority, j.eta, j.expected_at, j.date_created, j.seq,
				j.state = 'done' AND (j.has_children OR EXISTS (SELECT 1 FROM job_dependencies d WHERE d.parent = j.uuid)) AS has_children),
		-- Each batch's lease row counts its jobs still running.
		ended AS (SELECT run_id, COUNT(*) AS n FROM upd WHERE run_id IS NOT NULL GROUP BY run_id),
		run_gone AS (DELETE FROM job_runs r USING ended e WHERE r.id = e.run_id AND r.remaining <= e.n),
		run_left AS (UPDATE job_runs r SET remaining = r.remaining - e.n FROM ended e WHERE r.id = e.run_id AND r.remaining > e.n),
		retried AS (INSERT INTO pending_log (`+candidateColumns+`) SELECT `+candidateColumns+` FROM upd WHERE state = 'pending'),
		att AS (
			INSERT INTO job_attempts (job_uuid, attempt, worker_id, plugin_sha256, started, ended, outcome, exc_name, exc_message, logs, usage)
			SELECT c.uuid, c.attempt, c.worker, c.sha, upd.date_started, c.ended, c.outcome, c.en, c.em, c.logs::json, c.usage::json
			FROM c JOIN upd ON upd.uuid = c.uuid WHERE NOT c.silent
			ON CONFLICT (job_uuid, attempt) DO UPDATE SET worker_id = EXCLUDED.worker_id, plugin_sha256 = EXCLUDED.plugin_sha256,
				started = EXCLUDED.started, ended = EXCLUDED.ended, outcome = EXCLUDED.outcome,
				exc_name = EXCLUDED.exc_name, exc_message = EXCLUDED.exc_message, logs = EXCLUDED.logs, usage = EXCLUDED.usage)
		SELECT uuid, tenant, channel, state, has_children FROM upd`,
		ids, workers, attempts, states, results, excNames, excMsgs, excInfos, endeds, etas, uncounts, shas, outcomes, logs, silent, usages)
	if err != nil {
		return nil, fmt.Errorf("postgres store: complete: %w", err)
	}
	done, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Completed, error) {
		var c store.Completed
		var st string
		err := r.Scan(&c.UUID, &c.Tenant, &c.Channel, &st, &c.HasChildren)
		c.State = abi.State(st)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres store: complete: %w", err)
	}
	return done, nil
}

// RenewLeases renews the worker's batches (job_runs), not each running
// job: the reaper reads the batches, and a job's lease as read is its
// batch's (queryJobs). One row per batch instead of one per job: with a
// short lease, rewriting every running job's row each renewal cost more
// than a tenth of the throughput (docs/benchmarks.md).
func (s *driver) RenewLeases(ctx context.Context, workerID string, leaseUntil time.Time) ([]store.Held, error) {
	rows, err := s.pool.Query(ctx, `WITH r AS (UPDATE job_runs SET lease_until = $1 WHERE worker_id = $2 RETURNING id, uuids)
		SELECT j.uuid, j.attempt FROM r, unnest(r.uuids) AS u(id), jobs j
		WHERE j.uuid = u.id AND j.run_id = r.id AND j.state || '' = 'started'`, leaseUntil, workerID)
	if err != nil {
		return nil, fmt.Errorf("postgres store: renew leases: %w", err)
	}
	held, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Held, error) {
		var h store.Held
		err := r.Scan(&h.UUID, &h.Attempt)
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres store: renew leases: %w", err)
	}
	return held, nil
}

// Maintain is the leader's housekeeping, every lease/3 after the reap: a
// chunk of the pending_log trim and the fold (or hourly recount) of the
// job counts.
func (s *driver) Maintain(ctx context.Context) error {
	// The reaper's period follows the lease; the housekeeping need not.
	s.maintMu.Lock()
	due := time.Since(s.maintainedAt) >= maintainEvery
	if due {
		s.maintainedAt = time.Now()
	}
	s.maintMu.Unlock()
	if !due {
		return nil
	}
	if err := s.trimPendingLog(ctx); err != nil {
		return err
	}
	return s.keepCounts(ctx)
}

// maintainEvery: the leader trims pending_log and folds the counts at
// most this often, however short the lease (and so the reaper's period).
const maintainEvery = 3 * time.Second

// recountEvery: the leader counts the jobs afresh this often (and when it
// starts leading), so that counts put wrong by hand (a DELETE in psql)
// mend themselves. At a million jobs a recount takes 0.3–1 s.
const recountEvery = time.Hour

func (s *driver) keepCounts(ctx context.Context) error {
	s.maintMu.Lock()
	due := time.Since(s.recountedAt) > recountEvery
	s.maintMu.Unlock()
	if !due {
		return s.foldCounts(ctx)
	}
	if err := s.recount(ctx); err != nil {
		return err
	}
	s.maintMu.Lock()
	s.recountedAt = time.Now()
	s.maintMu.Unlock()
	return nil
}

// recount replaces the counts with a GROUP BY over the jobs. Under one
// REPEATABLE READ snapshot, the deltas it deletes are exactly those of
// the writes the GROUP BY sees; a write committed later keeps its delta.
func (s *driver) recount(ctx context.Context) error {
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		for _, q := range []string{
			`DELETE FROM job_count_deltas`,
			`DELETE FROM job_counts`,
			`INSERT INTO job_counts SELECT tenant, channel, state, COUNT(*) FROM jobs GROUP BY 1, 2, 3`,
		} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres store: recount jobs: %w", err)
	}
	return nil
}

// foldCounts moves the deltas the writes appended (migration 6) into the
// totals, so that Counts reads a few rows per (tenant, channel, state)
// and never the whole jobs table. It runs on the leader only; the
// deltas' rows are deleted and added in one transaction, so a concurrent
// Counts sees them in one place or the other.
func (s *driver) foldCounts(ctx context.Context) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `WITH d AS (DELETE FROM job_count_deltas RETURNING tenant, channel, state, n)
			INSERT INTO job_counts SELECT tenant, channel, state, SUM(n) FROM d GROUP BY 1, 2, 3
			ON CONFLICT (tenant, channel, state) DO UPDATE SET n = job_counts.n + EXCLUDED.n`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM job_counts WHERE n = 0`)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres store: fold job counts: %w", err)
	}
	return nil
}

// trimChunk bounds the work of one trimPendingLog pass: the log holds a
// row per pending job, so a backlog of a million jobs must not cost a
// million lookups every lease/3.
const trimChunk = 2000

// trimPendingLog forgets pending versions that are no longer current (the
// job started, changed or went away). Every path that moves a job out of
// pending deletes its own log row, so this is a safety net: it walks the
// log a chunk per pass, in version order, and starts over at the end.
func (s *driver) trimPendingLog(ctx context.Context) error {
	s.maintMu.Lock()
	defer s.maintMu.Unlock()
	var last *int64
	var seen int
	err := s.pool.QueryRow(ctx, `WITH chunk AS (
			SELECT version, uuid FROM pending_log WHERE version > $1 ORDER BY version LIMIT $2),
		stale AS (DELETE FROM pending_log l USING chunk c WHERE l.version = c.version AND NOT EXISTS (
			SELECT 1 FROM jobs j WHERE j.uuid = c.uuid AND j.version = c.version AND j.state = 'pending'))
		SELECT MAX(version), COUNT(*) FROM chunk`, s.trimAfter, trimChunk).Scan(&last, &seen)
	if err != nil {
		return fmt.Errorf("postgres store: trim pending log: %w", err)
	}
	if seen < trimChunk || last == nil {
		s.trimAfter = 0
	} else {
		s.trimAfter = *last
	}
	return nil
}

func (w *wtx) DeleteFinished(ctx context.Context, channel string, olderThan time.Time) (int, []string, error) {
	var n int
	var parents []string
	err := w.QueryRow(ctx, `WITH gone AS (
			DELETE FROM jobs WHERE state IN ('done', 'cancelled') AND channel = $1
			AND COALESCE(date_done, date_cancelled, date_created) < $2 RETURNING uuid, tenant, channel, state),
		counted AS (INSERT INTO job_count_deltas (tenant, channel, state, n)
			SELECT tenant, channel, state, -COUNT(*) FROM gone GROUP BY 1, 2, 3),
		a AS (DELETE FROM job_attempts WHERE job_uuid IN (SELECT uuid FROM gone)),
		r AS (DELETE FROM records WHERE job_uuid IN (SELECT uuid FROM gone)),
		d AS (DELETE FROM job_dependencies WHERE child IN (SELECT uuid FROM gone))
		SELECT (SELECT COUNT(*) FROM gone),
			ARRAY(SELECT DISTINCT parent FROM job_dependencies WHERE parent IN (SELECT uuid FROM gone))`,
		channel, olderThan).Scan(&n, &parents)
	if err != nil {
		return 0, nil, fmt.Errorf("postgres store: vacuum: %w", err)
	}
	if n == 0 {
		return 0, nil, nil
	}
	// A statement of its own: the one above does not see its own
	// deletions.
	return n, parents, vacuumModules(ctx, w)
}
