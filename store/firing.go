package store

import (
	"cmp"
	"context"
	"errors"
	"slices"

	"github.com/wasmq/wasmq/abi"
)

// FireResult is what FireEach did with one Firing: what FireSchedule
// would have answered for it alone.
type FireResult struct {
	Fired Fired
	Err   error
	// Untried: FireEach did not try it, after an earlier due time of its
	// schedule that did not fire or a refusal of its tenant on
	// max_pending (then Err is that refusal).
	Untried bool
}

// FireEach fires many due times in one transaction, each as FireSchedule
// would alone: the leader's pass fires its due schedules a tenant at a
// time, one commit for all, where each firing was a transaction of its
// own. The rules beyond FireSchedule's:
//
//   - firings are applied by tenant, name, then due time (the order their
//     rows are locked in, whatever the order given);
//   - one refused (its schedule gone, its job invalid, a quota) gets its
//     error and changes nothing; the others are applied;
//   - after a due time of a schedule that did not fire (refused, or not
//     fired: fired already, changed, paused), its later ones are not
//     tried (Fired false): they wait for a fresh read, as it does;
//   - after a firing of a tenant refused on max_pending, that tenant's
//     later firings are refused alike, untried: a tenant at its quota
//     costs a lock and a count, not one per schedule it holds.
//
// The error returned is the transaction's own (the database failed):
// then nothing was fired. Firings are idempotent (a due time fires once,
// by the anchor), so a group in doubt is settled by the next pass.
func (c *Core) FireEach(ctx context.Context, fs []Firing) ([]FireResult, error) {
	res := make([]FireResult, len(fs))
	var todo []int
	for i, f := range fs {
		if err := checkFiring(&fs[i]); err != nil {
			res[i].Err = err
			continue
		}
		if f.Due.IsZero() {
			res[i].Err = invalid("due", "FireEach fires due times; a run by hand is FireSchedule's")
			continue
		}
		todo = append(todo, i)
	}
	slices.SortStableFunc(todo, func(a, b int) int {
		return cmp.Or(cmp.Compare(fs[a].Tenant, fs[b].Tenant), cmp.Compare(fs[a].Name, fs[b].Name), fs[a].Due.Compare(fs[b].Due))
	})
	if len(todo) == 0 {
		return res, nil
	}
	err := c.write(ctx, func(tx Tx) error {
		for _, i := range todo {
			res[i] = FireResult{}
		}
		g := &group{tx: tx, quotas: map[string]*tally{}}
		reqs := make([]InsertRequest, len(fs))
		for _, i := range todo {
			reqs[i] = InsertRequest{Quota: fs[i].Quota, Jobs: []NewJob{fs[i].Job}}
		}
		// Locks in one order, that of every writer: tenants, then
		// schedules, then identity keys (a hand run locks its schedule
		// before its job's key; a group commit its tenants before its
		// keys).
		if err := g.lockTenants(ctx, reqs, todo); err != nil {
			return err
		}
		rows := map[[2]string]Schedule{}
		for _, i := range todo {
			key := [2]string{fs[i].Tenant, fs[i].Name}
			if _, ok := rows[key]; ok {
				continue
			}
			s, err := tx.LockSchedule(ctx, key[0], key[1])
			if errors.Is(err, abi.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			rows[key] = s
		}
		if err := lockKeys(ctx, tx, reqs, todo); err != nil {
			return err
		}
		stopped := map[[2]string]bool{} // schedules whose earlier due time did not fire
		full := map[string]error{}      // tenants refused on max_pending
		for _, i := range todo {
			f := fs[i]
			key := [2]string{f.Tenant, f.Name}
			if stopped[key] {
				res[i].Untried = true
				continue
			}
			if qe := full[f.Tenant]; qe != nil {
				res[i].Err, res[i].Untried, stopped[key] = qe, true, true
				continue
			}
			s, ok := rows[key]
			if !ok {
				res[i].Err, stopped[key] = scheduleNotFound(f.Name), true
				continue
			}
			out, refused, err := fireLocked(ctx, tx, g, f, reqs[i], s)
			if err != nil {
				return err
			}
			rows[key] = out.Schedule
			var qe *QuotaError
			if errors.As(refused, &qe) && qe.Field == "max_pending" {
				full[f.Tenant] = refused
			}
			res[i] = FireResult{Fired: out, Err: refused}
			stopped[key] = !out.Fired
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// fireLocked applies one firing (a due time, or a run by hand with Due
// zero) to its schedule s, locked, inside a transaction whose tenants'
// quotas g holds; out.Schedule is s as it leaves it. refused is the
// firing's own refusal (a quota), met before it wrote anything;
// err fails the transaction (on PostgreSQL a statement that failed ends
// it, so no write's error is a firing's alone).
func fireLocked(ctx context.Context, tx Tx, g *group, f Firing, req InsertRequest, s Schedule) (out Fired, refused, err error) {
	if !f.Due.IsZero() && (s.Paused || s.Version != f.Version || !f.Due.After(s.Anchor)) {
		return Fired{Schedule: s}, nil, nil
	}
	if err := g.admit(req); err != nil {
		return Fired{Schedule: s}, err, nil
	}
	ins := make([]Inserted, 1)
	if err := insertOneByOne(ctx, tx, req.Jobs, ins); err != nil {
		return Fired{Schedule: s}, nil, err
	}
	g.took(req)
	now := tx.Now()
	if !f.Due.IsZero() { // a run by hand leaves the due times alone
		s.Anchor, s.NextDue = f.Due, f.Due
		if f.Next.After(f.Due) && !f.Next.After(NeverDue) {
			s.NextDue = f.Next
		}
	}
	s.LastJob, s.LastFired = ins[0].Job.UUID, &now
	if err := tx.UpdateSchedule(ctx, s); err != nil {
		return Fired{}, nil, err
	}
	return Fired{Fired: true, Job: ins[0], Schedule: s}, nil, nil
}

// checkFiring is FireSchedule's validation of one firing, before any SQL.
func checkFiring(f *Firing) error {
	if err := scheduleKey(f.Tenant, f.Name); err != nil {
		return err
	}
	if f.Job.Tenant != f.Tenant {
		return invalid("tenant", "a schedule creates jobs of its own tenant only")
	}
	if len(f.Job.DependsOn) > 0 {
		return invalid("depends_on", "a scheduled job depends on nothing")
	}
	if err := f.Job.Validate(); err != nil {
		return err
	}
	if err := checkDate("due", &f.Due); !f.Due.IsZero() && err != nil {
		return err
	}
	return nil
}
