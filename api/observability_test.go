package api_test

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/config"
	"github.com/wasmq/wasmq/telemetry"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// scrape parses a /metrics answer with Prometheus' own text parser.
func scrape(t *testing.T, s *srv, token string) map[string]*dto.MetricFamily {
	t.Helper()
	r := s.do("GET", "/metrics", token, nil)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("/metrics: %d %s %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(r.body)))
	if err != nil {
		t.Fatalf("/metrics is not the Prometheus text format: %v\n%s", err, r.body)
	}
	return fams
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.Label {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// series finds the metric of family name whose labels include want.
func series(fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	f := fams[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.Metric {
		l := labels(m)
		for k, v := range want {
			if l[k] != v {
				continue next
			}
		}
		return m
	}
	return nil
}

func TestMetricsAreScrapedFromARunningServerPerTenant(t *testing.T) {
	s := start(t)
	a := s.do("POST", "/v1/jobs", tokA, map[string]any{"func": "testkit.echo"}).json(t)["uuid"].(string)
	f := s.do("POST", "/v1/jobs", tokA, map[string]any{"func": "testkit.fail", "max_retries": 1}).json(t)["uuid"].(string)
	g := s.do("POST", "/v1/jobs", tokB, map[string]any{"func": "testkit.echo"}).json(t)["uuid"].(string)
	s.waitState(tokA, a, abi.StateDone)
	s.waitState(tokA, f, abi.StateFailed)
	s.waitState(tokB, g, abi.StateDone)

	admin := scrape(t, s, tokAdmin)
	// The histograms, with their documented buckets.
	for name, buckets := range map[string][]float64{
		"wasmq_job_queue_seconds":    telemetry.QueueBuckets,
		"wasmq_job_run_seconds":      telemetry.CallBuckets,
		"wasmq_sandbox_call_seconds": telemetry.CallBuckets,
	} {
		m := series(admin, name, map[string]string{"tenant": "acme"})
		if m == nil || admin[name].GetType() != dto.MetricType_HISTOGRAM {
			t.Fatalf("%s{tenant=acme} is not a histogram in the admin's scrape", name)
		}
		h := m.GetHistogram()
		if h.GetSampleCount() != 2 {
			t.Errorf("%s{tenant=acme}: %d samples, want 2 attempts", name, h.GetSampleCount())
		}
		// The text format lists le="+Inf" last.
		if len(h.Bucket) != len(buckets)+1 || !math.IsInf(h.Bucket[len(buckets)].GetUpperBound(), 1) {
			t.Fatalf("%s: %d buckets, want %v and +Inf", name, len(h.Bucket), buckets)
		}
		for i, b := range h.Bucket[:len(buckets)] {
			if b.GetUpperBound() != buckets[i] {
				t.Errorf("%s: bucket %d is le=%v, want %v", name, i, b.GetUpperBound(), buckets[i])
			}
		}
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"wasmq_attempts_total", map[string]string{"tenant": "acme", "outcome": "done"}, 1},
		{"wasmq_attempts_total", map[string]string{"tenant": "acme", "outcome": "failed"}, 1},
		{"wasmq_attempts_total", map[string]string{"tenant": "globex", "outcome": "done"}, 1},
		{"wasmq_host_calls_total", map[string]string{"tenant": "acme", "func": "testkit.echo"}, 0},
		{"wasmq_jobs", map[string]string{"tenant": "acme", "state": "done", "channel": "root"}, 1},
		{"wasmq_jobs", map[string]string{"tenant": "acme", "state": "failed", "channel": "root"}, 1},
		{"wasmq_runner_done_total", nil, 2},
		{"wasmq_runner_leader", nil, 1},
		{"wasmq_runner_workers", nil, 4},
		{"wasmq_host_modules", nil, 1},
		{"wasmq_host_pool_size", nil, 4},
	} {
		m := series(admin, c.name, c.labels)
		if m == nil {
			t.Errorf("the admin's scrape lacks %s%v", c.name, c.labels)
			continue
		}
		v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
		if v != c.want && !(c.name == "wasmq_runner_done_total" && v >= c.want) {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, v, c.want)
		}
	}
	if m := series(admin, "wasmq_fuel_total", map[string]string{"tenant": "acme", "func": "testkit.echo"}); m == nil || m.GetCounter().GetValue() <= 0 {
		t.Errorf("no fuel counted for acme's testkit.echo: %v", m)
	}
	if m := series(admin, "wasmq_host_instances_idle", nil); m == nil || m.GetGauge().GetValue() < 1 {
		t.Errorf("no idle pooled instance after the jobs ran: %v", m)
	}

	// A tenant sees its own series only: no other tenant's, no node-wide.
	for tok, own := range map[string]string{tokA: "acme", tokB: "globex"} {
		fams := scrape(t, s, tok)
		for name, f := range fams {
			for _, m := range f.Metric {
				if l := labels(m); l["tenant"] != own {
					t.Errorf("%s's scrape has %s%v", own, name, l)
				}
			}
		}
		if series(fams, "wasmq_attempts_total", map[string]string{"tenant": own, "outcome": "done"}) == nil ||
			series(fams, "wasmq_job_run_seconds", map[string]string{"tenant": own}) == nil {
			t.Errorf("%s's scrape lacks its own attempts", own)
		}
	}
}

// The leader's schedules on /metrics: each firing by tenant and outcome,
// how late each job was created, and the passes (the admin's alone). A
// tenant sees its own firings, not another's.
func TestScheduleFiringsAreScrapedPerTenant(t *testing.T) {
	s := start(t)
	r := s.do("POST", "/v1/schedules", tokA, map[string]any{"name": "tick", "cron": "@every 1s", "func": "testkit.echo"})
	if r.status != 201 {
		t.Fatalf("create a schedule: %d %s", r.status, r.body)
	}
	var admin map[string]*dto.MetricFamily
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		admin = scrape(t, s, tokAdmin)
		if m := series(admin, "wasmq_schedule_firings_total", map[string]string{"tenant": "acme", "outcome": "fired"}); m != nil && m.GetCounter().GetValue() >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no firing of acme's schedule counted in 10 s")
		}
	}
	late := series(admin, "wasmq_schedule_firing_delay_seconds", map[string]string{"tenant": "acme"})
	if late == nil || admin["wasmq_schedule_firing_delay_seconds"].GetType() != dto.MetricType_HISTOGRAM ||
		late.GetHistogram().GetSampleCount() < 1 || len(late.GetHistogram().Bucket) != len(telemetry.QueueBuckets)+1 {
		t.Fatalf("acme's firing delay is not a histogram of the queue's buckets with a sample: %v", late)
	}
	if late.GetHistogram().GetSampleSum() > 10 {
		t.Errorf("acme's firings were %v s late in all, on an idle node", late.GetHistogram().GetSampleSum())
	}
	if pass := series(admin, "wasmq_schedule_pass_seconds", nil); pass == nil || pass.GetHistogram().GetSampleCount() < 1 {
		t.Errorf("no pass of the leader timed: %v", pass)
	}
	if read := series(admin, "wasmq_schedule_pass_reads_total", nil); read == nil || read.GetCounter().GetValue() < 1 {
		t.Errorf("the passes read no schedule: %v", read)
	}
	if own := scrape(t, s, tokA); series(own, "wasmq_schedule_firings_total", map[string]string{"tenant": "acme", "outcome": "fired"}) == nil ||
		series(own, "wasmq_schedule_pass_seconds", nil) != nil {
		t.Errorf("acme's scrape: its firings %v, the node's passes %v; want its firings only",
			series(own, "wasmq_schedule_firings_total", nil), series(own, "wasmq_schedule_pass_seconds", nil))
	}
	if other := scrape(t, s, tokB); other["wasmq_schedule_firings_total"] != nil || other["wasmq_schedule_firing_delay_seconds"] != nil {
		t.Errorf("globex's scrape shows acme's firings: %v", other["wasmq_schedule_firings_total"])
	}
}

