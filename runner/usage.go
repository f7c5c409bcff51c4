package runner

import (
	"context"
	"sync"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// usageBuckets accumulates what this node's attempts used per tenant,
// function and minute, for the store's usage aggregate: written in one
// statement every Config.UsageFlush and at stop, so metering adds no
// write per job (completions carry each attempt's own usage).
type usageBuckets struct {
	mu sync.Mutex
	m  map[usageKey]*store.UsageBucket
}

type usageKey struct {
	tenant, fn string
	minute     time.Time
}

func (b *usageBuckets) add(tenant, fn string, ended time.Time, u abi.Usage) {
	k := usageKey{tenant, fn, ended.UTC().Truncate(time.Minute)}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[usageKey]*store.UsageBucket{}
	}
	x := b.m[k]
	if x == nil {
		x = &store.UsageBucket{Tenant: tenant, Func: fn, Minute: k.minute}
		b.m[k] = x
	}
	x.Attempts++
	x.Usage.Add(u)
}

// take empties the buckets.
func (b *usageBuckets) take() []store.UsageBucket {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]store.UsageBucket, 0, len(b.m))
	for _, x := range b.m {
		out = append(out, *x)
	}
	b.m = nil
	return out
}

// putBack returns buckets a write did not store, to go with the next one.
func (b *usageBuckets) putBack(bs []store.UsageBucket) {
	for _, x := range bs {
		b.mu.Lock()
		k := usageKey{x.Tenant, x.Func, x.Minute}
		if b.m == nil {
			b.m = map[usageKey]*store.UsageBucket{}
		}
		if y := b.m[k]; y != nil {
			y.Attempts += x.Attempts
			y.Usage.Add(x.Usage)
		} else {
			x := x
			b.m[k] = &x
		}
		b.mu.Unlock()
	}
}

// metered records an attempt's usage in the buckets, and tells the
// scheduler its fuel when this node leads (other nodes' schedulers learn
// it from the finished event of the completion: fuel.go).
func (r *Runner) metered(job *abi.Job, o *abi.Outcome, ended time.Time) {
	if o.Kind == abi.OutcomeInterrupted && o.Usage == (abi.Usage{}) {
		return
	}
	r.usage.add(job.Tenant, job.Func, ended, o.Usage)
	if r.leading.Load() && o.Usage.Fuel > 0 {
		r.notes.charge(job.Tenant, o.Usage.Fuel)
	}
}

// usageLoop writes the buckets every UsageFlush until ctx ends.
func (r *Runner) usageLoop(ctx context.Context) {
	t := time.NewTicker(r.cfg.UsageFlush.D())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// Not cut short by the loop's end: Stop waits for it, and
			// a stop past its shutdown timeout abandons it.
			r.flushUsage(r.abandon)
		}
	}
}

// flushUsage writes the buckets; those it could not write wait for the
// next flush.
func (r *Runner) flushUsage(ctx context.Context) {
	bs := r.usage.take()
	if len(bs) == 0 {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := r.store.AddUsage(wctx, bs); err != nil {
		r.log.Warn().Err(err).Int("buckets", len(bs)).Msg("recording usage failed; retrying with the next flush")
		r.usage.putBack(bs)
	}
}
