package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

const jobColumns = `uuid, tenant, func, args::text, kwargs::text, context::text, user_id, model_name, func_string,
	description, channel, priority, eta, expected_at, max_retries, retry, attempt, identity_key,
	graph_uuid, state, result::text, exc_name, exc_message, exc_info, date_created, date_enqueued,
	date_started, date_done, date_cancelled, exec_time, late, worker_id, plugin_sha256, seq, lease_until`

func scanJob(row pgx.Row) (abi.Job, error) {
	var j abi.Job
	var args, kwargs, ctxt string
	var result *string
	var state string
	err := row.Scan(&j.UUID, &j.Tenant, &j.Func, &args, &kwargs, &ctxt, &j.UserID, &j.ModelName,
		&j.FuncString, &j.Description, &j.Channel, &j.Priority, &j.ETA, &j.ExpectedAt, &j.MaxRetries,
		&j.Retry, &j.Attempt, &j.IdentityKey, &j.GraphUUID, &state, &result, &j.ExcName,
		&j.ExcMessage, &j.ExcInfo, &j.DateCreated, &j.DateEnqueued, &j.DateStarted, &j.DateDone,
		&j.DateCancelled, &j.ExecTime, &j.Late, &j.WorkerID, &j.PluginSHA256, &j.Seq, &j.LeaseUntil)
	if err != nil {
		return j, err
	}
	j.Args, j.Kwargs, j.Context = json.RawMessage(args), json.RawMessage(kwargs), json.RawMessage(ctxt)
	if result != nil {
		j.Result = json.RawMessage(*result)
	}
	j.State = abi.State(state)
	for _, t := range []*time.Time{&j.DateCreated, j.ETA, j.ExpectedAt, j.DateEnqueued, j.DateStarted, j.DateDone, j.DateCancelled, j.LeaseUntil} {
		if t != nil {
			*t = t.UTC()
		}
	}
	j.DependsOn = []string{}
	return j, nil
}

// queryJobs runs a SELECT of jobColumns and fills DependsOn.
func queryJobs(ctx context.Context, q querier, where string, args ...any) ([]abi.Job, error) {
	rows, err := q.Query(ctx, `SELECT `+jobColumns+` FROM jobs `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres store: select jobs: %w", err)
	}
	jobs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (abi.Job, error) { return scanJob(r) })
	if err != nil {
		return nil, fmt.Errorf("postgres store: scan jobs: %w", err)
	}
	return jobs, fillDeps(ctx, q, jobs)
}

func fillDeps(ctx context.Context, q querier, jobs []abi.Job) error {
	if len(jobs) == 0 {
		return nil
	}
	idx := make(map[string]int, len(jobs))
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		idx[j.UUID] = i
		ids[i] = j.UUID
	}
	rows, err := q.Query(ctx, `SELECT child, parent FROM job_dependencies WHERE child = ANY($1) ORDER BY child, ctid`, ids)
	if err != nil {
		return fmt.Errorf("postgres store: select dependencies: %w", err)
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
	jobs, err := queryJobs(ctx, q, `WHERE uuid = $1 AND ($2 = '' OR tenant = $2)`, uuid, tenant)
	if err != nil {
		return abi.Job{}, err
	}
	if len(jobs) == 0 {
		return abi.Job{}, fmt.Errorf("job %s: %w", uuid, abi.ErrNotFound)
	}
	return jobs[0], nil
}

func (s *Store) Get(ctx context.Context, tenant, uuid string) (abi.Job, error) {
	return getJob(ctx, s.pool, tenant, uuid)
}

func orJSON(b json.RawMessage, def string) string {
	if len(b) == 0 {
		return def
	}
	return string(b)
}

