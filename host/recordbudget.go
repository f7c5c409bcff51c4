package host

import (
	"fmt"
	"time"

	"golang.org/x/time/rate"

	"github.com/wasmq/wasmq/abi"
)

// keepWithinBudget takes the bytes of rec, about to be kept for tenant,
// from the tenant's record bucket on this node (host.record_rate and
// host.record_burst, or the tenant's own). A record the bucket cannot pay for is not kept:
// keepWithinBudget returns nil and the log line that tells the attempt
// why. The attempt itself is kept, with its outcome, logs and result,
// whatever its record.
func (h *Host) keepWithinBudget(tenant string, rec *abi.Record) (*abi.Record, *abi.LogLine) {
	if rec == nil {
		return nil, nil
	}
	perSecond, burst, rateKey, burstKey := h.cfg.recordBudget(tenant)
	h.recMu.Lock()
	lim := h.recLimits[tenant]
	if lim == nil {
		lim = rate.NewLimiter(rate.Limit(perSecond), int(min(burst, 1<<40)))
		h.recLimits[tenant] = lim
	}
	h.recMu.Unlock()
	if lim.AllowN(time.Now(), rec.Size) {
		return rec, nil
	}
	h.recordsDropped.Add(1)
	return nil, &abi.LogLine{Time: time.Now().UTC(), Level: "warn", Message: fmt.Sprintf(
		"wasmq: this attempt's record (%d bytes) was not kept: the tenant's records on this node are over %s (%s a second) and %s (%s at once)",
		rec.Size, rateKey, perSecond, burstKey, burst)}
}
