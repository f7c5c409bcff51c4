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

// admit applies the tenant's quotas to n new jobs.
func (s *Service) admit(ctx context.Context, tenant string, n int) error {
	lim, ok := s.Limits[tenant]
	if !ok {
		return nil
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
				return &QuotaError{Msg: fmt.Sprintf("tenant %s may create at most %d jobs at once", tenant, int(burst)), RetryAfter: wait}
			}
			return &QuotaError{Msg: fmt.Sprintf("tenant %s is over its enqueue rate (%g jobs/s)", tenant, lim.Rate), RetryAfter: wait}
		}
		b.tokens -= float64(n)
		s.mu.Unlock()
	}
	if lim.MaxPending > 0 {
		counts, err := s.Store.Counts(ctx, tenant)
		if err != nil {
			return fmt.Errorf("quota: %w", err)
		}
		waiting := 0
		for _, c := range counts {
			waiting += c.Counts[abi.StateWaitDependencies] + c.Counts[abi.StatePending] + c.Counts[abi.StateEnqueued]
		}
		if waiting+n > lim.MaxPending {
			return &QuotaError{Msg: fmt.Sprintf("tenant %s has %d jobs waiting; its quota is %d", tenant, waiting, lim.MaxPending), RetryAfter: 5 * time.Second}
		}
	}
	return nil
}

func sortStrings(s []string) { sort.Strings(s) }