func (s *Store) Insert(ctx context.Context, jobs []store.NewJob) ([]store.Inserted, error) {
	simple := true
	for _, j := range jobs {
		if j.IdentityKey != "" || len(j.DependsOn) > 0 {
			simple = false
		}
	}
	out := make([]store.Inserted, len(jobs))
	err := s.write(ctx, func(w *wtx) error {
		if simple {
			return insertMany(ctx, w, jobs, out)
		}
		return insertEach(ctx, w, jobs, out)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// insertMany stores independent jobs in one statement (batches, bulk).
func insertMany(ctx context.Context, w *wtx, jobs []store.NewJob, out []store.Inserted) error {
	n := len(jobs)
	cols := make([][]any, 16)
	for i := range cols {
		cols[i] = make([]any, n)
	}
	var uuids, tenants, funcs, args, kwargs, ctxs, users, models, fstrs, descs, chans, graphs []string
	var prios, maxr []int32
	var etas, exps []*time.Time
	for _, j := range jobs {
		uuids, tenants, funcs = append(uuids, j.UUID), append(tenants, j.Tenant), append(funcs, j.Func)
		args, kwargs, ctxs = append(args, orJSON(j.Args, "[]")), append(kwargs, orJSON(j.Kwargs, "{}")), append(ctxs, orJSON(j.Context, "{}"))
		users, models, fstrs = append(users, j.UserID), append(models, j.ModelName), append(fstrs, j.FuncString)
		descs, chans, graphs = append(descs, j.Description), append(chans, j.Channel), append(graphs, j.GraphUUID)
		prios, maxr = append(prios, int32(j.Priority)), append(maxr, int32(j.MaxRetries))
		etas, exps = append(etas, j.ETA), append(exps, j.ExpectedAt)
	}
	rows, err := w.Query(ctx, `WITH ins AS (
			INSERT INTO jobs (uuid, tenant, func, args, kwargs, context, user_id, model_name,
			func_string, description, channel, priority, eta, expected_at, max_retries, graph_uuid, state, date_created)
			SELECT u, t, f, a::json, k::json, c::json, us, m, fs, d, ch, p, e, x, mr, g, 'pending', $17
			FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
				$9::text[], $10::text[], $11::text[], $12::int[], $13::timestamptz[], $14::timestamptz[], $15::int[], $16::text[])
				AS x(u, t, f, a, k, c, us, m, fs, d, ch, p, e, x, mr, g)
			RETURNING `+jobColumns+`, version),
		logged AS (INSERT INTO pending_log (`+candidateColumns+`) SELECT `+candidateColumns+` FROM ins),
		`+countedCTE("ins", "")+`
		SELECT `+jobColumnNames+` FROM ins`,
		uuids, tenants, funcs, args, kwargs, ctxs, users, models, fstrs, descs, chans, prios, etas, exps, maxr, graphs, w.now)
	if err != nil {
		return insertError(err)
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (abi.Job, error) { return scanJob(r) })
	if err != nil {
		return insertError(err)
	}
	byID := make(map[string]abi.Job, len(got))
	for _, j := range got {
		byID[j.UUID] = j
	}
	for i, j := range jobs {
		out[i] = store.Inserted{Job: byID[j.UUID]}
	}
	for _, j := range got {
		w.events.Job(store.EventPending, j.UUID, j.Channel)
	}
	return nil
}

// jobColumnNames are jobColumns as a CTE returning them names them.
var jobColumnNames = strings.ReplaceAll(jobColumns, "::text", "")

// logPending records the current version of those of these jobs that are
// pending: the scheduler's reads of pending jobs go through pending_log.
func logPending(ctx context.Context, w *wtx, uuids ...string) error {
	if _, err := w.Exec(ctx, `INSERT INTO pending_log (`+candidateColumns+`)
		SELECT `+candidateColumns+` FROM jobs WHERE uuid = ANY($1) AND state = 'pending' ON CONFLICT DO NOTHING`, uuids); err != nil {
		return fmt.Errorf("postgres store: log pending jobs: %w", err)
	}
	return nil
}

// unlog forgets a pending version of a job that changed or moved on.
func unlog(ctx context.Context, w *wtx, version int64) error {
	if _, err := w.Exec(ctx, `DELETE FROM pending_log WHERE version = $1`, version); err != nil {
		return fmt.Errorf("postgres store: forget pending version %d: %w", version, err)
	}
	return nil
}

// leaveRun: a started job ended outside Complete (a manual action); its
// batch counts one job less.
func leaveRun(ctx context.Context, w *wtx, runID int64) error {
	if _, err := w.Exec(ctx, `WITH gone AS (DELETE FROM job_runs WHERE id = $1 AND remaining <= 1)
		UPDATE job_runs SET remaining = remaining - 1 WHERE id = $1 AND remaining > 1`, runID); err != nil {
		return fmt.Errorf("postgres store: end run %d: %w", runID, err)
	}
	return nil
}

// activeWithKey finds the active job (if any) a new job with this
// identity key deduplicates into. Jobs that came back to pending (retry,
// dead worker, requeue) count too, even if a newer one has the key.
const activeWithKey = `WHERE tenant = $1 AND identity_key = $2 AND identity_key <> ''
	AND state IN ('wait_dependencies', 'pending', 'enqueued') ORDER BY date_created, seq LIMIT 1`

func insertError(err error) error {
	if isUnique(err) {
		return &abi.FieldError{Field: "uuid", Msg: "a job with this uuid exists", Err: abi.ErrConflict}
	}
	return fmt.Errorf("postgres store: insert jobs: %w", err)
}

// insertEach stores jobs one by one: identity keys and dependencies need
// to see the jobs stored before them in the same batch.
func insertEach(ctx context.Context, w *wtx, jobs []store.NewJob, out []store.Inserted) error {
	alias := map[string]string{}
	for i, nj := range jobs {
		parents := make([]string, 0, len(nj.DependsOn))
		allDone, anyCancelled, allFinished := true, false, true
		for _, p := range nj.DependsOn {
			if a, ok := alias[p]; ok {
				p = a
			}
			if p == nj.UUID {
				return &abi.FieldError{Field: "depends_on", Msg: "a job cannot depend on itself", Err: abi.ErrInvalid}
			}
			var pt, ps string
			err := w.QueryRow(ctx, `SELECT tenant, state FROM jobs WHERE uuid = $1`, p).Scan(&pt, &ps)
			if errors.Is(err, errNoRows) || (err == nil && pt != nj.Tenant) {
				return &abi.FieldError{Field: "depends_on", Msg: fmt.Sprintf("job %s does not exist", p), Err: abi.ErrInvalid}
			}
			if err != nil {
				return fmt.Errorf("postgres store: read parent %s: %w", p, err)
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
		state := abi.StateWaitDependencies
		switch {
		case allDone:
			state = abi.StatePending
		case allFinished && anyCancelled:
			state = abi.StateCancelled
		}
		var cancelled *time.Time
		if state == abi.StateCancelled {
			cancelled = &w.now
		}
		if nj.IdentityKey != "" {
			// Inserts of one key wait for each other until commit, so the
			// second sees the first.
			if _, err := w.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2 || chr(31) || $3))`,
				identityLockClass, nj.Tenant, nj.IdentityKey); err != nil {
				return fmt.Errorf("postgres store: lock identity key: %w", err)
			}
			existing, err := queryJobs(ctx, w, activeWithKey, nj.Tenant, nj.IdentityKey)
			if err != nil {
				return err
			}
			if len(existing) > 0 {
				out[i] = store.Inserted{Job: existing[0], Deduplicated: true}
				alias[nj.UUID] = existing[0].UUID
				continue
			}
		}
		rows, err := w.Query(ctx, `INSERT INTO jobs (uuid, tenant, func, args, kwargs, context, user_id, model_name,
			func_string, description, channel, priority, eta, expected_at, max_retries, identity_key, graph_uuid,
			state, date_created, date_cancelled)
			VALUES ($1,$2,$3,$4::json,$5::json,$6::json,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20)
			RETURNING uuid`,
			nj.UUID, nj.Tenant, nj.Func, orJSON(nj.Args, "[]"), orJSON(nj.Kwargs, "{}"), orJSON(nj.Context, "{}"),
			nj.UserID, nj.ModelName, nj.FuncString, nj.Description, nj.Channel, nj.Priority, nj.ETA, nj.ExpectedAt,
			nj.MaxRetries, nj.IdentityKey, nj.GraphUUID, string(state), w.now, cancelled)
		if err != nil {
			return insertError(err)
		}
		if _, err := pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return insertError(err)
		}
		w.counts.Add(nj.Tenant, nj.Channel, state, 1)
		if state == abi.StatePending {
			if err := logPending(ctx, w, nj.UUID); err != nil {
				return err
			}
		}
		for _, p := range parents {
			if _, err := w.Exec(ctx, `INSERT INTO job_dependencies (child, parent) VALUES ($1, $2) ON CONFLICT DO NOTHING`, nj.UUID, p); err != nil {
				return fmt.Errorf("postgres store: insert dependency: %w", err)
			}
		}
		j, err := getJob(ctx, w, "", nj.UUID)
		if err != nil {
			return err
		}
		out[i] = store.Inserted{Job: j}
		if state == abi.StatePending {
			w.events.Job(store.EventPending, nj.UUID, nj.Channel)
		}
	}
	return nil
}

func (s *Store) List(ctx context.Context, f store.Filter) (store.Page, error) {
	where, args := []string{"TRUE"}, []any{}
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.Tenant != "" {
		where = append(where, "tenant = "+arg(f.Tenant))
	}
	if len(f.States) > 0 {
		st := make([]string, len(f.States))
		for i, x := range f.States {
			st[i] = string(x)
		}
		where = append(where, "state = ANY("+arg(st)+")")
	}
	if f.Channel != "" {
		if p, ok := strings.CutSuffix(f.Channel, ".*"); ok {
			where = append(where, "(channel = "+arg(p)+" OR channel LIKE "+arg(likePrefix(p)+".%")+")")
		} else {
			where = append(where, "channel = "+arg(f.Channel))
		}
	}
	if f.Func != "" {
		where = append(where, "func = "+arg(f.Func))
	}
	if f.GraphUUID != "" {
		where = append(where, "graph_uuid = "+arg(f.GraphUUID))
	}
	if f.IdentityKey != "" {
		where = append(where, "identity_key = "+arg(f.IdentityKey))
	}
	if f.Query != "" {
		q := arg("%" + likePrefix(f.Query) + "%")
		where = append(where, "(uuid LIKE "+q+" OR func LIKE "+q+" OR description LIKE "+q+" OR func_string LIKE "+q+")")
	}
	if f.Cursor != "" {
		created, seq, err := store.DecodeCursor(f.Cursor)
		if err != nil {
			return store.Page{}, err
		}
		t := arg(time.UnixMicro(created).UTC())
		where = append(where, "(date_created < "+t+" OR (date_created = "+t+" AND seq < "+arg(seq)+"))")
	}
	limit := store.PageLimit(f.Limit)
	jobs, err := queryJobs(ctx, s.pool, "WHERE "+strings.Join(where, " AND ")+" ORDER BY date_created DESC, seq DESC LIMIT "+arg(limit+1), args...)
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

func (s *Store) Attempts(ctx context.Context, tenant, uuid string) ([]abi.Attempt, error) {
	j, err := s.Get(ctx, tenant, uuid)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT attempt, worker_id, plugin_sha256, started, ended, outcome,
		exc_name, exc_message, logs::text FROM job_attempts WHERE job_uuid = $1 ORDER BY attempt`, uuid)
	if err != nil {
		return nil, fmt.Errorf("postgres store: select attempts: %w", err)
	}
	defer rows.Close()
	out := []abi.Attempt{}
	for rows.Next() {
		a := abi.Attempt{JobUUID: uuid}
		var logs string
		if err := rows.Scan(&a.Attempt, &a.WorkerID, &a.PluginSHA256, &a.Started, &a.Ended, &a.Outcome, &a.ExcName, &a.ExcMessage, &logs); err != nil {
			return nil, err
		}
		a.Started = a.Started.UTC()
		if err := json.Unmarshal([]byte(logs), &a.Logs); err != nil {
			return nil, fmt.Errorf("postgres store: attempt logs: %w", err)
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
	rows, err := s.pool.Query(ctx, `SELECT channel, state, SUM(n) FROM (
			SELECT tenant, channel, state, n FROM job_counts UNION ALL
			SELECT tenant, channel, state, n FROM job_count_deltas) c
		WHERE ($1 = '' OR tenant = $1) GROUP BY channel, state HAVING SUM(n) <> 0 ORDER BY channel`, tenant)
	if err != nil {
		return nil, fmt.Errorf("postgres store: counts: %w", err)
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

func (s *Store) FailedChannels(ctx context.Context) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT channel, COUNT(*) FROM jobs WHERE failed GROUP BY channel`)
	if err != nil {
		return nil, fmt.Errorf("postgres store: failed jobs per channel: %w", err)
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
	rows, err := s.pool.Query(ctx, `SELECT uuid, channel, tenant FROM jobs
		WHERE uuid IN (SELECT unnest(uuids) FROM job_runs) AND state = 'started'
		UNION ALL SELECT uuid, channel, tenant FROM jobs WHERE handed AND state = 'enqueued'`)
	if err != nil {
		return nil, fmt.Errorf("postgres store: running jobs: %w", err)
	}
	defer rows.Close()
	var out []store.RunningJob
	for rows.Next() {
		var j store.RunningJob
		if err := rows.Scan(&j.UUID, &j.Channel, &j.Tenant); err != nil {
			return nil, fmt.Errorf("postgres store: running jobs: %w", err)
		}
		out = append(out, j)
	}
	return out, rows.Err()
}
