package host

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Why instances' memory has budgets beyond memory_limit: memory_limit
// bounds one instance and the workers bound how many run, so a node's
// worst case is workers × memory_limit, twice over with each instance's
// kernel arena: 100 workers at 256 MiB are 50 GiB, past most machines. A
// tenant whose jobs all grow to their limit would then have the node
// ended by the system's out-of-memory killer, and with it every tenant's
// running attempts. So the host counts what each instance's linear memory
// and kernel arena hold, by tenant and for the node. A grow or an
// instantiation that would pass the tenant's max_memory or the node's
// host.max_memory first closes idle instances (the tenant's own for its
// budget, any for the node's), and is refused if that is not enough:
// memory.grow returns -1 and the attempt ends wasmq.MemoryBudget, which
// is retried like a retryable error, since the memory was taken by other
// attempts, not refused to this one's own size (that is memory_limit).

// tenantMemory is one tenant's account; its held and the node's are
// guarded by Host.memMu.
type tenantMemory struct {
	h     *Host
	name  string
	limit uint64 // [[tenants]] max_memory; 0: only the node's
	held  uint64
}

// memoryOf returns tenant's account, made at its first instance.
func (h *Host) memoryOf(tenant string) *tenantMemory {
	h.memMu.Lock()
	defer h.memMu.Unlock()
	t := h.memTenants[tenant]
	if t == nil {
		t = &tenantMemory{h: h, name: tenant, limit: uint64(h.cfg.TenantMemory[tenant])}
		h.memTenants[tenant] = t
	}
	return t
}

// grow counts n more bytes for t, closing idle instances to make room if
// it must; it returns why it cannot, or "".
func (t *tenantMemory) grow(n uint64) string {
	if t == nil || n == 0 {
		return ""
	}
	h := t.h
	for {
		h.memMu.Lock()
		tenantOver := t.limit > 0 && t.held+n > t.limit
		nodeOver := h.memLimit > 0 && h.memHeld+n > h.memLimit
		if !tenantOver && !nodeOver {
			t.held += n
			h.memHeld += n
			h.memMu.Unlock()
			return ""
		}
		held, nodeHeld := t.held, h.memHeld
		h.memMu.Unlock()
		owner := ""
		if tenantOver {
			owner = t.name
		}
		if h.closeIdle(owner, n) {
			continue // what they held is counted back: try again
		}
		if tenantOver {
			return fmt.Sprintf("tenants.max_memory of %s reached: the tenant's instances on this node hold %s and this one asked for %s more", ByteSize(t.limit), ByteSize(held), ByteSize(n))
		}
		return fmt.Sprintf("host.max_memory of %s reached: the node's instances hold %s and this one asked for %s more", ByteSize(h.memLimit), ByteSize(nodeHeld), ByteSize(n))
	}
}

// release gives back n bytes counted by grow.
func (t *tenantMemory) release(n uint64) {
	if t == nil || n == 0 {
		return
	}
	t.h.memMu.Lock()
	t.held -= n
	t.h.memHeld -= n
	t.h.memMu.Unlock()
}

// closeIdle closes idle instances, the longest pooled first, of tenant
// (any tenant when ""), until they held at least need bytes of counted
// memory or none is left; it reports whether it closed one.
func (h *Host) closeIdle(tenant string, need uint64) bool {
	var closing []*instance
	var freed uint64
	h.mu.Lock()
	for in := h.idleFirst; in != nil && freed < need; {
		next := in.idleNext
		if tenant == "" || in.tenant == tenant {
			h.takeIdleLocked(in)
			closing = append(closing, in)
			freed += in.counted()
		}
		in = next
	}
	h.mu.Unlock()
	for _, in := range closing {
		in.close()
	}
	return len(closing) > 0
}

// counted is what in's memory and kernel arena are counted for.
func (in *instance) counted() uint64 {
	n := in.k.counted
	if in.mem != nil {
		n += in.mem.counted
	}
	return n
}

// budgetRefusal is why the last grow of in's memory or kernel arena was
// refused for a budget, or "".
func (in *instance) budgetRefusal() string {
	if in.mem != nil && in.mem.budget != "" {
		return in.mem.budget
	}
	return in.k.budget
}

// DefaultMaxMemoryShare is host.max_memory's default as a share of the
// memory the system gives the process: the rest is the node's own (its
// heap, compiled code, idle instances' tables, the page cache).
const DefaultMaxMemoryShare = 0.75

// MaxMemoryBound bounds host.max_memory and tenants.max_memory.
const MaxMemoryBound = ByteSize(1 << 50)

// DefaultMaxMemory is DefaultMaxMemoryShare of SystemMemory, or 0 (no
// node budget) where the system does not say.
func DefaultMaxMemory() ByteSize {
	return ByteSize(float64(SystemMemory()) * DefaultMaxMemoryShare)
}

// SystemMemory is the memory this process may use: the machine's
// (MemTotal) or its cgroup's limit (memory.max, cgroup v2), whichever is
// lower; 0 when neither can be read (not Linux).
func SystemMemory() uint64 {
	var total uint64
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				if kb, err := strconv.ParseUint(f[1], 10, 64); err == nil {
					total = kb << 10
				}
			}
		}
	}
	// The process's cgroup: "0::/path" (v2, memory.max, "max" for none)
	// or "N:memory:/path" (v1, memory.limit_in_bytes, near 2^63 for none).
	var limits []string
	if b, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if p, ok := strings.CutPrefix(line, "0::"); ok {
				limits = append(limits, "/sys/fs/cgroup"+p+"/memory.max")
			} else if _, p, ok := strings.Cut(line, ":memory:"); ok {
				limits = append(limits, "/sys/fs/cgroup/memory"+p+"/memory.limit_in_bytes")
			}
		}
	}
	for _, f := range limits {
		if b, err := os.ReadFile(f); err == nil {
			if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && v > 0 && (total == 0 || v < total) {
				total = v
			}
		}
	}
	return total
}
