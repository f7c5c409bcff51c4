package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is a local OTLP/HTTP collector: it decodes each export and
// hands over the names of the spans with the service that sent them.
func otlpReceiver(t *testing.T) (string, <-chan []string) {
	t.Helper()
	got := make(chan []string, 16)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" || r.Header.Get("X-Api-Key") != "k1" {
			t.Errorf("export to %s, content type %q, key %q", r.URL.Path, r.Header.Get("Content-Type"), r.Header.Get("X-Api-Key"))
		}
		body, _ := io.ReadAll(r.Body)
		var req coltrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			t.Errorf("not an OTLP export: %v", err)
		}
		var names []string
		for _, rs := range req.ResourceSpans {
			service := ""
			for _, a := range rs.GetResource().GetAttributes() {
				if a.Key == "service.name" {
					service = a.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					names = append(names, service+"/"+sp.Name)
				}
			}
		}
		got <- names
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(nil)
	}))
	t.Cleanup(hs.Close)
	return hs.URL, got
}

func TestSpansArriveAtAnOTLPCollector(t *testing.T) {
	url, got := otlpReceiver(t)
	tr, err := NewTracing(context.Background(), Config{OTLPEndpoint: url, ServiceName: "wasmq-test",
		OTLPHeaders: map[string]string{"X-Api-Key": "k1"}})
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Enabled() {
		t.Fatal("tracing is off with an endpoint")
	}
	obs := &Observer{Metrics: NewMetrics(), Tracing: tr}
	job := &abi.Job{UUID: "u1", Tenant: "acme", Func: "m.f", Attempt: 1}
	ctx := obs.AttemptStart(context.Background(), job)
	obs.AttemptEnd(ctx, job, &abi.Outcome{Kind: abi.OutcomeDone}, abi.StateDone)
	// Shutdown flushes the batch.
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case names := <-got:
		if strings.Join(names, ",") != "wasmq-test/wasmq.attempt m.f" {
			t.Fatalf("spans %v", names)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no export reached the collector")
	}
}

func TestTracingIsOffAndFreeWithoutAnEndpoint(t *testing.T) {
	tr, err := NewTracing(context.Background(), Config{})
	if err != nil || tr.Enabled() {
		t.Fatalf("tracing %v, %v", tr.Enabled(), err)
	}
	obs := &Observer{Metrics: NewMetrics(), Tracing: tr}
	job := &abi.Job{UUID: "u1", Tenant: "acme", Func: "m.f"}
	ctx := context.Background()
	if obs.AttemptStart(ctx, job) != ctx {
		t.Fatal("AttemptStart made a new context with tracing off")
	}
	out := &abi.Outcome{Kind: abi.OutcomeDone}
	obs.AttemptEnd(ctx, job, out, abi.StateDone) // creates the tenant's series
	if n := testing.AllocsPerRun(100, func() {
		obs.AttemptEnd(obs.AttemptStart(ctx, job), job, out, abi.StateDone)
	}); n != 0 {
		t.Fatalf("an attempt's telemetry allocates %v times with tracing off", n)
	}
}

func TestConfigIsValidatedNamingTheKey(t *testing.T) {
	bad := 1.5
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{OTLPEndpoint: "collector:4318"}, "telemetry.otlp_endpoint"},
		{Config{OTLPEndpoint: "ftp://x"}, "telemetry.otlp_endpoint"},
		{Config{SampleRatio: &bad}, "telemetry.sample_ratio"},
		{Config{OTLPHeaders: map[string]string{"a b": "x"}}, "telemetry.otlp_headers.a b"},
	} {
		if err := c.cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %s", c.cfg, err, c.want)
		}
	}
	if err := (Config{OTLPEndpoint: "https://otel.example:4318/custom"}).WithDefaults().Validate(); err != nil {
		t.Fatal(err)
	}
	if u, _ := tracesURL("http://h:4318"); u != "http://h:4318/v1/traces" {
		t.Errorf("tracesURL %s", u)
	}
	if u, _ := tracesURL("http://h:4318/custom"); u != "http://h:4318/custom" {
		t.Errorf("tracesURL %s", u)
	}
}

