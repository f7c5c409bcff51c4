package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/wasmq/wasmq/store/pgdsn"
	"maps"
	"math/rand/v2"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
	"github.com/wasmq/wasmq/store/storetest"
)

func baseDSN() string {
	if v := os.Getenv("WASMQ_TEST_DATABASE_URL"); v != "" {
		return v
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// testDSN creates a fresh schema and returns a DSN whose search_path is
// that schema, so tests (and parallel packages) never see each other's
// jobs. The schema is dropped when tb ends.
func testDSN(tb testing.TB) string {
	tb.Helper()
	ctx := context.Background()
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, baseDSN())
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("PostgreSQL unreachable: %v", err)
		}
		tb.Skipf("PostgreSQL unreachable: %v", err)
	}
	defer conn.Close(ctx)
	schema := fmt.Sprintf("wasmq_t_%d", rand.Uint64())
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), baseDSN())
		if err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(baseDSN())
	if err != nil {
		tb.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func openTest(tb testing.TB) *Store {
	tb.Helper()
	return openOn(tb, testDSN(tb), true)
}

// openOn opens a store on dsn (migrating it first with migrate), closed
// when the test ends.
func openOn(tb testing.TB, dsn string, migrate bool) *Store {
	tb.Helper()
	s, err := Open(context.Background(), dsn, migrate)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTest(t) })
}

func newJob(key string) store.NewJob {
	return store.NewJob{UUID: uuid.NewString(), Tenant: "t1", Func: "testkit.echo", Channel: "root",
		Priority: 10, MaxRetries: 5, IdentityKey: key}
}

func TestFiftyConcurrentInsertsWithOneIdentityKeyStoreOneJob(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	got := make([]store.Inserted, 50)
	errs := make([]error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ins, err := s.Insert(ctx, []store.NewJob{newJob("same")})
			errs[i] = err
			if err == nil {
				got[i] = ins[0]
			}
		}()
	}
	wg.Wait()
	created := 0
	for i := range 50 {
		if errs[i] != nil {
			t.Fatalf("insert %d: %v", i, errs[i])
		}
		if !got[i].Deduplicated {
			created++
		}
		if got[i].Job.UUID != got[0].Job.UUID {
			t.Fatalf("insert %d returned job %s, insert 0 returned %s", i, got[i].Job.UUID, got[0].Job.UUID)
		}
	}
	if created != 1 {
		t.Fatalf("%d inserts created a job, want exactly 1", created)
	}
	page, err := s.List(ctx, store.Filter{IdentityKey: "same"})
	if err != nil || len(page.Jobs) != 1 {
		t.Fatalf("stored %d jobs with the key (%v), want 1", len(page.Jobs), err)
	}
}

// enqueueAll inserts n jobs and moves them to enqueued like the scheduler.
func enqueueAll(tb testing.TB, s *Store, n int) {
	tb.Helper()
	ctx := context.Background()
	jobs := make([]store.NewJob, n)
	for i := range jobs {
		jobs[i] = newJob("")
	}
	if _, err := s.Insert(ctx, jobs); err != nil {
		tb.Fatal(err)
	}
	var after int64
	for {
		cs, err := s.PendingSince(ctx, after, 5000)
		if err != nil {
			tb.Fatal(err)
		}
		if len(cs) == 0 {
			// Fresh statistics, as autovacuum keeps them: the planner
			// then walks the run-order index instead of sorting.
			if _, err := s.d.pool.Exec(ctx, `ANALYZE jobs`); err != nil {
				tb.Fatal(err)
			}
			return
		}
		after = cs[len(cs)-1].Version
		if _, err := s.Enqueue(ctx, cs, time.Now().Add(time.Hour)); err != nil {
			tb.Fatal(err)
		}
	}
}

func TestConcurrentClaimersWithSkipLockedNeverShareAJob(t *testing.T) {
	s := openTest(t)
	enqueueAll(t, s, 500)
	ctx := context.Background()
	var mu sync.Mutex
	seen := map[string]string{}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			worker := fmt.Sprintf("w%d", w)
			for {
				jobs, err := s.Claim(ctx, worker, 7, time.Now().Add(time.Minute))
				if err != nil {
					t.Error(err)
					return
				}
				if len(jobs) == 0 {
					return
				}
				mu.Lock()
				for _, j := range jobs {
					if prev, ok := seen[j.UUID]; ok {
						t.Errorf("job %s handed to %s and %s", j.UUID, prev, worker)
					}
					seen[j.UUID] = worker
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != 500 {
		t.Fatalf("claimed %d distinct jobs, want 500", len(seen))
	}
}

func TestCompleteAppliesABatchAndSkipsJobsNoLongerHeld(t *testing.T) {
	s := openTest(t)
	enqueueAll(t, s, 100)
	ctx := context.Background()
	jobs, err := s.Claim(ctx, "w1", 100, time.Now().Add(time.Minute))
	if err != nil || len(jobs) != 100 {
		t.Fatalf("claimed %d (%v), want 100", len(jobs), err)
	}
	cs := make([]store.Completion, len(jobs))
	for i, j := range jobs {
		cs[i] = store.Completion{UUID: j.UUID, WorkerID: "w1", Attempt: j.Attempt, To: abi.StateDone,
			Cause: abi.CauseDone, Result: []byte(`{"ok":true}`), Ended: time.Now()}
	}
	cs[0].WorkerID = "someone-else"
	cs[1].Attempt++
	applied, err := s.Complete(ctx, cs)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != 98 {
		t.Fatalf("applied %d completions, want 98", len(applied))
	}
	j, err := s.Get(ctx, "", jobs[2].UUID)
	if err != nil || j.State != abi.StateDone || string(j.Result) != `{"ok":true}` || j.DateDone == nil {
		t.Fatalf("completed job: %+v (%v)", j, err)
	}
	if j, _ := s.Get(ctx, "", jobs[0].UUID); j.State != abi.StateStarted {
		t.Fatalf("job completed by another worker is %s, want started", j.State)
	}
}

func TestMigrationsAreIdempotentAndANewerSchemaIsRefused(t *testing.T) {
	ctx := context.Background()
	dsn := testDSN(t)
	if _, err := Open(ctx, dsn, false); err == nil || !strings.Contains(err.Error(), "run `wasmq migrate`") {
		t.Fatalf("opening an unmigrated database without migrate: %v", err)
	}
	if n, err := Migrate(ctx, dsn); err != nil || n != SchemaVersion {
		t.Fatalf("first migrate applied %d (%v), want %d", n, err, SchemaVersion)
	}
	if n, err := Migrate(ctx, dsn); err != nil || n != 0 {
		t.Fatalf("second migrate applied %d (%v), want 0", n, err)
	}
	s, err := Open(ctx, dsn, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.d.pool.Exec(ctx, `INSERT INTO wasmq_schema_version (version) VALUES ($1)`, SchemaVersion+4); err != nil {
		t.Fatal(err)
	}
	s.Close()
	want := fmt.Sprintf("database schema version %d is newer than this wasmq binary supports (%d); upgrade wasmq", SchemaVersion+4, SchemaVersion)
	for _, migrate := range []bool{false, true} {
		if _, err := Open(ctx, dsn, migrate); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("opening a newer schema (migrate=%v): %v", migrate, err)
		}
	}
}

func TestSubscribeReceivesTheNotifyOfAnotherStore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dsn := testDSN(t)
	a := openOn(t, dsn, true)
	b := openOn(t, dsn, false)
	events, err := a.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	j := newJob("")
	j.Channel = "root.mail"
	if _, err := b.Insert(ctx, []store.NewJob{j}); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case e := <-events:
			if e.Kind == store.EventPending && len(e.Channels) == 1 && e.Channels[0] == "root.mail" {
				return
			}
		case <-ctx.Done():
			t.Fatal("no pending event for root.mail")
		}
	}
}

