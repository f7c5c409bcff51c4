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

const jobColumns = `uuid, tenant, func, args, kwargs, context, user_id, model_name, func_string,
	description, channel, priority, eta, expected_at, max_retries, retry, attempt, identity_key,
	graph_uuid, state, result, exc_name, exc_message, exc_info, date_created, date_enqueued,
	date_started, date_done, date_cancelled, exec_time, late, worker_id, plugin_sha256, seq, lease_until`

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
	err := row.Scan(&j.UUID, &j.Tenant, &j.Func, &args, &kwargs, &ctxt, &j.UserID, &j.ModelName,
		&j.FuncString, &j.Description, &j.Channel, &j.Priority, &eta, &expected, &j.MaxRetries,
		&j.Retry, &j.Attempt, &j.IdentityKey, &j.GraphUUID, &state, &result, &j.ExcName,
		&j.ExcMessage, &j.ExcInfo, &created, &enq, &started, &done, &cancelled, &exec, &late,
		&j.WorkerID, &j.PluginSHA256, &j.Seq, &lease)
	if err != nil {
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
	idx := make(map[string]int, len(jobs))
	ph := make([]string, len(jobs))
	args := make([]any, len(jobs))
	for i, j := range jobs {
		idx[j.UUID] = i
		ph[i] = "?"
		args[i] = j.UUID
	}
	rows, err := q.QueryContext(ctx, `SELECT child, parent FROM job_dependencies WHERE child IN (`+strings.Join(ph, ",")+`) ORDER BY rowid`, args...)
	if err != nil {
		return fmt.Errorf("sqlite store: select dependencies: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c, p string
		if err := rows.Scan(&c, &p); err != nil {
			return err
		}
		jobs[idx[c]].DependsOn = append(jobs[idx[c]].DependsOn, p)
	}
	return rows.Err()
}

func getJob(ctx context.Context, q querier, tenant, uuid string) (abi.Job, error) {
	jobs, err := queryJobs(ctx, q, `WHERE uuid = ? AND (? = '' OR tenant = ?)`, uuid, tenant, tenant)
	if err != nil {
		return abi.Job{}, err
	}
	if len(jobs) == 0 {
		return abi.Job{}, fmt.Errorf("job %s: %w", uuid, abi.ErrNotFound)
	}
	return jobs[0], nil
}

func (s *Store) Get(ctx context.Context, tenant, uuid string) (abi.Job, error) {
	return getJob(ctx, s.r, tenant, uuid)
}

func (s *Store) Insert(ctx context.Context, jobs []store.NewJob) ([]store.Inserted, error) {
	out := make([]store.Inserted, len(jobs))
	err := s.write(ctx, func(w *wtx) error {
		// alias maps a deduplicated request uuid to the job that stands for it,
		// so later entries of the batch may depend on it.
		alias := map[string]string{}
		fresh := map[string]int{} // uuid → index in jobs, of the jobs inserted
		for i, nj := range jobs {
			if nj.IdentityKey != "" {
				existing, err := queryJobs(ctx, w, `WHERE tenant = ? AND identity_key = ? AND state IN ('wait_dependencies','pending','enqueued')`, nj.Tenant, nj.IdentityKey)
				if err != nil {
					return err
				}
				if len(existing) > 0 {
					out[i] = store.Inserted{Job: existing[0], Deduplicated: true}
					alias[nj.UUID] = existing[0].UUID
					continue
				}
			}
			parents := make([]string, 0, len(nj.DependsOn))
			state := abi.StatePending
			allDone, anyCancelled, allFinished := true, false, true
			for _, p := range nj.DependsOn {
				if a, ok := alias[p]; ok {
					p = a
				}
				if p == nj.UUID {
					return &abi.FieldError{Field: "depends_on", Msg: "a job cannot depend on itself", Err: abi.ErrInvalid}
				}
				var pt, ps string
				err := w.QueryRowContext(ctx, `SELECT tenant, state FROM jobs WHERE uuid = ?`, p).Scan(&pt, &ps)
				if errors.Is(err, sql.ErrNoRows) || (err == nil && pt != nj.Tenant) {
					return &abi.FieldError{Field: "depends_on", Msg: fmt.Sprintf("job %s does not exist", p), Err: abi.ErrInvalid}
				}
				if err != nil {
					return fmt.Errorf("sqlite store: read parent %s: %w", p, err)
				}
				switch abi.State(ps) {
				case abi.StateDone:
				case abi.StateCancelled:
					allDone, anyCancelled = false, true
				default:
					allDone, allFinished = false, false
				}
				parents = append(parents, p)
			}
			switch {
			case allDone:
				state = abi.StatePending
			case allFinished && anyCancelled:
				state = abi.StateCancelled
			default:
				state = abi.StateWaitDependencies
			}
			var cancelled any
			if state == abi.StateCancelled {
				cancelled = micros(w.now)
			}
			_, err := w.ExecContext(ctx, `INSERT INTO jobs (uuid, tenant, func, args, kwargs, context, user_id,
				model_name, func_string, description, channel, priority, eta, expected_at, max_retries,
				identity_key, graph_uuid, state, date_created, date_cancelled, version)
				VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
				nj.UUID, nj.Tenant, nj.Func, string(orJSON(nj.Args, "[]")), string(orJSON(nj.Kwargs, "{}")),
				string(orJSON(nj.Context, "{}")), nj.UserID, nj.ModelName, nj.FuncString, nj.Description,
				nj.Channel, nj.Priority, optMicros(nj.ETA), optMicros(nj.ExpectedAt), nj.MaxRetries,
				nj.IdentityKey, nj.GraphUUID, string(state), micros(w.now), cancelled, w.nextVersion())
			if err != nil {
				if strings.Contains(err.Error(), "UNIQUE") && strings.Contains(err.Error(), "uuid") {
					return &abi.FieldError{Field: "uuid", Msg: "a job with uuid " + nj.UUID + " exists", Err: abi.ErrConflict}
				}
				return fmt.Errorf("sqlite store: insert job: %w", err)
			}
			for _, p := range parents {
				if _, err := w.ExecContext(ctx, `INSERT OR IGNORE INTO job_dependencies (child, parent) VALUES (?, ?)`, nj.UUID, p); err != nil {
					return fmt.Errorf("sqlite store: insert dependency: %w", err)
				}
			}
			fresh[nj.UUID] = i
			w.counts.Add(nj.Tenant, nj.Channel, state, 1)
			if state == abi.StatePending {
				w.events.Job(store.EventPending, nj.UUID, nj.Channel)
			}
		}
		// Read back what was inserted, a chunk at a time (SQLite caps the
		// number of parameters of one statement).
		ids := make([]any, 0, len(fresh))
		for id := range fresh {
			ids = append(ids, id)
		}
		for len(ids) > 0 {
			n := min(len(ids), 500)
			jobs, err := queryJobs(ctx, w, `WHERE uuid IN (?`+strings.Repeat(",?", n-1)+`)`, ids[:n]...)
			if err != nil {
				return err
			}
			for _, j := range jobs {
				out[fresh[j.UUID]] = store.Inserted{Job: j}
			}
			ids = ids[n:]
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func orJSON(b json.RawMessage, def string) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage(def)
	}
	return b
}

func (s *Store) List(ctx context.Context, f store.Filter) (store.Page, error) {
	where, args := []string{"1=1"}, []any{}
	if f.Tenant != "" {
		where, args = append(where, "tenant = ?"), append(args, f.Tenant)
	}
	if len(f.States) > 0 {
		ph := make([]string, len(f.States))
		for i, st := range f.States {
			ph[i] = "?"
			args = append(args, string(st))
		}
		where = append(where, "state IN ("+strings.Join(ph, ",")+")")
	}
	if f.Channel != "" {
		if p, ok := strings.CutSuffix(f.Channel, ".*"); ok {
			where, args = append(where, "(channel = ? OR channel LIKE ? ESCAPE '\\')"), append(args, p, likePrefix(p)+".%")
		} else {
			where, args = append(where, "channel = ?"), append(args, f.Channel)
		}
	}
	if f.Func != "" {
		where, args = append(where, "func = ?"), append(args, f.Func)
	}
	if f.GraphUUID != "" {
		where, args = append(where, "graph_uuid = ?"), append(args, f.GraphUUID)
	}
	if f.IdentityKey != "" {
		where, args = append(where, "identity_key = ?"), append(args, f.IdentityKey)
	}
	if f.Query != "" {
		q := "%" + likePrefix(f.Query) + "%"
		where = append(where, `(uuid LIKE ? ESCAPE '\' OR func LIKE ? ESCAPE '\' OR description LIKE ? ESCAPE '\' OR func_string LIKE ? ESCAPE '\')`)
		args = append(args, q, q, q, q)
	}
	if f.Cursor != "" {
		created, seq, err := store.DecodeCursor(f.Cursor)
		if err != nil {
			return store.Page{}, err
		}
		where = append(where, "(date_created < ? OR (date_created = ? AND seq < ?))")
		args = append(args, created, created, seq)
	}
	limit := store.PageLimit(f.Limit)
	args = append(args, limit+1)
	jobs, err := queryJobs(ctx, s.r, "WHERE "+strings.Join(where, " AND ")+" ORDER BY date_created DESC, seq DESC LIMIT ?", args...)
	if err != nil {
		return store.Page{}, err
	}
	page := store.Page{Jobs: jobs}
	if len(jobs) > limit {
		page.Jobs = jobs[:limit]
		last := page.Jobs[limit-1]
		page.NextCursor = store.EncodeCursor(last.DateCreated.UnixMicro(), last.Seq)
	}
	if page.Jobs == nil {
		page.Jobs = []abi.Job{}
	}
	return page, nil
}

func likePrefix(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}

func (s *Store) Attempts(ctx context.Context, tenant, uuid string) ([]abi.Attempt, error) {
	j, err := s.Get(ctx, tenant, uuid)
	if err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT attempt, worker_id, plugin_sha256, started, ended, outcome,
		exc_name, exc_message, logs FROM job_attempts WHERE job_uuid = ? ORDER BY attempt`, uuid)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: select attempts: %w", err)
	}
	defer rows.Close()
	out := []abi.Attempt{}
	for rows.Next() {
		a := abi.Attempt{JobUUID: uuid}
		var started int64
		var ended sql.NullInt64
		var logs string
		if err := rows.Scan(&a.Attempt, &a.WorkerID, &a.PluginSHA256, &started, &ended, &a.Outcome, &a.ExcName, &a.ExcMessage, &logs); err != nil {
			return nil, err
		}
		a.Started = time.UnixMicro(started).UTC()
		a.Ended = fromMicros(ended)
		if err := json.Unmarshal([]byte(logs), &a.Logs); err != nil {
			return nil, fmt.Errorf("sqlite store: attempt logs: %w", err)
		}
		if a.Logs == nil {
			a.Logs = []abi.LogLine{}
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return store.WithCurrent(out, j), nil
}

func (s *Store) Counts(ctx context.Context, tenant string) ([]store.ChannelCount, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT channel, state, SUM(n) FROM job_counts WHERE (? = '' OR tenant = ?)
		GROUP BY channel, state HAVING SUM(n) <> 0 ORDER BY channel`, tenant, tenant)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: counts: %w", err)
	}
	defer rows.Close()
	var out []store.ChannelCount
	for rows.Next() {
		var ch, st string
		var n int
		if err := rows.Scan(&ch, &st, &n); err != nil {
			return nil, err
		}
		if len(out) == 0 || out[len(out)-1].Channel != ch {
			out = append(out, store.ChannelCount{Channel: ch, Counts: map[abi.State]int{}})
		}
		out[len(out)-1].Counts[abi.State(st)] = n
	}
	return out, rows.Err()
}

func (s *Store) countBy(ctx context.Context, col, where string) (map[string]int, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+col+`, COUNT(*) FROM jobs WHERE `+where+` GROUP BY `+col)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: channel counts: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var ch string
		var n int
		if err := rows.Scan(&ch, &n); err != nil {
			return nil, err
		}
		out[ch] = n
	}
	return out, rows.Err()
}

func (s *Store) Running(ctx context.Context) ([]store.RunningJob, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT uuid, channel, tenant FROM jobs WHERE state IN ('enqueued', 'started')`)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: running jobs: %w", err)
	}
	defer rows.Close()
	var out []store.RunningJob
	for rows.Next() {
		var j store.RunningJob
		if err := rows.Scan(&j.UUID, &j.Channel, &j.Tenant); err != nil {
			return nil, fmt.Errorf("sqlite store: running jobs: %w", err)
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

func (s *Store) FailedChannels(ctx context.Context) (map[string]int, error) {
	return s.countBy(ctx, "channel", `state = 'failed'`)
}
