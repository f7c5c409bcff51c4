package runner

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// completion turns the outcome of one attempt into the store write of
// docs/semantics.md §3. job is as claimed (Retry already counts this attempt).
func completion(job *abi.Job, o abi.Outcome, fc abi.FunctionConfig, defaultRetry time.Duration, now time.Time) store.Completion {
	c := store.Completion{
		UUID: job.UUID, WorkerID: job.WorkerID, Attempt: job.Attempt, Version: job.Version, Ended: now,
		PluginSHA256: o.PluginSHA256, Logs: o.Logs, Record: o.Record,
	}
	if o.Kind != abi.OutcomeInterrupted || o.Usage != (abi.Usage{}) {
		u := o.Usage
		c.Usage = &u
	}
	switch o.Kind {
	case abi.OutcomeDone:
		c.To, c.Cause, c.Result = abi.StateDone, abi.CauseDone, o.Result
		if len(c.Result) == 0 {
			c.Result = json.RawMessage("null")
		}
	case abi.OutcomeNothingToDo:
		c.To, c.Cause = abi.StateDone, abi.CauseDone
		c.Result = jsonString(orText(o.Reason, "Nothing to do"))
	case abi.OutcomeRetry:
		reason := orText(o.Reason, "retry requested")
		c.Cause = abi.CauseRetry
		switch {
		case o.IgnoreRetry:
			c.To, c.UncountRetry = abi.StatePending, true
		case job.MaxRetries > 0 && job.Retry >= job.MaxRetries:
			c.To = abi.StateFailed
			c.ExcName = abi.ExcMaxRetries
			c.ExcMessage = fmt.Sprintf("Max. retries (%d) reached: %s", job.MaxRetries, reason)
			c.Result = jsonString(reason)
			return c
		default:
			c.To = abi.StatePending
		}
		delay := o.RetryAfter
		if delay <= 0 {
			if d, ok := fc.RetryPattern.Delay(job.Retry); ok {
				delay = d
			} else {
				delay = defaultRetry
			}
		}
		eta := now.Add(delay)
		c.ETA, c.Result = &eta, jsonString(reason)
	case abi.OutcomeInterrupted:
		c.To, c.Cause, c.UncountRetry = abi.StatePending, abi.CauseShutdown, true
		c.Result = jsonString("interrupted: the node stopped before the job ended")
	default: // failed, sandbox and anything unknown
		c.To, c.Cause = abi.StateFailed, abi.CauseFail
		c.ExcName, c.ExcMessage, c.ExcInfo = orText(o.ExcName, abi.ExcError), o.ExcMessage, o.ExcInfo
	}
	return c
}

func orText(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}