// tracedServer is a node whose spans go to an in-memory recorder.
func tracedServer(t *testing.T) (*srv, *tracetest.SpanRecorder) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	tracing := telemetry.WithProvider(tp)
	return startWith(t, tracing), rec
}

func attr(s sdktrace.ReadOnlySpan, key string) attribute.Value {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// waitSpan polls the recorder for an ended span that match accepts.
func waitSpan(t *testing.T, rec *tracetest.SpanRecorder, what string, match func(sdktrace.ReadOnlySpan) bool) sdktrace.ReadOnlySpan {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		for _, s := range rec.Ended() {
			if match(s) {
				return s
			}
		}
		if time.Now().After(deadline) {
			var names []string
			for _, s := range rec.Ended() {
				names = append(names, s.Name())
			}
			t.Fatalf("no span %s among %v", what, names)
		}
	}
}

func TestASpanPerRequestStoreCallAndAttempt(t *testing.T) {
	s, rec := tracedServer(t)
	id := s.do("POST", "/v1/jobs", tokA, map[string]any{"func": "testkit.echo"}).json(t)["uuid"].(string)
	s.waitState(tokA, id, abi.StateDone)
	bad := s.do("POST", "/v1/jobs", tokA, map[string]any{"func": "testkit.fail", "max_retries": 1}).json(t)["uuid"].(string)
	s.waitState(tokA, bad, abi.StateFailed)

	req := waitSpan(t, rec, "POST /v1/jobs", func(sp sdktrace.ReadOnlySpan) bool {
		return sp.Name() == "POST /v1/jobs" && attr(sp, "http.response.status_code").AsInt64() == 201
	})
	if attr(req, "wasmq.tenant").AsString() != "acme" {
		t.Errorf("request span attributes %v", req.Attributes())
	}
	// The insert is a child of the request's span.
	waitSpan(t, rec, "store.Insert under the request", func(sp sdktrace.ReadOnlySpan) bool {
		return sp.Name() == "store.Insert" && sp.Parent().SpanID() == req.SpanContext().SpanID()
	})
	// A GET names its route, not the job's path.
	waitSpan(t, rec, "GET /v1/jobs/{uuid}", func(sp sdktrace.ReadOnlySpan) bool {
		return sp.Name() == "GET /v1/jobs/{uuid}" && attr(sp, "url.path").AsString() == "/v1/jobs/"+id
	})
	for _, c := range []struct{ uuid, outcome, state string }{{id, "done", "done"}, {bad, "failed", "failed"}} {
		at := waitSpan(t, rec, "attempt of "+c.uuid, func(sp sdktrace.ReadOnlySpan) bool {
			return strings.HasPrefix(sp.Name(), "wasmq.attempt ") && attr(sp, "wasmq.job.uuid").AsString() == c.uuid
		})
		if attr(at, "wasmq.outcome").AsString() != c.outcome || attr(at, "wasmq.job.state").AsString() != c.state ||
			attr(at, "wasmq.tenant").AsString() != "acme" {
			t.Errorf("attempt span %s: %v", at.Name(), at.Attributes())
		}
		if c.outcome == "failed" && (at.Status().Code.String() != "Error" || attr(at, "wasmq.exc_name").AsString() != abi.ExcError) {
			t.Errorf("failed attempt span status %v, attributes %v", at.Status(), at.Attributes())
		}
	}
	for _, op := range []string{"store.Complete", "store.Start"} {
		waitSpan(t, rec, op, func(sp sdktrace.ReadOnlySpan) bool { return sp.Name() == op })
	}
}

