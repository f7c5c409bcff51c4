package store

import "github.com/wasmq/wasmq/abi"

// WithCurrent completes a job's recorded attempts with the one its row
// holds, if not recorded: the attempt running now, or the last one of a
// done job. A store may leave both unwritten (the hot path writes one row
// per job, not two or three): the row already says worker, attempt, start,
// end and plugin digest, and a silent successful attempt has nothing else.
func WithCurrent(recorded []abi.Attempt, j abi.Job) []abi.Attempt {
	if j.Attempt == 0 || j.DateStarted == nil {
		return recorded
	}
	for _, a := range recorded {
		if a.Attempt == j.Attempt {
			return recorded
		}
	}
	a := abi.Attempt{JobUUID: j.UUID, Attempt: j.Attempt, WorkerID: j.WorkerID, PluginSHA256: j.PluginSHA256,
		Started: j.DateStarted.UTC(), Logs: []abi.LogLine{}}
	switch {
	case j.State == abi.StateStarted:
	case j.State == abi.StateDone && j.DateDone != nil:
		ended := j.DateDone.UTC()
		a.Ended, a.Outcome = &ended, string(abi.StateDone)
	default:
		return recorded
	}
	return append(recorded, a)
}
