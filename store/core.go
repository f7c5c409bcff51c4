package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wasmq/wasmq/abi"
)

// Core is the Store every caller uses: the job rules, once, over a
// Driver's narrow operations. Input is checked here before any SQL;
// every state change goes through abi.CheckTransition; dependents settle,
// identity keys deduplicate, counts and events are noted here, the same
// on every backend.
type Core struct {
	d            Driver
	settleWithin time.Duration // [store] in_doubt_wait (indoubt.go)
	writeWithin  time.Duration // [store] timeout, on inserts and actions (indoubt.go)
}

var _ Store = (*Core)(nil)

// NewCore puts the job rules over d.
func NewCore(d Driver) *Core { return &Core{d: d} }

func (c *Core) Insert(ctx context.Context, jobs []NewJob) ([]Inserted, error) {
	return c.InsertUnder(ctx, Quota{}, jobs)
}

func (c *Core) InsertUnder(ctx context.Context, q Quota, jobs []NewJob) ([]Inserted, error) {
	if err := checkRequest(InsertRequest{Quota: q, Jobs: jobs}); err != nil {
		return nil, err
	}
	// The settle below is not within the write's deadline: [store]
	// timeout may be what cut the write, and the settle is what makes
	// the answer true.
	wctx, cancel := c.bounded(ctx)
	out, err := c.insertUnder(wctx, q, jobs)
	cancel()
	if err != nil && c.d.InDoubt(err) {
		r := c.settle(ctx, err, []InsertRequest{{Quota: q, Jobs: jobs}})[0]
		return r.Jobs, r.Err
	}
	return out, err
}

