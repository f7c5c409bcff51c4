package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// PutRecords writes each module first: an UPDATE that locks a kept row
// (so a concurrent vacuum skips it), else an INSERT of its bytes, which
// are sent only then.
func (w *wtx) PutRecords(ctx context.Context, recs []store.RecordRow) error {
	done := map[string]bool{}
	for _, r := range recs {
		if done[r.PluginSHA256] {
			continue
		}
		done[r.PluginSHA256] = true
		tag, err := w.Exec(ctx, `UPDATE record_modules SET used = $2 WHERE sha256 = $1`, r.PluginSHA256, w.now)
		if err != nil {
			return fmt.Errorf("postgres store: record module %s: %w", r.PluginSHA256, err)
		}
		if tag.RowsAffected() > 0 {
			continue
		}
		if len(r.Wasm) == 0 {
			return fmt.Errorf("postgres store: record of %s attempt %d: module %s: no bytes to keep", r.JobUUID, r.Attempt, r.PluginSHA256)
		}
		if _, err := w.Exec(ctx, `INSERT INTO record_modules (sha256, wasm, used) VALUES ($1, $2, $3)
			ON CONFLICT (sha256) DO UPDATE SET used = EXCLUDED.used`, r.PluginSHA256, r.Wasm, w.now); err != nil {
			return fmt.Errorf("postgres store: record module %s: %w", r.PluginSHA256, err)
		}
	}
	for _, r := range recs {
		if _, err := w.Exec(ctx, `INSERT INTO records (job_uuid, attempt, plugin_sha256, complete, size, record)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (job_uuid, attempt) DO UPDATE SET plugin_sha256 = EXCLUDED.plugin_sha256,
				complete = EXCLUDED.complete, size = EXCLUDED.size, record = EXCLUDED.record`,
			r.JobUUID, r.Attempt, r.PluginSHA256, r.Complete, r.Size, r.Raw); err != nil {
			return fmt.Errorf("postgres store: record of %s attempt %d: %w", r.JobUUID, r.Attempt, err)
		}
	}
	return nil
}

func (s *driver) GetRecord(ctx context.Context, tenant, uuid string, attempt int) ([]byte, string, error) {
	var raw []byte
	var sha string
	err := s.pool.QueryRow(ctx, `SELECT r.record, r.plugin_sha256 FROM records r JOIN jobs j ON j.uuid = r.job_uuid
		WHERE r.job_uuid = $1 AND r.attempt = $2 AND ($3 = '' OR j.tenant = $3)`, uuid, attempt, tenant).Scan(&raw, &sha)
	if errors.Is(err, errNoRows) {
		return nil, "", fmt.Errorf("record of job %s attempt %d: %w", uuid, attempt, abi.ErrNotFound)
	}
	if err != nil {
		return nil, "", fmt.Errorf("postgres store: select record: %w", err)
	}
	return raw, sha, nil
}

func (s *driver) GetModule(ctx context.Context, sha256 string) ([]byte, error) {
	var wasm []byte
	err := s.pool.QueryRow(ctx, `SELECT wasm FROM record_modules WHERE sha256 = $1`, sha256).Scan(&wasm)
	if errors.Is(err, errNoRows) {
		return nil, fmt.Errorf("module %s: %w", sha256, abi.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres store: select module: %w", err)
	}
	return wasm, nil
}

// vacuumModules removes the modules no record refers to, skipping those
// a record being written holds (PutRecords).
func vacuumModules(ctx context.Context, w *wtx) error {
	_, err := w.Exec(ctx, `DELETE FROM record_modules WHERE sha256 IN (
			SELECT sha256 FROM record_modules m
			WHERE NOT EXISTS (SELECT 1 FROM records r WHERE r.plugin_sha256 = m.sha256)
			FOR UPDATE SKIP LOCKED)`)
	if err != nil {
		return fmt.Errorf("postgres store: vacuum modules: %w", err)
	}
	return nil
}
