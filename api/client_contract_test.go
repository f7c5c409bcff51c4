package api_test

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/client"
	"github.com/wasmq/wasmq/config"
)

// operationRecorder notes the documented operation of each request the
// client sends; a request to no operation of the document is an error.
type operationRecorder struct {
	t    *testing.T
	mu   sync.Mutex
	seen map[string]bool
}

func (o *operationRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	op, _ := openapiChecker(o.t).Find(r.Method, r.URL.EscapedPath())
	o.mu.Lock()
	if op == nil {
		o.t.Errorf("the client sent %s %s, which is no operation of api/openapi.json", r.Method, r.URL.EscapedPath())
	} else {
		o.seen[op.String()] = true
	}
	o.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func (o *operationRecorder) take() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for k := range o.seen {
		out = append(out, k)
	}
	sort.Strings(out)
	o.seen = map[string]bool{}
	return out
}

// The Go client and the document do not drift: every exported method of
// client.Client is called against a server whose exchanges are checked
// against the document (start's middleware), succeeds, and lands on the
// operation this table says. A new method fails the test until it has a
// row.
func TestTheGoClientAndTheOpenAPIDocumentAgree(t *testing.T) {
	s := start(t)
	rec := &operationRecorder{t: t, seen: map[string]bool{}}
	tenant := &client.Client{BaseURL: s.url, Token: tokA, HTTP: &http.Client{Transport: rec}}
	admin := &client.Client{BaseURL: s.url, Token: tokAdmin, HTTP: &http.Client{Transport: rec}}
	ctx := context.Background()
	wasm := testkitWasm(t)
	var id string
	postponed := func() string {
		j, err := tenant.Enqueue(ctx, client.JobRequest{Func: "testkit.echo", ETA: 3600})
		if err != nil {
			t.Fatal(err)
		}
		return j.UUID
	}
	toCancel, toSetDone := postponed(), postponed()
	noRetry := 0
	failed, err := tenant.Enqueue(ctx, client.JobRequest{Func: "testkit.fail_final", MaxRetries: &noRetry})
	if err != nil {
		t.Fatal(err)
	}
	s.waitState(tokA, failed.UUID, abi.StateFailed)
	calls := []struct {
		method string
		op     string
		call   func() error
	}{
		{"Enqueue", "POST /v1/jobs", func() error {
			j, err := tenant.Enqueue(ctx, client.JobRequest{Func: "testkit.echo", Args: []any{1}, ETA: 3600, IdentityKey: "k1"})
			id = j.UUID
			return err
		}},
		{"EnqueueRaw", "POST /v1/jobs", func() error {
			_, err := tenant.EnqueueRaw(ctx, []byte(`{"func":"testkit.echo","identity_key":"k1"}`))
			return err
		}},
		{"EnqueueBatch", "POST /v1/jobs:batch", func() error {
			_, err := tenant.EnqueueBatch(ctx, []client.JobRequest{{Ref: "a", Func: "testkit.echo"}, {Func: "testkit.echo", DependsOn: []string{"a"}}})
			return err
		}},
		{"Get", "GET /v1/jobs/{uuid}", func() error { _, err := tenant.Get(ctx, id); return err }},
		{"List", "GET /v1/jobs", func() error {
			_, err := tenant.List(ctx, client.ListOptions{State: "pending", Limit: 5, UserID: "u", CreatedAfter: "2026-01-01", Kwargs: `{"a":1}`})
			return err
		}},
		{"Update", "PATCH /v1/jobs/{uuid}", func() error { _, err := tenant.Update(ctx, id, map[string]any{"priority": 3}); return err }},
		{"Attempts", "GET /v1/jobs/{uuid}/attempts", func() error { _, err := tenant.Attempts(ctx, id); return err }},
		{"Record", "GET /v1/jobs/{uuid}/attempts/{n}/record", func() error { _, err := tenant.Record(ctx, failed.UUID, 1); return err }},
		{"RecordModule", "GET /v1/jobs/{uuid}/attempts/{n}/record/module", func() error {
			_, err := tenant.RecordModule(ctx, failed.UUID, 1)
			return err
		}},
		{"Cancel", "POST /v1/jobs/{uuid}/cancel", func() error { _, err := tenant.Cancel(ctx, toCancel); return err }},
		{"Requeue", "POST /v1/jobs/{uuid}/requeue", func() error { _, err := tenant.Requeue(ctx, toCancel); return err }},
		{"SetDone", "POST /v1/jobs/{uuid}/done", func() error { _, err := tenant.SetDone(ctx, toSetDone); return err }},
		{"Bulk", "POST /v1/jobs:requeue", func() error {
			_, err := tenant.Bulk(ctx, "requeue", client.ListOptions{State: "cancelled"})
			return err
		}},
		{"Channels", "GET /v1/channels", func() error { _, err := tenant.Channels(ctx); return err }},
		{"Usage", "GET /v1/usage", func() error {
			_, err := tenant.Usage(ctx, time.Now().Add(-time.Hour), time.Now(), "")
			return err
		}},
		{"PauseChannel", "POST /v1/channels/{name}:pause", func() error { _, err := admin.PauseChannel(ctx, "mail"); return err }},
		{"ResumeChannel", "POST /v1/channels/{name}:resume", func() error { _, err := admin.ResumeChannel(ctx, "mail"); return err }},
		{"SetChannel", "PATCH /v1/channels/{name}", func() error {
			_, err := admin.SetChannel(ctx, "mail", map[string]any{"capacity": 2, "throttle": nil})
			return err
		}},
		{"Plugins", "GET /v1/plugins", func() error { _, err := tenant.Plugins(ctx); return err }},
		{"UploadPlugin", "PUT /v1/plugins/{name}", func() error { _, err := tenant.UploadPlugin(ctx, "mine", wasm); return err }},
		{"UploadPluginWithConfig", "PUT /v1/plugins/{name}", func() error {
			_, err := tenant.UploadPluginWithConfig(ctx, "mine", wasm, []byte("[functions.echo]\nchannel = \"root\"\n"))
			return err
		}},
		{"SetPluginConfig", "PUT /v1/plugins/{name}/config", func() error { _, err := tenant.SetPluginConfig(ctx, "mine", nil); return err }},
		{"CreateSchedule", "POST /v1/schedules", func() error {
			_, err := tenant.CreateSchedule(ctx, map[string]any{"name": "nightly", "cron": "0 3 * * *", "func": "testkit.echo", "args": []any{1}})
			return err
		}},
		{"Schedules", "GET /v1/schedules", func() error { _, err := tenant.Schedules(ctx); return err }},
		{"SchedulePage", "GET /v1/schedules", func() error { _, _, err := tenant.SchedulePage(ctx, "", 1); return err }},
		{"PauseSchedule", "POST /v1/schedules/{name}:pause", func() error { _, err := tenant.PauseSchedule(ctx, "nightly"); return err }},
		{"ResumeSchedule", "POST /v1/schedules/{name}:resume", func() error { _, err := tenant.ResumeSchedule(ctx, "nightly"); return err }},
		{"RunSchedule", "POST /v1/schedules/{name}:run", func() error { _, err := tenant.RunSchedule(ctx, "nightly"); return err }},
		{"DeleteSchedule", "DELETE /v1/schedules/{name}", func() error { return tenant.DeleteSchedule(ctx, "nightly") }},
	}
	tested := map[string]bool{}
	for _, c := range calls {
		rec.take()
		if err := c.call(); err != nil {
			t.Errorf("%s: %v", c.method, err)
		}
		if got := rec.take(); len(got) != 1 || got[0] != c.op {
			t.Errorf("%s sent %v, want %s", c.method, got, c.op)
		}
		tested[c.method] = true
	}
	ct := reflect.TypeOf(&client.Client{})
	for i := 0; i < ct.NumMethod(); i++ {
		if m := ct.Method(i).Name; !tested[m] {
			t.Errorf("client.Client.%s is not checked against the document: add it to this table", m)
		}
	}
}

// A refusal the client may send again later is Temporary, with the wait
// the server asked for: a tenant over its rate (429, Retry-After).
func TestTheGoClientSaysWhenToTryAgain(t *testing.T) {
	// One token every 100 s: the second request is over the rate however
	// slowly a loaded machine serves the first.
	s := start(t, func(f *config.File) { f.Tenants[0].Rate, f.Tenants[0].Burst = 0.01, 1 })
	c := client.New(s.url, tokA)
	ctx := context.Background()
	if _, err := c.Enqueue(ctx, client.JobRequest{Func: "testkit.echo"}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Enqueue(ctx, client.JobRequest{Func: "testkit.echo"})
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != 429 || !ce.Temporary() || ce.RetryAfter < time.Second {
		t.Fatalf("over the rate: %#v, want a Temporary 429 with RetryAfter ≥ 1s", err)
	}
	_, err = c.Enqueue(ctx, client.JobRequest{Func: "testkit.nope"})
	if !errors.As(err, &ce) || ce.Temporary() || ce.RetryAfter != 0 {
		t.Fatalf("an unknown function: %#v, want an error that is not Temporary", err)
	}
}
