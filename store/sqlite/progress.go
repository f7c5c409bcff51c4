package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/wasmq/wasmq/abi"
)

func (s *driver) SetProgress(ctx context.Context, uuid, workerID string, attempt int, p abi.Progress) error {
	return s.write(ctx, func(w *wtx) error {
		_, err := w.ExecContext(ctx, `INSERT INTO job_progress (job_uuid, percent, message, updated)
			SELECT uuid, ?, ?, ? FROM jobs WHERE uuid = ? AND state = 'started' AND worker_id = ? AND attempt = ?
			ON CONFLICT (job_uuid) DO UPDATE SET percent = excluded.percent, message = excluded.message, updated = excluded.updated`,
			p.Percent, p.Message, p.Updated.UnixMicro(), uuid, workerID, attempt)
		if err != nil {
			return fmt.Errorf("sqlite store: progress of %s: %w", uuid, err)
		}
		return nil
	})
}

// fillProgress adds each job's latest progress, for GetJob and ListJobs.
func fillProgress(ctx context.Context, q querier, jobs []abi.Job) error {
	if len(jobs) == 0 {
		return nil
	}
	ids := make([]any, len(jobs))
	for i := range jobs {
		ids[i] = jobs[i].UUID
	}
	rows, err := q.QueryContext(ctx, `SELECT job_uuid, percent, message, updated FROM job_progress WHERE job_uuid IN (?`+
		strings.Repeat(",?", len(ids)-1)+`)`, ids...)
	if err != nil {
		return fmt.Errorf("sqlite store: read progress: %w", err)
	}
	defer rows.Close()
	at := make(map[string]*abi.Progress, len(jobs))
	for rows.Next() {
		var id string
		var p abi.Progress
		var updated int64
		if err := rows.Scan(&id, &p.Percent, &p.Message, &updated); err != nil {
			return fmt.Errorf("sqlite store: read progress: %w", err)
		}
		p.Updated = time.UnixMicro(updated).UTC()
		at[id] = &p
	}
	for i := range jobs {
		jobs[i].Progress = at[jobs[i].UUID]
	}
	return rows.Err()
}