func TestAnIncomingTraceparentIsTheRequestsParent(t *testing.T) {
	s, rec := tracedServer(t)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req := s.request("GET", "/v1/stats", tokA, nil)
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	s.send(req)
	sp := waitSpan(t, rec, "GET /v1/stats", func(sp sdktrace.ReadOnlySpan) bool { return sp.Name() == "GET /v1/stats" })
	if sp.SpanContext().TraceID().String() != traceID || sp.Parent().SpanID().String() != "00f067aa0ba902b7" {
		t.Fatalf("span %s in trace %s, parent %s", sp.Name(), sp.SpanContext().TraceID(), sp.Parent().SpanID())
	}
}

// A node configured with [telemetry] otlp_endpoint sends its spans to
// that collector (here a local OTLP/HTTP receiver): the request's and the
// attempt's arrive, at the latest when the node stops.
func TestANodeExportsItsSpansByOTLP(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]string{} // span name → service.name
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltrace.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
			t.Errorf("not an OTLP export to /v1/traces: %s", r.URL.Path)
		}
		mu.Lock()
		for _, rs := range req.ResourceSpans {
			service := ""
			for _, a := range rs.GetResource().GetAttributes() {
				if a.Key == "service.name" {
					service = a.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					seen[sp.Name] = service
				}
			}
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()
	s := start(t, func(f *config.File) {
		f.Telemetry.OTLPEndpoint = collector.URL
		f.Telemetry.ServiceName = "wasmq-node-a"
	})
	id := s.do("POST", "/v1/jobs", tokA, map[string]any{"func": "testkit.echo"}).json(t)["uuid"].(string)
	s.waitState(tokA, id, abi.StateDone)
	if err := s.n.Close(context.Background()); err != nil { // flushes the exporter
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, name := range []string{"POST /v1/jobs", "store.Insert", "wasmq.attempt testkit.echo", "store.Complete"} {
		if seen[name] != "wasmq-node-a" {
			t.Errorf("span %q reached the collector from %q; got %v", name, seen[name], seen)
		}
	}
}
