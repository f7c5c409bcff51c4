package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

const jobColumns = `uuid, tenant, func, args, kwargs, context, user_id, model_name, func_string,
	description, channel, priority, eta, expected_at, max_retries, retry, attempt, identity_key,
	graph_uuid, state, result, exc_name, exc_message, exc_info, date_created, date_enqueued,
	date_started, date_done, date_cancelled, exec_time, late, worker_id, plugin_sha256, seq, lease_until, usage, version`

type scanner interface{ Scan(dest ...any) error }

func micros(t time.Time) int64 { return t.UnixMicro() }

func optMicros(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMicro()
}

func fromMicros(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := time.UnixMicro(v.Int64).UTC()
	return &t
}

func scanJob(row scanner) (abi.Job, error) {
	var j abi.Job
	var args, kwargs, ctxt string
	var result sql.NullString
	var state string
	var eta, expected, enq, started, done, cancelled, lease sql.NullInt64
	var created int64
	var exec sql.NullFloat64
	var late int
	var usage *string
	err := row.Scan(&j.UUID, &j.Tenant, &j.Func, &args, &kwargs, &ctxt, &j.UserID, &j.ModelName,
		&j.FuncString, &j.Description, &j.Channel, &j.Priority, &eta, &expected, &j.MaxRetries,
		&j.Retry, &j.Attempt, &j.IdentityKey, &j.GraphUUID, &state, &result, &j.ExcName,
		&j.ExcMessage, &j.ExcInfo, &created, &enq, &started, &done, &cancelled, &exec, &late,
		&j.WorkerID, &j.PluginSHA256, &j.Seq, &lease, &usage, &j.Version)
	if err != nil {
		return j, err
	}
	if j.Usage, err = store.DecodeUsage(usage); err != nil {
		return j, err
	}
	j.Args, j.Kwargs, j.Context = json.RawMessage(args), json.RawMessage(kwargs), json.RawMessage(ctxt)
	if result.Valid {
		j.Result = json.RawMessage(result.String)
	}
	j.State = abi.State(state)
	j.ETA, j.ExpectedAt = fromMicros(eta), fromMicros(expected)
	j.DateCreated = time.UnixMicro(created).UTC()
	j.DateEnqueued, j.DateStarted, j.DateDone, j.DateCancelled = fromMicros(enq), fromMicros(started), fromMicros(done), fromMicros(cancelled)
	j.LeaseUntil = fromMicros(lease)
	if exec.Valid {
		v := exec.Float64
		j.ExecTime = &v
	}
	j.Late = late != 0
	j.DependsOn = []string{}
	return j, nil
}

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

// queryJobs runs a SELECT of jobColumns and fills DependsOn.
func queryJobs(ctx context.Context, q querier, where string, args ...any) ([]abi.Job, error) {
	jobs, err := scanJobs(ctx, q, where, args...)
	if err != nil {
		return nil, err
	}
	if err := fillDeps(ctx, q, jobs); err != nil {
		return nil, err
	}
	return jobs, nil
}

// scanJobs runs a SELECT of jobColumns, without DependsOn.
func scanJobs(ctx context.Context, q querier, where string, args ...any) ([]abi.Job, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+jobColumns+` FROM jobs `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: select jobs: %w", err)
	}
	var jobs []abi.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("sqlite store: scan job: %w", err)
		}
		jobs = append(jobs, j)
	}
	rows.Close()
	return jobs, rows.Err()
}

func fillDeps(ctx context.Context, q querier, jobs []abi.Job) error {
	if len(jobs) == 0 {
		return nil
	}
	ids := store.UUIDs(jobs)
	in, args := inList(ids)
	rows, err := q.QueryContext(ctx, `SELECT child, parent FROM job_dependencies WHERE child IN `+in+` ORDER BY rowid`, args...)
	if err != nil {
		return fmt.Errorf("sqlite store: select dependencies: %w", err)
	}
	defer rows.Close()
	var pairs [][2]string
	for rows.Next() {
		var p [2]string
		if err := rows.Scan(&p[0], &p[1]); err != nil {
			return fmt.Errorf("sqlite store: select dependencies: %w", err)
		}
		pairs = append(pairs, p)
	}
	store.AttachParents(jobs, pairs)
	return rows.Err()
}

func getJob(ctx context.Context, q querier, tenant, uuid string) (abi.Job, error) {
	jobs, err := queryJobs(ctx, q, `WHERE uuid = ? AND (? = '' OR tenant = ?)`, uuid, tenant, tenant)
	if err != nil {
		return abi.Job{}, err
	}
	return store.OneJob(jobs, uuid)
}

