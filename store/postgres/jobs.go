package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

const jobColumns = `uuid, tenant, func, args::text, kwargs::text, context::text, user_id, model_name, func_string,
	description, channel, priority, eta, expected_at, max_retries, retry, attempt, identity_key,
	graph_uuid, state, result::text, exc_name, exc_message, exc_info, date_created, date_enqueued,
	date_started, date_done, date_cancelled, exec_time, late, worker_id, plugin_sha256, seq, lease_until, usage::text, version`

// jobScanner reads rows of jobColumns. Its destinations are listed once
// and reused for every row: a list of 36 pointers made per row, and the
// job on the heap they pointed into, were most of what reading a started
// job allocated (docs/benchmarks.md).
type jobScanner struct {
	j                        abi.Job
	args, kwargs, ctxt, stat string
	result, usage            *string
	dest                     []any
}

func newJobScanner() *jobScanner {
	s := &jobScanner{}
	j := &s.j
	s.dest = []any{&j.UUID, &j.Tenant, &j.Func, &s.args, &s.kwargs, &s.ctxt, &j.UserID, &j.ModelName,
		&j.FuncString, &j.Description, &j.Channel, &j.Priority, &j.ETA, &j.ExpectedAt, &j.MaxRetries,
		&j.Retry, &j.Attempt, &j.IdentityKey, &j.GraphUUID, &s.stat, &s.result, &j.ExcName,
		&j.ExcMessage, &j.ExcInfo, &j.DateCreated, &j.DateEnqueued, &j.DateStarted, &j.DateDone,
		&j.DateCancelled, &j.ExecTime, &j.Late, &j.WorkerID, &j.PluginSHA256, &j.Seq, &j.LeaseUntil, &s.usage, &j.Version}
	return s
}

// scan reads one row. The job returned shares nothing with the scanner:
// the scratch job is zeroed first, so pgx makes a new date or number for
// every value it scans into a pointer's place, and a new string for each
// text.
func (s *jobScanner) scan(row pgx.Row) (abi.Job, error) {
	s.j, s.result, s.usage = abi.Job{}, nil, nil
	if err := row.Scan(s.dest...); err != nil {
		return abi.Job{}, err
	}
	j := s.j
	var err error
	if j.Usage, err = store.DecodeUsage(s.usage); err != nil {
		return j, err
	}
	j.Args, j.Kwargs, j.Context = json.RawMessage(s.args), json.RawMessage(s.kwargs), json.RawMessage(s.ctxt)
	if s.result != nil {
		j.Result = json.RawMessage(*s.result)
	}
	j.State = abi.State(s.stat)
	for _, t := range []*time.Time{&j.DateCreated, j.ETA, j.ExpectedAt, j.DateEnqueued, j.DateStarted, j.DateDone, j.DateCancelled, j.LeaseUntil} {
		if t != nil {
			*t = t.UTC()
		}
	}
	j.DependsOn = []string{}
	return j, nil
}

// collectJobs appends the rows of jobColumns to jobs.
func collectJobs(jobs []abi.Job, rows pgx.Rows) ([]abi.Job, error) {
	s := newJobScanner()
	return pgx.AppendRows(jobs, rows, func(r pgx.CollectableRow) (abi.Job, error) { return s.scan(r) })
}

// queryJobs runs a SELECT of jobColumns and fills DependsOn.
func queryJobs(ctx context.Context, q querier, where string, args ...any) ([]abi.Job, error) {
	rows, err := q.Query(ctx, `SELECT `+jobColumns+` FROM jobs `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres store: select jobs: %w", err)
	}
	jobs, err := collectJobs([]abi.Job{}, rows)
	if err != nil {
		return nil, fmt.Errorf("postgres store: scan jobs: %w", err)
	}
	if err := fillLeases(ctx, q, jobs); err != nil {
		return nil, err
	}
	return jobs, fillDeps(ctx, q, jobs)
}

