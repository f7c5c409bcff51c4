package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// The schedules table (migration 7): plain reads and writes of rows; when
// a firing applies is the core's decision (store/schedules.go).

var (
	scheduleSelect    = store.ScheduleSelect("s.template::text", "''::text")
	scheduleDueSelect = store.ScheduleSelect("''::text", "''::text") // DueSchedules
	// schedulePageSelect joins each schedule's last job (schedulePageFrom).
	schedulePageSelect = store.ScheduleSelect("s.template::text", "COALESCE(j.state, '')")
)

const schedulePageFrom = `FROM schedules s LEFT JOIN jobs j ON j.uuid = s.last_job AND j.tenant = s.tenant `

func scanSchedule(row pgx.Row) (store.Schedule, error) {
	var s store.Schedule
	var tmpl, last string
	err := row.Scan(&s.Tenant, &s.Name, &s.Cron, &s.Timezone, &tmpl, &s.MissedRuns, &s.CatchUpMax, &s.Paused,
		&s.Source, &s.Version, &s.Anchor, &s.LastJob, &s.LastFired, &s.DateCreated, &s.DateUpdated, &s.NextDue, &last)
	if err != nil {
		return s, err
	}
	s.Template, s.LastState = []byte(tmpl), abi.State(last)
	s.Anchor, s.DateCreated, s.DateUpdated, s.NextDue = s.Anchor.UTC(), s.DateCreated.UTC(), s.DateUpdated.UTC(), s.NextDue.UTC()
	if s.LastFired != nil {
		t := s.LastFired.UTC()
		s.LastFired = &t
	}
	return s, nil
}

func querySchedules(ctx context.Context, q querier, where string, args ...any) ([]store.Schedule, error) {
	return selectSchedules(ctx, q, scheduleSelect, `FROM schedules s `+where, args...)
}

func selectSchedules(ctx context.Context, q querier, columns, from string, args ...any) ([]store.Schedule, error) {
	rows, err := q.Query(ctx, `SELECT `+columns+` `+from, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres store: select schedules: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Schedule, error) { return scanSchedule(r) })
	if err != nil {
		return nil, fmt.Errorf("postgres store: scan schedules: %w", err)
	}
	return out, nil
}

func oneSchedule(ss []store.Schedule, err error, name string) (store.Schedule, error) {
	if err != nil {
		return store.Schedule{}, err
	}
	if len(ss) == 0 {
		return store.Schedule{}, fmt.Errorf("schedule %q: %w", name, abi.ErrNotFound)
	}
	return ss[0], nil
}

func (s *driver) GetSchedule(ctx context.Context, tenant, name string) (store.Schedule, error) {
	ss, err := querySchedules(ctx, s.pool, `WHERE tenant = $1 AND name = $2`, tenant, name)
	return oneSchedule(ss, err, name)
}

func (s *driver) ListSchedules(ctx context.Context, q store.ScheduleQuery) ([]store.Schedule, error) {
	var limit *int
	if q.Limit > 0 {
		limit = &q.Limit
	}
	// One statement for a tenant and one for all, not ($1 = '' OR …): a
	// generic plan of that would walk every tenant's rows to one's page.
	if q.Tenant == "" {
		return selectSchedules(ctx, s.pool, schedulePageSelect, schedulePageFrom+
			`WHERE (s.tenant, s.name) > ($1, $2) ORDER BY s.tenant, s.name LIMIT $3::bigint`, q.After[0], q.After[1], limit)
	}
	return selectSchedules(ctx, s.pool, schedulePageSelect, schedulePageFrom+
		`WHERE s.tenant = $1 AND (s.tenant, s.name) > ($2, $3) ORDER BY s.tenant, s.name LIMIT $4::bigint`,
		q.Tenant, q.After[0], q.After[1], limit)
}

