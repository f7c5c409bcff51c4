package enqueue

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// bucket is a token bucket: Rate tokens a second, at most Burst saved.
type bucket struct {
	tokens float64
	last   time.Time
}

// admit applies the tenant's rate to n new jobs. The quotas on what the
// tenant holds (max_pending, max_channels) are the store's: counted and
// inserted in one step for every node (Store.InsertUnder).
func (s *Service) admit(tenant string, n int) error {
	lim, ok := s.Limits[tenant]
	if !ok || lim.Rate <= 0 {
		return nil
	}
	burst := float64(max(lim.Burst, 1))
	s.mu.Lock()
	defer s.mu.Unlock()
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
		if float64(n) > burst {
			return &QuotaError{Msg: fmt.Sprintf("tenant %s may create at most %d jobs at once", tenant, int(burst)), RetryAfter: wait}
		}
		return &QuotaError{Msg: fmt.Sprintf("tenant %s is over its enqueue rate (%g jobs/s)", tenant, lim.Rate), RetryAfter: wait}
	}
	b.tokens -= float64(n)
	return nil
}

func sortStrings(s []string) { sort.Strings(s) }