func (s *driver) GetJob(ctx context.Context, tenant, uuid string) (abi.Job, error) {
	j, err := getJob(ctx, s.r, tenant, uuid)
	if err != nil {
		return j, err
	}
	one := []abi.Job{j}
	err = fillProgress(ctx, s.r, one)
	return one[0], err
}

// insertJobSQL inserts one row and answers its seq: the rest of the row
// as stored is the row given (store.AsStored), so nothing is read back.
const insertJobSQL = `INSERT INTO jobs (uuid, tenant, func, args, kwargs, context, user_id,
	model_name, func_string, description, channel, priority, eta, expected_at, max_retries,
	identity_key, graph_uuid, state, date_created, date_cancelled, version)
	VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING seq`

// InsertJobs inserts row by row through the statement prepared at Open:
// one writer, no round trip, so a row costs only its own work.
func (w *wtx) InsertJobs(ctx context.Context, jobs []abi.Job) ([]abi.Job, error) {
	stmt := w.StmtContext(ctx, w.s.insertStmt)
	out := make([]abi.Job, len(jobs))
	for i, j := range jobs {
		var seq int64
		err := stmt.QueryRowContext(ctx, j.UUID, j.Tenant, j.Func, string(j.Args), string(j.Kwargs), string(j.Context),
			j.UserID, j.ModelName, j.FuncString, j.Description, j.Channel, j.Priority, optMicros(j.ETA),
			optMicros(j.ExpectedAt), j.MaxRetries, j.IdentityKey, j.GraphUUID, string(j.State), micros(w.now),
			optMicros(j.DateCancelled), w.nextVersion()).Scan(&seq)
		if err != nil {
			if strings.Contains(err.Error(), "UNIQUE") && strings.Contains(err.Error(), "uuid") {
				return nil, &abi.FieldError{Field: "uuid", Msg: "a job with uuid " + j.UUID + " exists", Err: abi.ErrConflict}
			}
			return nil, fmt.Errorf("sqlite store: insert job: %w", err)
		}
		out[i] = store.AsStored(j, seq, w.now)
	}
	return out, nil
}

// dialect: positional parameters, dates as microseconds.
var dialect = store.Dialect{
	Param: func(int) string { return "?" },
	Time:  func(t time.Time) any { return t.UnixMicro() },
	// SQLite has no containment operator: one element (or key) of the
	// top level must hold the scalar, compared by JSON type and value as
	// PostgreSQL's jsonb @> compares a scalar.
	JSONMatch: func(col, key string, m store.Scalar, arg func(any) string) string {
		cond := "EXISTS (SELECT 1 FROM json_each(" + col + ") AS e WHERE "
		if key != "" {
			cond += "e.key = " + arg(key) + " AND "
		}
		switch m.Kind {
		case "string":
			cond += "e.type = 'text' AND e.atom = " + arg(m.Str)
		case "number":
			cond += "e.type IN ('integer', 'real') AND e.atom = " + arg(m.Num)
		default: // true, false, null
			cond += "e.type = '" + m.Kind + "'"
		}
		return cond + ")"
	},
}

// walking is dialect with the state's index kept out of a list (a unary
// plus: SQLite then walks the newest-first index): see readsStateIndex.
var walking = func() store.Dialect {
	d := dialect
	d.StateIn = func(_ []abi.State, in string) string { return "+" + in }
	return d
}()

func (s *driver) ListJobs(ctx context.Context, q store.ListQuery) ([]abi.Job, error) {
	byState, err := s.readsStateIndex(ctx, q.Filter)
	if err != nil {
		return nil, err
	}
	page, args := listPage(q, byState)
	jobs, err := queryJobs(ctx, s.r, page, args...)
	if err != nil {
		return nil, err
	}
	return jobs, fillProgress(ctx, s.r, jobs)
}

// stateIndexRows: a list of states holding at most this many of the
// jobs it may list reads them through jobs_state_channel and sorts them
// (a few milliseconds at most); a list of states holding more walks the
// newest-first index, where its first page comes soon.
const stateIndexRows = 5000