// fillLeases reads a started job's lease from its batch, which
// RenewLeases keeps (the job row holds the lease it started with).
func fillLeases(ctx context.Context, q querier, jobs []abi.Job) error {
	var started []string
	for _, j := range jobs {
		if j.State == abi.StateStarted {
			started = append(started, j.UUID)
		}
	}
	if len(started) == 0 {
		return nil
	}
	rows, err := q.Query(ctx, `SELECT j.uuid, r.lease_until FROM jobs j JOIN job_runs r ON r.id = j.run_id WHERE j.uuid = ANY($1)`, started)
	if err != nil {
		return fmt.Errorf("postgres store: read leases: %w", err)
	}
	leases := map[string]time.Time{}
	for rows.Next() {
		var id string
		var until time.Time
		if err := rows.Scan(&id, &until); err != nil {
			rows.Close()
			return fmt.Errorf("postgres store: read leases: %w", err)
		}
		leases[id] = until.UTC()
	}
	rows.Close()
	for i := range jobs {
		if until, ok := leases[jobs[i].UUID]; ok {
			jobs[i].LeaseUntil = &until
		}
	}
	return rows.Err()
}

func fillDeps(ctx context.Context, q querier, jobs []abi.Job) error {
	if len(jobs) == 0 {
		return nil
	}
	ids := store.UUIDs(jobs)
	rows, err := q.Query(ctx, `SELECT child, parent FROM job_dependencies WHERE child = ANY($1) ORDER BY child, ctid`, ids)
	if err != nil {
		return fmt.Errorf("postgres store: select dependencies: %w", err)
	}
	pairs, err := collect(rows, "select dependencies", func(r pgx.CollectableRow) ([2]string, error) {
		var p [2]string
		return p, r.Scan(&p[0], &p[1])
	})
	store.AttachParents(jobs, pairs)
	return err
}

func getJob(ctx context.Context, q querier, tenant, uuid string) (abi.Job, error) {
	jobs, err := queryJobs(ctx, q, `WHERE uuid = $1 AND ($2 = '' OR tenant = $2)`, uuid, tenant)
	if err != nil {
		return abi.Job{}, err
	}
	return store.OneJob(jobs, uuid)
}

func (s *driver) GetJob(ctx context.Context, tenant, uuid string) (abi.Job, error) {
	j, err := getJob(ctx, s.pool, tenant, uuid)
	if err != nil {
		return j, err
	}
	one := []abi.Job{j}
	err = fillProgress(ctx, s.pool, one)
	return one[0], err
}

func orJSON(b json.RawMessage, def string) string {
	if len(b) == 0 {
		return def
	}
	return string(b)
}

// copyThreshold is the batch size from which InsertJobs COPYs rows in
// rather than sending them as arrays; 0 never does. Measured
// (docs/benchmarks.md, BenchmarkInsert1000*), COPY and its second
// statement (the pending log, the seqs) do not beat the one array
// statement, so it is off.
var copyThreshold = 0

// InsertJobs stores the rows, logging the pending ones for the
// scheduler. Only uuid and seq are read back: the rest of each row is
// the row given (store.AsStored).
func (w *wtx) InsertJobs(ctx context.Context, jobs []abi.Job) ([]abi.Job, error) {
	var seqs map[string]int64
	var err error
	if copyThreshold > 0 && len(jobs) >= copyThreshold {
		seqs, err = w.copyJobs(ctx, jobs)
	} else {
		seqs, err = w.unnestJobs(ctx, jobs)
	}
	if err != nil {
		return nil, err
	}
	out := make([]abi.Job, len(jobs))
	for i, j := range jobs {
		out[i] = store.AsStored(j, seqs[j.UUID], w.now)
	}
	return out, nil
}

// unnestJobs inserts the rows in one statement, arrays unnested
// server-side.
func (w *wtx) unnestJobs(ctx context.Context, jobs []abi.Job) (map[string]int64, error) {
	rows, err := w.Query(ctx, `WITH `+insertCTEs+` SELECT uuid, seq FROM ins`, jobArrays(jobs, w.now)...)
	if err != nil {
		return nil, insertError(err)
	}
	return readSeqs(rows, len(jobs))
}

