// Package postgres is the store for several nodes sharing one PostgreSQL
// database: claims with FOR UPDATE SKIP LOCKED, identity-key dedup under
// an advisory lock per key, LISTEN/NOTIFY wake-ups, an advisory lock
// electing the scheduling leader, one round trip per batch on the hot
// paths, and no index on a job's state, so that starting and ending a job
// are HOT updates (docs/architecture.md).
package postgres

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/wasmq/wasmq/store"
	"github.com/wasmq/wasmq/store/pgdsn"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

func migrations() []string {
	names, _ := fs.Glob(migrationFiles, "migrations/*.sql")
	sort.Strings(names)
	out := make([]string, len(names))
	for i, n := range names {
		b, _ := migrationFiles.ReadFile(n)
		out[i] = string(b)
	}
	return out
}

// SchemaVersion is the newest schema this binary knows.
var SchemaVersion = len(migrations())

const (
	leaderLockKey = 0x7761736d71 // "wasmq"
	// identityLockClass is the first key of the advisory locks taken
	// while inserting a job with an identity key (two-key locks do not
	// meet the leader's one-key lock).
	identityLockClass = 0x77716b
)

// Store is the PostgreSQL store: the job rules of store.Core over this
// package's driver.
type Store struct {
	*store.Core
	d *driver
}

// Migrate applies the migrations the database lacks; see driver.Migrate.
func (s *Store) Migrate(ctx context.Context) (int, error) { return s.d.Migrate(ctx) }

// driver implements store.Driver on PostgreSQL.
type driver struct {
	pool *pgxpool.Pool
	fast *pgxpool.Pool // synchronous_commit = off: enqueue and claim
	cfg  *pgx.ConnConfig
	// notify is the NOTIFY channel: one per deployment, since NOTIFY
	// is database-wide and two deployments (or test schemas) must not
	// wake each other; a random name kept in event_channel, since any
	// role may LISTEN on a name it knows (migration 15).
	notify string
	// sessions: when each connection's server session began, to tell
	// whether the one an insert in doubt used has ended (indoubt.go).
	sessions *sessionStarts

	leadMu   sync.Mutex
	leadConn *pgx.Conn // holds the advisory lock while this process leads

	maintMu      sync.Mutex // the leader's housekeeping state, below
	trimAfter    int64      // pending_log version where the next trim pass starts
	recountedAt  time.Time  // when keepCounts last counted the jobs afresh
	maintainedAt time.Time  // when Maintain last did its work
}

var (
	_ store.Store  = (*Store)(nil)
	_ store.Driver = (*driver)(nil)
	_ store.Tx     = (*wtx)(nil)
)

// idleInTransaction ends, on the server, the session of a node that
// stops in the middle of a transaction (frozen, paused, cut off without a
// reset), and so its row and advisory locks. wasmq never waits on itself
// within a transaction, so ten seconds of silence there (the default
// lease) is a node gone: until then its locks hold up the others (the
// reaper skips a lease row it has locked, so the jobs in it stay started),
// and a request that needs one waits, within its own store timeout. A dsn
// that sets the parameter keeps its own.
const (
	idleInTransactionKey = "idle_in_transaction_session_timeout"
	idleInTransaction    = 10 * time.Second
)

// unreadAnswers ends, on the server, the session of a node that stops
// reading what the server sends it (frozen, or cut off: its socket's
// buffers fill, or nothing is acknowledged), which the idle timeouts do
// not cover since the session is busy sending. Two kinds of session
// would otherwise hold on until the kernel gives up, a quarter of an hour
// later: one in the middle of an answer, with its transaction's locks and
// a snapshot that keeps vacuum from every node's dead rows; and the
// listener, since PostgreSQL's notification queue, one for the whole
// cluster, cannot be emptied past what a listening session has not taken,
// so one such node would fill it (8 GB; then every notifying commit
// fails, every insert of every node with it). wasmq reads every answer
// at once, so ten seconds of unread answers is a node gone. A live node
// whose session ends reconnects (a listener reads the store again). The
// server applies it over TCP only, not over a Unix socket. A dsn that
// sets the parameter keeps its own.
const (
	unreadAnswersKey = "tcp_user_timeout"
	unreadAnswers    = 10 * time.Second
)

