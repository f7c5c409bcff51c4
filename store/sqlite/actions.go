package sqlite

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// parentsState tells whether every parent of uuid is done (a parent
// removed by vacuum was done or cancelled; it no longer holds anyone), and
// whether all are finished with at least one cancelled.
func parentsState(ctx context.Context, w *wtx, uuid string) (allDone, cancelledFinished bool, err error) {
	var open, cancelled int
	err = w.QueryRowContext(ctx, `SELECT
		COALESCE(SUM(CASE WHEN p.state NOT IN ('done', 'cancelled') THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN p.state = 'cancelled' THEN 1 ELSE 0 END), 0)
		FROM job_dependencies d JOIN jobs p ON p.uuid = d.parent WHERE d.child = ?`, uuid).Scan(&open, &cancelled)
	if err != nil {
		return false, false, fmt.Errorf("sqlite store: parents of %s: %w", uuid, err)
	}
	return open == 0 && cancelled == 0, open == 0 && cancelled > 0, nil
}

// settleChildren re-evaluates the waiting children of parents that just
// finished: all parents done → pending; all finished, one cancelled →
// cancelled, which in turn settles its own children.
func settleChildren(ctx context.Context, w *wtx, parents []string) error {
	for len(parents) > 0 {
		p := parents[0]
		parents = parents[1:]
		rows, err := w.QueryContext(ctx, `SELECT j.uuid, j.tenant, j.channel FROM job_dependencies d JOIN jobs j ON j.uuid = d.child
			WHERE d.parent = ? AND j.state = 'wait_dependencies'`, p)
		if err != nil {
			return fmt.Errorf("sqlite store: children of %s: %w", p, err)
		}
		type child struct{ uuid, tenant, channel string }
		var kids []child
		for rows.Next() {
			var c child
			if err := rows.Scan(&c.uuid, &c.tenant, &c.channel); err != nil {
				rows.Close()
				return err
			}
			kids = append(kids, c)
		}
		rows.Close()
		for _, c := range kids {
			done, cancelled, err := parentsState(ctx, w, c.uuid)
			if err != nil {
				return err
			}
			switch {
			case done:
				if err := abi.CheckTransition(abi.StateWaitDependencies, abi.StatePending, abi.CausePromote); err != nil {
					return err
				}
				if _, err := w.ExecContext(ctx, `UPDATE jobs SET state = 'pending', version = ? WHERE uuid = ?`, w.nextVersion(), c.uuid); err != nil {
					return fmt.Errorf("sqlite store: promote %s: %w", c.uuid, err)
				}
				w.events.Job(store.EventPending, c.uuid, c.channel)
				w.counts.Add(c.tenant, c.channel, abi.StateWaitDependencies, -1)
				w.counts.Add(c.tenant, c.channel, abi.StatePending, 1)
			case cancelled:
				if _, err := w.ExecContext(ctx, `UPDATE jobs SET state = 'cancelled', date_cancelled = ?, version = ? WHERE uuid = ?`,
					micros(w.now), w.nextVersion(), c.uuid); err != nil {
					return fmt.Errorf("sqlite store: cancel %s: %w", c.uuid, err)
				}
				w.counts.Add(c.tenant, c.channel, abi.StateWaitDependencies, -1)
				w.counts.Add(c.tenant, c.channel, abi.StateCancelled, 1)
				parents = append(parents, c.uuid)
			}
		}
	}
	return nil
}

// manual runs a manual action: reads the job, checks the transition the
// action would make, applies it and returns the job as stored.
func (s *Store) manual(ctx context.Context, tenant, uuid string, cause abi.Cause, apply func(w *wtx, j abi.Job) (abi.State, error)) (abi.Job, error) {
	var out abi.Job
	err := s.write(ctx, func(w *wtx) error {
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
			if _, err := w.ExecContext(ctx, recordAttempt, uuid, j.Attempt, j.WorkerID, j.PluginSHA256,
				micros(*j.DateStarted), micros(w.now), "requeued", "", "", "[]"); err != nil {
				return "", fmt.Errorf("sqlite store: record the end of attempt %d of %s: %w", j.Attempt, uuid, err)
			}
		case j.State == abi.StateDone:
			// The requeue clears the dates the last attempt is read from.
			for _, a := range store.WithCurrent(nil, j) {
				if _, err := w.ExecContext(ctx, `INSERT INTO job_attempts (job_uuid, attempt, worker_id, plugin_sha256,
					started, ended, outcome) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (job_uuid, attempt) DO NOTHING`,
					uuid, a.Attempt, a.WorkerID, a.PluginSHA256, micros(a.Started), optMicros(a.Ended), a.Outcome); err != nil {
					return "", fmt.Errorf("sqlite store: keep the last attempt of %s: %w", uuid, err)
				}
			}
		}
		// A requeue means "run it again now": the counters, dates, last
		// outcome and any postponement are cleared.
		_, err = w.ExecContext(ctx, `UPDATE jobs SET state = ?, retry = 0, eta = NULL, result = NULL,
			exc_name = '', exc_message = '', exc_info = '', date_enqueued = NULL, date_started = NULL,
			date_done = NULL, date_cancelled = NULL, exec_time = NULL, late = 0, worker_id = '',
			lease_until = NULL, version = ? WHERE uuid = ?`, string(to), w.nextVersion(), uuid)
		if to == abi.StatePending {
			w.events.Job(store.EventPending, j.UUID, j.Channel)
		}
		return to, err
	})
}

