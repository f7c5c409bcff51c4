package runner

import (
	"time"
)

// Fuel in the scheduler (docs/abi.md, "Usage and fuel"): a tenant with a
// fuel_rate has a token bucket of fuel, and fair share weighs tenants by
// their rates. Both are fed when attempts end, with the fuel they used
// (the scheduler cannot know it before): this node's workers tell it at
// once (notes.charge); other nodes' attempts come with the finished
// events of their completions (store.Event.Fuel), once committed. An
// event lost (a notification connection that broke) leaves its fuel
// uncharged. The scheduler's goroutine owns all of it.

// fuelBucket is a tenant's token bucket: level refills at the tenant's
// fuel_rate up to its burst; an ended attempt takes its fuel, which may
// take the level below zero (the attempt was not stopped for it), and
// the tenant starts nothing until the level is back above zero.
// Hand-written, unlike the enqueue rate and the records' buckets
// (golang.org/x/time/rate): its debt is unbounded, since an attempt's
// fuel is known only once spent and may pass the whole burst, which
// rate.Limiter refuses to take.
type fuelBucket struct {
	level float64
	at    time.Time
}

// refill brings b to now.
func (b *fuelBucket) refill(now time.Time, rate, burst float64) {
	if now.After(b.at) {
		b.level = min(burst, b.level+rate*now.Sub(b.at).Seconds())
		b.at = now
	}
}

// fuelRate is the tenant's fuel per second and burst (0: unlimited).
func (s *scheduler) fuelRate(tenant string) (rate, burst float64) {
	rate = s.r.cfg.TenantFuelRate[tenant]
	if rate <= 0 {
		return 0, 0
	}
	burst = s.r.cfg.TenantFuelBurst[tenant]
	if burst <= 0 {
		burst = rate // one second's worth
	}
	return rate, burst
}

// bucket is the tenant's bucket brought to now (nil without fuel_rate).
// A new bucket starts full.
func (s *scheduler) bucket(tenant string, now time.Time) *fuelBucket {
	rate, burst := s.fuelRate(tenant)
	if rate == 0 {
		return nil
	}
	b := s.buckets[tenant]
	if b == nil {
		b = &fuelBucket{level: burst, at: now}
		s.buckets[tenant] = b
	}
	b.refill(now, rate, burst)
	return b
}

// fuelAllows reports whether the tenant's bucket lets a job start; when
// not, it asks for a round when the bucket is back above zero.
func (s *scheduler) fuelAllows(tenant string, now time.Time, wakeAt func(time.Time)) bool {
	b := s.bucket(tenant, now)
	if b == nil || b.level > 0 {
		return true
	}
	rate, _ := s.fuelRate(tenant)
	wakeAt(now.Add(time.Duration(-b.level/rate*float64(time.Second)) + time.Millisecond))
	return false
}

// chargeFuel takes what the tenants' ended attempts used from their
// buckets, and adds it to their fair-share use.
func (s *scheduler) chargeFuel(used map[string]int64, now time.Time) {
	ref := s.refRate()
	for t, f := range used {
		if b := s.bucket(t, now); b != nil {
			b.level -= float64(f)
		}
		if ref > 0 {
			rate, _ := s.fuelRate(t)
			if rate == 0 {
				rate = ref
			}
			s.fuelTime[t] += time.Duration(float64(f) / rate * float64(time.Second))
		}
	}
}

// refRate is the largest fuel_rate configured: a tenant without one
// weighs as much as the most entitled one (0: no fuel_rate anywhere, and
// fair share is by slot time alone, as before fuel).
func (s *scheduler) refRate() float64 {
	var ref float64
	for _, r := range s.r.cfg.TenantFuelRate {
		ref = max(ref, r)
	}
	return ref
}

// weight is the tenant's share of the workers relative to the others:
// its fuel_rate over the largest one, 1 without fuel_rate.
func (s *scheduler) weight(tenant string) float64 {
	rate, _ := s.fuelRate(tenant)
	if rate == 0 {
		return 1
	}
	return rate / s.refRate()
}
