package store

import (
	"fmt"

	"github.com/wasmq/wasmq/abi"
)

// Apply changes j as the patch says, if j has not started yet.
func (p Patch) Apply(j *abi.Job) error {
	switch j.State {
	case abi.StateWaitDependencies, abi.StatePending, abi.StateFailed:
	default:
		return fmt.Errorf("job %s is %s: %w: a job can be changed only in wait_dependencies, pending or failed", j.UUID, j.State, abi.ErrIllegalTransition)
	}
	if p.Priority != nil {
		j.Priority = *p.Priority
	}
	if p.ETA != nil {
		j.ETA = *p.ETA
	}
	if p.Channel != nil {
		j.Channel = *p.Channel
	}
	if p.MaxRetries != nil {
		j.MaxRetries = *p.MaxRetries
	}
	if p.Description != nil {
		j.Description = *p.Description
	}
	return nil
}

// CheckManual refuses a manual action on a state it does not apply to.
func CheckManual(j abi.Job, cause abi.Cause) error {
	if abi.CanApply(cause, j.State) {
		return nil
	}
	return fmt.Errorf("job %s is %s: %w: %s applies to %v", j.UUID, j.State, abi.ErrIllegalTransition, cause, abi.AllowedFrom(cause))
}