// readsStateIndex says which way a list of states goes, from the
// store's counts: SQLite cannot tell, having no statistics (a full
// ANALYZE holds the write lock for a second a million jobs, and even
// then it sorted every done job for a page of them). Left to itself it
// walked a tenant's jobs for its few failed ones and sorted every done
// job for a page of them: 131 and 176 ms on 300,000 jobs
// (docs/benchmarks.md).
func (s *driver) readsStateIndex(ctx context.Context, f store.Filter) (bool, error) {
	if len(f.States) == 0 {
		return false, nil
	}
	query := `SELECT COALESCE(SUM(n), 0) FROM job_counts WHERE (? = '' OR tenant = ?) AND state IN (` +
		strings.TrimSuffix(strings.Repeat("?, ", len(f.States)), ", ") + `)`
	args := []any{f.Tenant, f.Tenant}
	for _, st := range f.States {
		args = append(args, string(st))
	}
	if f.Channel != "" && !strings.HasSuffix(f.Channel, ".*") {
		query += ` AND channel = ?`
		args = append(args, f.Channel)
	}
	var n int64
	if err := s.r.QueryRowContext(ctx, query, args...).Scan(&n); err != nil {
		return false, fmt.Errorf("sqlite store: list: count the states' jobs: %w", err)
	}
	return n <= stateIndexRows, nil
}

// listPage is the clause of a list's page, newest first: the
// newest-first indexes read backwards (schema 9), or, byState, the jobs
// of the states read through jobs_state_channel and sorted.
func listPage(q store.ListQuery, byState bool) (string, []any) {
	if byState {
		where, args := store.JobConditions(q, dialect)
		return "INDEXED BY jobs_state_channel WHERE " + where + " ORDER BY date_created DESC, seq DESC LIMIT ?", append(args, q.Limit)
	}
	where, args := store.JobConditions(q, walking)
	return "WHERE " + where + " ORDER BY date_created DESC, seq DESC LIMIT ?", append(args, q.Limit)
}

func (s *driver) ListAttempts(ctx context.Context, uuid string) ([]abi.Attempt, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT attempt, worker_id, plugin_sha256, started, ended, outcome,
		exc_name, exc_message, logs, usage FROM job_attempts WHERE job_uuid = ? ORDER BY attempt`, uuid)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: select attempts: %w", err)
	}
	defer rows.Close()
	out := []abi.Attempt{}
	for rows.Next() {
		a := abi.Attempt{JobUUID: uuid}
		var started int64
		var ended sql.NullInt64
		var logs []byte
		var usage *string
		if err := rows.Scan(&a.Attempt, &a.WorkerID, &a.PluginSHA256, &started, &ended, &a.Outcome, &a.ExcName, &a.ExcMessage, &logs, &usage); err != nil {
			return nil, fmt.Errorf("sqlite store: select attempts: %w", err)
		}
		var err error
		if a.Usage, err = store.DecodeUsage(usage); err != nil {
			return nil, err
		}
		a.Started, a.Ended = time.UnixMicro(started).UTC(), fromMicros(ended)
		if a.Logs, err = store.DecodeLogs(logs); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

const countsSQL = `SELECT channel, state, SUM(n) FROM job_counts WHERE (? = '' OR tenant = ?)
	GROUP BY channel, state HAVING SUM(n) <> 0 ORDER BY channel`

func (s *driver) Counts(ctx context.Context, tenant string) ([]store.CountRow, error) {
	return countRows(ctx, s.r, "counts", countsSQL, tenant, tenant)
}

// LockTenant: the one writer already keeps every other write waiting.
func (w *wtx) LockTenant(context.Context, string) error { return nil }

func (w *wtx) TenantCounts(ctx context.Context, tenant string) ([]store.CountRow, error) {
	return countRows(ctx, w, "counts", countsSQL, tenant, tenant)
}

func (s *driver) FailedChannels(ctx context.Context) ([]store.CountRow, error) {
	return countRows(ctx, s.r, "failed jobs per channel", `SELECT channel, state, COUNT(*) FROM jobs WHERE state = 'failed' GROUP BY channel`)
}

func countRows(ctx context.Context, db interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, op, q string, args ...any) ([]store.CountRow, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: %s: %w", op, err)
	}
	defer rows.Close()
	var out []store.CountRow
	for rows.Next() {
		var c store.CountRow
		if err := rows.Scan(&c.Channel, &c.State, &c.N); err != nil {
			return nil, fmt.Errorf("sqlite store: %s: %w", op, err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func (s *driver) Running(ctx context.Context) ([]store.RunningJob, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT uuid, channel, tenant, version FROM jobs WHERE state IN ('enqueued', 'started')`)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: running jobs: %w", err)
	}
	defer rows.Close()
	var out []store.RunningJob
	for rows.Next() {
		var j store.RunningJob
		if err := rows.Scan(&j.UUID, &j.Channel, &j.Tenant, &j.Version); err != nil {
			return nil, fmt.Errorf("sqlite store: running jobs: %w", err)
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// InsertPending: with one writer and no network there is no round trip
// to save.
func (s *driver) InsertPending(ctx context.Context, rows []abi.Job) ([]abi.Job, error) {
	return store.WritePending(ctx, s, rows)
}
