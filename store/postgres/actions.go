package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// parentsState: are all parents done (a vacuumed parent holds no one)?
// Are all finished with at least one cancelled?
func parentsState(ctx context.Context, w *wtx, uuid string) (allDone, cancelledFinished bool, err error) {
	var open, cancelled int
	err = w.QueryRow(ctx, `SELECT
		COUNT(*) FILTER (WHERE p.state NOT IN ('done', 'cancelled')),
		COUNT(*) FILTER (WHERE p.state = 'cancelled')
		FROM job_dependencies d JOIN jobs p ON p.uuid = d.parent WHERE d.child = $1`, uuid).Scan(&open, &cancelled)
	if err != nil {
		return false, false, fmt.Errorf("postgres store: parents of %s: %w", uuid, err)
	}
	return open == 0 && cancelled == 0, open == 0 && cancelled > 0, nil
}

// settleChildren re-evaluates the waiting children of parents that just
// finished: all parents done → pending; all finished, one cancelled →
// cancelled, which settles its own children in turn.
func settleChildren(ctx context.Context, w *wtx, parents []string) error {
	for len(parents) > 0 {
		rows, err := w.Query(ctx, `SELECT DISTINCT j.uuid, j.tenant, j.channel FROM job_dependencies d JOIN jobs j ON j.uuid = d.child
			WHERE d.parent = ANY($1) AND j.state = 'wait_dependencies'`, parents)
		if err != nil {
			return fmt.Errorf("postgres store: children: %w", err)
		}
		type child struct{ uuid, tenant, channel string }
		kids, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (child, error) {
			var c child
			return c, r.Scan(&c.uuid, &c.tenant, &c.channel)
		})
		if err != nil {
			return err
		}
		parents = nil
		for _, c := range kids {
			done, cancelled, err := parentsState(ctx, w, c.uuid)
			if err != nil {
				return err
			}
			switch {
			case done:
				if _, err := w.Exec(ctx, `UPDATE jobs SET state = 'pending', version = nextval('job_version') WHERE uuid = $1`, c.uuid); err != nil {
					return fmt.Errorf("postgres store: promote %s: %w", c.uuid, err)
				}
				if err := logPending(ctx, w, c.uuid); err != nil {
					return err
				}
				w.events.Job(store.EventPending, c.uuid, c.channel)
				w.counts.Add(c.tenant, c.channel, abi.StateWaitDependencies, -1)
				w.counts.Add(c.tenant, c.channel, abi.StatePending, 1)
			case cancelled:
				if _, err := w.Exec(ctx, `UPDATE jobs SET state = 'cancelled', date_cancelled = $1, version = nextval('job_version') WHERE uuid = $2`, w.now, c.uuid); err != nil {
					return fmt.Errorf("postgres store: cancel %s: %w", c.uuid, err)
				}
				w.counts.Add(c.tenant, c.channel, abi.StateWaitDependencies, -1)
				w.counts.Add(c.tenant, c.channel, abi.StateCancelled, 1)
				parents = append(parents, c.uuid)
			}
		}
	}
	return nil
}

// manual runs a manual action: reads the job under a row lock, checks
// the transition, applies it and returns the job as stored.
func (s *Store) manual(ctx context.Context, tenant, uuid string, cause abi.Cause, apply func(w *wtx, j abi.Job) (abi.State, error)) (abi.Job, error) {
	var out abi.Job
	err := s.write(ctx, func(w *wtx) error {
		var runID *int64
		var version int64
		err := w.QueryRow(ctx, `SELECT run_id, version FROM jobs WHERE uuid = $1 FOR UPDATE`, uuid).Scan(&runID, &version)
		if err != nil && !errors.Is(err, errNoRows) {
			return fmt.Errorf("postgres store: lock %s: %w", uuid, err)
		}
		j, err := getJob(ctx, w, tenant, uuid)
		if err != nil {
			return err
		}
		if err := store.CheckManual(j, cause); err != nil {
			return err
		}
		to, err := apply(w, j)
		if err != nil {
			return err
		}
		if err := abi.CheckTransition(j.State, to, cause); err != nil {
			return err
		}
		if j.State == abi.StateStarted && runID != nil {
			if err := leaveRun(ctx, w, *runID); err != nil {
				return err
			}
		}
		if j.State == abi.StatePending {
			if err := unlog(ctx, w, version); err != nil {
				return err
			}
		}
		if j.State.Running() {
			w.events.Job(store.EventFinished, j.UUID, j.Channel)
		}
		w.events.Add(store.EventChanged, j.Channel)
		if out, err = getJob(ctx, w, tenant, uuid); err != nil {
			return err
		}
		w.counts.Moved(j, out)
		return nil
	})
	return out, err
}

