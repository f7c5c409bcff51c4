package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// Every job of a batch keeps its own values, whether a field is the same
// for all of them or differs for one: a store may send a value the jobs
// share once (PostgreSQL does), and must not give it to a job that has
// its own. Each field is varied alone, on the middle job of three, and
// each batch is stored both as one insert and as a group of requests.
func aBatchKeepsEachJobsOwnValues(t *testing.T, s store.Store) {
	ctx := context.Background()
	day := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Microsecond)
	later := day.Add(time.Hour)
	variations := []struct {
		field string
		set   func(*store.NewJob)
	}{
		{"nothing", func(*store.NewJob) {}},
		{"tenant", func(j *store.NewJob) { j.Tenant = "batch-other" }},
		{"func", func(j *store.NewJob) { j.Func = "testkit.noop" }},
		{"args", func(j *store.NewJob) { j.Args = json.RawMessage(`[1, "two"]`) }},
		{"kwargs", func(j *store.NewJob) { j.Kwargs = json.RawMessage(`{"k": 3}`) }},
		{"context", func(j *store.NewJob) { j.Context = json.RawMessage(`{"user": 7}`) }},
		{"user_id", func(j *store.NewJob) { j.UserID = "7" }},
		{"model_name", func(j *store.NewJob) { j.ModelName = "res.partner" }},
		{"func_string", func(j *store.NewJob) { j.FuncString = "testkit.echo(1)" }},
		{"description", func(j *store.NewJob) { j.Description = "its own" }},
		{"channel", func(j *store.NewJob) { j.Channel = "root.batch" }},
		{"priority", func(j *store.NewJob) { j.Priority = 3 }},
		{"eta", func(j *store.NewJob) { j.ETA = &day }},
		{"eta, another", func(j *store.NewJob) { j.ETA = &later }},
		{"expected_at", func(j *store.NewJob) { j.ExpectedAt = &day }},
		{"max_retries", func(j *store.NewJob) { j.MaxRetries = 0 }},
		{"identity_key", func(*store.NewJob) {}}, // set below: a key of its own each time
		{"graph_uuid", func(j *store.NewJob) { j.GraphUUID = "6f1c1f55-3b0c-4b8e-9d0e-2a1f6f0d9e11" }},
		{"depends_on", func(*store.NewJob) {}}, // set below: the state differs
	}
	// base is the shared job; with an eta, every job of the batch has it.
	base := func(eta bool) store.NewJob {
		j := nj("batch")
		j.Args, j.Kwargs, j.Context = json.RawMessage(`[0]`), json.RawMessage(`{}`), json.RawMessage(`{}`)
		if eta {
			j.ETA = &later
		}
		return j
	}
	n := 0
	for _, v := range variations {
		for _, shared := range []bool{false, true} {
			for _, grouped := range []bool{false, true} {
				jobs := []store.NewJob{base(shared), base(shared), base(shared)}
				v.set(&jobs[1])
				wantState := []abi.State{abi.StatePending, abi.StatePending, abi.StatePending}
				switch v.field {
				case "identity_key": // a second job under one key would be deduplicated
					jobs[1].IdentityKey = fmt.Sprintf("own-key-%d", n)
				case "depends_on":
					jobs[1].DependsOn = []string{jobs[0].UUID}
					wantState[1] = abi.StateWaitDependencies
				}
				n++
				var stored []abi.Job
				if grouped {
					res := must(s.InsertEach(ctx, []store.InsertRequest{{Jobs: jobs[:2]}, {Jobs: jobs[2:]}}))
					for _, r := range res {
						if r.Err != nil {
							t.Fatalf("%s: %v", v.field, r.Err)
						}
						for _, in := range r.Jobs {
							stored = append(stored, in.Job)
						}
					}
				} else {
					for _, in := range must(s.Insert(ctx, jobs)) {
						stored = append(stored, in.Job)
					}
				}
				for i, want := range jobs {
					read := must(s.Get(ctx, want.Tenant, want.UUID))
					for what, got := range map[string]abi.Job{"answered": stored[i], "stored": read} {
						if diff := differs(want, got, wantState[i]); diff != "" {
							t.Errorf("%s varied on job 1 of 3 (eta shared: %v, grouped: %v): job %d %s %s", v.field, shared, grouped, i, what, diff)
						}
					}
				}
			}
		}
	}
}

// differs names the first field of want that got does not hold.
func differs(want store.NewJob, got abi.Job, state abi.State) string {
	sameJSON := func(a, b json.RawMessage) bool {
		var x, y bytes.Buffer
		return json.Compact(&x, a) == nil && json.Compact(&y, b) == nil && bytes.Equal(x.Bytes(), y.Bytes())
	}
	switch {
	case got.UUID != want.UUID:
		return "uuid " + got.UUID
	case got.Tenant != want.Tenant:
		return "tenant " + got.Tenant
	case got.Func != want.Func:
		return "func " + got.Func
	case !sameJSON(got.Args, want.Args):
		return "args " + string(got.Args)
	case !sameJSON(got.Kwargs, want.Kwargs):
		return "kwargs " + string(got.Kwargs)
	case !sameJSON(got.Context, want.Context):
		return "context " + string(got.Context)
	case got.UserID != want.UserID:
		return "user_id " + got.UserID
	case got.ModelName != want.ModelName:
		return "model_name " + got.ModelName
	case got.FuncString != want.FuncString:
		return "func_string " + got.FuncString
	case got.Description != want.Description:
		return "description " + got.Description
	case got.Channel != want.Channel:
		return "channel " + got.Channel
	case got.Priority != want.Priority:
		return fmt.Sprintf("priority %d", got.Priority)
	case !sameTime(got.ETA, want.ETA):
		return fmt.Sprintf("eta %v", got.ETA)
	case !sameTime(got.ExpectedAt, want.ExpectedAt):
		return fmt.Sprintf("expected_at %v", got.ExpectedAt)
	case got.MaxRetries != want.MaxRetries:
		return fmt.Sprintf("max_retries %d", got.MaxRetries)
	case got.IdentityKey != want.IdentityKey:
		return "identity_key " + got.IdentityKey
	case got.GraphUUID != want.GraphUUID:
		return "graph_uuid " + got.GraphUUID
	case got.State != state:
		return "state " + string(got.State)
	}
	return ""
}
