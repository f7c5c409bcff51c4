package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/wasmq/wasmq/abi"
)

// InsertRequest is one caller's jobs in a group commit (Store.InsertEach):
// stored all or none, under its tenant's Quota (zero: none).
type InsertRequest struct {
	Quota Quota
	Jobs  []NewJob
}

// InsertResult is the answer to one InsertRequest: its jobs, or why none
// of them were stored.
type InsertResult struct {
	Jobs []Inserted
	Err  error
}

// InsertEach stores many callers' requests in one transaction (group
// commit), each as InsertUnder would have alone: a request refused (bad
// input, quota, unknown parent, uuid taken) gets its own error and stores
// nothing, and the others are stored. The error returned is the
// transaction's own (the database failed): then no request was stored.
// A write whose commit is in doubt (Driver.InDoubt) is settled first: each
// request is answered as stored or not once the store can tell, or with
// an InDoubtError (see settle).
//
// Requests are applied as if one after another: a quota counts the jobs
// of the requests admitted before it in the group, an identity key sees
// the jobs stored before it. Requests whose jobs carry no identity key
// and no dependency are stored together in one multi-row insert; the
// others each under a savepoint, so that undoing one undoes only it.
// The write waits for the database at most [store] timeout (SetTimeout);
// past it, it is settled as one in doubt.
func (c *Core) InsertEach(ctx context.Context, reqs []InsertRequest) ([]InsertResult, error) {
	wctx, cancel := c.bounded(ctx)
	res, err := c.insertEach(wctx, reqs)
	cancel()
	if err != nil && c.d.InDoubt(err) {
		return c.settle(ctx, err, reqs), nil
	}
	return res, err
}

