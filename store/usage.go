package store

import (
	"context"
	"fmt"
	"time"

	"github.com/wasmq/wasmq/abi"
)

// Usage aggregate: what attempts used, summed per tenant, function and
// minute. Jobs and their attempts are vacuumed; this is not, so usage
// over a month is one indexed read of at most a row per minute and
// function, and the runner writes it in batches (one statement every few
// seconds), never once per job.

// UsageBucket is what a tenant's function used in one minute.
type UsageBucket struct {
	Tenant, Func string
	// Minute is the bucket's start, a whole UTC minute.
	Minute   time.Time
	Attempts int64
	abi.Usage
}

// UsageQuery selects the aggregate of a tenant ("" = all) over [From, To).
type UsageQuery struct {
	Tenant   string
	From, To time.Time
}

// MaxUsageRange bounds a usage query: a year of minutes per function.
const MaxUsageRange = 366 * 24 * time.Hour

// UsageRow is the sum of a tenant's function over a query's range.
type UsageRow = abi.UsageRow

func (c *Core) AddUsage(ctx context.Context, buckets []UsageBucket) error {
	if len(buckets) == 0 {
		return nil
	}
	merged := make(map[[3]any]int, len(buckets))
	out := make([]UsageBucket, 0, len(buckets))
	for _, b := range buckets {
		if b.Tenant == "" || b.Func == "" {
			return fmt.Errorf("usage bucket: tenant and func are required: %w", abi.ErrInvalid)
		}
		if b.Attempts < 0 || b.Fuel < 0 || b.WallMS < 0 || b.PeakMemory < 0 || b.HostCalls < 0 ||
			b.HTTPRequests < 0 || b.HTTPBytesOut < 0 || b.HTTPBytesIn < 0 {
			return fmt.Errorf("usage bucket %s %s: negative count: %w", b.Tenant, b.Func, abi.ErrInvalid)
		}
		b.Minute = b.Minute.UTC().Truncate(time.Minute)
		// One row per key: a statement may not upsert a row twice.
		k := [3]any{b.Tenant, b.Func, b.Minute}
		if i, ok := merged[k]; ok {
			out[i].Attempts += b.Attempts
			out[i].Usage.Add(b.Usage)
			continue
		}
		merged[k] = len(out)
		out = append(out, b)
	}
	return c.d.AddUsage(ctx, out)
}

func (c *Core) Usage(ctx context.Context, q UsageQuery) ([]UsageRow, error) {
	if err := q.Check(); err != nil {
		return nil, err
	}
	q.From, q.To = q.From.UTC(), q.To.UTC()
	rows, err := c.d.ReadUsage(ctx, q)
	if rows == nil && err == nil {
		rows = []UsageRow{}
	}
	return rows, err
}

// Check refuses a range that is empty, reversed or over MaxUsageRange,
// naming the parameter.
func (q UsageQuery) Check() error {
	switch {
	case q.From.IsZero():
		return &abi.FieldError{Field: "from", Msg: "is required", Err: abi.ErrInvalid}
	case q.To.IsZero():
		return &abi.FieldError{Field: "to", Msg: "is required", Err: abi.ErrInvalid}
	case CheckTime("from", q.From) != nil:
		return CheckTime("from", q.From)
	case CheckTime("to", q.To) != nil:
		return CheckTime("to", q.To)
	case !q.To.After(q.From):
		return &abi.FieldError{Field: "to", Msg: "must be after from", Err: abi.ErrInvalid}
	case q.To.Sub(q.From) > MaxUsageRange:
		return &abi.FieldError{Field: "to", Msg: fmt.Sprintf("the range is over %d days", int(MaxUsageRange/(24*time.Hour))), Err: abi.ErrInvalid}
	}
	return nil
}