// insertUnder is InsertUnder of a request checked already.
func (c *Core) insertUnder(ctx context.Context, q Quota, jobs []NewJob) ([]Inserted, error) {
	out := make([]Inserted, len(jobs))
	if !capped(q) && len(jobs) > 0 && isSimple(jobs) {
		if err := c.insertAlone(ctx, jobs, out); err != nil {
			return nil, err
		}
		return out, nil
	}
	err := c.write(ctx, func(tx Tx) error {
		if capped(q) && len(jobs) > 0 {
			if err := withinQuota(ctx, tx, q, jobs); err != nil {
				return err
			}
		}
		if isSimple(jobs) {
			return insertIndependent(ctx, tx, jobs, out)
		}
		if err := lockKeys(ctx, tx, []InsertRequest{{Jobs: jobs}}, []int{0}); err != nil {
			return err
		}
		return insertOneByOne(ctx, tx, jobs, out)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// withinQuota refuses jobs that would take their tenant past q, counting
// under the tenant's lock so that the insert that follows is part of the
// same step for every writer.
func withinQuota(ctx context.Context, tx Tx, q Quota, jobs []NewJob) error {
	tenant := jobs[0].Tenant
	if err := tx.LockTenant(ctx, tenant); err != nil {
		return err
	}
	counts, err := tx.TenantCounts(ctx, tenant)
	if err != nil {
		return err
	}
	waiting, channels := tenantUse(counts)
	return quotaCheck(q, jobs, waiting, channels)
}

// quotaCheck refuses jobs that would take a tenant with waiting jobs in
// channels past q.
func quotaCheck(q Quota, jobs []NewJob, waiting int, channels map[string]bool) error {
	tenant := jobs[0].Tenant
	if q.MaxPending > 0 && waiting+len(jobs) > q.MaxPending {
		return &QuotaError{Field: "max_pending", Msg: fmt.Sprintf("tenant %s has %d jobs waiting; its quota is %d", tenant, waiting, q.MaxPending)}
	}
	if q.MaxChannels > 0 {
		used := len(channels)
		seen := map[string]bool{}
		for _, j := range jobs {
			if !channels[j.Channel] && !seen[j.Channel] {
				seen[j.Channel] = true
				used++
			}
		}
		if used > q.MaxChannels {
			return &QuotaError{Field: "max_channels", Msg: fmt.Sprintf("tenant %s would hold jobs in %d channels; its quota is %d (channels hold jobs until they are vacuumed)", tenant, used, q.MaxChannels)}
		}
	}
	return nil
}

// row is the job a NewJob becomes, in state.
func row(nj NewJob, state abi.State, now time.Time) abi.Job {
	j := abi.Job{UUID: nj.UUID, Tenant: nj.Tenant, Func: nj.Func, Args: orDefault(nj.Args, "[]"),
		Kwargs: orDefault(nj.Kwargs, "{}"), Context: orDefault(nj.Context, "{}"), UserID: nj.UserID,
		ModelName: nj.ModelName, FuncString: nj.FuncString, Description: nj.Description, Channel: nj.Channel,
		Priority: nj.Priority, ETA: nj.ETA, ExpectedAt: nj.ExpectedAt, MaxRetries: nj.MaxRetries,
		IdentityKey: nj.IdentityKey, GraphUUID: nj.GraphUUID, State: state, DateCreated: now, DependsOn: []string{}}
	if state == abi.StateCancelled {
		j.DateCancelled = &now
	}
	return j
}

func orDefault(b json.RawMessage, def string) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage(def)
	}
	return b
}

// insertIndependent stores jobs with no key and no parent in one go.
func insertIndependent(ctx context.Context, tx Tx, jobs []NewJob, out []Inserted) error {
	rows := make([]abi.Job, len(jobs))
	for i, nj := range jobs {
		rows[i] = row(nj, abi.StatePending, tx.Now())
	}
	stored, err := tx.InsertJobs(ctx, rows)
	if err != nil {
		return err
	}
	NotePending(tx.Notes(), stored)
	for i, j := range stored {
		out[i] = Inserted{Job: j}
	}
	return nil
}

// insertAlone stores jobs with no key and no parent, under no quota, in
// a transaction of their own (Driver.InsertPending): the common enqueue,
// in one round trip where the driver can.
func (c *Core) insertAlone(ctx context.Context, jobs []NewJob, out []Inserted) error {
	rows := make([]abi.Job, len(jobs))
	for i, nj := range jobs {
		rows[i] = row(nj, abi.StatePending, time.Time{})
	}
	stored, err := retried(ctx, func() ([]abi.Job, error) { return c.d.InsertPending(ctx, rows) })
	if err != nil {
		return err
	}
	for i, j := range stored {
		out[i] = Inserted{Job: j}
	}
	return nil
}

// insertOneByOne stores jobs in order: identity keys and dependencies
// see the jobs stored before them in the same call.
func insertOneByOne(ctx context.Context, tx Tx, jobs []NewJob, out []Inserted) error {
	// alias maps a deduplicated job's uuid to the job standing for it, so
	// that later entries may depend on it.
	alias := map[string]string{}
	for i, nj := range jobs {
		if nj.IdentityKey != "" {
			existing, err := tx.ActiveWithKey(ctx, nj.Tenant, nj.IdentityKey)
			if err != nil {
				return err
			}
			if existing != nil {
				out[i] = Inserted{Job: *existing, Deduplicated: true}
				alias[nj.UUID] = existing.UUID
				continue
			}
		}
		parents := make([]string, 0, len(nj.DependsOn))
		for _, p := range nj.DependsOn {
			if a, ok := alias[p]; ok {
				p = a
			}
			if p == nj.UUID {
				return &abi.FieldError{Field: "depends_on", Msg: "a job cannot depend on itself", Err: abi.ErrInvalid}
			}
			parents = append(parents, p)
		}
		found, err := tx.LockParents(ctx, nj.Tenant, parents)
		if err != nil {
			return err
		}
		refs := make(map[string]JobRef, len(found))
		for _, r := range found {
			refs[r.UUID] = r
		}
		states := make([]abi.State, len(parents))
		for k, p := range parents {
			ref, ok := refs[p]
			if !ok || ref.Tenant != nj.Tenant { // another tenant's job does not exist for this one
				return &abi.FieldError{Field: "depends_on", Msg: fmt.Sprintf("job %s does not exist", p), Err: abi.ErrInvalid}
			}
			states[k] = ref.State
		}
		stored, err := tx.InsertJobs(ctx, []abi.Job{row(nj, initialState(states), tx.Now())})
		if err != nil {
			return err
		}
		j := stored[0]
		if len(parents) > 0 {
			if err := tx.AddDependencies(ctx, j.UUID, parents); err != nil {
				return err
			}
			j.DependsOn = dedupStrings(parents)
		}
		out[i] = Inserted{Job: j}
		n := tx.Notes()
		n.Counts.Add(j.Tenant, j.Channel, j.State, 1)
		if j.State == abi.StatePending {
			n.Events.Job(EventPending, j.UUID, j.Channel)
		}
	}
	return nil
}

func dedupStrings(xs []string) []string {
	seen := make(map[string]bool, len(xs))
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

func (c *Core) Get(ctx context.Context, tenant, uuid string) (abi.Job, error) {
	if err := checkText("uuid", uuid); err != nil {
		return abi.Job{}, notFound(uuid)
	}
	return c.d.GetJob(ctx, tenant, uuid)
}

func notFound(uuid string) error { return fmt.Errorf("job %q: %w", uuid, abi.ErrNotFound) }

// MaxPageBytes bounds what one page of List holds: a job may carry
// megabytes (arguments up to the body limit, a result up to the host's
// max_output), and a page of a thousand such jobs must not take the server
// down. A page stops at the job that crosses it (a page always has at
// least one job) and says where the next one starts.
const MaxPageBytes = 8 << 20

// listChunk is how many rows List reads at a time at first; it grows
// while the rows are small, so a page of small jobs costs a few queries
// and one of large jobs never holds more than a chunk over the bound.
const listChunk = 16

func (c *Core) List(ctx context.Context, f Filter) (Page, error) {
	if err := f.Validate(); err != nil {
		return Page{}, err
	}
	limit := PageLimit(f.Limit)
	q := ListQuery{Filter: f}
	if f.Cursor != "" {
		created, seq, err := DecodeCursor(f.Cursor)
		if err != nil {
			return Page{}, err
		}
		q.After = &Cursor{Created: time.UnixMicro(created).UTC(), Seq: seq}
	}
	page := Page{Jobs: []abi.Job{}}
	size, chunk := 0, listChunk
	for {
		// One row more than the page needs tells whether there is a next.
		q.Limit = min(chunk, limit+1-len(page.Jobs))
		jobs, err := c.d.ListJobs(ctx, q)
		if err != nil {
			return Page{}, err
		}
		for i, j := range jobs {
			if len(page.Jobs) == limit || (len(page.Jobs) > 0 && size+jobSize(j) > MaxPageBytes) {
				last := page.Jobs[len(page.Jobs)-1]
				page.NextCursor = EncodeCursor(last.DateCreated.UnixMicro(), last.Seq)
				return page, nil
			}
			page.Jobs, size = append(page.Jobs, j), size+jobSize(j)
			if i == len(jobs)-1 {
				q.After = &Cursor{Created: j.DateCreated, Seq: j.Seq}
			}
		}
		if len(jobs) < q.Limit {
			return page, nil // no more rows
		}
		if size < len(page.Jobs)*4096 {
			chunk = min(chunk*4, limit+1)
		}
	}
}

// jobSize approximates a job's weight in a page: what it may hold in bulk.
func jobSize(j abi.Job) int {
	return 1024 + len(j.Args) + len(j.Kwargs) + len(j.Context) + len(j.Result) + len(j.ExcInfo) + len(j.ExcMessage) + len(j.Description)
}

func (c *Core) Attempts(ctx context.Context, tenant, uuid string) ([]abi.Attempt, error) {
	j, err := c.Get(ctx, tenant, uuid)
	if err != nil {
		return nil, err
	}
	recorded, err := c.d.ListAttempts(ctx, uuid)
	if err != nil {
		return nil, err
	}
	return WithCurrent(recorded, j), nil
}

func (c *Core) Counts(ctx context.Context, tenant string) ([]ChannelCount, error) {
	rows, err := c.d.Counts(ctx, tenant)
	if err != nil {
		return nil, err
	}
	var out []ChannelCount
	for _, r := range rows {
		if len(out) == 0 || out[len(out)-1].Channel != r.Channel {
			out = append(out, ChannelCount{Channel: r.Channel, Counts: map[abi.State]int{}})
		}
		out[len(out)-1].Counts[r.State] = r.N
	}
	return out, nil
}

// change writes one job's new row, as decide makes it from the row read
// under lock, then runs then (if any) in the same transaction.
func (c *Core) change(ctx context.Context, tenant, uuid string, decide func(tx Tx, j abi.Job) (abi.Job, error), then func(tx Tx, after abi.Job) error) (abi.Job, error) {
	if err := checkText("uuid", uuid); err != nil {
		return abi.Job{}, notFound(uuid)
	}
	var out abi.Job
	err := c.write(ctx, func(tx Tx) error {
		var err error
		out, err = changeIn(ctx, tx, tenant, uuid, decide, then)
		return err
	})
	return out, err
}

// changeIn is change inside a transaction already open.
func changeIn(ctx context.Context, tx Tx, tenant, uuid string, decide func(tx Tx, j abi.Job) (abi.Job, error), then func(tx Tx, after abi.Job) error) (abi.Job, error) {
	j, err := tx.LockJob(ctx, tenant, uuid)
	if err != nil {
		return j, err
	}
	return changeLocked(ctx, tx, j, decide, then)
}

// changeLocked is changeIn for a job already read under lock.
func changeLocked(ctx context.Context, tx Tx, j abi.Job, decide func(tx Tx, j abi.Job) (abi.Job, error), then func(tx Tx, after abi.Job) error) (abi.Job, error) {
	after, err := decide(tx, j)
	if err != nil {
		return j, err
	}
	if err := tx.UpdateJob(ctx, j, after); err != nil {
		return j, err
	}
	n := tx.Notes()
	n.moved(j, after)
	n.Events.Add(EventChanged, j.Channel)
	if then != nil {
		if err := then(tx, after); err != nil {
			return j, err
		}
	}
	return after, nil
}

// manual runs a manual action: the action's states checked, the new row
// written, dependents settled.
func (c *Core) manual(ctx context.Context, tenant, uuid string, cause abi.Cause, apply func(tx Tx, j abi.Job) (abi.Job, error)) (abi.Job, error) {
	decide, then := manualSteps(ctx, cause, apply)
	return c.change(ctx, tenant, uuid, decide, then)
}

func manualSteps(ctx context.Context, cause abi.Cause, apply func(tx Tx, j abi.Job) (abi.Job, error)) (func(Tx, abi.Job) (abi.Job, error), func(Tx, abi.Job) error) {
	return func(tx Tx, j abi.Job) (abi.Job, error) {
			if err := CheckManual(j, cause); err != nil {
				return j, err
			}
			after, err := apply(tx, j)
			if err != nil {
				return j, err
			}
			return after, abi.CheckTransition(j.State, after.State, cause)
		}, func(tx Tx, after abi.Job) error {
			switch after.State {
			case abi.StateDone:
				return settle(ctx, tx, []string{after.UUID})
			case abi.StateCancelled:
				return cancelDependents(ctx, tx, after.UUID)
			}
			return nil
		}
}

func (c *Core) Requeue(ctx context.Context, tenant, uuid string) (abi.Job, error) {
	ctx, cancel := c.bounded(ctx)
	defer cancel()
	return c.manual(ctx, tenant, uuid, abi.CauseRequeue, requeueApply(ctx))
}

func requeueApply(ctx context.Context) func(tx Tx, j abi.Job) (abi.Job, error) {
	return func(tx Tx, j abi.Job) (abi.Job, error) {
		parents, err := tx.LockParentsOf(ctx, j.UUID)
		if err != nil {
			return j, err
		}
		switch {
		case j.State == abi.StateStarted && j.DateStarted != nil:
			// The running attempt's outcome will not be recorded: its
			// worker no longer holds the job.
			err = tx.RecordAttempt(ctx, endedAttempt(j, tx.Now(), "requeued", "", ""), true)
		case j.State == abi.StateDone:
			// The requeue clears the dates a silent last attempt is read
			// from (WithCurrent): write it down first.
			for _, a := range WithCurrent(nil, j) {
				err = tx.RecordAttempt(ctx, a, false)
			}
		}
		return requeued(j, parents), err
	}
}

func (c *Core) SetDone(ctx context.Context, tenant, uuid string, result json.RawMessage) (abi.Job, error) {
	ctx, cancel := c.bounded(ctx)
	defer cancel()
	if err := checkJSON("result", result, 0); err != nil {
		return abi.Job{}, err
	}
	return c.manual(ctx, tenant, uuid, abi.CauseSetDone, setDoneApply(result))
}

func setDoneApply(result json.RawMessage) func(tx Tx, j abi.Job) (abi.Job, error) {
	return func(tx Tx, j abi.Job) (abi.Job, error) {
		return setDone(j, result, tx.Now()), nil
	}
}

func (c *Core) Cancel(ctx context.Context, tenant, uuid string) (abi.Job, error) {
	ctx, cancel := c.bounded(ctx)
	defer cancel()
	return c.manual(ctx, tenant, uuid, abi.CauseCancel, cancelApply(ctx))
}

func cancelApply(ctx context.Context) func(tx Tx, j abi.Job) (abi.Job, error) {
	return func(tx Tx, j abi.Job) (abi.Job, error) {
		if j.State == abi.StateStarted && j.DateStarted != nil {
			// The worker no longer holds the job: its node interrupts the
			// sandbox on the finished event, and its report applies to
			// nothing. The attempt is written down here, as cancelled.
			if err := tx.RecordAttempt(ctx, endedAttempt(j, tx.Now(), "cancelled", abi.ExcCancelled, "cancelled while running"), true); err != nil {
				return j, err
			}
		}
		return cancelled(j, tx.Now()), nil
	}
}

func (c *Core) Update(ctx context.Context, tenant, uuid string, p Patch) (abi.Job, error) {
	ctx, cancel := c.bounded(ctx)
	defer cancel()
	if err := p.Validate(); err != nil {
		return abi.Job{}, err
	}
	return c.change(ctx, tenant, uuid, func(_ Tx, j abi.Job) (abi.Job, error) {
		return j, p.Apply(&j)
	}, nil)
}

// settle moves the waiting dependents of parents that just finished, and
// theirs in turn: pending once every parent is done, cancelled once all
// finished with one cancelled.
func settle(ctx context.Context, tx Tx, parents []string) error {
	for len(parents) > 0 {
		kids, err := tx.WaitingChildren(ctx, parents)
		if err != nil {
			return err
		}
		parents = nil
		for _, k := range kids {
			states, err := tx.ParentStates(ctx, k.UUID)
			if err != nil {
				return err
			}
			var after abi.Job
			switch settled(states) {
			case abi.StatePending:
				after = k
				after.State = abi.StatePending
			case abi.StateCancelled:
				after = cancelled(k, tx.Now())
				parents = append(parents, k.UUID)
			default:
				continue
			}
			if err := abi.CheckTransition(k.State, after.State, abi.CausePromote); err != nil {
				return err
			}
			if err := tx.UpdateJob(ctx, k, after); err != nil {
				return err
			}
			tx.Notes().moved(k, after)
		}
	}
	return nil
}

// cancelDependents cancels, transitively, every dependent still waiting:
// a cancelled parent will never be done.
func cancelDependents(ctx context.Context, tx Tx, root string) error {
	for frontier := []string{root}; len(frontier) > 0; {
		kids, err := tx.WaitingChildren(ctx, frontier)
		if err != nil {
			return err
		}
		frontier = nil
		for _, k := range kids {
			after := cancelled(k, tx.Now())
			if err := abi.CheckTransition(k.State, after.State, abi.CauseCancel); err != nil {
				return err
			}
			if err := tx.UpdateJob(ctx, k, after); err != nil {
				return err
			}
			tx.Notes().moved(k, after)
			frontier = append(frontier, k.UUID)
		}
	}
	return nil
}

func (c *Core) PendingSince(ctx context.Context, afterVersion int64, limit int) ([]Candidate, error) {
	if limit <= 0 {
		limit = 1000
	}
	return c.d.PendingSince(ctx, afterVersion, limit)
}

func (c *Core) PendingDue(ctx context.Context, afterVersion int64, until time.Time, channels []string, limit int) ([]Candidate, error) {
	if limit <= 0 {
		limit = 1000
	}
	return c.d.PendingDue(ctx, afterVersion, until.UTC(), channels, limit)
}

func (c *Core) PendingByETA(ctx context.Context, after ETACursor, until time.Time, limit int) ([]Candidate, error) {
	if limit <= 0 {
		limit = 1000
	}
	return c.d.PendingByETA(ctx, after, until.UTC(), limit)
}

func (c *Core) PendingHigh(ctx context.Context) (int64, error) { return c.d.PendingHigh(ctx) }

func (c *Core) Pending(ctx context.Context, uuids []string) ([]Candidate, error) {
	if len(uuids) == 0 {
		return nil, nil
	}
	return c.d.Pending(ctx, uuids)
}

func (c *Core) Enqueue(ctx context.Context, jobs []Candidate, leaseUntil time.Time) ([]string, error) {
	if len(jobs) == 0 {
		return nil, nil
	}
	return noneOnError(retried(ctx, func() ([]string, error) { return c.d.Enqueue(ctx, jobs, leaseUntil) }))
}

func (c *Core) Running(ctx context.Context) ([]RunningJob, error) { return c.d.Running(ctx) }

func (c *Core) FailedChannels(ctx context.Context) (map[string]int, error) {
	rows, err := c.d.FailedChannels(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(rows))
	for _, r := range rows {
		out[r.Channel] = r.N
	}
	return out, nil
}

func (c *Core) Start(ctx context.Context, jobs []Candidate, workerID string, leaseUntil time.Time) ([]Claimed, error) {
	if len(jobs) == 0 {
		return nil, nil
	}
	return noneOnError(retried(ctx, func() ([]Claimed, error) { return c.d.Start(ctx, jobs, workerID, leaseUntil) }))
}

func (c *Core) Claim(ctx context.Context, workerID string, limit int, leaseUntil time.Time) ([]Claimed, error) {
	if limit <= 0 {
		return nil, nil
	}
	return noneOnError(retried(ctx, func() ([]Claimed, error) { return c.d.Claim(ctx, workerID, limit, leaseUntil) }))
}

// noneOnError: a write that failed changed nothing, so it reports
// nothing, whatever rows the driver read before its commit failed
// (SQLite on a full disk returned them with the error). A node that ran
// the jobs of a failed start would run jobs the store does not say are
// started, and one that counted them kept their worker slots for ever.
func noneOnError[T any](rows []T, err error) ([]T, error) {
	if err != nil {
		return nil, err
	}
	return rows, nil
}

func (c *Core) Complete(ctx context.Context, cs []Completion) ([]string, error) {
	if len(cs) == 0 {
		return nil, nil
	}
	outcomes := make([]Outcome, 0, len(cs))
	at := make(map[string]int, len(cs)) // job → its report in outcomes
	for _, x := range cs {
		if err := abi.CheckTransition(abi.StateStarted, x.To, x.Cause); err != nil {
			return nil, fmt.Errorf("complete %s: %w", x.UUID, err)
		}
		x = x.clean()
		if x.To != abi.StatePending {
			x.ETA = nil
		}
		// A done job's row says all a silent last attempt would
		// (WithCurrent); a requeue writes it down first.
		o := Outcome{Completion: x, Outcome: outcomeOf(x), Silent: x.To == abi.StateDone && len(x.Logs) == 0}
		// One report per job. Of one attempt, the first wins; a later
		// attempt's report supersedes an earlier one's, which can only
		// be stale (the job was taken back before it started again):
		// kept, it would apply to nothing and hide the current one.
		if i, ok := at[x.UUID]; ok {
			if x.Attempt > outcomes[i].Attempt {
				outcomes[i] = o
			}
			continue
		}
		at[x.UUID] = len(outcomes)
		outcomes = append(outcomes, o)
	}
	// In uuid order, the order every other writer locks jobs in
	// (LockJobs, LockParents): a batch of outcomes then waits for them,
	// not deadlocks with them (a second each, PostgreSQL's
	// deadlock_timeout, before one of them is run again).
	slices.SortFunc(outcomes, func(a, b Outcome) int { return strings.Compare(a.UUID, b.UUID) })
	for i, o := range outcomes {
		at[o.UUID] = i
	}
	var applied []string
	err := c.write(ctx, func(tx Tx) error {
		applied = applied[:0]
		for i := range outcomes {
			if outcomes[i].Ended.IsZero() {
				outcomes[i].Ended = tx.Now()
			}
		}
		done, err := tx.Complete(ctx, outcomes)
		if err != nil {
			return err
		}
		recs, err := recordRows(outcomes, done)
		if err != nil {
			return err
		}
		if len(recs) > 0 {
			if err := tx.PutRecords(ctx, recs); err != nil {
				return err
			}
		}
		n := tx.Notes()
		var parents []string
		for _, d := range done {
			applied = append(applied, d.UUID)
			n.Counts.Add(d.Tenant, d.Channel, abi.StateStarted, -1)
			n.Counts.Add(d.Tenant, d.Channel, d.State, 1)
			// A failed job needs no event of its own: the finished event
			// already brings a round, which checks sequential channels.
			n.Events.Finished(d.UUID, d.Channel, outcomes[at[d.UUID]].Version)
			// The fuel the attempt used, told to the leader with the
			// finished event.
			if i, ok := at[d.UUID]; ok {
				if u := outcomes[i].Usage; u != nil && u.Fuel > 0 {
					n.Events.Fuel(d.Tenant, outcomes[i].WorkerID, u.Fuel)
				}
			}
			if d.State == abi.StatePending {
				n.Events.Job(EventPending, d.UUID, d.Channel)
			}
			if d.HasChildren {
				parents = append(parents, d.UUID)
			}
		}
		return settle(ctx, tx, parents)
	})
	if err != nil {
		return nil, err
	}
	return applied, nil
}

func (c *Core) RenewLeases(ctx context.Context, workerID string, leaseUntil time.Time) ([]Held, error) {
	return noneOnError(c.d.RenewLeases(ctx, workerID, leaseUntil))
}

func (c *Core) Disown(ctx context.Context, workerID string, jobs []Held) ([]Reaped, error) {
	if len(jobs) == 0 {
		return nil, nil
	}
	want := make(map[string]int, len(jobs))
	uuids := make([]string, 0, len(jobs))
	for _, h := range jobs {
		want[h.UUID] = h.Attempt
		uuids = append(uuids, h.UUID)
	}
	var out []Reaped
	err := c.write(ctx, func(tx Tx) error {
		held, err := tx.StartedBy(ctx, workerID, uuids)
		if err != nil {
			return err
		}
		// One ended and started again since it was read is not a stray.
		held = slices.DeleteFunc(held, func(j abi.Job) bool { return j.Attempt != want[j.UUID] })
		out, err = takeBack(ctx, tx, held, tx.Now(), disowned)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// takeBack moves jobs their workers will not report on (dead, gone, or
// never told) to what rule makes of each, recording the attempt each held.
func takeBack(ctx context.Context, tx Tx, jobs []abi.Job, now time.Time, rule func(abi.Job) (abi.Job, string)) ([]Reaped, error) {
	var out []Reaped
	for _, j := range jobs {
		after, msg := rule(j)
		if err := abi.CheckTransition(j.State, after.State, abi.CauseDead); err != nil {
			return out, err
		}
		if err := tx.UpdateJob(ctx, j, after); err != nil {
			return out, err
		}
		n := tx.Notes()
		n.moved(j, after)
		if after.State == abi.StateFailed {
			n.Events.Add(EventChanged, j.Channel)
		}
		if j.State == abi.StateStarted && j.DateStarted != nil {
			if err := tx.RecordAttempt(ctx, endedAttempt(j, now, "dead", abi.ExcJobFoundDead, msg), true); err != nil {
				return out, err
			}
		}
		out = append(out, Reaped{UUID: j.UUID, State: after.State})
	}
	return out, nil
}

func (c *Core) ReapExpired(ctx context.Context, now time.Time, gone []string) ([]Reaped, error) {
	var out []Reaped
	err := c.write(ctx, func(tx Tx) error {
		dead, err := tx.ExpiredJobs(ctx, now, gone)
		if err != nil {
			return err
		}
		out, err = takeBack(ctx, tx, dead, now, reaped)
		return err
	})
	if err != nil {
		return out, err
	}
	return out, c.d.Maintain(ctx)
}

func (c *Core) Vacuum(ctx context.Context, channel string, olderThan time.Time) (int, error) {
	var n int
	err := c.write(ctx, func(tx Tx) error {
		var parents []string
		var err error
		if n, parents, err = tx.DeleteFinished(ctx, channel, olderThan); err != nil {
			return err
		}
		// A job requeued after a parent was cancelled waits for it; once
		// that parent is gone it counts as done, and nothing else would
		// ever settle the job.
		return settle(ctx, tx, parents)
	})
	return n, err
}

func (c *Core) Subscribe(ctx context.Context) (<-chan Event, error) { return c.d.Subscribe(ctx) }
func (c *Core) Announce(ctx context.Context, nodeID string) error   { return c.d.Announce(ctx, nodeID) }
func (c *Core) Clock(ctx context.Context) (time.Time, error)        { return c.d.Clock(ctx) }

// Unavailable: the database cannot serve now, by its driver's word, or
// it did not answer within a deadline (a client that gives up cancels;
// only a bound of the server's own expires), or it kept ending a write
// to break deadlocks with other writers, every run of it (ErrRetryTx
// still, after maxTxRetries): contention of the moment, nothing of the
// write stored, which the same request sent again may win.
func (c *Core) Unavailable(err error) bool {
	return err != nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrRetryTx) || c.d.Unavailable(err))
}
func (c *Core) Hold(ctx context.Context, workerID string) error { return c.d.Hold(ctx, workerID) }
func (c *Core) Unheld(ctx context.Context) ([]string, error)    { return c.d.Unheld(ctx) }
func (c *Core) TryLead(ctx context.Context, nodeID string, hold time.Duration) (bool, error) {
	return c.d.TryLead(ctx, nodeID, hold)
}
func (c *Core) Ping(ctx context.Context) error { return c.d.Ping(ctx) }
func (c *Core) Close() error                   { return c.d.Close() }
