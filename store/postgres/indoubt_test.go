package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
	"github.com/wasmq/wasmq/store/pgtest"
)

// openCut opens a store whose connections go through a cutter.
func openCut(t *testing.T) (*Store, *Store, *pgtest.Cutter) {
	t.Helper()
	dsn := testDSN(t)
	direct, err := Open(context.Background(), dsn, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { direct.Close() })
	c, proxied := pgtest.NewCutter(t, dsn)
	s, err := Open(context.Background(), proxied, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, direct, c
}

func stored(t *testing.T, s *Store, id string) bool {
	t.Helper()
	_, err := s.Get(context.Background(), "", id)
	if err != nil && !errors.Is(err, abi.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// cutInsert inserts one job through a store whose connection breaks, on
// that insert, as how says; direct reaches the same schema unbroken.
func cutInsert(t *testing.T, how pgtest.Cut) (s, direct *Store, j store.NewJob, got []store.Inserted, err error) {
	t.Helper()
	s, direct, c := openCut(t)
	j = newJob("")
	c.Arm(j.UUID, 1, how)
	got, err = s.Insert(context.Background(), []store.NewJob{j})
	c.Done()
	return s, direct, j, got, err
}

// wantStored: the insert was answered with its job, which is stored.
func wantStored(t *testing.T, direct *Store, j store.NewJob, got []store.Inserted, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v, want it answered as stored", what, err)
	}
	if len(got) != 1 || got[0].Job.UUID != j.UUID || got[0].Job.State != abi.StatePending {
		t.Fatalf("%s: answered %+v, want the job as stored", what, got)
	}
	if !stored(t, direct, j.UUID) {
		t.Fatalf("%s: answered as stored, but the store does not hold the job", what)
	}
}

// wantNotStored: the insert was answered unavailable, not in doubt, and
// its job is not stored: sending it again is safe.
func wantNotStored(t *testing.T, s, direct *Store, j store.NewJob, err error, what string) {
	t.Helper()
	var doubt *store.InDoubtError
	if err == nil || !s.Unavailable(err) || errors.As(err, &doubt) {
		t.Fatalf("%s: %v, want unavailable (nothing stored), not in doubt", what, err)
	}
	if stored(t, direct, j.UUID) {
		t.Fatalf("%s: answered as not stored, but the store holds the job", what)
	}
}

func TestAnInsertWhoseAnswerIsLostIsAnsweredAsStored(t *testing.T) {
	_, direct, j, got, err := cutInsert(t, pgtest.AfterAnswer)
	wantStored(t, direct, j, got, err, "the insert committed, its answer lost")
}

func TestAnInsertThatNeverReachedTheServerIsAnsweredAsNotStored(t *testing.T) {
	s, direct, j, _, err := cutInsert(t, pgtest.BeforeServer)
	wantNotStored(t, s, direct, j, err, "the insert never reached the server")
}

func TestASessionThatOutlivesItsClientIsEndedBeforeTheAnswer(t *testing.T) {
	t.Run("committed", func(t *testing.T) {
		_, direct, j, got, err := cutInsert(t, pgtest.AnswerLostSessionKept)
		wantStored(t, direct, j, got, err, "the insert committed, its session left behind")
	})
	t.Run("its transaction still open", func(t *testing.T) {
		// The server ran the insert and waits for the Sync that would
		// commit it. Waiting for the session to end by itself would
		// outlast the settle; it is ended, which rolls the insert back.
		s, direct, j, _, err := cutInsert(t, pgtest.WithoutSync)
		wantNotStored(t, s, direct, j, err, "the insert's session was ended before its commit")
	})
}

func TestAGroupWhoseCommitIsLostIsAnsweredRequestByRequest(t *testing.T) {
	s, direct, c := openCut(t)
	a, b := newJob(""), newJob("")
	bad := newJob("")
	bad.Priority = -1
	keyed := newJob("k1") // through the write with savepoints: its COMMIT is what is cut
	c.Arm(a.UUID, 1, pgtest.AfterAnswer)
	res, err := s.InsertEach(context.Background(), []store.InsertRequest{{Jobs: []store.NewJob{a, b}}, {Jobs: []store.NewJob{bad}}})
	c.Done()
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || len(res[0].Jobs) != 2 || res[0].Jobs[1].Job.UUID != b.UUID {
		t.Errorf("the request stored before the answer was lost: %+v, want its two jobs", res[0])
	}
	if !errors.Is(res[1].Err, abi.ErrInvalid) {
		t.Errorf("the invalid request: %v, want its own refusal", res[1].Err)
	}
	for _, id := range []string{a.UUID, b.UUID} {
		if !stored(t, direct, id) {
			t.Errorf("job %s answered as stored is not", id)
		}
	}

	// The keyed job's uuid goes out twice: in its insert, then in the
	// event sent with the COMMIT.
	c.Arm(keyed.UUID, 2, pgtest.AfterAnswer)
	got, err := s.Insert(context.Background(), []store.NewJob{keyed})
	c.Done()
	if err != nil || len(got) != 1 || got[0].Job.UUID != keyed.UUID {
		t.Fatalf("a keyed insert whose COMMIT's answer was lost: %+v, %v; want it answered as stored", got, err)
	}
	if !stored(t, direct, keyed.UUID) {
		t.Fatal("the keyed job answered as stored is not")
	}
}

func TestAnInsertWhoseFateCannotBeToldInTimeNamesItsJobs(t *testing.T) {
	s, direct, c := openCut(t)
	j := newJob("")
	// The database answers the insert, then cannot be reached before
	// the caller's deadline.
	c.DownOnCut()
	c.Arm(j.UUID, 1, pgtest.AfterAnswer)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := s.Insert(ctx, []store.NewJob{j})
	c.Done()
	var doubt *store.InDoubtError
	if !errors.As(err, &doubt) || len(doubt.UUIDs) != 1 || doubt.UUIDs[0] != j.UUID {
		t.Fatalf("the fate of an insert could not be told: %v, want an InDoubtError naming its job", err)
	}
	if !s.Unavailable(err) {
		t.Errorf("an insert in doubt is not the request's fault: Unavailable(%v) = false", err)
	}
	if !stored(t, direct, j.UUID) {
		t.Fatal("the job committed before the answer was lost is not stored")
	}
}