// BenchmarkAttemptTelemetry is what the runner adds to each attempt with
// tracing off: the metrics of one attempt.
func BenchmarkAttemptTelemetry(b *testing.B) {
	obs := &Observer{Metrics: NewMetrics(), Tracing: Off()}
	now := time.Now()
	job := &abi.Job{UUID: "u1", Tenant: "acme", Func: "m.f", DateCreated: now, DateStarted: &now}
	out := &abi.Outcome{Kind: abi.OutcomeDone, Duration: time.Millisecond, CallTime: 500 * time.Microsecond}
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			obs.AttemptEnd(obs.AttemptStart(ctx, job), job, out, abi.StateDone)
		}
	})
}

func TestSandboxFailuresAreCountedByName(t *testing.T) {
	m := NewMetrics()
	job := &abi.Job{UUID: "u1", Tenant: "acme", Func: "m.f"}
	m.Attempt(job, &abi.Outcome{Kind: abi.OutcomeSandbox, ExcName: abi.ExcTimeout})
	m.Attempt(job, &abi.Outcome{Kind: abi.OutcomeRetry, ExcName: abi.ExcTimeout}) // retry_on made it a retry
	m.Attempt(job, &abi.Outcome{Kind: abi.OutcomeSandbox, ExcName: abi.ExcTrap})
	m.Attempt(job, &abi.Outcome{Kind: abi.OutcomeFailed, ExcName: abi.ExcError}) // the guest's own error
	got := counters(t, m)
	for key, want := range map[string]float64{
		"wasmq_sandbox_failures_total exc_name=wasmq.Timeout tenant=acme": 2,
		"wasmq_sandbox_failures_total exc_name=wasmq.Trap tenant=acme":    1,
		"wasmq_attempts_total outcome=sandbox tenant=acme":                2,
		"wasmq_attempts_total outcome=retry tenant=acme":                  1,
		"wasmq_attempts_total outcome=failed tenant=acme":                 1,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
	if _, ok := got["wasmq_sandbox_failures_total exc_name=wasmq.Error tenant=acme"]; ok {
		t.Error("a guest error counted as a sandbox failure")
	}
}

// What attempts used is summed per tenant and function; an attempt that
// never reached a guest (only wall time) adds no series.
func TestUsageIsCountedPerTenantAndFunction(t *testing.T) {
	m := NewMetrics()
	u := abi.Usage{Fuel: 100, WallMS: 3, HostCalls: 2, HTTPRequests: 1, HTTPBytesOut: 5, HTTPBytesIn: 7}
	m.Attempt(&abi.Job{Tenant: "acme", Func: "m.f"}, &abi.Outcome{Kind: abi.OutcomeDone, Usage: u})
	m.Attempt(&abi.Job{Tenant: "acme", Func: "m.f"}, &abi.Outcome{Kind: abi.OutcomeSandbox, ExcName: abi.ExcFuelExhausted, Usage: u})
	m.Attempt(&abi.Job{Tenant: "globex", Func: "m.g"}, &abi.Outcome{Kind: abi.OutcomeFailed, Usage: abi.Usage{WallMS: 1}})
	// A grow refused for a budget is a retry, counted as the sandbox's.
	m.Attempt(&abi.Job{Tenant: "acme", Func: "m.f"}, &abi.Outcome{Kind: abi.OutcomeRetry, ExcName: abi.ExcMemoryBudget})
	got := counters(t, m)
	for key, want := range map[string]float64{
		"wasmq_fuel_total func=m.f tenant=acme":                                 200,
		"wasmq_host_calls_total func=m.f tenant=acme":                           4,
		"wasmq_http_requests_total func=m.f tenant=acme":                        2,
		"wasmq_http_bytes_total direction=out func=m.f tenant=acme":             10,
		"wasmq_http_bytes_total direction=in func=m.f tenant=acme":              14,
		"wasmq_sandbox_failures_total exc_name=wasmq.FuelExhausted tenant=acme": 1,
		"wasmq_sandbox_failures_total exc_name=wasmq.MemoryBudget tenant=acme":  1,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
	if _, ok := got["wasmq_fuel_total func=m.g tenant=globex"]; ok {
		t.Error("an attempt without usage made a fuel series")
	}
}

// counters reads every counter m holds, keyed "name label=value ...".
func counters(t *testing.T, m *Metrics) map[string]float64 {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, mm := range f.Metric {
			key := f.GetName()
			for _, l := range mm.Label {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			got[key] = mm.GetCounter().GetValue()
		}
	}
	return got
}
