package telemetry

import (
	"context"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// TraceStore returns st with a span around each call of the hot path
// (insert, the scheduler's reads and moves, claim, complete, lease
// renewal) and the API's reads; other calls pass through. Only installed
// when tracing is on.
func TraceStore(st store.Store, t *Tracing) store.Store {
	if !t.Enabled() {
		return st
	}
	return &tracedStore{Store: st, tr: t.Tracer}
}

type tracedStore struct {
	store.Store
	tr trace.Tracer
}

func (s *tracedStore) span(ctx context.Context, op string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return s.tr.Start(ctx, "store."+op, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(append(attrs, attribute.String("db.operation.name", op))...))
}

func end(span trace.Span, n int, err error) {
	span.SetAttributes(attribute.Int("wasmq.jobs", n))
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

func (s *tracedStore) Insert(ctx context.Context, jobs []store.NewJob) ([]store.Inserted, error) {
	ctx, span := s.span(ctx, "Insert")
	out, err := s.Store.Insert(ctx, jobs)
	end(span, len(out), err)
	return out, err
}

// InsertUnder is the enqueue path's insert (under the tenant's quotas):
// the same span as Insert.
func (s *tracedStore) InsertUnder(ctx context.Context, q store.Quota, jobs []store.NewJob) ([]store.Inserted, error) {
	ctx, span := s.span(ctx, "Insert")
	out, err := s.Store.InsertUnder(ctx, q, jobs)
	end(span, len(out), err)
	return out, err
}

// InsertEach is the coalesced enqueue path's insert: one store.Insert
// span for the group.
func (s *tracedStore) InsertEach(ctx context.Context, reqs []store.InsertRequest) ([]store.InsertResult, error) {
	ctx, span := s.span(ctx, "Insert")
	out, err := s.Store.InsertEach(ctx, reqs)
	end(span, len(out), err)
	return out, err
}

func (s *tracedStore) Get(ctx context.Context, tenant, uuid string) (job abi.Job, err error) {
	ctx, span := s.span(ctx, "Get", attribute.String("wasmq.job.uuid", uuid))
	job, err = s.Store.Get(ctx, tenant, uuid)
	end(span, 1, err)
	return job, err
}

func (s *tracedStore) List(ctx context.Context, f store.Filter) (store.Page, error) {
	ctx, span := s.span(ctx, "List")
	p, err := s.Store.List(ctx, f)
	end(span, len(p.Jobs), err)
	return p, err
}

func (s *tracedStore) PendingSince(ctx context.Context, afterVersion int64, limit int) ([]store.Candidate, error) {
	ctx, span := s.span(ctx, "PendingSince")
	out, err := s.Store.PendingSince(ctx, afterVersion, limit)
	end(span, len(out), err)
	return out, err
}

func (s *tracedStore) PendingDue(ctx context.Context, afterVersion int64, until time.Time, channels []string, limit int) ([]store.Candidate, error) {
	ctx, span := s.span(ctx, "PendingDue")
	out, err := s.Store.PendingDue(ctx, afterVersion, until, channels, limit)
	end(span, len(out), err)
	return out, err
}

func (s *tracedStore) PendingByETA(ctx context.Context, after store.ETACursor, until time.Time, limit int) ([]store.Candidate, error) {
	ctx, span := s.span(ctx, "PendingByETA")
	out, err := s.Store.PendingByETA(ctx, after, until, limit)
	end(span, len(out), err)
	return out, err
}

func (s *tracedStore) Pending(ctx context.Context, uuids []string) ([]store.Candidate, error) {
	ctx, span := s.span(ctx, "Pending")
	out, err := s.Store.Pending(ctx, uuids)
	end(span, len(out), err)
	return out, err
}

func (s *tracedStore) Enqueue(ctx context.Context, jobs []store.Candidate, leaseUntil time.Time) ([]string, error) {
	ctx, span := s.span(ctx, "Enqueue")
	out, err := s.Store.Enqueue(ctx, jobs, leaseUntil)
	end(span, len(out), err)
	return out, err
}

func (s *tracedStore) Start(ctx context.Context, jobs []store.Candidate, workerID string, leaseUntil time.Time) ([]store.Claimed, error) {
	ctx, span := s.span(ctx, "Start")
	out, err := s.Store.Start(ctx, jobs, workerID, leaseUntil)
	end(span, len(out), err)
	return out, err
}

func (s *tracedStore) Claim(ctx context.Context, workerID string, limit int, leaseUntil time.Time) ([]store.Claimed, error) {
	ctx, span := s.span(ctx, "Claim")
	out, err := s.Store.Claim(ctx, workerID, limit, leaseUntil)
	end(span, len(out), err)
	return out, err
}

func (s *tracedStore) Complete(ctx context.Context, cs []store.Completion) ([]string, error) {
	ctx, span := s.span(ctx, "Complete")
	out, err := s.Store.Complete(ctx, cs)
	end(span, len(cs), err)
	return out, err
}

func (s *tracedStore) RenewLeases(ctx context.Context, workerID string, leaseUntil time.Time) ([]store.Held, error) {
	ctx, span := s.span(ctx, "RenewLeases")
	held, err := s.Store.RenewLeases(ctx, workerID, leaseUntil)
	end(span, len(held), err)
	return held, err
}

func (s *tracedStore) Disown(ctx context.Context, workerID string, jobs []store.Held) ([]store.Reaped, error) {
	ctx, span := s.span(ctx, "Disown")
	out, err := s.Store.Disown(ctx, workerID, jobs)
	end(span, len(out), err)
	return out, err
}
