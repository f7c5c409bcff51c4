package runner_test

import (
	"context"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/runner"
	"github.com/wasmq/wasmq/store"
)

// retrier asks for a retry without a delay of its own, and its function
// has no retry_pattern: the default retry interval decides the eta.
type retrier struct{}

func (retrier) Run(ctx context.Context, job *abi.Job) abi.Outcome {
	return abi.Outcome{Kind: abi.OutcomeRetry}
}

func (retrier) Function(tenant, fn string) (abi.FunctionConfig, error) {
	return abi.FunctionConfig{}, nil
}

func TestSyncRetryWaitsTheConfiguredDefaultRetryInterval(t *testing.T) {
	job := []store.NewJob{{UUID: "6f1c1a3e-8c43-4c0e-9d53-000000000001", Tenant: "t", Func: "m.f", Channel: abi.RootChannel, MaxRetries: 5}}
	for _, c := range []struct {
		name     string
		interval time.Duration
		want     time.Duration
	}{
		{"configured", 3 * time.Second, 3 * time.Second},
		{"unset", 0, abi.DefaultRetryInterval},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := time.Now()
			out, err := runner.Sync{Exec: retrier{}, DefaultRetryInterval: c.interval}.Run(t.Context(), job)
			if err != nil {
				t.Fatal(err)
			}
			j := out[0]
			if j.State != abi.StatePending || j.ETA == nil {
				t.Fatalf("state %s eta %v, want pending with an eta", j.State, j.ETA)
			}
			if d := j.ETA.Sub(before); d < c.want || d > c.want+10*time.Second {
				t.Fatalf("eta is %v after the run, want %v", d, c.want)
			}
		})
	}
}
