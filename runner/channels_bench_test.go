package runner_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
	"github.com/wasmq/wasmq/runner"
	"github.com/wasmq/wasmq/store"
)

// The channel page of a tenant that spread 60,000 jobs over 60,000
// channels (the bound max_channels now puts on one tenant, times 60):
// each count is added to its channel and its ancestors once, so the page
// grows with the channels, not with their square (55 s before).
func BenchmarkChannelStatus60kChannels(b *testing.B) {
	st := newStore(b)
	ctx := context.Background()
	const channels = 60000
	for i := 0; i < channels; i += 1000 {
		batch := make([]store.NewJob, 1000)
		for k := range batch {
			batch[k] = store.NewJob{UUID: uuid.NewString(), Tenant: "flood", Func: "testkit.script", Args: []byte(`["ok"]`),
				Channel: fmt.Sprintf("root.g%d.c%d", (i+k)%100, i+k), MaxRetries: 5}
		}
		if _, err := st.Insert(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	r, err := runner.New(runner.Config{Channels: "root:1:paused", NodeID: "bench"}.WithDefaults(), st, newHost(b), zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		chs, err := r.Channels(ctx, "")
		if err != nil {
			b.Fatal(err)
		}
		if len(chs) != channels+100+1 {
			b.Fatalf("%d channels shown, want %d", len(chs), channels+101)
		}
	}
}
