package api_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/client"
	"github.com/wasmq/wasmq/config"
	"github.com/wasmq/wasmq/store/pgtest"
)

// A PostgreSQL node whose connections go through a cutter, and the DSN
// that reaches its schema directly. A tenant's enqueue is a transaction
// (its quota is counted in it) whose COMMIT goes out with the counts of
// the job's channel: a channel of the test's own marks that exchange,
// the second to name it after the insert.
func startCut(t *testing.T, wait time.Duration) (*srv, *pgtest.Cutter, string) {
	t.Helper()
	dsn := pgtest.DSN(t)
	c, proxied := pgtest.NewCutter(t, dsn)
	backend = "postgres"
	defer func() { backend = "sqlite" }()
	s := start(t, func(f *config.File) {
		f.Store.DSN = proxied
		f.Store.InDoubtWait = abi.Duration(wait)
	})
	return s, c, dsn
}

func storedDirectly(t *testing.T, dsn, uuid string) bool {
	t.Helper()
	return pgtest.Scalar[int](t, dsn, `SELECT count(*) FROM jobs WHERE uuid = $1`, uuid) == 1
}

// The database commits a job, and the answer to the node is lost on the
// way (a crash, a restart, a cut network): the client is answered as if
// nothing had happened, because the node asks the database once it can.
func TestAnEnqueueWhoseCommitsAnswerIsLostIsAnswered201(t *testing.T) {
	s, c, dsn := startCut(t, 10*time.Second)
	for _, batch := range []bool{false, true} {
		marker := fmt.Sprintf("root.lost%d", rand.Uint64())
		c.Arm(marker, 2, pgtest.AfterAnswer)
		var ids []string
		if batch {
			r := s.do("POST", "/v1/jobs:batch", tokA, map[string]any{"jobs": []any{
				map[string]any{"func": "testkit.echo", "channel": marker},
				map[string]any{"func": "testkit.echo", "channel": marker},
			}})
			c.Done()
			if r.status != 201 {
				t.Fatalf("a batch committed, its answer lost: %d %s, want 201", r.status, r.body)
			}
			for _, j := range r.json(t)["jobs"].([]any) {
				ids = append(ids, j.(map[string]any)["uuid"].(string))
			}
		} else {
			r := s.do("POST", "/v1/jobs", tokA, map[string]any{"func": "testkit.echo", "channel": marker})
			c.Done()
			if r.status != 201 {
				t.Fatalf("a job committed, its answer lost: %d %s, want 201", r.status, r.body)
			}
			ids = append(ids, r.json(t)["uuid"].(string))
		}
		for _, id := range ids {
			if !storedDirectly(t, dsn, id) {
				t.Errorf("job %s answered 201 is not stored", id)
			}
		}
	}
}

// When the database cannot tell within in_doubt_wait, the answer says
// so, names the jobs to look up, and does not invite a blind retry; the
// Go client tells it from a plain 503.
func TestAnEnqueueWhoseFateIsUnknownIsAnsweredInDoubtWithItsUUIDs(t *testing.T) {
	s, c, dsn := startCut(t, 500*time.Millisecond)
	marker := fmt.Sprintf("root.doubt%d", rand.Uint64())
	c.DownOnCut()
	c.Arm(marker, 2, pgtest.AfterAnswer)
	_, err := client.New(s.url, tokA).Enqueue(context.Background(), client.JobRequest{Func: "testkit.echo", Channel: marker})
	c.Done()
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != 503 || ce.Code != "in_doubt" || !ce.InDoubt() {
		t.Fatalf("an enqueue in doubt: %v, want 503 in_doubt", err)
	}
	if ce.Temporary() || ce.RetryAfter != 0 {
		t.Errorf("an enqueue in doubt invites a retry (Temporary %v, Retry-After %v): the job may be stored", ce.Temporary(), ce.RetryAfter)
	}
	if len(ce.UUIDs) != 1 {
		t.Fatalf("an enqueue in doubt names %v, want its one job", ce.UUIDs)
	}
	if !strings.Contains(ce.Error(), ce.UUIDs[0]) {
		t.Errorf("the client's error %q does not name the job to look up", ce.Error())
	}
	if !storedDirectly(t, dsn, ce.UUIDs[0]) {
		t.Errorf("the job named in doubt, committed before the answer was lost, is not stored under that uuid")
	}
}
