package enqueue

import (
	"fmt"
	"sort"
	"time"

	"golang.org/x/time/rate"
)

// admit applies the tenant's rate to n new jobs: a token bucket
// (golang.org/x/time/rate) of Rate jobs a second, Burst at once. The
// quotas on what the tenant holds (max_pending, max_channels) are the
// store's: counted and inserted in one step for every node
// (Store.InsertUnder).
func (s *Service) admit(tenant string, n int) error {
	lim, ok := s.Limits[tenant]
	if !ok || lim.Rate <= 0 {
		return nil
	}
	burst := max(lim.Burst, 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.buckets == nil {
		s.buckets = map[string]*rate.Limiter{}
	}
	b := s.buckets[tenant]
	if b == nil {
		b = rate.NewLimiter(rate.Limit(lim.Rate), burst)
		s.buckets[tenant] = b
	}
	now := time.Now()
	if b.Limit() != rate.Limit(lim.Rate) || b.Burst() != burst { // the limits changed
		b.SetLimitAt(now, rate.Limit(lim.Rate))
		b.SetBurstAt(now, burst)
	}
	if b.AllowN(now, n) {
		return nil
	}
	wait := time.Duration((float64(n) - b.TokensAt(now)) / lim.Rate * float64(time.Second))
	if n > burst {
		return &QuotaError{Msg: fmt.Sprintf("tenant %s may create at most %d jobs at once", tenant, burst), RetryAfter: wait}
	}
	return &QuotaError{Msg: fmt.Sprintf("tenant %s is over its enqueue rate (%g jobs/s)", tenant, lim.Rate), RetryAfter: wait}
}

func sortStrings(s []string) { sort.Strings(s) }
