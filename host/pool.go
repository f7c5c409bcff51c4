package host

// Why idle instances have a memory budget: a pooled instance keeps the
// linear memory and tables its last job grew, so that the next job skips
// instantiating. Pools were bounded in count only (pool_size, raised to
// the runner's workers): sixteen jobs of a module that grew its memory to
// 64 MiB and returned left 1 GiB resident after they ended, and a node of
// 100 workers could hold 6.4 GiB a module a tenant, idle. Now the idle
// instances of every pool hold at most host.pool_memory together: pooling
// one past it first closes the instances pooled longest ago (of any
// module or tenant), and an instance larger than the whole budget is not
// pooled.

// heldBytes is what an idle instance holds: its linear memory as far as
// it was ever written, and its tables at 8 bytes an entry.
func (in *instance) heldBytes() uint64 {
	var n uint64
	if in.mem != nil {
		n = min(in.mem.dirty, uint64(cap(in.mem.buf)))
	}
	return n + 8*(in.code.tableEntries+in.tableGrown)
}

// poolLocked puts in at the top of its pool, within the budget, and
// returns what must be closed once h.mu is released: in itself when it
// cannot fit, or the instances closed to make room.
func (h *Host) poolLocked(in *instance) []*instance {
	in.held = in.heldBytes()
	budget := uint64(h.cfg.PoolMemory)
	if in.held > budget {
		return []*instance{in}
	}
	var out []*instance
	for h.idleBytes+in.held > budget {
		old := h.idleFirst
		h.takeIdleLocked(old)
		out = append(out, old)
	}
	in.code.pools[in.tenant] = append(in.code.pools[in.tenant], in)
	// At the end of the idle list, linked through the instances
	// themselves: a job's release allocates nothing.
	in.idle, in.idlePrev = true, h.idleLast
	if h.idleLast != nil {
		h.idleLast.idleNext = in
	} else {
		h.idleFirst = in
	}
	h.idleLast = in
	h.idleBytes += in.held
	return out
}

// unpoolLocked takes in, just removed from its pool, off the idle list.
func (h *Host) unpoolLocked(in *instance) {
	if !in.idle {
		return
	}
	if in.idlePrev != nil {
		in.idlePrev.idleNext = in.idleNext
	} else {
		h.idleFirst = in.idleNext
	}
	if in.idleNext != nil {
		in.idleNext.idlePrev = in.idlePrev
	} else {
		h.idleLast = in.idlePrev
	}
	in.idle, in.idlePrev, in.idleNext = false, nil, nil
	h.idleBytes -= in.held
}

// takeIdleLocked takes the idle instance in out of its pool and off the
// idle list, for its caller to close once h.mu is released.
func (h *Host) takeIdleLocked(in *instance) {
	pool := in.code.pools[in.tenant]
	for i, p := range pool {
		if p == in {
			in.code.pools[in.tenant] = append(pool[:i:i], pool[i+1:]...)
			break
		}
	}
	h.unpoolLocked(in)
}
