package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// lostAnswers is a driver whose every insert loses its answer after the
// commit was sent; the store then holds the jobs in held, and tells that
// once ended is nil.
type lostAnswers struct {
	store.Driver // nil: any other operation panics
	held         map[string]bool
	ended        error
	reads        int
}

var errLost = errors.New("connection lost after the commit was sent")

func (d *lostAnswers) InsertPending(context.Context, []abi.Job) ([]abi.Job, error) {
	return nil, errLost
}
func (d *lostAnswers) Unavailable(err error) bool         { return errors.Is(err, errLost) }
func (d *lostAnswers) InDoubt(err error) bool             { return errors.Is(err, errLost) }
func (d *lostAnswers) Ended(context.Context, error) error { return d.ended }
func (d *lostAnswers) GetJob(_ context.Context, _, uuid string) (abi.Job, error) {
	d.reads++
	if d.held[uuid] {
		return abi.Job{UUID: uuid, State: abi.StatePending}, nil
	}
	return abi.Job{}, abi.ErrNotFound
}

func plain(uuid string) store.NewJob {
	return store.NewJob{UUID: uuid, Tenant: "t", Func: "m.f", Channel: "root", Priority: 10}
}

func TestAnInsertInDoubtIsAnsweredFromWhatTheStoreHolds(t *testing.T) {
	ctx := context.Background()
	d := &lostAnswers{held: map[string]bool{"a": true, "b": true, "c": true}}
	c := store.NewCore(d)
	res, err := c.InsertEach(ctx, []store.InsertRequest{
		{Jobs: []store.NewJob{plain("a"), plain("b")}}, // stored
		{Jobs: []store.NewJob{plain("x")}},             // not stored
		{Jobs: []store.NewJob{plain("c"), plain("y")}}, // part of it: which job stands for y is not told
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || len(res[0].Jobs) != 2 || res[0].Jobs[0].Job.UUID != "a" || res[0].Jobs[1].Job.UUID != "b" {
		t.Errorf("a request whose jobs are stored: %+v, want them", res[0])
	}
	var doubt *store.InDoubtError
	if !errors.Is(res[1].Err, errLost) || errors.As(res[1].Err, &doubt) {
		t.Errorf("a request whose job is not stored: %v, want the store's error (nothing stored)", res[1].Err)
	}
	if !errors.As(res[2].Err, &doubt) || len(doubt.UUIDs) != 2 {
		t.Errorf("a request partly found: %v, want in doubt, naming its two jobs", res[2].Err)
	}
}

func TestAnInsertWhoseStoreCannotTellIsInDoubtAfterTheWait(t *testing.T) {
	d := &lostAnswers{held: map[string]bool{"a": true}, ended: errors.New("unreachable")}
	c := store.NewCore(d)
	c.SetInDoubtWait(200 * time.Millisecond)
	began := time.Now()
	_, err := c.Insert(context.Background(), []store.NewJob{plain("a")})
	var doubt *store.InDoubtError
	if !errors.As(err, &doubt) || len(doubt.UUIDs) != 1 || doubt.UUIDs[0] != "a" {
		t.Fatalf("an insert whose store cannot tell: %v, want in doubt naming its job", err)
	}
	if waited := time.Since(began); waited < 200*time.Millisecond {
		t.Errorf("answered in doubt after %v, before the wait of 200ms was over", waited)
	}
}

// A request is stored whole or not at all: one read of a job without an
// identity key tells for a batch that was not stored.
func TestABatchInDoubtThatWasNotStoredCostsOneRead(t *testing.T) {
	d := &lostAnswers{held: map[string]bool{}}
	c := store.NewCore(d)
	batch := make([]store.NewJob, 100)
	for i := range batch {
		batch[i] = plain(fmt.Sprintf("j%d", i))
	}
	_, err := c.Insert(context.Background(), batch)
	if !errors.Is(err, errLost) {
		t.Fatalf("a batch not stored: %v, want the store's error (nothing stored)", err)
	}
	if d.reads != 1 {
		t.Errorf("a batch not stored took %d reads to tell, want 1", d.reads)
	}
}
