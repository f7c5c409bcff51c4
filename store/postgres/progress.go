package postgres

import (
	"context"
	"fmt"

	"github.com/wasmq/wasmq/abi"
)

func (s *driver) SetProgress(ctx context.Context, uuid, workerID string, attempt int, p abi.Progress) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO job_progress (job_uuid, percent, message, updated)
		SELECT uuid, $4, $5, $6 FROM jobs WHERE uuid = $1 AND state = 'started' AND worker_id = $2 AND attempt = $3
		ON CONFLICT (job_uuid) DO UPDATE SET percent = EXCLUDED.percent, message = EXCLUDED.message, updated = EXCLUDED.updated`,
		uuid, workerID, attempt, p.Percent, p.Message, p.Updated)
	if err != nil {
		return fmt.Errorf("postgres store: progress of %s: %w", uuid, err)
	}
	return nil
}

// fillProgress adds each job's latest progress, for GetJob and ListJobs.
func fillProgress(ctx context.Context, q querier, jobs []abi.Job) error {
	if len(jobs) == 0 {
		return nil
	}
	ids := make([]string, len(jobs))
	for i := range jobs {
		ids[i] = jobs[i].UUID
	}
	rows, err := q.Query(ctx, `SELECT job_uuid, percent, message, updated FROM job_progress WHERE job_uuid = ANY($1)`, ids)
	if err != nil {
		return fmt.Errorf("postgres store: read progress: %w", err)
	}
	defer rows.Close()
	at := make(map[string]*abi.Progress, len(jobs))
	for rows.Next() {
		var id string
		var p abi.Progress
		if err := rows.Scan(&id, &p.Percent, &p.Message, &p.Updated); err != nil {
			return fmt.Errorf("postgres store: read progress: %w", err)
		}
		p.Updated = p.Updated.UTC()
		at[id] = &p
	}
	for i := range jobs {
		jobs[i].Progress = at[jobs[i].UUID]
	}
	return rows.Err()
}