// A leader whose process is alive to its kernel but says nothing (frozen,
// paused, cut off without a reset) keeps its session's socket open: the
// server ends that session after hold of silence, so its lock goes and
// another store leads; the silent one, when it speaks again, is told it
// lost the lead, and may only take it anew.
func TestASilentLeaderLosesTheLeadAfterItsHold(t *testing.T) {
	ctx := context.Background()
	dsn := testDSN(t)
	a := openOn(t, dsn, true)
	b := openOn(t, dsn, false)
	const hold = 500 * time.Millisecond
	if ok, err := a.TryLead(ctx, "a", hold); !ok || err != nil {
		t.Fatalf("a, alone in its schema, does not lead: %v %v", ok, err)
	}
	// Speaking within its hold, a keeps the lead.
	var silent time.Time // when a last heard its answer: its silence began before
	for i := 0; i < 6; i++ {
		time.Sleep(hold / 3)
		if ok, err := a.TryLead(ctx, "a", hold); !ok || err != nil {
			t.Fatalf("a, asking every third of its hold, lost the lead after %d asks: %v %v", i, ok, err)
		}
		silent = time.Now()
		if ok, err := b.TryLead(ctx, "b", hold); ok || err != nil {
			t.Fatalf("b leads while a does: %v %v", ok, err)
		}
	}
	// Silent, a loses it, and b takes it.
	for {
		ok, err := b.TryLead(ctx, "b", hold)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Since(silent) > 5*time.Second {
			t.Fatalf("b does not lead 5 s after a went silent (hold %v)", hold)
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(silent)
	t.Logf("b leads %v after a went silent (hold %v)", took.Round(time.Millisecond), hold)
	if took < hold-10*time.Millisecond { // the answer's way back: well under 10 ms here
		t.Fatalf("b leads %v after a went silent, before a's hold of %v", took, hold)
	}
	// a is told, once; asking again, it does not lead while b does (b
	// asks first: silent for a hold, b would lose the lead in its turn).
	if ok, err := a.TryLead(ctx, "a", hold); ok || err == nil {
		t.Fatalf("the silent leader's next ask: %v %v, want the lead reported lost", ok, err)
	}
	if ok, err := b.TryLead(ctx, "b", hold); !ok || err != nil {
		t.Fatalf("b, asking within its hold, lost the lead: %v %v", ok, err)
	}
	if ok, err := a.TryLead(ctx, "a", hold); ok || err != nil {
		t.Fatalf("a asks anew while b leads: %v %v, want no lead and no error", ok, err)
	}
}

// A hold past what the server counts (an int32 of milliseconds) is its
// longest, not an error.
func TestALeadHoldPastTheServersCountIsItsLongest(t *testing.T) {
	c := openOn(t, testDSN(t), true)
	if ok, err := c.TryLead(context.Background(), "c", 30*24*time.Hour); !ok || err != nil {
		t.Fatalf("a hold of 30 days: %v %v, want the lead", ok, err)
	}
}

// lockTakenWithin takes, on conn, the advisory lock another session
// holds, waiting at most bound.
func lockTakenWithin(t *testing.T, conn *pgx.Conn, key int, bound time.Duration, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	began := time.Now()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, identityLockClass, key); err != nil {
		t.Fatalf("%s was still held after %v: %v", what, time.Since(began), err)
	}
	t.Logf("the lock was another session's %v after", time.Since(began).Round(time.Millisecond))
}

// poolsShow checks that both of s's pools' sessions have the setting.
func poolsShow(t *testing.T, s *Store, setting, want string) {
	t.Helper()
	for _, pool := range []*pgxpool.Pool{s.d.pool, s.d.fast} {
		var got string
		if err := pool.QueryRow(context.Background(), `SHOW `+setting).Scan(&got); err != nil || got != want {
			t.Fatalf("a pool's %s: %q %v, want %s", setting, got, err, want)
		}
	}
}

// A node that stops in the middle of a transaction (frozen, paused, cut
// off without a reset) holds its locks only until the server ends its
// idle session: after 10 s by default (both pools), or what the dsn
// sets. Here 300 ms: a lock such a transaction took (the one an identity
// key's insert takes) is another session's soon after, and the silent
// transaction cannot commit afterwards.
func TestATransactionLeftIdleLetsGoOfItsLocks(t *testing.T) {
	ctx := context.Background()
	dsn := testDSN(t)
	poolsShow(t, openOn(t, dsn, true), "idle_in_transaction_session_timeout", "10s")
	short := openOn(t, pgdsn.WithParam(dsn, "idle_in_transaction_session_timeout", "300"), false)
	tx, err := short.d.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, 7)`, identityLockClass); err != nil {
		t.Fatal(err)
	}
	other, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	lockTakenWithin(t, other, 7, 5*time.Second, "the lock of a transaction left idle")
	if err := tx.Commit(ctx); err == nil {
		t.Fatal("the transaction left idle committed after its session was ended")
	}
}

// A node that stops reading in the middle of an answer (frozen, or cut
// off) leaves its server session blocked in a send: the statement is
// still running, so neither idle timeout applies, and its locks and its
// snapshot (which keeps vacuum from the jobs table's dead rows, every
// node's) would hold until the kernel gives up, a quarter of an hour
// later. Every session sets tcp_user_timeout: ten seconds of answers left
// unacknowledged end it.
func TestASessionWhoseAnswerIsNotReadLetsGoOfItsLocks(t *testing.T) {
	ctx := context.Background()
	dsn := testDSN(t)
	poolsShow(t, openOn(t, dsn, true), "tcp_user_timeout", "10000") // ms
	short := openOn(t, pgdsn.WithParam(dsn, "tcp_user_timeout", "500"), false)
	tx, err := short.d.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) // gives the connection back to the pool, which waits for it to close
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, 8)`, identityLockClass); err != nil {
		t.Fatal(err)
	}
	// Far more than the sockets' buffers hold: the server's send blocks
	// once they are full, as it does for a frozen reader.
	rows, err := tx.Query(ctx, `SELECT repeat('x', 8192) FROM generate_series(1, 100000)`)
	if err != nil {
		t.Fatal(err)
	}
	if !rows.Next() {
		t.Fatalf("no first row: %v", rows.Err())
	}
	defer rows.Close()
	other, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	pid := tx.Conn().PgConn().PID()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var wait string
		if err := other.QueryRow(ctx, `SELECT coalesce(wait_event, '') FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&wait); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			t.Fatal(err)
		}
		if wait == "ClientWrite" {
			break // the server waits on the reader, as on a frozen one
		}
		if time.Now().After(deadline) {
			t.Fatalf("the session's wait is %q, not ClientWrite: the test does not block its send", wait)
		}
	}
	lockTakenWithin(t, other, 8, 5*time.Second, "the lock of a session whose answer was not read")
}

// A bound the dsn sets in its `options` keeps the dsn's value, as one
// set as a parameter of its own does: the server reads the options before
// the startup parameters, so a bound wasmq sent as well would win.
func TestABoundSetInTheOptionsKeepsItsValue(t *testing.T) {
	dsn := pgdsn.WithParam(testDSN(t), "options",
		`-c tcp_user_timeout=2500 --idle-in-transaction-session-timeout=4s -ctcp_keepalives_idle=70 -c application_name=a\ b`)
	s := openOn(t, dsn, true)
	poolsShow(t, s, "tcp_user_timeout", "2500")
	poolsShow(t, s, "idle_in_transaction_session_timeout", "4s")
	poolsShow(t, s, "tcp_keepalives_idle", "70")
	poolsShow(t, s, "tcp_keepalives_interval", "10") // not in the options: wasmq's bound
	poolsShow(t, s, "application_name", "a b")
}

func TestOnlyOneStoreLeadsUntilItCloses(t *testing.T) {
	ctx := context.Background()
	dsn := testDSN(t)
	a, err := Open(ctx, dsn, true)
	if err != nil {
		t.Fatal(err)
	}
	b := openTest(t)
	b.Close()
	b, err = Open(ctx, dsn, false)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// The lock is database-wide: another package's test may lead; wait for it.
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok, err := a.TryLead(ctx, "a", 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a never became leader")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ok, err := a.TryLead(ctx, "a", 10*time.Second); !ok || err != nil {
		t.Fatalf("the leader's second TryLead: %v %v", ok, err)
	}
	if ok, err := b.TryLead(ctx, "b", 10*time.Second); ok || err != nil {
		t.Fatalf("b leads while a does: %v %v", ok, err)
	}
	a.Close()
	// The server releases the lock once its backend sees the connection
	// gone: soon, not at once.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ok, err := b.TryLead(ctx, "b", 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b does not lead within 5 s of a closing")
		}
	}
}

// BenchmarkStore runs the benchmarks every backend reports.
func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) store.Store { return openTest(b) })
}

// BenchmarkClaimComplete100Parallel is the same hot path with several
// workers at once, as the runner drives it: commits group and claims
// skip each other's locked rows.
func BenchmarkClaimComplete100Parallel(b *testing.B) {
	s := openTest(b)
	ctx := context.Background()
	enqueueAll(b, s, 100*b.N+100*8)
	var worker atomic.Int64
	b.ResetTimer()
	b.SetParallelism(2) // 4 claimers on this 2-core machine
	b.RunParallel(func(pb *testing.PB) {
		w := fmt.Sprintf("w%d", worker.Add(1))
		for pb.Next() {
			jobs, err := s.Claim(ctx, w, 100, time.Now().Add(time.Minute))
			if err != nil {
				b.Error(err)
				return
			}
			cs := make([]store.Completion, len(jobs))
			for i, j := range jobs {
				cs[i] = store.Completion{UUID: j.UUID, WorkerID: w, Attempt: j.Attempt, To: abi.StateDone,
					Cause: abi.CauseDone, Result: []byte(`null`), Ended: time.Now()}
			}
			if applied, err := s.Complete(ctx, cs); err != nil || len(applied) != len(jobs) {
				b.Errorf("completed %d of %d: %v", len(applied), len(jobs), err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "jobs/s")
}

// insertJobs stores n independent pending jobs of tenant t1.
func insertJobs(t *testing.T, s *Store, n int) []store.NewJob {
	t.Helper()
	jobs := make([]store.NewJob, n)
	for i := range jobs {
		jobs[i] = newJob("")
	}
	if _, err := s.Insert(context.Background(), jobs); err != nil {
		t.Fatal(err)
	}
	return jobs
}

// sideRows counts the rows of pending_log and job_runs, the tables that
// stand in for indexes on the job's state.
func sideRows(t *testing.T, s *Store) (logged, runs, remaining int) {
	t.Helper()
	err := s.d.pool.QueryRow(context.Background(), `SELECT (SELECT COUNT(*) FROM pending_log),
		(SELECT COUNT(*) FROM job_runs), (SELECT COALESCE(SUM(remaining), 0) FROM job_runs)`).Scan(&logged, &runs, &remaining)
	if err != nil {
		t.Fatal(err)
	}
	return logged, runs, remaining
}

// countsAgree checks Counts, for all tenants and for t1, against a GROUP BY
// over the jobs themselves, with the triggers' deltas as they are and
// again once folded into the totals.
func countsAgree(t *testing.T, s *Store, when string) {
	t.Helper()
	ctx := context.Background()
	for _, fold := range []bool{false, true} {
		if fold {
			if err := s.d.foldCounts(ctx); err != nil {
				t.Fatal(err)
			}
		}
		for _, tenant := range []string{"", "t1"} {
			truth := map[string]int{}
			rows, err := s.d.pool.Query(ctx, `SELECT channel, state, COUNT(*) FROM jobs
				WHERE ($1 = '' OR tenant = $1) GROUP BY 1, 2`, tenant)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var ch, st string
				var n int
				if err := rows.Scan(&ch, &st, &n); err != nil {
					t.Fatal(err)
				}
				truth[ch+" "+st] = n
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			counts, err := s.Counts(ctx, tenant)
			if err != nil {
				t.Fatal(err)
			}
			got := storetest.CountsByKey(counts)
			if !maps.Equal(got, truth) {
				t.Fatalf("%s (tenant %q, folded %v): Counts says %v, the jobs %v", when, tenant, fold, got, truth)
			}
		}
	}
}

func TestPendingLogAndRunRowsFollowTheJobs(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	insertJobs(t, s, 50)
	if logged, _, _ := sideRows(t, s); logged != 50 {
		t.Fatalf("pending_log holds %d rows after inserting 50 jobs, want 50", logged)
	}
	pending, err := s.PendingSince(ctx, 0, 1000)
	if err != nil || len(pending) != 50 {
		t.Fatalf("pending since 0: %d (%v), want 50", len(pending), err)
	}
	started, err := s.Start(ctx, pending[:30], "w1", time.Now().Add(time.Minute))
	if err != nil || len(started) != 30 {
		t.Fatalf("started %d (%v), want 30", len(started), err)
	}
	if logged, runs, remaining := sideRows(t, s); logged != 20 || runs != 1 || remaining != 30 {
		t.Fatalf("after starting 30: %d logged, %d runs with %d jobs; want 20, 1, 30", logged, runs, remaining)
	}
	// A second start of the same candidates applies to none.
	if again, err := s.Start(ctx, pending[:30], "w2", time.Now().Add(time.Minute)); err != nil || len(again) != 0 {
		t.Fatalf("started %d again (%v), want 0", len(again), err)
	}
	if _, runs, _ := sideRows(t, s); runs != 1 {
		t.Fatalf("an empty start left a run row: %d runs", runs)
	}
	if held, err := s.RenewLeases(ctx, "w1", time.Now().Add(2*time.Minute)); err != nil || len(held) != 30 {
		t.Fatalf("renewed %d leases (%v), want 30", len(held), err)
	}
	running, err := s.Running(ctx)
	if err != nil || len(running) != 30 {
		t.Fatalf("running: %d (%v), want 30", len(running), err)
	}

	// One is requeued by hand, one fails, one retries, the rest succeed.
	if _, err := s.Requeue(ctx, "", started[0].UUID); err != nil {
		t.Fatal(err)
	}
	var cs []store.Completion
	for i, j := range started[1:] {
		c := store.Completion{UUID: j.UUID, WorkerID: "w1", Attempt: j.Attempt, To: abi.StateDone, Cause: abi.CauseDone, Ended: time.Now()}
		switch i {
		case 0:
			c.To, c.Cause, c.ExcName = abi.StateFailed, abi.CauseFail, "Boom"
		case 1:
			c.To, c.Cause = abi.StatePending, abi.CauseRetry
		}
		cs = append(cs, c)
	}
	if applied, err := s.Complete(ctx, cs); err != nil || len(applied) != 29 {
		t.Fatalf("applied %d (%v), want 29", len(applied), err)
	}
	// 20 never started + the requeued + the retried are pending.
	if logged, runs, _ := sideRows(t, s); logged != 22 || runs != 0 {
		t.Fatalf("after the outcomes: %d logged, %d runs; want 22, 0", logged, runs)
	}
	if failed, err := s.FailedChannels(ctx); err != nil || failed["root"] != 1 {
		t.Fatalf("failed channels: %v (%v), want root: 1", failed, err)
	}
	if running, err := s.Running(ctx); err != nil || len(running) != 0 {
		t.Fatalf("running: %d (%v), want 0", len(running), err)
	}
	if _, err := s.Cancel(ctx, "", started[1].UUID); err != nil { // the failed one
		t.Fatal(err)
	}
	if failed, err := s.FailedChannels(ctx); err != nil || len(failed) != 0 {
		t.Fatalf("failed channels after the cancel: %v (%v), want none", failed, err)
	}
	pending, err = s.PendingSince(ctx, 0, 1000)
	if err != nil || len(pending) != 22 {
		t.Fatalf("pending since 0: %d (%v), want 22", len(pending), err)
	}
	countsAgree(t, s, "after the outcomes and the cancel")
	if n, err := s.Vacuum(ctx, "root", time.Now().Add(time.Hour)); err != nil || n != 28 {
		t.Fatalf("vacuum deleted %d (%v), want the 27 done and the cancelled one", n, err)
	}
	countsAgree(t, s, "after the vacuum")
}

// migrateTo brings a new database to schema version v, as a binary of
// that version would have.
func migrateTo(t *testing.T, conn *pgx.Conn, v int) {
	t.Helper()
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `CREATE TABLE wasmq_schema_version (version integer NOT NULL, applied timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	for i, m := range migrations()[:v] {
		if _, err := conn.Exec(ctx, m); err != nil {
			t.Fatalf("migration %d: %v", i+1, err)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO wasmq_schema_version (version) VALUES ($1)`, i+1); err != nil {
			t.Fatal(err)
		}
	}
}

func TestUpgradeFromSchema4KeepsEveryJobWhereItWas(t *testing.T) {
	dsn := testDSN(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	migrateTo(t, conn, 4)
	// One job in each state a version 4 database can hold mid-flight; the
	// started and enqueued ones with a lease that has already lapsed.
	for _, st := range []string{"pending", "enqueued", "started", "failed", "done"} {
		if _, err := conn.Exec(ctx, `INSERT INTO jobs (uuid, tenant, func, args, kwargs, context, channel, priority,
			max_retries, state, date_created, worker_id, lease_until, attempt, retry, date_started)
			VALUES ($1, 't1', 'testkit.echo', '[]', '{}', '{}', 'root', 10, 5, $2, now(),
				CASE WHEN $2 = 'started' THEN 'gone' ELSE '' END,
				CASE WHEN $2 IN ('started', 'enqueued') THEN now() - interval '1 minute' END,
				CASE WHEN $2 = 'started' THEN 1 ELSE 0 END, CASE WHEN $2 = 'started' THEN 1 ELSE 0 END,
				CASE WHEN $2 = 'started' THEN now() - interval '2 minutes' END)`, "old-"+st, st); err != nil {
			t.Fatal(err)
		}
	}
	s := openOn(t, dsn, true)
	pending, err := s.PendingSince(ctx, 0, 100)
	if err != nil || len(pending) != 1 || pending[0].UUID != "old-pending" {
		t.Fatalf("pending after the upgrade: %+v (%v), want old-pending", pending, err)
	}
	running, err := s.Running(ctx)
	if err != nil || len(running) != 2 {
		t.Fatalf("running after the upgrade: %+v (%v), want the enqueued and the started job", running, err)
	}
	if failed, err := s.FailedChannels(ctx); err != nil || failed["root"] != 1 {
		t.Fatalf("failed channels after the upgrade: %v (%v), want root: 1", failed, err)
	}
	reaped, err := s.ReapExpired(ctx, time.Now(), nil)
	if err != nil || len(reaped) != 2 {
		t.Fatalf("reaped %+v (%v), want the enqueued and the started job", reaped, err)
	}
	pending, err = s.PendingSince(ctx, 0, 100)
	if err != nil || len(pending) != 3 {
		t.Fatalf("pending after reaping: %d (%v), want 3", len(pending), err)
	}
	if logged, runs, _ := sideRows(t, s); logged != 3 || runs != 0 {
		t.Fatalf("after reaping: %d logged, %d runs; want 3, 0", logged, runs)
	}
	countsAgree(t, s, "after the upgrade and the reaping")
}

// The reaper's trim of pending_log is a safety net that must stay cheap
// with a large backlog: each pass looks at one chunk of the log, and a
// stale row anywhere in it is gone after one walk over the whole log.
func TestPendingLogTrimWalksTheLogAChunkAtATime(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	const n = 2*trimChunk + 500
	insertJobs(t, s, n)
	// Three jobs leave pending behind the log's back, as a path that
	// forgot its log row would: at the start, in the middle and at the end
	// of the log.
	tag, err := s.d.pool.Exec(ctx, `UPDATE jobs SET state = 'cancelled', date_cancelled = now() WHERE uuid IN (
		(SELECT uuid FROM pending_log ORDER BY version LIMIT 1),
		(SELECT uuid FROM pending_log ORDER BY version OFFSET $1 LIMIT 1),
		(SELECT uuid FROM pending_log ORDER BY version DESC LIMIT 1))`, trimChunk+7)
	if err != nil || tag.RowsAffected() != 3 {
		t.Fatalf("cancelled %d jobs behind the log (%v), want 3", tag.RowsAffected(), err)
	}
	passes := 0
	logged := n
	for logged != n-3 && passes < 10 {
		s.d.maintainedAt = time.Time{} // a pass of housekeeping each time
		if _, err := s.ReapExpired(ctx, time.Now(), nil); err != nil {
			t.Fatal(err)
		}
		passes++
		logged, _, _ = sideRows(t, s)
	}
	if logged != n-3 {
		t.Fatalf("after %d reaper passes pending_log holds %d rows, want %d", passes, logged, n-3)
	}
	if passes != 3 {
		t.Fatalf("the stale rows were gone after %d passes, want 3 (a chunk of %d rows per pass)", passes, trimChunk)
	}
	pending, err := s.PendingSince(ctx, 0, 2*n)
	if err != nil || len(pending) != n-3 {
		t.Fatalf("pending since 0: %d (%v), want %d", len(pending), err, n-3)
	}
}

// Counts put wrong behind the store's back (a delta nobody wrote, a
// job deleted by hand) mend at the next recount, and a fold in between
// keeps them as they are.
func TestRecountMendsCountsPutWrongByHand(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	jobs := insertJobs(t, s, 10)
	if _, err := s.d.pool.Exec(ctx, `DELETE FROM jobs WHERE uuid = $1`, jobs[0].UUID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.d.pool.Exec(ctx, `INSERT INTO job_count_deltas VALUES ('t1', 'root.ghost', 'failed', 3)`); err != nil {
		t.Fatal(err)
	}
	pendingAndGhosts := func() (int, int) {
		counts, err := s.Counts(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		var pending, ghosts int
		for _, cc := range counts {
			pending += cc.Counts[abi.StatePending]
			if cc.Channel == "root.ghost" {
				ghosts += cc.Counts[abi.StateFailed]
			}
		}
		return pending, ghosts
	}
	if err := s.d.foldCounts(ctx); err != nil {
		t.Fatal(err)
	}
	if p, g := pendingAndGhosts(); p != 10 || g != 3 {
		t.Fatalf("after a fold: %d pending, %d ghosts; want the wrong 10 and 3 kept", p, g)
	}
	s.d.recountedAt = time.Now().Add(-2 * recountEvery)
	s.d.maintainedAt = time.Time{}
	if _, err := s.ReapExpired(ctx, time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	if p, g := pendingAndGhosts(); p != 9 || g != 0 {
		t.Fatalf("after the reaper's recount: %d pending, %d ghosts; want 9 and 0", p, g)
	}
	countsAgree(t, s, "after the recount")
}

// A subscription asked for with a context already over answers at once
// (it hung for ever when the loop never ran: a node stopped right after
// it became leader never finished stopping).
func TestSubscribeWithAnEndedContextReturns(t *testing.T) {
	s := openTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() {
		_, err := s.Subscribe(ctx)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a subscription with an ended context succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Subscribe with an ended context did not return")
	}
}

// The conformance suite again with every insert COPYed in: its jobs come
// a few at a time, under the threshold the batches of an application
// cross.
func TestConformanceThroughCopy(t *testing.T) {
	defer func(n int) { copyThreshold = n }(copyThreshold)
	copyThreshold = 1
	storetest.Run(t, func(t *testing.T) store.Store { return openTest(t) })
}

// A page deep in a long list reads its own rows, neither every newer
// job nor every older one: the cursor bounds the index scan. Measured
// with EXPLAIN ANALYZE of the list's own query, 2,500 jobs down 5,000,
// for the whole store and for a tenant.
func TestADeepPageReadsOnlyItsRows(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	for range 5 {
		jobs := make([]store.NewJob, 1000)
		for i := range jobs {
			jobs[i] = newJob("")
		}
		if _, err := s.Insert(ctx, jobs); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.d.pool.Exec(ctx, `ANALYZE jobs`); err != nil {
		t.Fatal(err)
	}
	var middle store.Cursor
	if err := s.d.pool.QueryRow(ctx, `SELECT date_created, seq FROM jobs ORDER BY date_created, seq OFFSET 2500 LIMIT 1`).
		Scan(&middle.Created, &middle.Seq); err != nil {
		t.Fatal(err)
	}
	for _, tenant := range []string{"", "t1"} {
		q := store.ListQuery{Filter: store.Filter{Tenant: tenant}, Limit: 51, After: &middle}
		page, args := listPage(q)
		var plan []map[string]any
		if err := s.d.pool.QueryRow(ctx, `EXPLAIN (ANALYZE, FORMAT JSON) SELECT `+jobColumns+` FROM jobs `+page, args...).Scan(&plan); err != nil {
			t.Fatal(err)
		}
		read := rowsRead(plan[0]["Plan"].(map[string]any))
		if read > 100 {
			t.Errorf("tenant %q: the page 2,500 jobs down read %v rows to return 51; want the cursor to bound the scan", tenant, read)
		}
	}
}

// rowsRead is the table rows a plan's scans read: those they returned
// and those their conditions removed.
func rowsRead(node map[string]any) float64 {
	var n float64
	if typ := node["Node Type"].(string); strings.HasSuffix(typ, "Scan") && typ != "Bitmap Index Scan" {
		for _, k := range []string{"Actual Rows", "Rows Removed by Filter", "Rows Removed by Index Recheck"} {
			v, _ := node[k].(float64)
			n += v
		}
	}
	children, _ := node["Plans"].([]any)
	for _, c := range children {
		n += rowsRead(c.(map[string]any))
	}
	return n
}

// A user's page, or a model's, reads that user's jobs through its partial
// index (jobs_user, jobs_model: only the rows where the column is not
// empty), also under a generic plan, where PostgreSQL does not know the
// parameter's value and cannot prove from "user_id = $2" alone that it
// is not empty: without the list's redundant not-empty condition it
// walked every job of the store.
func TestAUsersPageReadsOnlyTheUsersJobs(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	jobs := make([]store.NewJob, 2000)
	for i := range jobs {
		jobs[i] = newJob("")
		if i%200 == 0 {
			jobs[i].UserID, jobs[i].ModelName = "u7", "sale.order"
		}
	}
	if _, err := s.Insert(ctx, jobs); err != nil {
		t.Fatal(err)
	}
	plan := genericPlans(t, s, `ANALYZE jobs`)
	for _, f := range []store.Filter{{Tenant: "t1", UserID: "u7"}, {Tenant: "t1", ModelName: "sale.order"}} {
		if read := rowsRead(plan(f)); read > 10 {
			t.Errorf("filter %+v: the page read %v rows to return 10; want the partial index to hold only those", f, read)
		}
	}
}

// Jobs read together are read with one list of destinations; each job
// keeps its own values: the dates of one row are not the next row's, and
// a NULL after a value stays NULL.
func TestJobsReadTogetherKeepTheirOwnValues(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	base := time.Now().UTC().Add(time.Hour).Truncate(time.Microsecond)
	var want []store.NewJob
	for i := range 6 {
		j := store.NewJob{UUID: uuid.Must(uuid.NewV7()).String(), Tenant: "t", Func: "m.f", Channel: "root",
			Args: json.RawMessage(fmt.Sprintf("[%d]", i)), Description: fmt.Sprintf("job %d", i)}
		if i%2 == 0 { // every other job has an eta, each its own
			eta := base.Add(time.Duration(i) * time.Minute)
			j.ETA = &eta
		}
		want = append(want, j)
	}
	if _, err := s.Insert(ctx, want); err != nil {
		t.Fatal(err)
	}
	page, err := s.List(ctx, store.Filter{Tenant: "t", Limit: 10})
	if err != nil || len(page.Jobs) != len(want) {
		t.Fatalf("listed %d jobs (%v), want %d", len(page.Jobs), err, len(want))
	}
	got := map[string]abi.Job{}
	for _, j := range page.Jobs {
		got[j.UUID] = j
	}
	for _, w := range want {
		g := got[w.UUID]
		switch {
		case g.Description != w.Description || string(g.Args) != string(w.Args):
			t.Errorf("job %s: %q %s, want %q %s", w.UUID, g.Description, g.Args, w.Description, w.Args)
		case (w.ETA == nil) != (g.ETA == nil):
			t.Errorf("job %q: eta %v, want %v", w.Description, g.ETA, w.ETA)
		case w.ETA != nil && !g.ETA.Equal(*w.ETA):
			t.Errorf("job %q: eta %v, want %v", w.Description, *g.ETA, *w.ETA)
		}
	}
}

// A filter on a value in args or kwargs reads the matching jobs through
// the GIN indexes, which hold only the jobs whose args or kwargs are not
// empty (migration 17): the list names that condition, without which the
// planner cannot use a partial index, and runs as an unnamed statement,
// planned with the value each time (a prepared one walked every job once
// PostgreSQL switched it to its generic plan), so however many times it
// runs and with however many values, it reads only the matching jobs and
// leaves no statement behind. The empty ones are in neither index, and
// the statistics of migration 17 tell the planner how few hold a value.
func TestAPayloadFilterReadsOnlyTheMatchingJobs(t *testing.T) {
	u, err := url.Parse(testDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("pool_max_conns", "1") // the statements it leaves are that connection's
	u.RawQuery = q.Encode()
	s, err := Open(context.Background(), u.String(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	// Half the jobs have args, each its own; most have no kwargs.
	jobs := make([]store.NewJob, 100000)
	for i := range jobs {
		jobs[i] = newJob("")
		jobs[i].Args, jobs[i].Kwargs = json.RawMessage(`[]`), json.RawMessage(`{}`)
		if i%2 == 1 {
			jobs[i].Args = json.RawMessage(fmt.Sprintf("[%d]", 100000+i))
		}
		if i%10000 == 0 {
			jobs[i].Args, jobs[i].Kwargs = json.RawMessage(`[7, "x"]`), json.RawMessage(`{"order": 7}`)
		}
	}
	// A key with a quote and a backslash, a value that reads as SQL.
	jobs[1].Kwargs = json.RawMessage(`{"it's \\ odd": "'; --"}`)
	if _, err := s.Insert(ctx, jobs); err != nil {
		t.Fatal(err)
	}
	// One of the matching jobs has run: a result, an execution time,
	// the dates of its attempt.
	pending, err := s.Pending(ctx, []string{jobs[0].UUID})
	if err != nil {
		t.Fatal(err)
	}
	ran, err := s.Start(ctx, pending, "w1", time.Now().Add(time.Minute))
	if err != nil || len(ran) != 1 {
		t.Fatalf("start: %v %v", ran, err)
	}
	if _, err := s.Complete(ctx, []store.Completion{{UUID: ran[0].UUID, WorkerID: "w1", Attempt: ran[0].Attempt,
		To: abi.StateDone, Cause: abi.CauseDone, Result: json.RawMessage(`{"total": 1.25, "lines": ["a"]}`),
		Ended: time.Now().Add(1234567 * time.Nanosecond), PluginSHA256: "abc"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.d.pool.Exec(ctx, `ANALYZE jobs`); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		f    store.Filter
		want int
	}{
		{store.Filter{Tenant: "t1", ArgsHas: json.RawMessage(`7`)}, 10},
		{store.Filter{Tenant: "t1", KwargsHas: map[string]json.RawMessage{"order": json.RawMessage(`7`)}}, 10},
		{store.Filter{Tenant: "t1", KwargsHas: map[string]json.RawMessage{`it's \ odd`: json.RawMessage(`"'; --"`)}}, 1},
	} {
		page, args := listPage(store.ListQuery{Filter: c.f, Limit: 51})
		for run := range 8 {
			var plan []map[string]any
			if err := s.d.pool.QueryRow(ctx, `EXPLAIN (ANALYZE, FORMAT JSON) SELECT `+jobColumns+` FROM jobs `+page,
				append([]any{pgx.QueryExecModeExec}, args...)...).Scan(&plan); err != nil {
				t.Fatal(err)
			}
			if read := rowsRead(plan[0]["Plan"].(map[string]any)); read > 10 {
				t.Errorf("filter %+v, run %d: the page read %v rows; want the GIN index to find them", c.f, run+1, read)
			}
		}
		for range 8 {
			got, err := s.List(ctx, c.f)
			if err != nil || len(got.Jobs) != c.want {
				t.Fatalf("filter %+v: %d jobs listed (%v), want %d", c.f, len(got.Jobs), err, c.want)
			}
			// Read as text (an unnamed statement), each job is what a
			// get reads.
			for _, j := range got.Jobs {
				one, err := s.Get(ctx, "", j.UUID)
				listed, _ := json.Marshal(j)
				read, _ := json.Marshal(one)
				if err != nil || string(listed) != string(read) {
					t.Fatalf("filter %+v: listed %s, get %s (%v)", c.f, listed, read, err)
				}
			}
		}
	}
	// Page by page (the cursor's date and seq are parameters too), the
	// ten matching jobs come once each, newest first.
	var paged []string
	for f := (store.Filter{ArgsHas: json.RawMessage(`7`), Limit: 4}); ; {
		page, err := s.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range page.Jobs {
			paged = append(paged, j.UUID)
		}
		if f.Cursor = page.NextCursor; f.Cursor == "" {
			break
		}
	}
	var want []string
	for i := len(jobs) - 1; i >= 0; i-- {
		if i%10000 == 0 {
			want = append(want, jobs[i].UUID)
		}
	}
	if !slices.Equal(paged, want) {
		t.Errorf("paged through %v, want %v", paged, want)
	}
	// Twenty values asked for: no statement left for any of them.
	for i := range 20 {
		if _, err := s.List(ctx, store.Filter{ArgsHas: json.RawMessage(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	var kept int
	if err := s.d.pool.QueryRow(ctx, `SELECT COUNT(*) FROM pg_prepared_statements WHERE statement LIKE '%@>%' AND statement NOT LIKE '%pg_prepared_statements%'`).Scan(&kept); err != nil || kept != 0 {
		t.Errorf("%d statements kept for the payload filters (%v), want none", kept, err)
	}
	var empty int
	if err := s.d.pool.QueryRow(ctx, `SELECT COUNT(*) FROM jobs WHERE kwargs::text = '{}'`).Scan(&empty); err != nil || empty != 99989 {
		t.Fatalf("jobs with empty kwargs: %d, %v; want 99989 stored", empty, err)
	}
	// The empty ones wrote nothing in the kwargs index: a few pages
	// (24 KB), where an entry for every job took 570 KB for 20,000.
	var size int64
	if err := s.d.pool.QueryRow(ctx, `SELECT pg_relation_size('jobs_kwargs'::regclass)`).Scan(&size); err != nil {
		t.Fatal(err)
	}
	if size > 64<<10 {
		t.Errorf("jobs_kwargs: %d bytes for 11 jobs with kwargs and 99,989 without; want the empty ones left out", size)
	}
}

// sqlLiterals writes a prepared statement's parameters as EXECUTE's
// arguments.
func sqlLiterals(args []any) string {
	literals := make([]string, len(args))
	for k, a := range args {
		switch v := a.(type) {
		case string:
			literals[k] = "'" + strings.ReplaceAll(v, "'", "''") + "'"
		default:
			literals[k] = fmt.Sprint(v)
		}
	}
	return strings.Join(literals, ", ")
}

// A list of one state (the UI's failed, running or handed-out jobs)
// reads those jobs only, not the newest-first index through the million
// done ones around them: no index names the state (a start or an
// outcome would then write an entry in each), so the list adds what else
// the store knows of them (stateHints), also under a generic plan.
func TestAListOfOneStateReadsOnlyItsJobs(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	jobs := make([]store.NewJob, 20000)
	for i := range jobs {
		jobs[i] = newJob("")
	}
	if _, err := s.Insert(ctx, jobs); err != nil {
		t.Fatal(err)
	}
	lease := time.Now().Add(time.Minute)
	few, err := s.Pending(ctx, []string{jobs[0].UUID, jobs[1].UUID, jobs[2].UUID, jobs[3].UUID, jobs[4].UUID, jobs[5].UUID})
	if err != nil {
		t.Fatal(err)
	}
	started, err := s.Start(ctx, few[:4], "w1", lease)
	if err != nil || len(started) != 4 {
		t.Fatalf("start: %d, %v", len(started), err)
	}
	if _, err := s.Enqueue(ctx, few[4:], lease); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Complete(ctx, []store.Completion{{UUID: started[0].UUID, WorkerID: "w1", Attempt: started[0].Attempt,
		To: abi.StateFailed, Cause: abi.CauseFail}}); err != nil {
		t.Fatal(err)
	}
	// The rest are done: what a store holds most of.
	if _, err := s.d.pool.Exec(ctx, `UPDATE jobs SET state = 'done' WHERE state = 'pending'`); err != nil {
		t.Fatal(err)
	}
	plan := genericPlans(t, s, `VACUUM ANALYZE jobs`)
	for _, c := range []struct {
		st   abi.State
		want float64
	}{{abi.StateFailed, 1}, {abi.StateStarted, 3}, {abi.StateEnqueued, 2}} {
		for _, tenant := range []string{"", "t1"} {
			root := plan(store.Filter{Tenant: tenant, States: []abi.State{c.st}})
			if read := rowsRead(root); read > 20 {
				t.Errorf("tenant %q, %s: the page read %v rows; want only the %s jobs", tenant, c.st, read, c.st)
			}
			if got := root["Actual Rows"].(float64); got != c.want {
				t.Errorf("tenant %q, %s: %v jobs listed, want %v", tenant, c.st, got, c.want)
			}
		}
	}
}

// genericPlans runs prep (ANALYZE, say) and returns a function that
// gives the executed plan of the list's first page for a filter,
// prepared and run under a generic plan: what PostgreSQL switches a
// prepared statement to after its fifth run, where it knows none of the
// parameters' values.
func genericPlans(t *testing.T, s *Store, prep string) func(store.Filter) map[string]any {
	t.Helper()
	ctx := context.Background()
	conn, err := s.d.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Exec(context.Background(), `RESET plan_cache_mode`)
		conn.Release()
	})
	for _, sql := range []string{prep, `SET plan_cache_mode = force_generic_plan`} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	return func(f store.Filter) map[string]any {
		t.Helper()
		page, args := listPage(store.ListQuery{Filter: f, Limit: 51})
		n++
		name := fmt.Sprintf("page_%d", n)
		if _, err := conn.Exec(ctx, `PREPARE `+name+` AS SELECT `+jobColumns+` FROM jobs `+page); err != nil {
			t.Fatal(err)
		}
		var plan []map[string]any
		if err := conn.QueryRow(ctx, `EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE `+name+`(`+sqlLiterals(args)+`)`).Scan(&plan); err != nil {
			t.Fatal(err)
		}
		return plan[0]["Plan"].(map[string]any)
	}
}

// Schedules meet next_due (migration 20) in the state an upgrade leaves
// them: those stored before it are read at the first pass, and one
// changed by a node of the earlier version, still running during the
// upgrade (its UPDATE knows no next_due), is read at the next pass as if
// this version had changed it, not when its old next_due comes.
func TestSchedulesOfBeforeNextDueAreReadAtTheNextPass(t *testing.T) {
	dsn := testDSN(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	migrateTo(t, conn, 19)
	// The earlier version's INSERT and UPDATE of a schedule, as it sends them.
	earlierInsert := `INSERT INTO schedules (tenant, name, cron, timezone, template, missed_runs, catch_up_max, paused,
		source, version, anchor, last_job, last_fired, date_created, date_updated)
		VALUES ('t1', $1, '0 3 1 1 *', 'UTC', '{"func":"testkit.echo"}', 'skip', 0, false, 'api', 1, now(), '', NULL, now(), now())`
	earlierUpdate := `UPDATE schedules SET cron = '@every 1s', version = version + 1, anchor = now(), date_updated = now()
		WHERE tenant = 't1' AND name = $1`
	if _, err := conn.Exec(ctx, earlierInsert, "before"); err != nil {
		t.Fatal(err)
	}
	s := openOn(t, dsn, true)
	due, _, err := s.DueSchedules(ctx, time.Now())
	if err != nil || len(due) != 1 || due[0].Name != "before" || !due[0].NextDue.Equal(time.Unix(0, 0)) {
		t.Fatalf("a schedule stored before next_due: %+v (%v), want it due (next_due the epoch)", due, err)
	}
	if _, err := conn.Exec(ctx, earlierInsert, "during"); err != nil {
		t.Fatalf("an earlier node's insert after the migration: %v", err)
	}
	year := time.Now().Add(365 * 24 * time.Hour)
	var moves []store.NextDue
	for _, name := range []string{"before", "during"} {
		sc, err := s.GetSchedule(ctx, "t1", name)
		if err != nil {
			t.Fatal(err)
		}
		moves = append(moves, store.NextDue{Tenant: "t1", Name: name, Version: sc.Version, Anchor: sc.Anchor, Next: year})
	}
	if err := s.NextDues(ctx, moves); err != nil {
		t.Fatal(err)
	}
	if due, _, err := s.DueSchedules(ctx, time.Now()); err != nil || len(due) != 0 {
		t.Fatalf("after a pass: %+v (%v), want nothing due", due, err)
	}
	if _, err := conn.Exec(ctx, earlierUpdate, "during"); err != nil {
		t.Fatal(err)
	}
	due, _, err = s.DueSchedules(ctx, time.Now().Add(time.Second))
	if err != nil || len(due) != 1 || due[0].Name != "during" || !due[0].NextDue.Equal(due[0].Anchor) {
		t.Fatalf("after an earlier node's change to every second: %+v (%v), want it due (next_due its anchor)", due, err)
	}
	// This version's own writes are left as they are.
	if err := s.NextDues(ctx, []store.NextDue{{Tenant: "t1", Name: "during", Version: due[0].Version, Anchor: due[0].Anchor, Next: year}}); err != nil {
		t.Fatal(err)
	}
	if sc, _ := s.GetSchedule(ctx, "t1", "during"); !sc.NextDue.Equal(year.UTC().Truncate(time.Microsecond)) {
		t.Fatalf("this version's move: next_due %v, want %v", sc.NextDue, year)
	}
}
