// Package telemetry holds wasmq's Prometheus metrics and OpenTelemetry
// tracing: the series and spans of docs/observability.md, a node's
// registry, the OTLP exporter, and the wrappers that trace the store and
// record each attempt. Packages that record (runner, api) see it through
// interfaces of their own; server/ wires it.
package telemetry

import (
	"context"
	"fmt"
	"net/url"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// InstrumentationName names wasmq's tracer (the instrumentation scope of
// every span it makes).
const InstrumentationName = "github.com/wasmq/wasmq"

// Tracing is a node's tracer: OpenTelemetry's no-op one when tracing is
// off (Enabled false: callers skip their wrappers altogether), else one
// that exports by OTLP/HTTP.
type Tracing struct {
	Tracer     trace.Tracer
	Propagator propagation.TextMapPropagator
	enabled    bool
	shutdown   func(context.Context) error
}

// Off is tracing turned off.
func Off() *Tracing {
	return &Tracing{Tracer: noop.NewTracerProvider().Tracer(InstrumentationName), Propagator: propagation.TraceContext{},
		shutdown: func(context.Context) error { return nil }}
}

// WithProvider traces with tp (tests give an in-memory recorder's).
func WithProvider(tp trace.TracerProvider) *Tracing {
	return &Tracing{Tracer: tp.Tracer(InstrumentationName), Propagator: propagation.TraceContext{}, enabled: true,
		shutdown: func(context.Context) error { return nil }}
}

// NewTracing builds the tracer c asks for: Off without an endpoint.
func NewTracing(ctx context.Context, c Config) (*Tracing, error) {
	c = c.WithDefaults()
	if !c.Enabled() {
		return Off(), nil
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	endpoint, err := tracesURL(c.OTLPEndpoint)
	if err != nil {
		return nil, err
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(endpoint)}
	if len(c.OTLPHeaders) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(c.OTLPHeaders))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("telemetry.otlp_endpoint: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(*c.SampleRatio))),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", c.ServiceName))),
	)
	t := WithProvider(tp)
	t.shutdown = tp.Shutdown
	return t, nil
}

// tracesURL adds OTLP's /v1/traces to an endpoint given without a path.
func tracesURL(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", fmt.Errorf("telemetry.otlp_endpoint: %w", err)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	return u.String(), nil
}

// Enabled says whether spans go anywhere.
func (t *Tracing) Enabled() bool { return t != nil && t.enabled }

// Shutdown exports the spans still buffered and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.shutdown(ctx)
}