func (c *Core) insertEach(ctx context.Context, reqs []InsertRequest) ([]InsertResult, error) {
	res := make([]InsertResult, len(reqs))
	var simple, complex []int
	for i, r := range reqs {
		if err := checkRequest(r); err != nil {
			res[i].Err = err
			continue
		}
		if len(r.Jobs) == 0 {
			res[i].Jobs = []Inserted{}
			continue
		}
		if isSimple(r.Jobs) {
			simple = append(simple, i)
		} else {
			complex = append(complex, i)
		}
	}
	if len(simple)+len(complex) == 0 {
		return res, nil
	}
	// Keyed requests are applied in key order (lockKeys takes the keys in
	// that order anyway); the order between concurrent callers is not
	// theirs to expect.
	slices.SortStableFunc(complex, func(a, b int) int { return compareKeys(reqs[a].Jobs, reqs[b].Jobs) })

	// careful: every request under its own savepoint. The first attempt
	// stores the simple requests in one insert; should that fail (a uuid
	// taken: a caller's mistake, not the database's), the group is
	// written again with each request on its own, so only the culprit
	// fails.
	attempt := func(careful bool) error {
		return c.write(ctx, func(tx Tx) error {
			for _, i := range append(slices.Clone(simple), complex...) {
				res[i] = InsertResult{}
			}
			g := &group{tx: tx, quotas: map[string]*tally{}}
			if err := g.lockTenants(ctx, reqs, simple, complex); err != nil {
				return err
			}
			if err := lockKeys(ctx, tx, reqs, complex); err != nil {
				return err
			}
			var bulk []int
			for _, i := range simple {
				if err := g.admit(reqs[i]); err != nil {
					res[i].Err = err
					continue
				}
				if careful {
					res[i] = g.alone(ctx, reqs[i], func(out []Inserted) error { return insertIndependent(ctx, tx, reqs[i].Jobs, out) })
					if g.failed != nil {
						return g.failed
					}
					continue
				}
				bulk = append(bulk, i)
				g.took(reqs[i])
			}
			if len(bulk) > 0 {
				var jobs []NewJob
				for _, i := range bulk {
					jobs = append(jobs, reqs[i].Jobs...)
				}
				out := make([]Inserted, len(jobs))
				if err := insertIndependent(ctx, tx, jobs, out); err != nil {
					return &bulkError{err}
				}
				for _, i := range bulk {
					res[i].Jobs, out = out[:len(reqs[i].Jobs)], out[len(reqs[i].Jobs):]
				}
			}
			for _, i := range complex {
				if err := g.admit(reqs[i]); err != nil {
					res[i].Err = err
					continue
				}
				res[i] = g.alone(ctx, reqs[i], func(out []Inserted) error { return insertOneByOne(ctx, tx, reqs[i].Jobs, out) })
				if g.failed != nil {
					return g.failed
				}
			}
			return nil
		})
	}
	var err error
	if len(complex) == 0 && !slices.ContainsFunc(simple, func(i int) bool { return capped(reqs[i].Quota) }) {
		// The common group: plain jobs, no quota. One insert in a
		// transaction of its own; a uuid taken sends the group down the
		// careful path below, where only its culprit fails.
		err = c.insertGroup(ctx, reqs, simple, res)
		if err == nil {
			return res, nil
		}
		if !refusal(err) {
			return nil, err
		}
		err = &bulkError{err}
	} else {
		err = attempt(false)
	}
	var be *bulkError
	if errors.As(err, &be) {
		err = attempt(true)
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// insertGroup stores the requests at idx, all plain and under no quota,
// with Driver.InsertPending, and hands each its jobs.
func (c *Core) insertGroup(ctx context.Context, reqs []InsertRequest, idx []int, res []InsertResult) error {
	if len(idx) == 0 {
		return nil
	}
	jobs := reqs[idx[0]].Jobs // a group of one request (a batch) is not copied
	if len(idx) > 1 {
		n := 0
		for _, i := range idx {
			n += len(reqs[i].Jobs)
		}
		jobs = make([]NewJob, 0, n)
		for _, i := range idx {
			jobs = append(jobs, reqs[i].Jobs...)
		}
	}
	out := make([]Inserted, len(jobs))
	if err := c.insertAlone(ctx, jobs, out); err != nil {
		return err
	}
	for _, i := range idx {
		res[i].Jobs, out = out[:len(reqs[i].Jobs)], out[len(reqs[i].Jobs):]
	}
	return nil
}

// lockKeys takes every identity key of the group, in (tenant, key)
// order, before any is used: a request may hold several keys in its own
// order, and two groups taking theirs in different orders would wait on
// each other (PostgreSQL then fails one of them, with every request in
// it). ActiveWithKey keeps its key until the transaction ends; what it
// reads here is read again when the request is stored.
func lockKeys(ctx context.Context, tx Tx, reqs []InsertRequest, complex []int) error {
	var keys [][2]string
	for _, i := range complex {
		for _, j := range reqs[i].Jobs {
			if j.IdentityKey != "" {
				keys = append(keys, [2]string{j.Tenant, j.IdentityKey})
			}
		}
	}
	if len(keys) < 2 {
		return nil // one key cannot be taken out of order
	}
	slices.SortFunc(keys, func(a, b [2]string) int {
		if c := cmpString(a[0], b[0]); c != 0 {
			return c
		}
		return cmpString(a[1], b[1])
	})
	for _, k := range slices.Compact(keys) {
		if _, err := tx.ActiveWithKey(ctx, k[0], k[1]); err != nil {
			return err
		}
	}
	return nil
}

// bulkError: the one insert of the simple requests failed.
type bulkError struct{ err error }

func (e *bulkError) Error() string { return e.err.Error() }
func (e *bulkError) Unwrap() error { return e.err }

// checkRequest is InsertUnder's validation of one request.
func checkRequest(r InsertRequest) error {
	q, jobs := r.Quota, r.Jobs
	if q.MaxPending < 0 || q.MaxChannels < 0 {
		return fmt.Errorf("quota %+v: bounds must be >= 0: %w", q, abi.ErrInvalid)
	}
	for i, j := range jobs {
		if err := j.Validate(); err != nil {
			if len(jobs) > 1 {
				return fmt.Errorf("job %d: %w", i, err)
			}
			return err
		}
	}
	if capped(q) {
		for i, j := range jobs {
			if j.Tenant != jobs[0].Tenant {
				return fmt.Errorf("job %d: a quota applies to one tenant's jobs, got %q and %q: %w", i, jobs[0].Tenant, j.Tenant, abi.ErrInvalid)
			}
		}
	}
	return nil
}

func capped(q Quota) bool { return q.MaxPending > 0 || q.MaxChannels > 0 }

func isSimple(jobs []NewJob) bool {
	for _, j := range jobs {
		if j.IdentityKey != "" || len(j.DependsOn) > 0 {
			return false
		}
	}
	return true
}

// compareKeys orders requests by their first identity key (tenant, key).
func compareKeys(a, b []NewJob) int {
	ka, kb := firstKey(a), firstKey(b)
	if c := cmpString(ka[0], kb[0]); c != 0 {
		return c
	}
	return cmpString(ka[1], kb[1])
}

func firstKey(jobs []NewJob) [2]string {
	for _, j := range jobs {
		if j.IdentityKey != "" {
			return [2]string{j.Tenant, j.IdentityKey}
		}
	}
	return [2]string{}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// group is one InsertEach transaction under way.
type group struct {
	tx     Tx
	quotas map[string]*tally // by tenant, for the tenants under a quota
	// failed is a database error met inside a savepoint: the whole
	// transaction is lost then, not only the request.
	failed error
}

// tally is a tenant's counts as the group has changed them so far.
type tally struct {
	waiting  int
	channels map[string]bool
}

// lockTenants takes the quota lock of every tenant under a quota, in
// tenant order (two groups never wait for each other in a cycle), and
// reads their counts once: the group then keeps them itself.
func (g *group) lockTenants(ctx context.Context, reqs []InsertRequest, lists ...[]int) error {
	var tenants []string
	for _, l := range lists {
		for _, i := range l {
			if capped(reqs[i].Quota) {
				tenants = append(tenants, reqs[i].Jobs[0].Tenant)
			}
		}
	}
	slices.Sort(tenants)
	for _, t := range slices.Compact(tenants) {
		if err := g.tx.LockTenant(ctx, t); err != nil {
			return err
		}
		counts, err := g.tx.TenantCounts(ctx, t)
		if err != nil {
			return err
		}
		w, ch := tenantUse(counts)
		g.quotas[t] = &tally{waiting: w, channels: ch}
	}
	return nil
}

// tenantUse sums a tenant's counts: jobs waiting, channels in use.
func tenantUse(counts []CountRow) (int, map[string]bool) {
	waiting := 0
	channels := map[string]bool{}
	for _, c := range counts {
		if c.N <= 0 {
			continue
		}
		channels[c.Channel] = true
		switch c.State {
		case abi.StateWaitDependencies, abi.StatePending, abi.StateEnqueued:
			waiting += c.N
		}
	}
	return waiting, channels
}

// admit checks a request against its tenant's quota as the group has
// used it so far.
func (g *group) admit(r InsertRequest) error {
	if !capped(r.Quota) {
		return nil
	}
	t := g.quotas[r.Jobs[0].Tenant]
	return quotaCheck(r.Quota, r.Jobs, t.waiting, t.channels)
}

// took counts a stored request against its tenant's quota.
func (g *group) took(r InsertRequest) {
	if !capped(r.Quota) {
		return
	}
	t := g.quotas[r.Jobs[0].Tenant]
	t.waiting += len(r.Jobs)
	for _, j := range r.Jobs {
		t.channels[j.Channel] = true
	}
}

// alone stores one request under a savepoint: a refusal rolls back to
// it, with the notes the request had added, and leaves the others.
func (g *group) alone(ctx context.Context, r InsertRequest, insert func(out []Inserted) error) InsertResult {
	if err := g.tx.Savepoint(ctx); err != nil {
		g.failed = err
		return InsertResult{Err: err}
	}
	mark := g.tx.Notes().mark()
	out := make([]Inserted, len(r.Jobs))
	if err := insert(out); err != nil {
		if !refusal(err) {
			g.failed = err
			return InsertResult{Err: err}
		}
		if rerr := g.tx.RollbackToSavepoint(ctx); rerr != nil {
			g.failed = rerr
			return InsertResult{Err: rerr}
		}
		g.tx.Notes().reset(mark)
		return InsertResult{Err: err}
	}
	if err := g.tx.ReleaseSavepoint(ctx); err != nil {
		g.failed = err
		return InsertResult{Err: err}
	}
	g.took(r)
	return InsertResult{Jobs: out}
}

// refusal tells a caller's mistake from a database failure.
func refusal(err error) bool {
	var qe *QuotaError
	return errors.Is(err, abi.ErrInvalid) || errors.Is(err, abi.ErrConflict) || errors.Is(err, abi.ErrNotFound) || errors.As(err, &qe)
}

// notesMark is where a transaction's notes stood: events only grow, so
// lengths are enough; counts are copied (a handful of keys).
type notesMark struct {
	events   int
	channels []int
	uuids    []int
	counts   CountDeltas
}

func (n *Notes) mark() notesMark {
	m := notesMark{events: len(n.Events), counts: maps.Clone(n.Counts)}
	for _, e := range n.Events {
		m.channels, m.uuids = append(m.channels, len(e.Channels)), append(m.uuids, len(e.UUIDs))
	}
	return m
}

func (n *Notes) reset(m notesMark) {
	n.Events = n.Events[:m.events]
	for i := range n.Events {
		n.Events[i].Channels, n.Events[i].UUIDs = n.Events[i].Channels[:m.channels[i]], n.Events[i].UUIDs[:m.uuids[i]]
	}
	n.Counts = m.counts
}