func (s *Store) SetDone(ctx context.Context, tenant, uuid string, result json.RawMessage) (abi.Job, error) {
	if len(result) == 0 {
		result = json.RawMessage(`"Manually set to done"`)
	}
	return s.manual(ctx, tenant, uuid, abi.CauseSetDone, func(w *wtx, j abi.Job) (abi.State, error) {
		if _, err := w.ExecContext(ctx, `UPDATE jobs SET state = 'done', result = ?, date_done = ?, worker_id = '',
			lease_until = NULL, version = ? WHERE uuid = ?`, string(result), micros(w.now), w.nextVersion(), uuid); err != nil {
			return "", err
		}
		return abi.StateDone, settleChildren(ctx, w, []string{uuid})
	})
}

func (s *Store) Cancel(ctx context.Context, tenant, uuid string) (abi.Job, error) {
	return s.manual(ctx, tenant, uuid, abi.CauseCancel, func(w *wtx, j abi.Job) (abi.State, error) {
		if _, err := w.ExecContext(ctx, `UPDATE jobs SET state = 'cancelled', date_cancelled = ?, worker_id = '',
			lease_until = NULL, version = ? WHERE uuid = ?`, micros(w.now), w.nextVersion(), uuid); err != nil {
			return "", err
		}
		return abi.StateCancelled, cancelDescendants(ctx, w, uuid)
	})
}

// cancelDescendants cancels, transitively, every dependent still waiting.
func cancelDescendants(ctx context.Context, w *wtx, root string) error {
	queue := []string{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		rows, err := w.QueryContext(ctx, `SELECT j.uuid, j.tenant, j.channel FROM job_dependencies d JOIN jobs j ON j.uuid = d.child
			WHERE d.parent = ? AND j.state = 'wait_dependencies'`, p)
		if err != nil {
			return fmt.Errorf("sqlite store: dependents of %s: %w", p, err)
		}
		type kid struct{ uuid, tenant, channel string }
		var kids []kid
		for rows.Next() {
			var k kid
			if err := rows.Scan(&k.uuid, &k.tenant, &k.channel); err != nil {
				rows.Close()
				return err
			}
			kids = append(kids, k)
		}
		rows.Close()
		for _, k := range kids {
			if _, err := w.ExecContext(ctx, `UPDATE jobs SET state = 'cancelled', date_cancelled = ?, version = ? WHERE uuid = ?`,
				micros(w.now), w.nextVersion(), k.uuid); err != nil {
				return fmt.Errorf("sqlite store: cancel dependent %s: %w", k.uuid, err)
			}
			w.counts.Add(k.tenant, k.channel, abi.StateWaitDependencies, -1)
			w.counts.Add(k.tenant, k.channel, abi.StateCancelled, 1)
			queue = append(queue, k.uuid)
		}
	}
	return nil
}

func (s *Store) Update(ctx context.Context, tenant, uuid string, p store.Patch) (abi.Job, error) {
	if err := p.Validate(); err != nil {
		return abi.Job{}, err
	}
	var out abi.Job
	err := s.write(ctx, func(w *wtx) error {
		j, err := getJob(ctx, w, tenant, uuid)
		if err != nil {
			return err
		}
		before := j
		if err := p.Apply(&j); err != nil {
			return err
		}
		if _, err := w.ExecContext(ctx, `UPDATE jobs SET priority = ?, eta = ?, channel = ?, max_retries = ?,
			description = ?, version = ? WHERE uuid = ?`, j.Priority, optMicros(j.ETA), j.Channel, j.MaxRetries,
			j.Description, w.nextVersion(), uuid); err != nil {
			return fmt.Errorf("sqlite store: update %s: %w", uuid, err)
		}
		w.events.Add(store.EventChanged, j.Channel)
		if j.State == abi.StatePending {
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
