package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/wasmq/wasmq/abi"
)

// recordRows are the records of the outcomes applied, as drivers write
// them; nil when none kept one (the common case: no extra statement).
func recordRows(outcomes []Outcome, applied []Completed) ([]RecordRow, error) {
	var rows []RecordRow
	for _, o := range outcomes {
		if o.Record == nil {
			continue
		}
		ok := false
		for _, d := range applied {
			if d.UUID == o.UUID {
				ok = true
				break
			}
		}
		if !ok {
			continue // taken back meanwhile: the attempt is not ours to record
		}
		r := *o.Record
		r.JobUUID, r.Attempt = o.UUID, o.Attempt
		raw, err := json.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("record of %s attempt %d: %w", o.UUID, o.Attempt, err)
		}
		rows = append(rows, RecordRow{JobUUID: o.UUID, Attempt: o.Attempt, PluginSHA256: r.PluginSHA256,
			Complete: r.Complete, Size: r.Size, Raw: raw, Wasm: r.Wasm})
	}
	return rows, nil
}

func (c *Core) Record(ctx context.Context, tenant, uuid string, attempt int) (abi.Record, error) {
	if err := checkRecordKey(uuid, attempt); err != nil {
		return abi.Record{}, err
	}
	raw, _, err := c.d.GetRecord(ctx, tenant, uuid, attempt)
	if err != nil {
		return abi.Record{}, err
	}
	var r abi.Record
	if err := json.Unmarshal(raw, &r); err != nil {
		return abi.Record{}, fmt.Errorf("record of %s attempt %d: %w", uuid, attempt, err)
	}
	if r.Tape == nil {
		r.Tape = []abi.TapeEntry{}
	}
	return r, nil
}

func (c *Core) RecordModule(ctx context.Context, tenant, uuid string, attempt int) ([]byte, error) {
	if err := checkRecordKey(uuid, attempt); err != nil {
		return nil, err
	}
	_, sha, err := c.d.GetRecord(ctx, tenant, uuid, attempt)
	if err != nil {
		return nil, err
	}
	return c.d.GetModule(ctx, sha)
}

// checkRecordKey answers "not found" for what no record could be keyed
// by, before any SQL sees it.
func checkRecordKey(uuid string, attempt int) error {
	if err := checkText("uuid", uuid); err != nil || attempt < 1 {
		return fmt.Errorf("record of job %q attempt %d: %w", uuid, attempt, abi.ErrNotFound)
	}
	return nil
}
