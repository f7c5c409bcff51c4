package enqueue

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// instant is a store whose group write takes a fixed time and stores
// nothing: what is left is the coalescer's own cost.
type instant struct {
	store.Store
	took time.Duration
}

func (s instant) InsertEach(_ context.Context, reqs []store.InsertRequest) ([]store.InsertResult, error) {
	time.Sleep(s.took)
	out := make([]store.InsertResult, len(reqs))
	for i, r := range reqs {
		out[i].Jobs = make([]store.Inserted, len(r.Jobs))
	}
	return out, nil
}

// The coalescer's cost a request: 16 callers at once, one job each, of
// one tenant or of 16, over a store whose write takes no time.
func BenchmarkCoalescer(b *testing.B) {
	for _, tenants := range []int{1, 16} {
		b.Run(fmt.Sprintf("tenants=%d", tenants), func(b *testing.B) {
			c := newCoalescer(instant{}, Coalesce{Window: abi.Duration(2 * time.Millisecond), Flushers: 2}, nil)
			defer c.close()
			b.SetParallelism(8) // 16 callers on two cores
			var n atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				job := []store.NewJob{{Tenant: fmt.Sprintf("t%d", n.Add(1)%int64(tenants)), Func: "m.f"}}
				for pb.Next() {
					if _, err := c.insert(context.Background(), store.Quota{}, job); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
