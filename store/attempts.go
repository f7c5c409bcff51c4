package store

import "github.com/wasmq/wasmq/abi"

// WithRunning completes a job's recorded attempts with the one running
// now, if any: a store may record an attempt only when it ends, since the
// started job's row already holds it (worker, attempt, start).
func WithRunning(recorded []abi.Attempt, j abi.Job) []abi.Attempt {
	if j.State != abi.StateStarted || j.DateStarted == nil {
		return recorded
	}
	for _, a := range recorded {
		if a.Attempt == j.Attempt {
			return recorded
		}
	}
	return append(recorded, abi.Attempt{JobUUID: j.UUID, Attempt: j.Attempt, WorkerID: j.WorkerID,
		Started: j.DateStarted.UTC(), Logs: []abi.LogLine{}})
}
