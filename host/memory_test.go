package host

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/host/wasmgen"
)

// memoryHost is a host with the shared modules "hold" (grows its memory
// to 48 MiB and spins until its timeout) and "hoard" (grows it to 48 MiB
// and returns), a memory_limit of 64 MiB and a second's timeout.
func memoryHost(t *testing.T, edit func(*Config)) *Host {
	t.Helper()
	cfg := testConfig(t.TempDir())
	cfg.MemoryLimit, cfg.Timeout = 64<<20, abi.Duration(time.Second)
	cfg.PoolMemory, cfg.RecycleMemory = 1<<30, 1<<30 // idle instances stay pooled unless a budget closes them
	edit(&cfg)
	h := newTestHost(t, cfg)
	h.SetPoolSize(8)
	for name, wasm := range map[string][]byte{
		"hold":   wasmgen.Module(wasmgen.HoardAndSpin(768)),
		"hoard":  wasmgen.Module(wasmgen.Hoard(768)),
		"hoard2": wasmgen.Module(wasmgen.Hoard(767)), // other code than hoard's: its own pools
		"hoard3": wasmgen.Module(wasmgen.Hoard(766)),
	} {
		if _, err := h.Install("", name, wasm); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func tenantJob(tenant, fn string) *abi.Job {
	j := job(fn)
	j.Tenant = tenant
	return j
}

// holdAtOnce runs n jobs of hold.run for tenant at once and counts their
// outcomes: "timeout" for those that held their memory to the end,
// "budget" for those refused it (and their messages).
func holdAtOnce(t *testing.T, h *Host, tenants ...string) (held, refused int, msgs []string) {
	t.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, tenant := range tenants {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := run(t, h, tenantJob(tenant, "hold.run"))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case o.ExcName == abi.ExcTimeout:
				held++
			case o.ExcName == abi.ExcMemoryBudget && o.Kind == abi.OutcomeRetry:
				refused++
				msgs = append(msgs, o.ExcMessage)
			default:
				t.Errorf("hold.run for %s: %s %s %q", tenant, o.Kind, o.ExcName, o.ExcMessage)
			}
		}()
	}
	wg.Wait()
	return held, refused, msgs
}

func TestATenantsInstancesHoldAtMostItsMaxMemory(t *testing.T) {
	h := memoryHost(t, func(c *Config) {
		c.TenantMemory = map[string]ByteSize{"evil": 128 << 20}
	})
	// Four jobs of 48 MiB at once against 128 MiB: two hold it, two are
	// refused and retried, whatever else the node holds.
	held, refused, msgs := holdAtOnce(t, h, "evil", "evil", "evil", "evil")
	if held != 2 || refused != 2 {
		t.Fatalf("evil's four jobs: %d held their memory, %d were refused it; want 2 and 2", held, refused)
	}
	for _, m := range msgs {
		if !strings.Contains(m, "tenants.max_memory of 128MiB reached") {
			t.Errorf("refusal %q does not name tenants.max_memory", m)
		}
	}
	// Another tenant has only the node's bound.
	if held, refused, _ := holdAtOnce(t, h, "good", "good", "good", "good"); held != 4 || refused != 0 {
		t.Errorf("good's four jobs: %d held, %d refused; want 4 and 0", held, refused)
	}
	holdsNothing(t, h)
}

func TestATenantsIdleInstancesAreClosedToMakeRoomForItsJob(t *testing.T) {
	h := memoryHost(t, func(c *Config) {
		c.TenantMemory = map[string]ByteSize{"evil": 128 << 20}
	})
	// evil's two idle instances (of two modules) hold 96 MiB of its 128;
	// good's one, 48 more.
	for _, j := range []*abi.Job{tenantJob("evil", "hoard.run"), tenantJob("evil", "hoard2.run"), tenantJob("good", "hoard.run")} {
		if o := run(t, h, j); o.Kind != abi.OutcomeDone {
			t.Fatalf("%s for %s: %s %s %q", j.Func, j.Tenant, o.Kind, o.ExcName, o.ExcMessage)
		}
	}
	if st := h.Stats(); st.IdleInstances != 3 {
		t.Fatalf("%d idle instances after three jobs, want 3", st.IdleInstances)
	}
	// evil's next job of 48 MiB closes its oldest, not good's.
	if o := run(t, h, tenantJob("evil", "hoard3.run")); o.Kind != abi.OutcomeDone {
		t.Fatalf("hoard3.run beside evil's idle instances: %s %s %q", o.Kind, o.ExcName, o.ExcMessage)
	}
	pools := func(mod, tenant string) int {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.mods[modKey{name: mod}].code.pools[tenant])
	}
	if a, b, g := pools("hoard", "evil"), pools("hoard2", "evil"), pools("hoard", "good"); a != 0 || b != 1 || g != 1 {
		t.Errorf("idle instances: evil's of hoard %d, of hoard2 %d, good's %d; want 0, 1 and 1 (evil's oldest closed for its job)", a, b, g)
	}
}

func TestTheNodesInstancesHoldAtMostMaxMemory(t *testing.T) {
	h := memoryHost(t, func(c *Config) { c.MaxMemory = 128 << 20 })
	held, refused, msgs := holdAtOnce(t, h, "a", "b", "c", "d")
	if held != 2 || refused != 2 {
		t.Fatalf("four tenants' jobs of 48 MiB against 128 MiB: %d held, %d refused; want 2 and 2", held, refused)
	}
	for _, m := range msgs {
		if !strings.Contains(m, "host.max_memory of 128MiB reached") {
			t.Errorf("refusal %q does not name host.max_memory", m)
		}
	}
	holdsNothing(t, h)
}

// holdsNothing checks that, with nothing running or pooled, nothing is
// counted: every instance closed gave back what it held.
func holdsNothing(t *testing.T, h *Host) {
	t.Helper()
	if st := h.Stats(); st.MemoryBytes != 0 {
		t.Errorf("with nothing running or pooled the instances hold %d bytes, want 0", st.MemoryBytes)
	}
}
