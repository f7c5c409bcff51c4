package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/wasmq/wasmq/abi"
)

// MaxAct bounds the jobs one Act call moves: one transaction, whose
// locks other writers wait for.
const MaxAct = 1000

func (c *Core) Act(ctx context.Context, tenant string, cause abi.Cause, uuids []string) ([]string, error) {
	ctx, cancel := c.bounded(ctx)
	defer cancel()
	if len(uuids) > MaxAct {
		return nil, invalid("uuids", "at most %d jobs at a time", MaxAct)
	}
	var apply func(tx Tx, j abi.Job) (abi.Job, error)
	switch cause {
	case abi.CauseRequeue:
		apply = requeueApply(ctx)
	case abi.CauseCancel:
		apply = cancelApply(ctx)
	case abi.CauseSetDone:
		apply = setDoneApply(nil)
	default:
		return nil, fmt.Errorf("act: %q is not a manual action: %w", cause, abi.ErrInvalid)
	}
	decide, then := manualSteps(ctx, cause, apply)
	// Every action locks its jobs first, in one order: two actions over
	// the same jobs (two bulk requeues, one listed newest first, the
	// other by hand) then wait for each other instead of deadlocking.
	// What else locks jobs (the runner's batches, a cancel's cascade) may
	// still meet them in another order: the transaction the database
	// ends for it is run again (Core.write).
	valid := make([]string, 0, len(uuids))
	for _, id := range uuids {
		if checkText("uuid", id) == nil {
			valid = append(valid, id)
		}
	}
	var changed []string
	err := c.write(ctx, func(tx Tx) error {
		changed = changed[:0]
		if err := tx.LockJobs(ctx, tenant, valid); err != nil {
			return err
		}
		for _, id := range valid { // the moves, in the caller's order
			j, err := tx.LockJob(ctx, tenant, id)
			if errors.Is(err, abi.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			// Checked before anything is written for this job, so that
			// skipping it leaves nothing half done in the transaction
			// (a cancel cascading to a dependent listed later lands here).
			if !abi.CanApply(cause, j.State) {
				continue
			}
			if _, err := changeLocked(ctx, tx, j, decide, then); err != nil {
				return fmt.Errorf("%s %s: %w", cause, id, err)
			}
			changed = append(changed, id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return changed, nil
}
