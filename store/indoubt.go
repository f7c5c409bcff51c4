package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wasmq/wasmq/abi"
)

// An insert whose connection breaks after its commit was sent, before
// the answer came back, may have committed or not: the database went
// away (a crash, a restart, the network) at the worst moment. Answering
// "unavailable, nothing stored" then would be a lie half the time, and
// the caller who sends the job again would make it twice. So the core
// waits, within [store] in_doubt_wait, for the database to be back and the
// transaction to have ended there, then reads the jobs: found, the
// insert is answered as stored; absent, as not stored (a transaction is
// all or nothing). Only when that cannot be told in time is the answer
// InDoubtError, which names the jobs to look up. docs/architecture.md,
// "An insert in doubt".

// settlePoll is the pause between two looks while settling.
const settlePoll = 100 * time.Millisecond

// InDoubtError: the store lost its connection while the jobs were being
// committed, and could not tell in time whether they were. Each is
// stored or not, all of a request alike; look them up by uuid before
// sending them again.
type InDoubtError struct {
	UUIDs []string
	Err   error
}

func (e *InDoubtError) Error() string {
	ids := strings.Join(e.UUIDs, ", ")
	if len(e.UUIDs) > 3 { // a batch's thousand uuids are in UUIDs, not in every log line
		ids = fmt.Sprintf("%s… (%d jobs)", strings.Join(e.UUIDs[:3], ", "), len(e.UUIDs))
	}
	return fmt.Sprintf("the store's connection broke while the jobs were being committed and the store could not yet tell whether they were: look up %s before sending again (%v)",
		ids, e.Err)
}

func (e *InDoubtError) Unwrap() error { return e.Err }

// settle answers reqs, whose write failed with err in doubt, from what
// the store holds once the write's transaction has ended: a request
// whose jobs are all stored is answered with them, one with none of its
// jobs stored with err (nothing of it was stored: sending it again is
// safe), and the others, or all when the fate cannot be told within
// SetInDoubtWait's time, with an InDoubtError.
func (c *Core) settle(ctx context.Context, err error, reqs []InsertRequest) []InsertResult {
	res := make([]InsertResult, len(reqs))
	found, serr := c.fate(ctx, err, reqs)
	for i, r := range reqs {
		if cerr := checkRequest(r); cerr != nil {
			res[i].Err = cerr // refused before the write, as it was then
			continue
		}
		if serr != nil {
			res[i].Err = &InDoubtError{UUIDs: newUUIDs(r.Jobs), Err: err}
			continue
		}
		jobs := make([]Inserted, 0, len(r.Jobs))
		for _, nj := range r.Jobs {
			if j, ok := found[nj.UUID]; ok {
				jobs = append(jobs, Inserted{Job: j})
			}
		}
		switch len(jobs) {
		case len(r.Jobs):
			res[i].Jobs = jobs
		case 0:
			res[i].Err = err
		default:
			// Some stored, the others deduplicated by an identity key or
			// otherwise left out: which job stands for those is not
			// told by their uuids.
			res[i].Err = &InDoubtError{UUIDs: newUUIDs(r.Jobs), Err: err}
		}
	}
	return res
}

// fate waits for the write that failed with err to have ended in the
// store, then reads which of reqs' jobs it holds.
func (c *Core) fate(ctx context.Context, err error, reqs []InsertRequest) (map[string]abi.Job, error) {
	ctx, cancel := context.WithTimeout(ctx, c.inDoubtWait())
	defer cancel()
	for {
		ended := c.d.Ended(ctx, err)
		if ended == nil {
			found, rerr := c.stored(ctx, reqs)
			if rerr == nil {
				return found, nil
			}
			ended = rerr
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("store: settle an insert in doubt: %w (last: %w)", ctx.Err(), ended)
		case <-time.After(settlePoll):
		}
	}
}

// stored reads the jobs of reqs the store holds. A request is stored
// whole or not at all, so one of its jobs without an identity key (a key
// may have deduplicated its job into another) tells for the request: a
// batch that was not stored costs one read.
func (c *Core) stored(ctx context.Context, reqs []InsertRequest) (map[string]abi.Job, error) {
	found := map[string]abi.Job{}
	for _, r := range reqs {
		if checkRequest(r) != nil {
			continue // refused before the write
		}
		jobs := r.Jobs
		if i := slices.IndexFunc(jobs, func(j NewJob) bool { return j.IdentityKey == "" }); i >= 0 {
			j, err := c.d.GetJob(ctx, "", jobs[i].UUID)
			if errors.Is(err, abi.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			found[j.UUID] = j
		}
		for _, nj := range jobs {
			if _, ok := found[nj.UUID]; ok {
				continue
			}
			j, err := c.d.GetJob(ctx, "", nj.UUID)
			switch {
			case err == nil:
				found[nj.UUID] = j
			case !errors.Is(err, abi.ErrNotFound):
				return nil, err
			}
		}
	}
	return found, nil
}

// SetTimeout sets how long an insert, an action (Act, Cancel, Requeue,
// SetDone, Update) waits for the database ([store] timeout); call it
// once, before the store is used. The runner's writes have bounds of
// their own, and retry.
func (c *Core) SetTimeout(d time.Duration) { c.writeWithin = d }

// bounded is ctx limited by [store] timeout.
func (c *Core) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	d := c.writeWithin
	if d <= 0 {
		d = DefaultTimeout
	}
	return context.WithTimeout(ctx, d)
}

// SetInDoubtWait sets how long an insert in doubt waits for its fate
// ([store] in_doubt_wait); call it once, before the store is used.
func (c *Core) SetInDoubtWait(d time.Duration) { c.settleWithin = d }

func (c *Core) inDoubtWait() time.Duration {
	if c.settleWithin <= 0 {
		return DefaultInDoubtWait
	}
	return c.settleWithin
}

func newUUIDs(jobs []NewJob) []string {
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.UUID
	}
	return ids
}
