package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// The schedules table (schema 4): plain reads and writes of rows; when a
// firing applies is the core's decision (store/schedules.go). The writer's
// one connection makes a read inside the transaction a lock.

var (
	scheduleSelect    = store.ScheduleSelect("s.template", "''")
	scheduleDueSelect = store.ScheduleSelect("''", "''") // DueSchedules
	// schedulePageSelect joins each schedule's last job (schedulePageFrom).
	schedulePageSelect = store.ScheduleSelect("s.template", "COALESCE(j.state, '')")
)

const schedulePageFrom = `FROM schedules s LEFT JOIN jobs j ON j.uuid = s.last_job AND j.tenant = s.tenant `

func scanSchedule(row scanner) (store.Schedule, error) {
	var s store.Schedule
	var tmpl, last string
	var paused int
	var anchor, created, updated, nextDue int64
	var fired sql.NullInt64
	err := row.Scan(&s.Tenant, &s.Name, &s.Cron, &s.Timezone, &tmpl, &s.MissedRuns, &s.CatchUpMax, &paused,
		&s.Source, &s.Version, &anchor, &s.LastJob, &fired, &created, &updated, &nextDue, &last)
	if err != nil {
		return s, err
	}
	s.Template, s.Paused, s.LastState = []byte(tmpl), paused != 0, abi.State(last)
	s.Anchor, s.DateCreated, s.DateUpdated = time.UnixMicro(anchor).UTC(), time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	s.LastFired, s.NextDue = fromMicros(fired), time.UnixMicro(nextDue).UTC()
	return s, nil
}

func querySchedules(ctx context.Context, q querier, where string, args ...any) ([]store.Schedule, error) {
	return selectSchedules(ctx, q, scheduleSelect, `FROM schedules s `+where, args...)
}

func selectSchedules(ctx context.Context, q querier, columns, from string, args ...any) ([]store.Schedule, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+columns+` `+from, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: select schedules: %w", err)
	}
	defer rows.Close()
	out := []store.Schedule{}
	for rows.Next() {
		s, err := scanSchedule(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite store: scan schedules: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
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
	ss, err := querySchedules(ctx, s.r, `WHERE tenant = ? AND name = ?`, tenant, name)
	return oneSchedule(ss, err, name)
}

func (s *driver) ListSchedules(ctx context.Context, q store.ScheduleQuery) ([]store.Schedule, error) {
	limit := -1 // all
	if q.Limit > 0 {
		limit = q.Limit
	}
	if q.Tenant == "" { // as PostgreSQL's: a plan per case
		return selectSchedules(ctx, s.r, schedulePageSelect, schedulePageFrom+
			`WHERE (s.tenant, s.name) > (?1, ?2) ORDER BY s.tenant, s.name LIMIT ?3`, q.After[0], q.After[1], limit)
	}
	return selectSchedules(ctx, s.r, schedulePageSelect, schedulePageFrom+
		`WHERE s.tenant = ?1 AND (s.tenant, s.name) > (?2, ?3) ORDER BY s.tenant, s.name LIMIT ?4`,
		q.Tenant, q.After[0], q.After[1], limit)
}

// DueSchedules reads through schedules_next_due (schema 11): the
// schedules that may be due, and the first of the others.
func (s *driver) DueSchedules(ctx context.Context, now time.Time) ([]store.Schedule, time.Time, error) {
	ss, err := selectSchedules(ctx, s.r, scheduleDueSelect,
		`FROM schedules s WHERE s.paused = 0 AND s.next_due <= ?`, micros(now))
	if err != nil {
		return nil, time.Time{}, err
	}
	var next sql.NullInt64
	if err := s.r.QueryRowContext(ctx, `SELECT min(next_due) FROM schedules WHERE paused = 0 AND next_due > ?`, micros(now)).Scan(&next); err != nil {
		return nil, time.Time{}, fmt.Errorf("sqlite store: the next due schedule: %w", err)
	}
	if !next.Valid {
		return ss, time.Time{}, nil
	}
	return ss, time.UnixMicro(next.Int64).UTC(), nil
}

func (w *wtx) LockSchedule(ctx context.Context, tenant, name string) (store.Schedule, error) {
	ss, err := querySchedules(ctx, w, `WHERE tenant = ? AND name = ?`, tenant, name)
	return oneSchedule(ss, err, name)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (w *wtx) CountSchedules(ctx context.Context, tenant string) (int, error) {
	var n int
	if err := w.QueryRowContext(ctx, `SELECT count(*) FROM schedules WHERE tenant = ?`, tenant).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite store: count schedules of %s: %w", tenant, err)
	}
	return n, nil
}

func (w *wtx) InsertSchedule(ctx context.Context, s store.Schedule) error {
	_, err := w.ExecContext(ctx, `INSERT INTO schedules (`+store.ScheduleColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		s.Tenant, s.Name, s.Cron, s.Timezone, string(s.Template), s.MissedRuns, s.CatchUpMax, boolInt(s.Paused),
		s.Source, s.Version, micros(s.Anchor), s.LastJob, optMicros(s.LastFired), micros(s.DateCreated), micros(s.DateUpdated),
		micros(s.NextDue))
	if err != nil && strings.Contains(err.Error(), "UNIQUE") {
		return &abi.FieldError{Field: "name", Msg: fmt.Sprintf("a schedule named %q exists already", s.Name), Err: abi.ErrConflict}
	}
	if err != nil {
		return fmt.Errorf("sqlite store: insert schedule: %w", err)
	}
	return nil
}

func (w *wtx) UpdateSchedule(ctx context.Context, s store.Schedule) error {
	if _, err := w.ExecContext(ctx, `UPDATE schedules SET cron = ?, timezone = ?, template = ?, missed_runs = ?,
		catch_up_max = ?, paused = ?, source = ?, version = ?, anchor = ?, last_job = ?, last_fired = ?,
		date_updated = ?, next_due = ? WHERE tenant = ? AND name = ?`,
		s.Cron, s.Timezone, string(s.Template), s.MissedRuns, s.CatchUpMax, boolInt(s.Paused), s.Source, s.Version,
		micros(s.Anchor), s.LastJob, optMicros(s.LastFired), micros(s.DateUpdated), micros(s.NextDue), s.Tenant, s.Name); err != nil {
		return fmt.Errorf("sqlite store: update schedule: %w", err)
	}
	return nil
}

func (w *wtx) SetNextDue(ctx context.Context, n store.NextDue) error {
	if _, err := w.ExecContext(ctx, `UPDATE schedules SET next_due = ? WHERE tenant = ? AND name = ? AND version = ? AND anchor = ?`,
		micros(n.Next), n.Tenant, n.Name, n.Version, micros(n.Anchor)); err != nil {
		return fmt.Errorf("sqlite store: the next due time of schedule %s: %w", n.Name, err)
	}
	return nil
}

func (w *wtx) DeleteSchedule(ctx context.Context, tenant, name string) (bool, error) {
	res, err := w.ExecContext(ctx, `DELETE FROM schedules WHERE tenant = ? AND name = ?`, tenant, name)
	if err != nil {
		return false, fmt.Errorf("sqlite store: delete schedule: %w", err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}
