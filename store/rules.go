package store

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/wasmq/wasmq/abi"
)

// The job rules as functions of a job row: what each move writes. Core
// applies them inside a driver's transaction; they read nothing and
// write nothing themselves.

// initialState is where a new job starts, from its parents' states: all
// done (or none) → pending; all finished with one cancelled → cancelled;
// otherwise it waits.
func initialState(parents []abi.State) abi.State {
	allDone, allFinished := true, true
	for _, s := range parents {
		switch s {
		case abi.StateDone:
		case abi.StateCancelled:
			allDone = false
		default:
			allDone, allFinished = false, false
		}
	}
	switch {
	case allDone:
		return abi.StatePending
	case allFinished:
		return abi.StateCancelled
	}
	return abi.StateWaitDependencies
}

// settled is where a waiting job goes when a parent finished: pending once
// every parent is done, cancelled once all finished with one cancelled;
// it stays (wait_dependencies) otherwise.
func settled(parents []abi.State) abi.State { return initialState(parents) }

// requeued: "run it again now". Counters, dates, the last outcome and
// any postponement are cleared; the job waits again if a parent is not
// done.
func requeued(j abi.Job, parents []abi.State) abi.Job {
	j.State = abi.StatePending
	if initialState(parents) != abi.StatePending {
		j.State = abi.StateWaitDependencies
	}
	j.Retry, j.ETA, j.Result = 0, nil, nil
	j.ExcName, j.ExcMessage, j.ExcInfo = "", "", ""
	j.DateEnqueued, j.DateStarted, j.DateDone, j.DateCancelled, j.ExecTime = nil, nil, nil, nil, nil
	j.Late, j.WorkerID, j.LeaseUntil = false, "", nil
	return j
}

// ManualResult is the result a job set done by hand holds unless the
// caller gives one.
const ManualResult = `"Manually set to done"`

func setDone(j abi.Job, result json.RawMessage, now time.Time) abi.Job {
	if len(result) == 0 {
		result = json.RawMessage(ManualResult)
	}
	j.State, j.Result, j.DateDone = abi.StateDone, result, &now
	j.WorkerID, j.LeaseUntil = "", nil
	return j
}

func cancelled(j abi.Job, now time.Time) abi.Job {
	j.State, j.DateCancelled = abi.StateCancelled, &now
	j.WorkerID, j.LeaseUntil = "", nil
	return j
}

// reaped: a job whose lease lapsed goes back to pending, or fails once a
// started job has used its retries (semantics: "found dead").
func reaped(j abi.Job) (abi.Job, string) {
	msg := fmt.Sprintf("worker %s stopped renewing its lease", j.WorkerID)
	out := j
	out.LeaseUntil = nil
	if j.State == abi.StateStarted && j.MaxRetries > 0 && j.Retry >= j.MaxRetries {
		out.State = abi.StateFailed
		out.ExcName, out.ExcMessage = abi.ExcJobFoundDead, fmt.Sprintf("Job found dead after %d attempts: %s", j.Retry, msg)
		return out, msg
	}
	out.State, out.DateEnqueued, out.WorkerID = abi.StatePending, nil, ""
	return out, msg
}

// disowned is a started job after its worker found it does not run it
// (the start's answer was lost): pending again, the attempt not counted
// against its retries, since no code ran.
func disowned(j abi.Job) (abi.Job, string) {
	msg := fmt.Sprintf("worker %s never received this start (its answer was lost); the job did not run", j.WorkerID)
	out := j
	out.LeaseUntil = nil
	out.State, out.DateEnqueued, out.WorkerID = abi.StatePending, nil, ""
	out.Retry = max(j.Retry-1, 0)
	return out, msg
}

// endedAttempt is the record of the attempt a job row holds when it ends
// without its worker reporting it (a dead worker, a requeue while it ran).
func endedAttempt(j abi.Job, ended time.Time, outcome, excName, excMsg string) abi.Attempt {
	return abi.Attempt{JobUUID: j.UUID, Attempt: j.Attempt, WorkerID: j.WorkerID, PluginSHA256: j.PluginSHA256,
		Started: *j.DateStarted, Ended: &ended, Outcome: outcome, ExcName: excName, ExcMessage: excMsg, Logs: []abi.LogLine{}}
}

// outcomeOf names how an attempt ended, as its record says.
func outcomeOf(c Completion) string {
	switch {
	case c.Cause == abi.CauseShutdown:
		return "interrupted"
	case c.To == abi.StatePending:
		return "retry"
	}
	return string(c.To)
}
