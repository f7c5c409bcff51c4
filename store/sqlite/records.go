package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// PutRecords writes a module's bytes only when its digest is not kept
// yet; one writer, so nothing removes it between the check and the
// record.
func (w *wtx) PutRecords(ctx context.Context, recs []store.RecordRow) error {
	for _, r := range recs {
		var one int
		err := w.QueryRowContext(ctx, `SELECT 1 FROM record_modules WHERE sha256 = ?`, r.PluginSHA256).Scan(&one)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if len(r.Wasm) == 0 {
				return fmt.Errorf("sqlite store: record of %s attempt %d: module %s: no bytes to keep", r.JobUUID, r.Attempt, r.PluginSHA256)
			}
			if _, err := w.ExecContext(ctx, `INSERT INTO record_modules (sha256, wasm) VALUES (?, ?)`, r.PluginSHA256, r.Wasm); err != nil {
				return fmt.Errorf("sqlite store: record module %s: %w", r.PluginSHA256, err)
			}
		case err != nil:
			return fmt.Errorf("sqlite store: record module %s: %w", r.PluginSHA256, err)
		}
		if _, err := w.ExecContext(ctx, `INSERT INTO records (job_uuid, attempt, plugin_sha256, complete, size, record)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (job_uuid, attempt) DO UPDATE SET plugin_sha256 = excluded.plugin_sha256,
				complete = excluded.complete, size = excluded.size, record = excluded.record`,
			r.JobUUID, r.Attempt, r.PluginSHA256, r.Complete, r.Size, r.Raw); err != nil {
			return fmt.Errorf("sqlite store: record of %s attempt %d: %w", r.JobUUID, r.Attempt, err)
		}
	}
	return nil
}

func (s *driver) GetRecord(ctx context.Context, tenant, uuid string, attempt int) ([]byte, string, error) {
	var raw []byte
	var sha string
	err := s.r.QueryRowContext(ctx, `SELECT r.record, r.plugin_sha256 FROM records r JOIN jobs j ON j.uuid = r.job_uuid
		WHERE r.job_uuid = ? AND r.attempt = ? AND (? = '' OR j.tenant = ?)`, uuid, attempt, tenant, tenant).Scan(&raw, &sha)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", fmt.Errorf("record of job %s attempt %d: %w", uuid, attempt, abi.ErrNotFound)
	}
	if err != nil {
		return nil, "", fmt.Errorf("sqlite store: select record: %w", err)
	}
	return raw, sha, nil
}

func (s *driver) GetModule(ctx context.Context, sha256 string) ([]byte, error) {
	var wasm []byte
	err := s.r.QueryRowContext(ctx, `SELECT wasm FROM record_modules WHERE sha256 = ?`, sha256).Scan(&wasm)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("module %s: %w", sha256, abi.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite store: select module: %w", err)
	}
	return wasm, nil
}
