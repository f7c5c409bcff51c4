package store

import (
	"context"
	"unicode/utf8"

	"github.com/wasmq/wasmq/abi"
)

// SetProgress keeps a running job's latest progress, only while the job
// is started by workerID at attempt (a report that comes after a cancel,
// a requeue or the reaper applies to nothing). The runner calls it at
// most once a second per job.
func (c *Core) SetProgress(ctx context.Context, uuid, workerID string, attempt int, p abi.Progress) error {
	if err := checkRange("percent", p.Percent, 0, 100); err != nil {
		return err
	}
	if err := checkText("message", p.Message); err != nil {
		return err
	}
	if n := utf8.RuneCountInString(p.Message); n > abi.MaxProgressMessage {
		return invalid("message", "at most %d characters (this one has %d)", abi.MaxProgressMessage, n)
	}
	if err := checkText("uuid", uuid); err != nil {
		return notFound(uuid)
	}
	if p.Updated.IsZero() {
		return invalid("updated", "must be set")
	}
	return c.d.SetProgress(ctx, uuid, workerID, attempt, p)
}
