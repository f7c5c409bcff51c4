package enqueue

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/wasmq/wasmq/abi"
)

// bucket is a token bucket: Rate tokens a second, at most Burst saved.
type bucket struct {
	tokens float64
	last   time.Time
}

// admit applies the tenant's quotas to n new jobs. When it admits them
// under max_pending, it holds the tenant's pending lock until the caller
// calls release after storing them: checking the count and inserting must
// be one step, or concurrent requests each see room for their jobs and
// together pass the quota (106 jobs for 100).
func (s *Service) admit(ctx context.Context, tenant string, n int) (release func(), err error) {
	release = func() {}
	lim, ok := s.Limits[tenant]
	if !ok {
		return release, nil
	}
	if lim.Rate > 0 {
		burst := float64(max(lim.Burst, 1))
		s.mu.Lock()
		if s.buckets == nil {
			s.buckets = map[string]*bucket{}
		}
		b := s.buckets[tenant]
		now := time.Now()
		if b == nil {
			b = &bucket{tokens: burst, last: now}
			s.buckets[tenant] = b
		}
		b.tokens = math.Min(burst, b.tokens+now.Sub(b.last).Seconds()*lim.Rate)
		b.last = now
		if b.tokens < float64(n) {
			wait := time.Duration((float64(n) - b.tokens) / lim.Rate * float64(time.Second))
			s.mu.Unlock()
			if float64(n) > burst {
				return release, &QuotaError{Msg: fmt.Sprintf("tenant %s may create at most %d jobs at once", tenant, int(burst)), RetryAfter: wait}
			}
			return release, &QuotaError{Msg: fmt.Sprintf("tenant %s is over its enqueue rate (%g jobs/s)", tenant, lim.Rate), RetryAfter: wait}
		}
		b.tokens -= float64(n)
		s.mu.Unlock()
	}
	if lim.MaxPending > 0 {
		unlock, err := s.lockPending(ctx, tenant)
		if err != nil {
			return release, err
		}
		counts, err := s.Store.Counts(ctx, tenant)
		if err != nil {
			unlock()
			return release, fmt.Errorf("quota: %w", err)
		}
		waiting := 0
		for _, c := range counts {
			waiting += c.Counts[abi.StateWaitDependencies] + c.Counts[abi.StatePending] + c.Counts[abi.StateEnqueued]
		}
		if waiting+n > lim.MaxPending {
			unlock()
			return release, &QuotaError{Msg: fmt.Sprintf("tenant %s has %d jobs waiting; its quota is %d", tenant, waiting, lim.MaxPending), RetryAfter: 5 * time.Second}
		}
		return unlock, nil
	}
	return release, nil
}

// lockPending takes tenant's pending lock: one enqueue at a time per
// tenant under max_pending, in this process; other tenants do not wait.
// Waiting ends with ctx.
func (s *Service) lockPending(ctx context.Context, tenant string) (unlock func(), err error) {
	s.mu.Lock()
	if s.pending == nil {
		s.pending = map[string]chan struct{}{}
	}
	l := s.pending[tenant] // one per tenant with max_pending: bounded by the config
	if l == nil {
		l = make(chan struct{}, 1)
		s.pending[tenant] = l
	}
	s.mu.Unlock()
	select {
	case l <- struct{}{}:
		return func() { <-l }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("quota: waiting for tenant %s's other enqueues: %w", tenant, ctx.Err())
	}
}

func sortStrings(s []string) { sort.Strings(s) }
