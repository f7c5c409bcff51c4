package runner

import (
	"context"
	"fmt"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// Sync runs jobs now, in this process, storing nothing: the synchronous
// mode of `wasmq run` and WASMQ_NO_DELAY=1. Its Run method is what
// enqueue.Service takes as Sync.
type Sync struct {
	Exec Executor
	// DefaultRetryInterval is the eta of a retry when neither the plugin
	// nor the function's retry_pattern gives a delay, as [runner]
	// default_retry_interval is for the queue. Defaults to
	// abi.DefaultRetryInterval.
	DefaultRetryInterval time.Duration
}

// Run runs the jobs. Dependencies (DependsOn naming other entries' UUIDs)
// run first, in topological order. Each job runs once: a retry outcome
// leaves it pending with its eta, a failure leaves it failed and its
// dependents waiting, exactly the states the queue would record after
// that first attempt.
func (s Sync) Run(ctx context.Context, jobs []store.NewJob) ([]abi.Job, error) {
	retryInterval := s.DefaultRetryInterval
	if retryInterval <= 0 {
		retryInterval = abi.DefaultRetryInterval
	}
	index := map[string]int{}
	for i, j := range jobs {
		index[j.UUID] = i
	}
	order, err := topo(jobs, index)
	if err != nil {
		return nil, err
	}
	out := make([]abi.Job, len(jobs))
	for _, i := range order {
		nj := jobs[i]
		now := time.Now().UTC()
		j := abi.Job{UUID: nj.UUID, Tenant: nj.Tenant, Func: nj.Func, Args: nj.Args, Kwargs: nj.Kwargs,
			Context: nj.Context, UserID: nj.UserID, ModelName: nj.ModelName, FuncString: nj.FuncString,
			Description: nj.Description, Channel: nj.Channel, Priority: nj.Priority, ETA: nj.ETA,
			ExpectedAt: nj.ExpectedAt, MaxRetries: nj.MaxRetries, IdentityKey: nj.IdentityKey,
			GraphUUID: nj.GraphUUID, DependsOn: append([]string{}, nj.DependsOn...), DateCreated: now,
			State: abi.StatePending, WorkerID: "sync"}
		for _, p := range nj.DependsOn {
			if out[index[p]].State != abi.StateDone {
				j.State = abi.StateWaitDependencies
			}
		}
		if j.State == abi.StateWaitDependencies {
			out[i] = j
			continue
		}
		j.State, j.Retry, j.Attempt, j.DateStarted = abi.StateStarted, 1, 1, &now
		fc, _ := s.Exec.Function(j.Tenant, j.Func)
		o := s.Exec.Run(ctx, &j)
		c := completion(&j, o, fc, retryInterval, time.Now().UTC())
		ended := c.Ended
		exec := ended.Sub(now).Seconds()
		j.State, j.Result, j.ExcName, j.ExcMessage, j.ExcInfo = c.To, c.Result, c.ExcName, c.ExcMessage, c.ExcInfo
		j.PluginSHA256, j.ExecTime = c.PluginSHA256, &exec
		if c.To == abi.StateDone {
			j.DateDone = &ended
		}
		if c.To == abi.StatePending {
			j.ETA = c.ETA
			if c.UncountRetry {
				j.Retry = 0
			}
		}
		out[i] = j
	}
	return out, nil
}

// topo orders jobs parents first; a dependency outside the list or a
// cycle is an error.
func topo(jobs []store.NewJob, index map[string]int) ([]int, error) {
	state := make([]int, len(jobs)) // 0 new, 1 visiting, 2 done
	var order []int
	var visit func(i int) error
	visit = func(i int) error {
		switch state[i] {
		case 1:
			return &abi.FieldError{Field: "depends_on", Msg: fmt.Sprintf("job %s is part of a dependency cycle", jobs[i].UUID), Err: abi.ErrInvalid}
		case 2:
			return nil
		}
		state[i] = 1
		for _, p := range jobs[i].DependsOn {
			pi, ok := index[p]
			if !ok {
				return &abi.FieldError{Field: "depends_on", Msg: fmt.Sprintf("job %s is not part of this synchronous run", p), Err: abi.ErrInvalid}
			}
			if err := visit(pi); err != nil {
				return err
			}
		}
		state[i] = 2
		order = append(order, i)
		return nil
	}
	for i := range jobs {
		if err := visit(i); err != nil {
			return nil, err
		}
	}
	return order, nil
}
