package store

import "github.com/wasmq/wasmq/abi"

// CountKey names one of Counts' numbers.
type CountKey struct {
	Tenant, Channel string
	State           abi.State
}

// CountDeltas collects how one write transaction changed the job counts,
// for a store that keeps them beside the jobs: written with the
// transaction, so that Counts need not scan the jobs.
type CountDeltas map[CountKey]int

// Add notes n jobs more (or fewer, n < 0) of tenant in channel and state.
func (d *CountDeltas) Add(tenant, channel string, state abi.State, n int) {
	if *d == nil {
		*d = CountDeltas{}
	}
	(*d)[CountKey{tenant, channel, state}] += n
}

// Moved notes a job that went from one (tenant, channel, state) to
// another; nothing if it stayed.
func (d *CountDeltas) Moved(from, to abi.Job) {
	if from.Tenant != to.Tenant || from.Channel != to.Channel || from.State != to.State {
		d.Add(from.Tenant, from.Channel, from.State, -1)
		d.Add(to.Tenant, to.Channel, to.State, 1)
	}
}

// Columns are the non-zero deltas as four columns, for one statement.
func (d CountDeltas) Columns() (tenants, channels, states []string, ns []int64) {
	for k, n := range d {
		if n != 0 {
			tenants, channels = append(tenants, k.Tenant), append(channels, k.Channel)
			states, ns = append(states, string(k.State)), append(ns, int64(n))
		}
	}
	return tenants, channels, states, ns
}