// silentPeer ends, on the server, the idle sessions of a node whose host
// is gone from the network (powered off, its instance terminated, cut
// off): nothing of them reaches the server, not even the end of their
// connections, and the kernel's own keepalive waits two hours before its
// first probe. Until then each of the node's sessions holds one of the
// server's max_connections (a node keeps ten or more), and its liveness
// lock stays held. After silentPeer idle the server probes, and the first
// probe unanswered for unreadAnswers ends the session; a live node, even
// a frozen one, answers probes from its kernel. A dsn that sets the
// parameter keeps its own.
const (
	silentPeerKey = "tcp_keepalives_idle"
	silentPeer    = 30 * time.Second
	probeEveryKey = "tcp_keepalives_interval"
	probeEvery    = 10 * time.Second
)

// sessionBounds are the bounds above, set on every session.
var sessionBounds = map[string]time.Duration{
	idleInTransactionKey: idleInTransaction,
	unreadAnswersKey:     unreadAnswers,
	silentPeerKey:        silentPeer,
	probeEveryKey:        probeEvery,
}

// Open connects; with migrate it applies pending migrations first, and
// otherwise refuses a schema behind (or ahead of) this binary.
func Open(ctx context.Context, dsn string, migrate bool) (*Store, error) {
	pcfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres store: store.dsn: %w", err)
	}
	if pcfg.MaxConns < 8 {
		pcfg.MaxConns = 8
	}
	// A startup parameter overrides what `options` sets (the server reads
	// the options first), so a bound the dsn sets either way is left out.
	inOptions := pgdsn.OptionSettings(pcfg.ConnConfig.RuntimeParams["options"])
	for key, bound := range sessionBounds {
		_, set := pcfg.ConnConfig.RuntimeParams[key]
		if _, opt := inOptions[key]; !set && !opt { // with its unit: some settings count seconds
			pcfg.ConnConfig.RuntimeParams[key] = strconv.FormatInt(bound.Milliseconds(), 10) + "ms"
		}
	}
	sessions := &sessionStarts{}
	pcfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		registerArrays(c.TypeMap())
		return sessions.note(ctx, c)
	}
	pcfg.BeforeClose = func(c *pgx.Conn) { sessions.forget(c) }
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres store: connect: %w", err)
	}
	// Enqueue and Claim commit without waiting for the WAL flush: if the
	// database crashes right after, the lost hand-over is harmless (the
	// job is still pending, or its lease lapses and the reaper takes it
	// back). Inserts and completions keep the configured durability.
	fcfg := pcfg.Copy()
	fcfg.MaxConns = max(pcfg.MaxConns/2, 4)
	fcfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	fcfg.AfterConnect = func(_ context.Context, c *pgx.Conn) error { // it inserts no job: nothing to settle
		registerArrays(c.TypeMap())
		return nil
	}
	fcfg.BeforeClose = nil
	fast, err := pgxpool.NewWithConfig(ctx, fcfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres store: connect: %w", err)
	}
	s := &driver{pool: pool, fast: fast, cfg: pcfg.ConnConfig, sessions: sessions}
	if migrate {
		if _, err := s.Migrate(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	v, err := s.schemaVersion(ctx, pool)
	if err == nil {
		switch {
		case v > SchemaVersion:
			err = fmt.Errorf("postgres store: database schema version %d is newer than this wasmq binary supports (%d); upgrade wasmq", v, SchemaVersion)
		case v < SchemaVersion:
			err = fmt.Errorf("postgres store: database schema version %d is behind this binary (%d); run `wasmq migrate`", v, SchemaVersion)
		}
	}
	if err == nil {
		err = s.ensureSQLEnqueue(ctx)
	}
	if err == nil {
		if err = pool.QueryRow(ctx, `SELECT name FROM event_channel`).Scan(&s.notify); err != nil {
			err = fmt.Errorf("postgres store: read the event channel: %w", err)
		}
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return &Store{Core: store.NewCore(s), d: s}, nil
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func (s *driver) schemaVersion(ctx context.Context, q querier) (int, error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass('wasmq_schema_version') IS NOT NULL`).Scan(&exists); err != nil {
		return 0, fmt.Errorf("postgres store: read schema version: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var v int
	if err := q.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM wasmq_schema_version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("postgres store: read schema version: %w", err)
	}
	return v, nil
}

// Migrate applies the migrations the database lacks; concurrent callers
// serialise on an advisory lock. Returns how many it applied.
func (s *driver) Migrate(ctx context.Context) (int, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("postgres store: migrate: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, leaderLockKey+1); err != nil {
		return 0, fmt.Errorf("postgres store: migrate lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS wasmq_schema_version (version integer NOT NULL, applied timestamptz NOT NULL DEFAULT now())`); err != nil {
		return 0, fmt.Errorf("postgres store: migrate: %w", err)
	}
	v, err := s.schemaVersion(ctx, tx)
	if err != nil {
		return 0, err
	}
	if v > SchemaVersion {
		return 0, fmt.Errorf("postgres store: database schema version %d is newer than this wasmq binary supports (%d); upgrade wasmq", v, SchemaVersion)
	}
	ms := migrations()
	for i := v; i < len(ms); i++ {
		if _, err := tx.Exec(ctx, ms[i]); err != nil {
			return 0, fmt.Errorf("postgres store: migration %d: %w", i+1, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO wasmq_schema_version (version) VALUES ($1)`, i+1); err != nil {
			return 0, err
		}
	}
	if err := installSQLEnqueue(ctx, tx); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("postgres store: migrate: %w", err)
	}
	return len(ms) - v, nil
}

// Migrate connects to dsn and applies pending migrations.
func Migrate(ctx context.Context, dsn string) (int, error) {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return 0, fmt.Errorf("postgres store: store.dsn: %w", err)
	}
	defer pool.Close()
	return (&driver{pool: pool}).Migrate(ctx)
}

func (s *driver) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

func (s *driver) Close() error {
	s.leadMu.Lock()
	if s.leadConn != nil {
		s.leadConn.Close(context.Background())
		s.leadConn = nil
	}
	s.leadMu.Unlock()
	s.pool.Close()
	if s.fast != nil {
		s.fast.Close()
	}
	return nil
}

// TryLead holds a session advisory lock (one per schema, so deployments
// sharing a database elect their own leaders) on a dedicated connection: the
// lock lives exactly as long as that connection's session, so a killed
// leader's lock is released by PostgreSQL itself. A leader that is alive
// to its kernel but says nothing (frozen, paused, cut off without a reset)
// keeps its socket open; the session's idle_session_timeout of hold ends
// it, and so the lock, after hold of silence, so that another node leads.
// A session lost is a lead lost: TryLead says so once, and only a later
// call takes the lock again, as a new lead.
func (s *driver) TryLead(ctx context.Context, nodeID string, hold time.Duration) (bool, error) {
	s.leadMu.Lock()
	defer s.leadMu.Unlock()
	if s.leadConn != nil {
		// Bounded: a leader whose server does not answer within half
		// its hold cannot tell whether it still leads.
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if hold > 0 {
			pctx, cancel = context.WithTimeout(ctx, hold/2)
		}
		err := s.leadConn.Ping(pctx)
		cancel()
		if err == nil {
			return true, nil
		}
		s.leadConn.PgConn().Conn().Close()
		s.leadConn.Close(context.Background())
		s.leadConn = nil
		return false, fmt.Errorf("postgres store: the leader's session: %w", err)
	}
	conn, err := pgx.ConnectConfig(ctx, s.cfg)
	if err != nil {
		return false, fmt.Errorf("postgres store: leader connection: %w", err)
	}
	// The hold is set in the statement that takes the lock: no round
	// trip more, and in force before the session is first idle. 0, no
	// hold, is no bound; the server takes at most an int32 of ms.
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT set_config('idle_session_timeout', $1, false),
		pg_try_advisory_lock(hashtext('wasmq-leader:' || current_schema()))`,
		strconv.FormatInt(min(max(hold.Milliseconds(), 0), math.MaxInt32), 10)).Scan(nil, &ok); err != nil {
		conn.Close(context.Background())
		return false, fmt.Errorf("postgres store: leader lock: %w", err)
	}
	if !ok {
		conn.Close(context.Background())
		return false, nil
	}
	s.leadConn = conn
	return true, nil
}

// Subscribe LISTENs on a dedicated connection, reconnecting after errors;
// a reconnect sends an EventChanged since notifications may have been
// missed meanwhile.
func (s *driver) Subscribe(ctx context.Context) (<-chan store.Event, error) {
	ch := make(chan store.Event, subscriberBuffer)
	ready := make(chan error, 1)
	go func() {
		defer close(ch)
		var lost bool
		send := func(e store.Event) { lost = deliver(ch, e, lost) }
		first := true
		defer func() {
			if first { // ctx ended before the first connection: Subscribe must not wait for ever
				ready <- ctx.Err()
			}
		}()
		for ctx.Err() == nil {
			conn, err := pgx.ConnectConfig(ctx, s.cfg)
			if err == nil {
				_, err = conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.notify}.Sanitize()) // s.cfg bounds its unread answers
			}
			if first {
				ready <- err
				first = false
				if err != nil {
					if conn != nil {
						conn.Close(context.Background())
					}
					return
				}
			} else if err == nil {
				send(store.EventResync)
			}
			for err == nil {
				var n *pgconn.Notification
				n, err = conn.WaitForNotification(ctx)
				if err == nil {
					var e store.Event
					if json.Unmarshal([]byte(n.Payload), &e) == nil {
						for i := range e.Jobs { // as collectCandidates reads them
							e.Jobs[i].DateCreated = e.Jobs[i].DateCreated.UTC()
						}
						send(e)
					}
				}
			}
			if conn != nil {
				conn.Close(context.Background())
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	if err := <-ready; err != nil {
		return nil, fmt.Errorf("postgres store: listen: %w", err)
	}
	return ch, nil
}

// Clock is the database server's clock_timestamp(): the time at the
// read, not at the start of a transaction.
func (s *driver) Clock(ctx context.Context) (time.Time, error) {
	var t time.Time
	if err := s.pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&t); err != nil {
		return time.Time{}, fmt.Errorf("postgres store: read the clock: %w", err)
	}
	return t, nil
}

func (s *driver) Announce(ctx context.Context, nodeID string) error {
	b, _ := json.Marshal(store.Event{Kind: store.EventNode, Node: nodeID})
	var schema int
	if err := s.pool.QueryRow(ctx, `SELECT (SELECT COALESCE(MAX(version), 0) FROM wasmq_schema_version)
		FROM pg_notify($1, $2)`, s.notify, string(b)).Scan(&schema); err != nil {
		return fmt.Errorf("postgres store: announce %s: %w", nodeID, err)
	}
	if schema > SchemaVersion {
		return fmt.Errorf("postgres store: database schema version %d, this binary's is %d: %w", schema, SchemaVersion, store.ErrSchemaAhead)
	}
	return nil
}

// subscriberBuffer absorbs bursts while a subscriber works.
const subscriberBuffer = 1024

// deliver never blocks the listener. Once an event is dropped (the
// subscriber fell behind) the next delivery is a resync, since dropped
// events may have carried uuids the subscriber counts with. Returns
// whether events are still lost.
func deliver(ch chan store.Event, e store.Event, lost bool) bool {
	if lost {
		select {
		case ch <- store.EventResync:
		default:
			return true
		}
	}
	select {
	case ch <- e:
		return false
	default:
		return true
	}
}

// uuidsPerNotify keeps a payload under NOTIFY's 8,000 bytes: 150 uuids
// of 39 bytes quoted and their versions (up to 20 bytes each), plus up to
// 50 channel names.
const uuidsPerNotify = 150

// wtx is one write transaction with the events to notify at commit and
// the job counts it changed (migration 6), written with the events.
// Statements on the hot path write their count deltas themselves
// (countedCTE).
type wtx struct {
	pgx.Tx
	now   time.Time
	notes store.Notes
}

func (w *wtx) Now() time.Time      { return w.now }
func (w *wtx) Notes() *store.Notes { return &w.notes }

// countedCTE is the CTE that writes the count deltas of the rows src
// returns (tenant, channel and the new state), which were all in state
// from before; from "" means new rows.
func countedCTE(src, from string) string {
	if from == "" {
		return `counted AS (INSERT INTO job_count_deltas (tenant, channel, state, n)
			SELECT tenant, channel, state, COUNT(*) FROM ` + src + ` GROUP BY 1, 2, 3)`
	}
	return `counted AS (INSERT INTO job_count_deltas (tenant, channel, state, n)
			SELECT tenant, channel, st, SUM(d) FROM (
				SELECT tenant, channel, '` + from + `' AS st, -1 AS d FROM ` + src + `
				UNION ALL SELECT tenant, channel, state, 1 FROM ` + src + `) x
			GROUP BY 1, 2, 3 HAVING SUM(d) <> 0)`
}

func (s *driver) Write(ctx context.Context, fn func(store.Tx) error) error {
	return s.writeOn(ctx, s.pool, func(w *wtx) error { return fn(w) })
}

func (s *driver) writeOn(ctx context.Context, pool *pgxpool.Pool, fn func(w *wtx) error) error {
	tx, err := beginPiped(ctx, pool)
	if err != nil {
		return fmt.Errorf("postgres store: begin: %w", err)
	}
	defer tx.Rollback(ctx)
	w := &wtx{Tx: tx, now: time.Now().UTC().Truncate(time.Microsecond)}
	if err := fn(w); err != nil {
		return ended(err)
	}
	pc := tx.conn.Conn().PgConn()
	ts, cs, ss, ns := w.notes.Counts.Columns()
	if len(w.notes.Events) > 0 || len(ns) > 0 {
		payloads := notifyPayloads(w.notes.Events)
		// Every event and count of the transaction, and the commit, in
		// one round trip.
		if err := tx.commitWith(ctx, `WITH counted AS (INSERT INTO job_count_deltas (tenant, channel, state, n)
				SELECT * FROM unnest($3::text[], $4::text[], $5::text[], $6::bigint[]))
			SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p`, s.notify, payloads, ts, cs, ss, ns); err != nil {
			return s.doubt(pc, fmt.Errorf("postgres store: notify and commit: %w", err))
		}
		return nil
	}
	if err := tx.Commit(ctx); err != nil {
		return s.doubt(pc, fmt.Errorf("postgres store: commit: %w", err))
	}
	return nil
}

// ended wraps err in store.ErrRetryTx when the database ended the
// transaction to break a deadlock or a serialization conflict: nothing
// of it was written.
func ended(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001") { // deadlock_detected, serialization_failure
		return fmt.Errorf("%w: %w", store.ErrRetryTx, err)
	}
	return err
}

// notifyPayloads are the NOTIFY payloads of events. A payload holds at
// most 8,000 bytes: uuids go in chunks, each chunk its own notification.
func notifyPayloads(events []store.Event) []string {
	payloads := make([]string, 0, len(events))
	for _, e := range events {
		e.Channels = dedup(e.Channels)
		if len(e.Channels) > 50 {
			e.Channels = nil // "some channels": listeners re-read anyway
		}
		for {
			part, n := e, min(len(e.UUIDs), uuidsPerNotify)
			part.UUIDs = e.UUIDs[:n]
			part.Versions = nil
			if len(e.Versions) == len(e.UUIDs) && n > 0 {
				part.Versions = e.Versions[:n]
			}
			e.Fuel = nil // told once, in the first chunk
			b, _ := json.Marshal(part)
			if len(b) > 7900 { // long names: fall back to "some channels, some jobs"
				part.Channels, part.UUIDs, part.Versions = nil, nil, nil
				b, _ = json.Marshal(part)
			}
			payloads = append(payloads, string(b))
			if len(e.Versions) == len(e.UUIDs) {
				e.Versions = e.Versions[n:]
			}
			if e.UUIDs = e.UUIDs[n:]; len(e.UUIDs) == 0 {
				break
			}
		}
	}
	return payloads
}

func dedup(xs []string) []string {
	seen := map[string]bool{}
	out := xs[:0]
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

var errNoRows = pgx.ErrNoRows

func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}
