package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wasmq/wasmq/store"
	"github.com/wasmq/wasmq/store/pgtest"
)

// An enqueue that a lock keeps waiting is answered once [store] timeout
// has passed: unavailable, nothing stored, and nothing stored later
// either, when the lock goes (its session is ended, not left to commit
// behind the answer). Each way an insert is written: a lone job (one
// statement, its own transaction), a keyed job (a transaction), a group.
func TestAnInsertHeldByALockIsRefusedAtTheTimeoutAndStoresNothingLater(t *testing.T) {
	const timeout = 300 * time.Millisecond
	for _, c := range []struct {
		name   string
		insert func(s *Store, jobs []store.NewJob) error
		keyed  bool
	}{
		{"a lone job", func(s *Store, jobs []store.NewJob) error {
			_, err := s.InsertUnder(context.Background(), store.Quota{}, jobs[:1])
			return err
		}, false},
		{"a keyed job", func(s *Store, jobs []store.NewJob) error {
			_, err := s.InsertUnder(context.Background(), store.Quota{}, jobs[:1])
			return err
		}, true},
		{"a group of two requests", func(s *Store, jobs []store.NewJob) error {
			res, err := s.InsertEach(context.Background(), []store.InsertRequest{{Jobs: jobs[:1]}, {Jobs: jobs[1:]}})
			if err == nil {
				for _, r := range res {
					if r.Err != nil {
						return r.Err
					}
				}
			}
			return err
		}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dsn := testDSN(t)
			s, err := Open(context.Background(), dsn, true)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			s.SetTimeout(timeout)
			jobs := []store.NewJob{newJob(""), newJob("")}
			if c.keyed {
				jobs[0] = newJob("invoice-42")
			}
			release := pgtest.LockTable(t, dsn, "jobs", "SHARE")
			began := time.Now()
			answer := make(chan error, 1)
			go func() { answer <- c.insert(s, jobs) }()
			select {
			case err = <-answer:
			case <-time.After(timeout + 5*time.Second):
				release()
				t.Fatalf("no answer %v past the timeout while the lock was held (then: %v)", 5*time.Second, <-answer)
			}
			took := time.Since(began)
			var doubt *store.InDoubtError
			if err == nil || !s.Unavailable(err) || errors.As(err, &doubt) {
				t.Fatalf("held by a lock: %v, want unavailable (nothing stored)", err)
			}
			if took < timeout || took > timeout+5*time.Second {
				t.Errorf("answered after %v, want just past the %v timeout", took, timeout)
			}
			release()
			time.Sleep(300 * time.Millisecond) // a write left behind would commit now
			for _, j := range jobs {
				if stored(t, s, j.UUID) {
					t.Fatalf("answered unavailable after %v, but %s was stored once the lock went", took, j.UUID)
				}
			}
			t.Logf("answered unavailable after %v", took.Round(time.Millisecond))
		})
	}
}

// A lock that blocks reads too keeps the store from telling whether a
// lone job's statement, cut by the timeout, committed: the answer is in
// doubt, naming the job. The job is in fact not stored: its session was
// ended while it waited.
func TestAnInsertWhoseFateALockHidesIsInDoubtAndItsSessionIsEnded(t *testing.T) {
	dsn := testDSN(t)
	s, err := Open(context.Background(), dsn, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.SetTimeout(300 * time.Millisecond)
	s.SetInDoubtWait(500 * time.Millisecond)
	j := newJob("")
	release := pgtest.LockTable(t, dsn, "jobs", "ACCESS EXCLUSIVE")
	answer := make(chan error, 1)
	go func() {
		_, err := s.InsertUnder(context.Background(), store.Quota{}, []store.NewJob{j})
		answer <- err
	}()
	select {
	case err = <-answer:
	case <-time.After(5 * time.Second):
		release()
		t.Fatalf("no answer within 5 s while the lock was held (then: %v)", <-answer)
	}
	var doubt *store.InDoubtError
	if !errors.As(err, &doubt) || len(doubt.UUIDs) != 1 || doubt.UUIDs[0] != j.UUID {
		t.Fatalf("behind a lock that hides the jobs: %v, want in doubt naming %s", err, j.UUID)
	}
	release()
	time.Sleep(300 * time.Millisecond)
	if stored(t, s, j.UUID) {
		t.Fatal("the session cut by the timeout was left to commit once the lock went")
	}
}