func (s *Store) Requeue(ctx context.Context, tenant, uuid string) (abi.Job, error) {
	return s.manual(ctx, tenant, uuid, abi.CauseRequeue, func(w *wtx, j abi.Job) (abi.State, error) {
		done, _, err := parentsState(ctx, w, uuid)
		if err != nil {
			return "", err
		}
		to := abi.StatePending
		if !done {
			to = abi.StateWaitDependencies
		}
		switch {
		case j.State == abi.StateStarted && j.DateStarted != nil:
			// The running attempt's outcome will not be recorded: its
			// worker no longer holds the job.
			if err := endAttempt(ctx, w, uuid, j.Attempt, j.WorkerID, *j.DateStarted, w.now, "requeued", "", ""); err != nil {
				return "", err
			}
		case j.State == abi.StateDone:
			// The requeue clears the dates the last attempt is read from.
			if err := keepLastAttempt(ctx, w, j); err != nil {
				return "", err
			}
		}
		// "Run it again now": counters, dates, last outcome and any
		// postponement are cleared.
		_, err = w.Exec(ctx, `UPDATE jobs j SET state = $1, retry = 0, eta = NULL, result = NULL,
			exc_name = '', exc_message = '', exc_info = '', date_enqueued = NULL, date_started = NULL,
			date_done = NULL, date_cancelled = NULL, exec_time = NULL, late = false, worker_id = '',
			lease_until = NULL, handed = false, failed = false, version = nextval('job_version') WHERE j.uuid = $2`, string(to), uuid)
		if err != nil {
			return "", err
		}
		if to == abi.StatePending {
			w.events.Job(store.EventPending, j.UUID, j.Channel)
		}
		return to, logPending(ctx, w, uuid)
	})
}

func (s *Store) SetDone(ctx context.Context, tenant, uuid string, result json.RawMessage) (abi.Job, error) {
	if len(result) == 0 {
		result = json.RawMessage(`"Manually set to done"`)
	}
	return s.manual(ctx, tenant, uuid, abi.CauseSetDone, func(w *wtx, j abi.Job) (abi.State, error) {
		if _, err := w.Exec(ctx, `UPDATE jobs SET state = 'done', result = $1::json, date_done = $2, worker_id = '',
			lease_until = NULL, handed = false, failed = false, version = nextval('job_version') WHERE uuid = $3`, string(result), w.now, uuid); err != nil {
			return "", err
		}
		return abi.StateDone, settleChildren(ctx, w, []string{uuid})
	})
}

func (s *Store) Cancel(ctx context.Context, tenant, uuid string) (abi.Job, error) {
	return s.manual(ctx, tenant, uuid, abi.CauseCancel, func(w *wtx, j abi.Job) (abi.State, error) {
		if _, err := w.Exec(ctx, `UPDATE jobs SET state = 'cancelled', date_cancelled = $1, worker_id = '',
			lease_until = NULL, handed = false, failed = false, version = nextval('job_version') WHERE uuid = $2`, w.now, uuid); err != nil {
			return "", err
		}
		// Every waiting descendant, transitively, in one statement.
		_, err := w.Exec(ctx, `WITH RECURSIVE d(uuid) AS (
				SELECT child FROM job_dependencies WHERE parent = $1
				UNION SELECT jd.child FROM job_dependencies jd JOIN d ON jd.parent = d.uuid),
			upd AS (UPDATE jobs SET state = 'cancelled', date_cancelled = $2, version = nextval('job_version')
				WHERE uuid IN (SELECT uuid FROM d) AND state = 'wait_dependencies'
				RETURNING tenant, channel, state),
			`+countedCTE("upd", string(abi.StateWaitDependencies))+`
			SELECT 1`, uuid, w.now)
		if err != nil {
			return "", fmt.Errorf("postgres store: cancel dependents of %s: %w", uuid, err)
		}
		return abi.StateCancelled, nil
	})
}

func (s *Store) Update(ctx context.Context, tenant, uuid string, p store.Patch) (abi.Job, error) {
	if err := p.Validate(); err != nil {
		return abi.Job{}, err
	}
	var out abi.Job
	err := s.write(ctx, func(w *wtx) error {
		var version int64
		if err := w.QueryRow(ctx, `SELECT version FROM jobs WHERE uuid = $1 FOR UPDATE`, uuid).Scan(&version); err != nil && !errors.Is(err, errNoRows) {
			return fmt.Errorf("postgres store: lock %s: %w", uuid, err)
		}
		j, err := getJob(ctx, w, tenant, uuid)
		if err != nil {
			return err
		}
		before := j
		if err := p.Apply(&j); err != nil {
			return err
		}
		if _, err := w.Exec(ctx, `UPDATE jobs SET priority = $1, eta = $2, channel = $3, max_retries = $4,
			description = $5, version = nextval('job_version') WHERE uuid = $6`, j.Priority, j.ETA, j.Channel, j.MaxRetries,
			j.Description, uuid); err != nil {
			return fmt.Errorf("postgres store: update %s: %w", uuid, err)
		}
		w.events.Add(store.EventChanged, j.Channel)
		if j.State == abi.StatePending {
			if err := unlog(ctx, w, version); err != nil {
				return err
			}
			if err := logPending(ctx, w, uuid); err != nil {
				return err
			}
			w.events.Job(store.EventPending, j.UUID, j.Channel)
		}
		if out, err = getJob(ctx, w, tenant, uuid); err != nil {
			return err
		}
		w.counts.Moved(before, out)
		return nil
	})
	return out, err
}