// DueSchedules reads through schedules_next_due (migration 20): the
// schedules that may be due, and the first of the others.
func (s *driver) DueSchedules(ctx context.Context, now time.Time) ([]store.Schedule, time.Time, error) {
	ss, err := selectSchedules(ctx, s.pool, scheduleDueSelect,
		`FROM schedules s WHERE NOT s.paused AND s.next_due <= $1`, now)
	if err != nil {
		return nil, time.Time{}, err
	}
	if ss == nil {
		ss = []store.Schedule{}
	}
	var next *time.Time
	if err := s.pool.QueryRow(ctx, `SELECT min(next_due) FROM schedules WHERE NOT paused AND next_due > $1`, now).Scan(&next); err != nil {
		return nil, time.Time{}, fmt.Errorf("postgres store: the next due schedule: %w", err)
	}
	if next == nil {
		return ss, time.Time{}, nil
	}
	return ss, next.UTC(), nil
}

func (w *wtx) LockSchedule(ctx context.Context, tenant, name string) (store.Schedule, error) {
	ss, err := querySchedules(ctx, w, `WHERE tenant = $1 AND name = $2 FOR UPDATE`, tenant, name)
	return oneSchedule(ss, err, name)
}

func (w *wtx) CountSchedules(ctx context.Context, tenant string) (int, error) {
	var n int
	if err := w.QueryRow(ctx, `SELECT count(*) FROM schedules WHERE tenant = $1`, tenant).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres store: count schedules of %s: %w", tenant, err)
	}
	return n, nil
}

func (w *wtx) InsertSchedule(ctx context.Context, s store.Schedule) error {
	_, err := w.Exec(ctx, `INSERT INTO schedules (`+store.ScheduleColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
		s.Tenant, s.Name, s.Cron, s.Timezone, string(s.Template), s.MissedRuns, s.CatchUpMax, s.Paused,
		s.Source, s.Version, s.Anchor, s.LastJob, s.LastFired, s.DateCreated, s.DateUpdated, s.NextDue)
	if isUnique(err) {
		return &abi.FieldError{Field: "name", Msg: fmt.Sprintf("a schedule named %q exists already", s.Name), Err: abi.ErrConflict}
	}
	if err != nil {
		return fmt.Errorf("postgres store: insert schedule: %w", err)
	}
	return nil
}

func (w *wtx) UpdateSchedule(ctx context.Context, s store.Schedule) error {
	if _, err := w.Exec(ctx, `UPDATE schedules SET cron = $3, timezone = $4, template = $5, missed_runs = $6,
		catch_up_max = $7, paused = $8, source = $9, version = $10, anchor = $11, last_job = $12,
		last_fired = $13, date_updated = $14, next_due = $15 WHERE tenant = $1 AND name = $2`,
		s.Tenant, s.Name, s.Cron, s.Timezone, string(s.Template), s.MissedRuns, s.CatchUpMax, s.Paused,
		s.Source, s.Version, s.Anchor, s.LastJob, s.LastFired, s.DateUpdated, s.NextDue); err != nil {
		return fmt.Errorf("postgres store: update schedule: %w", err)
	}
	return nil
}

func (w *wtx) SetNextDue(ctx context.Context, n store.NextDue) error {
	if _, err := w.Exec(ctx, `UPDATE schedules SET next_due = $5 WHERE tenant = $1 AND name = $2 AND version = $3 AND anchor = $4`,
		n.Tenant, n.Name, n.Version, n.Anchor, n.Next); err != nil {
		return fmt.Errorf("postgres store: the next due time of schedule %s: %w", n.Name, err)
	}
	return nil
}

func (w *wtx) DeleteSchedule(ctx context.Context, tenant, name string) (bool, error) {
	tag, err := w.Exec(ctx, `DELETE FROM schedules WHERE tenant = $1 AND name = $2`, tenant, name)
	if err != nil {
		return false, fmt.Errorf("postgres store: delete schedule: %w", err)
	}
	return tag.RowsAffected() > 0, nil
}