// InsertPending stores the rows, logs them for the scheduler, counts them
// and notifies in one statement, committed on its own: one round trip,
// where a Write takes two (BEGIN with the insert, the notify with COMMIT).
// A lone enqueue, and each coalesced group, waits for it.
func (s *driver) InsertPending(ctx context.Context, jobs []abi.Job) ([]abi.Job, error) {
	if len(jobs) == 0 {
		return []abi.Job{}, nil
	}
	if copyThreshold > 0 && len(jobs) >= copyThreshold {
		return store.WritePending(ctx, s, jobs) // COPY is a statement of its own
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	var notes store.Notes
	store.NotePending(&notes, jobs)
	args := append(jobArrays(jobs, now), s.notify)
	notified := `notified AS (SELECT COUNT(pg_notify($21, p)) AS n FROM unnest($22::text[]) AS p)`
	if fitsOneNotify(jobs) {
		// The event carries the candidates, seq and version included,
		// as the statement stored them: a scheduler then starts the jobs
		// without reading them back (one round trip less between an
		// enqueue and its start).
		notified = `notified AS (SELECT pg_notify($21, json_build_object('Kind', 'pending', 'Channels', $22::text[],
			'UUIDs', json_agg(uuid), 'Jobs', json_agg(json_build_object('UUID', uuid, 'Tenant', tenant, 'Channel', channel,
				'Priority', priority, 'ETA', eta, 'ExpectedAt', expected_at, 'DateCreated', date_created, 'Seq', seq,
				'Version', version)))::text) AS n FROM ins)`
		args = append(args, dedup(slices.Clone(notes.Events[0].Channels)))
	} else {
		args = append(args, notifyPayloads(notes.Events))
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, insertError(err)
	}
	defer conn.Release()
	// The statement is its own transaction: once it is sent, an answer
	// lost on the way back leaves its commit in doubt.
	rows, err := conn.Query(ctx, `WITH `+insertCTEs+`, `+countedCTE("ins", "")+`, `+notified+`
		SELECT uuid, seq FROM ins, notified`, args...)
	if err != nil {
		return nil, s.doubt(conn.Conn().PgConn(), insertError(err))
	}
	seqs, err := readSeqs(rows, len(jobs))
	if err != nil {
		return nil, s.doubt(conn.Conn().PgConn(), err)
	}
	for i, j := range jobs {
		jobs[i] = store.AsStored(j, seqs[j.UUID], now) // in place: see Driver.InsertPending
	}
	return jobs, nil
}

// fitsOneNotify: the jobs' candidates fit in one NOTIFY payload (8,000
// bytes), counting generously: 320 bytes a job besides its names.
func fitsOneNotify(jobs []abi.Job) bool {
	size := 100
	for _, j := range jobs {
		size += 320 + 2*len(j.Tenant) + 3*len(j.Channel)
	}
	return size <= 7000
}

// insertCTEs insert jobArrays' rows (ins, which returns them) and log the
// pending ones (logged). The arrays are unnested in a select list, where
// PostgreSQL steps them together row by row (the shorter ones giving
// NULL); in FROM each would first be copied whole into a store of its
// own, 19 of them for every statement, a tenth of a small group's write
// (docs/benchmarks.md, "Shared columns sent once").
var insertCTEs = `ins AS (
		INSERT INTO jobs (uuid, tenant, func, args, kwargs, context, user_id, model_name, func_string, description,
			channel, priority, eta, expected_at, max_retries, identity_key, graph_uuid, state, date_cancelled, date_created)
		SELECT u, ` + uniformOr("t", 2, "text") + `, ` + uniformOr("f", 3, "text") + `, a::json,
			` + uniformOr("k", 5, "text") + `::json, ` + uniformOr("c", 6, "text") + `::json, ` + uniformOr("us", 7, "text") + `,
			` + uniformOr("m", 8, "text") + `, ` + uniformOr("fs", 9, "text") + `, ` + uniformOr("d", 10, "text") + `,
			` + uniformOr("ch", 11, "text") + `, ` + uniformOr("p", 12, "int") + `, ` + uniformOr("e", 13, "timestamptz") + `,
			` + uniformOr("x", 14, "timestamptz") + `, ` + uniformOr("mr", 15, "int") + `, ` + uniformOr("ik", 16, "text") + `,
			` + uniformOr("g", 17, "text") + `, ` + uniformOr("st", 18, "text") + `, ` + uniformOr("dc", 19, "timestamptz") + `, $20
		FROM (SELECT unnest($1::text[]) AS u, unnest($2::text[]) AS t, unnest($3::text[]) AS f, unnest($4::text[]) AS a,
			unnest($5::text[]) AS k, unnest($6::text[]) AS c, unnest($7::text[]) AS us, unnest($8::text[]) AS m,
			unnest($9::text[]) AS fs, unnest($10::text[]) AS d, unnest($11::text[]) AS ch, unnest($12::int[]) AS p,
			unnest($13::timestamptz[]) AS e, unnest($14::timestamptz[]) AS x, unnest($15::int[]) AS mr,
			unnest($16::text[]) AS ik, unnest($17::text[]) AS g, unnest($18::text[]) AS st,
			unnest($19::timestamptz[]) AS dc) AS rows
		RETURNING ` + candidateColumns + `, state),
	logged AS (INSERT INTO pending_log (` + candidateColumns + `) SELECT ` + candidateColumns + ` FROM ins WHERE state = 'pending')`

// uniformOr is the column of unnested array $n, or the array's one
// element when it holds one: a column whose value every job of a batch
// shares (most of them: the tenant, the channel, the empty user and
// description, a NULL eta) is sent once, not unnested row by row
// (jobArrays).
func uniformOr(col string, n int, typ string) string {
	return fmt.Sprintf("(CASE WHEN cardinality($%d::%s[]) = 1 THEN ($%d::%s[])[1] ELSE %s END)", n, typ, n, typ, col)
}

// uniform shortens a column's values to one when they are all equal.
func uniform[T comparable](vs []T) []T {
	for _, v := range vs[1:] {
		if v != vs[0] {
			return vs
		}
	}
	return vs[:1]
}

// uniformTimes is uniform for nullable dates.
func uniformTimes(vs []*time.Time) []*time.Time {
	for _, v := range vs[1:] {
		if (v == nil) != (vs[0] == nil) || (v != nil && !v.Equal(*vs[0])) {
			return vs
		}
	}
	return vs[:1]
}

// jobArrays are insertCTEs' parameters $1 to $20: one array per column,
// then the date of creation.
func jobArrays(jobs []abi.Job, now time.Time) []any {
	n := len(jobs)
	texts := func() []string { return make([]string, 0, n) }
	uuids, tenants, funcs, args, kwargs, ctxs, users := texts(), texts(), texts(), texts(), texts(), texts(), texts()
	models, fstrs, descs, chans, keys, graphs, states := texts(), texts(), texts(), texts(), texts(), texts(), texts()
	prios, maxr := make([]int32, 0, n), make([]int32, 0, n)
	etas, exps, cancelled := make([]*time.Time, 0, n), make([]*time.Time, 0, n), make([]*time.Time, 0, n)
	for _, j := range jobs {
		uuids, tenants, funcs = append(uuids, j.UUID), append(tenants, j.Tenant), append(funcs, j.Func)
		args, kwargs, ctxs = append(args, orJSON(j.Args, "[]")), append(kwargs, orJSON(j.Kwargs, "{}")), append(ctxs, orJSON(j.Context, "{}"))
		users, models, fstrs = append(users, j.UserID), append(models, j.ModelName), append(fstrs, j.FuncString)
		descs, chans, keys, graphs = append(descs, j.Description), append(chans, j.Channel), append(keys, j.IdentityKey), append(graphs, j.GraphUUID)
		states, prios, maxr = append(states, string(j.State)), append(prios, int32(j.Priority)), append(maxr, int32(j.MaxRetries))
		etas, exps, cancelled = append(etas, j.ETA), append(exps, j.ExpectedAt), append(cancelled, j.DateCancelled)
	}
	if n == 0 {
		return []any{uuids, tenants, funcs, args, kwargs, ctxs, users, models, fstrs, descs, chans, prios, etas, exps, maxr,
			keys, graphs, states, cancelled, now}
	}
	return []any{uuids, uniform(tenants), uniform(funcs), args, uniform(kwargs), uniform(ctxs), uniform(users), uniform(models),
		uniform(fstrs), uniform(descs), uniform(chans), uniform(prios), uniformTimes(etas), uniformTimes(exps), uniform(maxr),
		uniform(keys), uniform(graphs), uniform(states), uniformTimes(cancelled), now}
}

// copyColumns are the columns copyJobs writes; seq and version take their
// defaults.
var copyColumns = []string{"uuid", "tenant", "func", "args", "kwargs", "context", "user_id", "model_name", "func_string",
	"description", "channel", "priority", "eta", "expected_at", "max_retries", "identity_key", "graph_uuid", "state",
	"date_cancelled", "date_created"}

// copyJobs COPYs the rows into jobs, then logs the pending ones and reads
// their seq in one statement.
func (w *wtx) copyJobs(ctx context.Context, jobs []abi.Job) (map[string]int64, error) {
	uuids := make([]string, len(jobs))
	src := pgx.CopyFromSlice(len(jobs), func(i int) ([]any, error) {
		j := jobs[i]
		uuids[i] = j.UUID
		return []any{j.UUID, j.Tenant, j.Func, orJSON(j.Args, "[]"), orJSON(j.Kwargs, "{}"), orJSON(j.Context, "{}"),
			j.UserID, j.ModelName, j.FuncString, j.Description, j.Channel, int32(j.Priority), j.ETA, j.ExpectedAt,
			int32(j.MaxRetries), j.IdentityKey, j.GraphUUID, string(j.State), j.DateCancelled, w.now}, nil
	})
	if _, err := w.CopyFrom(ctx, pgx.Identifier{"jobs"}, copyColumns, src); err != nil {
		return nil, insertError(err)
	}
	rows, err := w.Query(ctx, `WITH logged AS (INSERT INTO pending_log (`+candidateColumns+`)
			SELECT `+candidateColumns+` FROM jobs WHERE uuid = ANY($1) AND state = 'pending')
		SELECT uuid, seq FROM jobs WHERE uuid = ANY($1)`, uuids)
	if err != nil {
		return nil, fmt.Errorf("postgres store: log copied jobs: %w", err)
	}
	return readSeqs(rows, len(jobs))
}

func readSeqs(rows pgx.Rows, n int) (map[string]int64, error) {
	seqs := make(map[string]int64, n)
	for rows.Next() {
		var id string
		var seq int64
		if err := rows.Scan(&id, &seq); err != nil {
			rows.Close()
			return nil, insertError(err)
		}
		seqs[id] = seq
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, insertError(err)
	}
	return seqs, nil
}

func insertError(err error) error {
	if isUnique(err) {
		return &abi.FieldError{Field: "uuid", Msg: "a job with this uuid exists", Err: abi.ErrConflict}
	}
	return ended(fmt.Errorf("postgres store: insert jobs: %w", err))
}

// dialect: numbered parameters, native dates.
var dialect = store.Dialect{
	Param: func(n int) string { return fmt.Sprintf("$%d", n) },
	Time:  func(t time.Time) any { return t },
	StateIn: func(states []abi.State, in string) string {
		if h := stateHints[states[0]]; len(states) == 1 && h != "" {
			return in + " AND " + h
		}
		return in
	},
	// jsonb containment, answered by the GIN indexes of migrations 8
	// and 17 (the expression must read exactly as there). They hold only
	// the jobs whose args or kwargs are not empty, which a scalar's match
	// never is; the redundant condition saying so is what lets the
	// planner use them. ListJobs runs such a list as an unnamed
	// statement (payloadFiltered).
	JSONMatch: func(col, key string, m store.Scalar, arg func(any) string) string {
		doc, empty := "["+string(m.Raw)+"]", "'[]'"
		if key != "" {
			k, _ := json.Marshal(key)
			doc, empty = "{"+string(k)+":"+string(m.Raw)+"}", "'{}'"
		}
		return "((" + col + "::jsonb) @> " + arg(doc) + "::jsonb AND " + col + "::text <> " + empty + ")"
	},
}

// stateHints: what a job in these states also is, through an index.
// No index of jobs names the state (a start or an outcome would then
// write an entry in each: migration 5), so a list of one state walked
// the newest-first index through every job of the others: the failed or
// running jobs under a million done ones, 130 to 170 ms a page, both
// cores, at each refresh of the UI's list. A failed job is flagged
// (jobs_failed), an enqueued one handed (jobs_handed), a started one is
// in its batch's job_runs row: what FailedChannels and Running read too.
// Several states together get none: PostgreSQL cannot read an OR of
// them through the indexes and walk in order at once (855 ms, against
// 130 for the walk alone).
var stateHints = map[abi.State]string{
	abi.StateFailed:   "failed",
	abi.StateEnqueued: "handed",
	abi.StateStarted:  "uuid IN (SELECT unnest(uuids) FROM job_runs)",
}

// payloadFiltered: the list looks for a value in args or kwargs. How
// many jobs hold it is known only from the value, and a prepared
// statement is planned without it once PostgreSQL switches it to its
// generic plan (after the fifth run, when that plan looks cheaper): it
// guessed 1 % and walked the newest-first index through every job, 109 ms
// on 200,000 jobs against 10 through the index. Such a list runs as an
// unnamed statement, planned with its values each time, and leaves no
// statement per value in the connection's cache (nor on the server).
func payloadFiltered(f store.Filter) bool { return len(f.ArgsHas) > 0 || len(f.KwargsHas) > 0 }

// listPage is the tail of ListJobs' SELECT: its conditions, order and
// limit.
func listPage(q store.ListQuery) (string, []any) {
	where, args := store.JobConditions(q, dialect)
	args = append(args, q.Limit)
	return "WHERE " + where + fmt.Sprintf(" ORDER BY date_created DESC, seq DESC LIMIT $%d", len(args)), args
}

func (s *driver) ListJobs(ctx context.Context, q store.ListQuery) ([]abi.Job, error) {
	page, args := listPage(q)
	if payloadFiltered(q.Filter) {
		args = append([]any{pgx.QueryExecModeExec}, args...)
	}
	jobs, err := queryJobs(ctx, s.pool, page, args...)
	if err != nil {
		return nil, err
	}
	return jobs, fillProgress(ctx, s.pool, jobs)
}

func (s *driver) ListAttempts(ctx context.Context, uuid string) ([]abi.Attempt, error) {
	rows, err := s.pool.Query(ctx, `SELECT attempt, worker_id, plugin_sha256, started, ended, outcome,
		exc_name, exc_message, logs::text, usage::text FROM job_attempts WHERE job_uuid = $1 ORDER BY attempt`, uuid)
	if err != nil {
		return nil, fmt.Errorf("postgres store: select attempts: %w", err)
	}
	out, err := collect(rows, "select attempts", func(r pgx.CollectableRow) (abi.Attempt, error) {
		a := abi.Attempt{JobUUID: uuid}
		var logs []byte
		var usage *string
		if err := r.Scan(&a.Attempt, &a.WorkerID, &a.PluginSHA256, &a.Started, &a.Ended, &a.Outcome, &a.ExcName, &a.ExcMessage, &logs, &usage); err != nil {
			return a, err
		}
		var err error
		if a.Usage, err = store.DecodeUsage(usage); err != nil {
			return a, err
		}
		a.Started = a.Started.UTC()
		a.Logs, err = store.DecodeLogs(logs)
		return a, err
	})
	if out == nil && err == nil {
		out = []abi.Attempt{}
	}
	return out, err
}

// countsSQL reads the counts of tenant $1 ("" = all): the folded ones
// and the deltas not yet folded.
const countsSQL = `SELECT channel, state, SUM(n) FROM (
		SELECT tenant, channel, state, n FROM job_counts UNION ALL
		SELECT tenant, channel, state, n FROM job_count_deltas) c
	WHERE ($1 = '' OR tenant = $1) GROUP BY channel, state HAVING SUM(n) <> 0 ORDER BY channel`

func (s *driver) Counts(ctx context.Context, tenant string) ([]store.CountRow, error) {
	rows, err := s.pool.Query(ctx, countsSQL, tenant)
	if err != nil {
		return nil, fmt.Errorf("postgres store: counts: %w", err)
	}
	return collect(rows, "counts", pgx.RowToStructByPos[store.CountRow])
}

func (s *driver) FailedChannels(ctx context.Context) ([]store.CountRow, error) {
	rows, err := s.pool.Query(ctx, `SELECT channel, 'failed', COUNT(*) FROM jobs WHERE failed GROUP BY channel`)
	if err != nil {
		return nil, fmt.Errorf("postgres store: failed jobs per channel: %w", err)
	}
	return collect(rows, "failed jobs per channel", pgx.RowToStructByPos[store.CountRow])
}

func (s *driver) Running(ctx context.Context) ([]store.RunningJob, error) {
	rows, err := s.pool.Query(ctx, `SELECT uuid, channel, tenant, version FROM jobs
		WHERE uuid IN (SELECT unnest(uuids) FROM job_runs) AND state = 'started'
		UNION ALL SELECT uuid, channel, tenant, version FROM jobs WHERE handed AND state = 'enqueued'`)
	if err != nil {
		return nil, fmt.Errorf("postgres store: running jobs: %w", err)
	}
	return collect(rows, "running jobs", pgx.RowToStructByPos[store.RunningJob])
}

// collect reads every row with fn, naming op in its error.
func collect[T any](rows pgx.Rows, op string, fn pgx.RowToFunc[T]) ([]T, error) {
	out, err := pgx.CollectRows(rows, fn)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %s: %w", op, err)
	}
	return out, nil
}
