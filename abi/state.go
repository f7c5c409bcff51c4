package abi

import (
	"errors"
	"fmt"
)

// State is where a job is in its life (docs/semantics.md §2).
type State string

const (
	StateWaitDependencies State = "wait_dependencies"
	StatePending          State = "pending"
	StateEnqueued         State = "enqueued"
	StateStarted          State = "started"
	StateDone             State = "done"
	StateCancelled        State = "cancelled"
	StateFailed           State = "failed"
)

// States lists every state in life order, for UIs and validation.
var States = []State{
	StateWaitDependencies, StatePending, StateEnqueued, StateStarted,
	StateDone, StateCancelled, StateFailed,
}

// Valid reports whether s is one of States.
func (s State) Valid() bool {
	for _, v := range States {
		if s == v {
			return true
		}
	}
	return false
}

// Active reports whether a job in s blocks a new job with the same
// identity key (docs/semantics.md §5).
func (s State) Active() bool {
	return s == StateWaitDependencies || s == StatePending || s == StateEnqueued
}

// Running reports whether a job in s uses channel capacity (docs/semantics.md §6).
func (s State) Running() bool { return s == StateEnqueued || s == StateStarted }

// Cause names why a job changes state. Two causes may share a from/to pair
// (a retry and a requeue both go started→pending) yet differ in what they
// do to the counters, so the cause, not the pair, is what is checked.
type Cause string

const (
	CausePromote  Cause = "promote"  // wait_dependencies → pending: last parent done
	CauseSchedule Cause = "schedule" // pending → enqueued
	CauseStart    Cause = "start"    // enqueued → started
	CauseDone     Cause = "done"     // started → done
	CauseRetry    Cause = "retry"    // started → pending, postponed
	CauseFail     Cause = "fail"     // started → failed
	CauseDead     Cause = "dead"     // enqueued/started → pending or failed: lease expired
	CauseShutdown Cause = "shutdown" // enqueued/started → pending, attempt not counted
	CauseRequeue  Cause = "requeue"  // manual
	CauseSetDone  Cause = "set_done" // manual
	CauseCancel   Cause = "cancel"   // manual (a started job's sandbox is interrupted), or cascaded from a cancelled parent
)

type edge struct {
	from State
	to   State
}

// transitions is the one table of legal moves; every store enforces it.
var transitions = map[Cause][]edge{
	CausePromote:  {{StateWaitDependencies, StatePending}, {StateWaitDependencies, StateCancelled}},
	CauseSchedule: {{StatePending, StateEnqueued}},
	CauseStart:    {{StateEnqueued, StateStarted}},
	CauseDone:     {{StateStarted, StateDone}},
	CauseRetry:    {{StateStarted, StatePending}, {StateStarted, StateFailed}},
	CauseFail:     {{StateStarted, StateFailed}},
	CauseDead: {
		{StateStarted, StatePending}, {StateStarted, StateFailed},
		{StateEnqueued, StatePending},
	},
	CauseShutdown: {{StateStarted, StatePending}, {StateEnqueued, StatePending}},
	CauseRequeue: {
		{StatePending, StatePending}, {StatePending, StateWaitDependencies},
		{StateEnqueued, StatePending}, {StateEnqueued, StateWaitDependencies},
		{StateStarted, StatePending}, {StateStarted, StateWaitDependencies},
		{StateDone, StatePending}, {StateDone, StateWaitDependencies},
		{StateCancelled, StatePending}, {StateCancelled, StateWaitDependencies},
		{StateFailed, StatePending}, {StateFailed, StateWaitDependencies},
	},
	CauseSetDone: {
		{StateWaitDependencies, StateDone}, {StatePending, StateDone},
		{StateEnqueued, StateDone}, {StateFailed, StateDone},
	},
	CauseCancel: {
		{StateWaitDependencies, StateCancelled}, {StatePending, StateCancelled},
		{StateEnqueued, StateCancelled}, {StateStarted, StateCancelled},
		{StateFailed, StateCancelled},
	},
}

// ErrIllegalTransition is wrapped by every refused state change; the HTTP
// layer answers it with 409.
var ErrIllegalTransition = errors.New("illegal state transition")

// CheckTransition returns nil when cause may move a job from → to, and an
// error wrapping ErrIllegalTransition that names all three otherwise.
func CheckTransition(from, to State, cause Cause) error {
	for _, e := range transitions[cause] {
		if e.from == from && e.to == to {
			return nil
		}
	}
	return fmt.Errorf("%w: %s cannot move a job from %s to %s", ErrIllegalTransition, cause, from, to)
}

// AllowedFrom lists the states a manual action applies to, for error
// messages and for UIs deciding which buttons to show.
func AllowedFrom(cause Cause) []State {
	seen := map[State]bool{}
	var out []State
	for _, e := range transitions[cause] {
		if !seen[e.from] {
			seen[e.from] = true
			out = append(out, e.from)
		}
	}
	return out
}

// CanApply reports whether a manual action (requeue, set_done, cancel)
// applies to a job in state s, whatever state it would lead to.
func CanApply(cause Cause, s State) bool {
	for _, e := range transitions[cause] {
		if e.from == s {
			return true
		}
	}
	return false
}
