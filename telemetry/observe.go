package telemetry

import (
	"context"

	"github.com/wasmq/wasmq/abi"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Observer records each attempt: its metrics always, its span when
// tracing is on. runner.Observer is its interface there.
type Observer struct {
	Metrics *Metrics
	Tracing *Tracing
}

// AttemptStart opens the attempt's span (only when tracing is on: else
// ctx comes back as it is, and nothing is allocated).
func (o *Observer) AttemptStart(ctx context.Context, job *abi.Job) context.Context {
	if !o.Tracing.Enabled() {
		return ctx
	}
	ctx, _ = o.Tracing.Tracer.Start(ctx, "wasmq.attempt "+job.Func, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("wasmq.job.uuid", job.UUID),
			attribute.String("wasmq.job.func", job.Func),
			attribute.String("wasmq.tenant", job.Tenant),
			attribute.String("wasmq.channel", job.Channel),
			attribute.Int("wasmq.job.attempt", job.Attempt),
			attribute.String("wasmq.worker_id", job.WorkerID),
		))
	return ctx
}

// AttemptEnd records the attempt's metrics and ends its span with the
// outcome, the state the job moves to and, for a failure, its name.
func (o *Observer) AttemptEnd(ctx context.Context, job *abi.Job, out *abi.Outcome, to abi.State) {
	o.Metrics.Attempt(job, out)
	if !o.Tracing.Enabled() {
		return
	}
	span := trace.SpanFromContext(ctx)
	span.SetAttributes(
		attribute.String("wasmq.outcome", string(out.Kind)),
		attribute.String("wasmq.job.state", string(to)),
		attribute.String("wasmq.plugin_sha256", out.PluginSHA256),
		attribute.Float64("wasmq.sandbox.call_seconds", out.CallTime.Seconds()),
	)
	if out.ExcName != "" {
		span.SetAttributes(attribute.String("wasmq.exc_name", out.ExcName))
	}
	if out.Kind == abi.OutcomeFailed || out.Kind == abi.OutcomeSandbox {
		span.SetStatus(codes.Error, out.ExcName+": "+out.ExcMessage)
	}
	span.End()
}
