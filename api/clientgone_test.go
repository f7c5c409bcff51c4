package api_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/wasmq/wasmq/config"
	"github.com/wasmq/wasmq/server"
	"github.com/wasmq/wasmq/store/pgdsn"
	"github.com/wasmq/wasmq/store/pgtest"
	"github.com/wasmq/wasmq/telemetry"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// A client that goes away before its answer — a page left while its list
// ran, a proxy's timeout — is not a server error: its request is recorded
// 499 (client closed request), its span not marked failed, and a read it
// left waiting for its turn is not counted refused. Before, the query the
// departure cut short came back as a 500, logged as an internal error
// and marked on the span, and the wait as a refusal of the read gate.
// acme's first list is held in PostgreSQL by a lock on the jobs table,
// its second waits for acme's one turn; both clients leave.
func TestAClientThatLeavesIsNotAServerError(t *testing.T) {
	base := pgtest.DSN(t)
	app := fmt.Sprintf("wasmq-gone-%d", time.Now().UnixNano())
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	backend = "postgres"
	s := startNode(t, []server.Option{server.WithTracing(telemetry.WithProvider(tp))}, func(f *config.File) {
		f.Store.DSN = pgdsn.WithParam(base, "application_name", app)
		f.Tenants[0].MaxReads = 1
	})
	backend = "sqlite"
	ctx := context.Background()
	inDatabase := listsHeld(t, base, app)

	release := pgtest.LockTable(t, base, "jobs", "ACCESS EXCLUSIVE")
	defer release()
	leave, cancel := context.WithCancel(ctx)
	done := make(chan error, 2)
	for range 2 {
		go func() {
			req := s.request("GET", "/v1/jobs?limit=5", tokA, nil).WithContext(leave)
			res, err := http.DefaultClient.Do(req)
			if err == nil {
				res.Body.Close()
				err = fmt.Errorf("answered %d before its client left", res.StatusCode)
			}
			done <- err
		}()
	}
	// One list waits in PostgreSQL, the other for acme's turn.
	for deadline := time.Now().Add(10 * time.Second); inDatabase() != 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d lists waiting in PostgreSQL, want 1", inDatabase())
		}
	}
	time.Sleep(200 * time.Millisecond) // the second is at the gate
	cancel()
	for range 2 {
		<-done
	}
	var lists []sdktrace.ReadOnlySpan
	for deadline := time.Now().Add(10 * time.Second); len(lists) < 2; time.Sleep(20 * time.Millisecond) {
		lists = lists[:0]
		for _, sp := range rec.Ended() {
			if sp.Name() == "GET /v1/jobs" {
				lists = append(lists, sp)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d spans of the two lists ended", len(lists))
		}
	}
	for _, sp := range lists {
		if code := attr(sp, "http.response.status_code").AsInt64(); code != 499 || sp.Status().Code == codes.Error {
			t.Errorf("a list whose client left: status %d, span %v %q; want 499, not an error", code, sp.Status().Code, sp.Status().Description)
		}
	}
	release()
	if m := series(scrape(t, s, tokA), "wasmq_api_reads_refused_total", nil); m != nil {
		t.Fatalf("a read whose client left while it waited was counted refused: %v", m)
	}
}
