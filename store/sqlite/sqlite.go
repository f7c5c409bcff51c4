// Package sqlite is the embedded store: one file, no server, one process.
//
// Writes go through a single connection under a mutex, so SQLite never
// answers SQLITE_BUSY to ourselves; reads use a pool (WAL lets them run
// beside the writer). Change events fan out inside the process. A second
// process opening the same file is refused by an advisory lock on
// `<path>.lock`: the scheduler's capacity accounting assumes one process.
package sqlite

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wasmq/wasmq/store"
	_ "modernc.org/sqlite"
)

//go:embed schema.sql
var schemaV1 string

//go:embed schema_v2.sql
var schemaV2 string

//go:embed schema_v3.sql
var schemaV3 string

//go:embed schema_v4.sql
var schemaV4 string

//go:embed schema_v5.sql
var schemaV5 string

//go:embed schema_v6.sql
var schemaV6 string

//go:embed schema_v7.sql
var schemaV7 string

//go:embed schema_v8.sql
var schemaV8 string

//go:embed schema_v9.sql
var schemaV9 string

//go:embed schema_v10.sql
var schemaV10 string

//go:embed schema_v11.sql
var schemaV11 string

// migrations[i] brings the schema from version i to i+1.
var migrations = []string{schemaV1, schemaV2, schemaV3, schemaV4, schemaV5, schemaV6, schemaV7, schemaV8, schemaV9, schemaV10, schemaV11}

// SchemaVersion is the newest schema this binary knows.
var SchemaVersion = len(migrations)

// Store is the embedded store: the job rules of store.Core over this
// package's driver.
type Store struct {
	*store.Core
	d *driver
}

// Migrate applies the migrations the file lacks; see driver.Migrate.
func (s *Store) Migrate(ctx context.Context) (int, error) { return s.d.Migrate(ctx) }

// driver implements store.Driver on one SQLite file.
type driver struct {
	path string
	w    *sql.DB // exactly one connection: every write transaction
	r    *sql.DB // readers
	lock *os.File

	mu      sync.Mutex // serialises write transactions and guards version
	version int64
	// countStmt adds to one count; prepared once on the writer, where
	// every transaction reuses it.
	countStmt *sql.Stmt
	// insertStmt inserts a job (insertJobSQL), prepared once likewise.
	insertStmt *sql.Stmt

	subMu sync.Mutex
	subs  map[chan store.Event]bool // → events were dropped

	heldMu sync.Mutex
	held   map[string]int // workers holding (Hold) → how many holds

	closed          atomic.Bool
	stopCheckpoints chan struct{}
	checkpointsDone chan struct{}
}

var (
	_ store.Store  = (*Store)(nil)
	_ store.Driver = (*driver)(nil)
	_ store.Tx     = (*wtx)(nil)
)

func dsn(path string) string {
	return "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(OFF)&_time_format=sqlite"
}

// Open opens (creating it if needed) the store at path. With migrate
// false, a file whose schema is behind this binary is refused.
func Open(ctx context.Context, path string, migrate bool) (*Store, error) {
	s, err := open(path)
	if err != nil {
		return nil, err
	}
	if migrate {
		if _, err := s.Migrate(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	if err := s.checkVersion(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.w.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM jobs`).Scan(&s.version); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite store: read version: %w", err)
	}
	if s.countStmt, err = s.w.PrepareContext(ctx, `INSERT INTO job_counts (tenant, channel, state, n) VALUES (?, ?, ?, ?)
		ON CONFLICT (tenant, channel, state) DO UPDATE SET n = n + excluded.n`); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite store: prepare: %w", err)
	}
	if s.insertStmt, err = s.w.PrepareContext(ctx, insertJobSQL); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite store: prepare: %w", err)
	}
	s.stopCheckpoints, s.checkpointsDone = make(chan struct{}), make(chan struct{})
	go s.checkpoints(s.r)
	return &Store{Core: store.NewCore(s), d: s}, nil
}

// checkpoints copies the write-ahead log into the database file a few
// times a second (PASSIVE: it waits for no one), so the log stays short.
func (s *driver) checkpoints(db *sql.DB) {
	defer close(s.checkpointsDone)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.stopCheckpoints:
			return
		case <-t.C:
			db.Exec(`PRAGMA wal_checkpoint(PASSIVE)`) // a miss is retried on the next tick
		}
	}
}

// open opens the file and takes its lock, without looking at the schema.
func open(path string) (*driver, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("sqlite store: create folder %s: %w", dir, err)
		}
	}
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: open lock file: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("sqlite store: %s is in use by another wasmq process (the embedded store serves one process; use PostgreSQL for several nodes)", path)
	}
	s := &driver{path: path, lock: lock, subs: map[chan store.Event]bool{}, held: map[string]int{}}
	// The writer never checkpoints (SQLite would, inside the commit that
	// crosses 1,000 pages: several ms added to that one write); a
	// background loop does, without blocking writers.
	if s.w, err = sql.Open("sqlite", dsn(path)+"&_pragma=wal_autocheckpoint(0)"); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite store: open %s: %w", path, err)
	}
	s.w.SetMaxOpenConns(1)
	if s.r, err = sql.Open("sqlite", dsn(path)); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite store: open %s: %w", path, err)
	}
	s.r.SetMaxOpenConns(4)
	return s, nil
}

// MigrateFile applies the migrations the file lacks (creating it if
// needed) and returns how many; for `wasmq migrate`.
func MigrateFile(ctx context.Context, path string) (int, error) {
	s, err := open(path)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	return s.Migrate(ctx)
}

func (s *driver) checkVersion(ctx context.Context) error {
	v, err := s.schemaVersion(ctx)
	if err != nil {
		return err
	}
	switch {
	case v > SchemaVersion:
		return fmt.Errorf("sqlite store: database schema version %d is newer than this wasmq binary supports (%d); upgrade wasmq", v, SchemaVersion)
	case v < SchemaVersion:
		return fmt.Errorf("sqlite store: database schema version %d is behind this binary (%d); run `wasmq migrate`", v, SchemaVersion)
	}
	return nil
}

func (s *driver) schemaVersion(ctx context.Context) (int, error) {
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS wasmq_schema_version (version INTEGER NOT NULL)`); err != nil {
		return 0, fmt.Errorf("sqlite store: schema version table: %w", err)
	}
	var v int
	err := s.w.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM wasmq_schema_version`).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("sqlite store: read schema version: %w", err)
	}
	return v, nil
}

// Migrate applies the migrations the file lacks and returns how many.
func (s *driver) Migrate(ctx context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.schemaVersion(ctx)
	if err != nil {
		return 0, err
	}
	if v > SchemaVersion {
		return 0, fmt.Errorf("sqlite store: database schema version %d is newer than this wasmq binary supports (%d); upgrade wasmq", v, SchemaVersion)
	}
	applied := 0
	for i := v; i < SchemaVersion; i++ {
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			return applied, err
		}
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			tx.Rollback()
			return applied, fmt.Errorf("sqlite store: migration %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO wasmq_schema_version (version) VALUES (?)`, i+1); err != nil {
			tx.Rollback()
			return applied, err
		}
		if err := tx.Commit(); err != nil {
			return applied, fmt.Errorf("sqlite store: migration %d: %w", i+1, err)
		}
		applied++
	}
	return applied, nil
}

// Close releases the file; safe to call twice. The handles stay: a call
// after Close is an error ("database is closed"), not a crash.
func (s *driver) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if s.stopCheckpoints != nil {
		close(s.stopCheckpoints)
		<-s.checkpointsDone
		s.stopCheckpoints = nil
	}
	var errs []error
	if s.countStmt != nil {
		errs = append(errs, s.countStmt.Close())
		s.countStmt = nil
	}
	if s.insertStmt != nil {
		errs = append(errs, s.insertStmt.Close())
		s.insertStmt = nil
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	if s.lock != nil {
		syscall.Flock(int(s.lock.Fd()), syscall.LOCK_UN)
		errs = append(errs, s.lock.Close())
		s.lock = nil
	}
	return errors.Join(errs...)
}

func (s *driver) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return errors.New("sqlite store: closed")
	}
	return s.r.PingContext(ctx)
}

// Clock: one process, one clock.
func (s *driver) Clock(ctx context.Context) (time.Time, error) { return time.Now(), nil }

// Announce: the one process hears itself.
func (s *driver) Announce(ctx context.Context, nodeID string) error {
	s.publish(store.Event{Kind: store.EventNode, Node: nodeID})
	return nil
}

// TryLead: the file lock already makes this process the only one.
func (s *driver) TryLead(ctx context.Context, nodeID string, hold time.Duration) (bool, error) {
	return true, nil
}

// Write runs fn in a write transaction; events are published after commit.
func (s *driver) Write(ctx context.Context, fn func(store.Tx) error) error {
	return s.write(ctx, func(w *wtx) error { return fn(w) })
}

func (s *driver) write(ctx context.Context, fn func(w *wtx) error) error {
	s.mu.Lock()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("sqlite store: begin: %w", err)
	}
	w := &wtx{Tx: tx, s: s, now: time.Now().UTC().Truncate(time.Microsecond), version: s.version}
	if err := fn(w); err != nil {
		tx.Rollback()
		s.mu.Unlock()
		return err
	}
	if err := w.writeCounts(ctx); err != nil {
		tx.Rollback()
		s.mu.Unlock()
		return err
	}
	if err := tx.Commit(); err != nil {
		s.mu.Unlock()
		return fmt.Errorf("sqlite store: commit: %w", err)
	}
	s.version = w.version
	s.mu.Unlock()
	for _, e := range w.notes.Events {
		s.publish(e)
	}
	return nil
}

// wtx is one write transaction with its clock, version counter, the
// events to publish once it commits and the job counts it changed.
type wtx struct {
	*sql.Tx
	s       *driver
	now     time.Time
	version int64
	notes   store.Notes
}

func (w *wtx) Now() time.Time      { return w.now }
func (w *wtx) Notes() *store.Notes { return &w.notes }

// writeCounts adds the transaction's count deltas to job_counts (schema
// 3): one upsert per (tenant, channel, state) it changed, a handful per
// transaction, through the statement prepared at Open.
func (w *wtx) writeCounts(ctx context.Context) error {
	ts, cs, ss, ns := w.notes.Counts.Columns()
	if len(ns) == 0 {
		return nil
	}
	st := w.StmtContext(ctx, w.s.countStmt)
	for i := range ns {
		if _, err := st.ExecContext(ctx, ts[i], cs[i], ss[i], ns[i]); err != nil {
			return fmt.Errorf("sqlite store: job counts: %w", err)
		}
	}
	return nil
}

func (w *wtx) nextVersion() int64 { w.version++; return w.version }

func (s *driver) Subscribe(ctx context.Context) (<-chan store.Event, error) {
	ch := make(chan store.Event, 1024)
	s.subMu.Lock()
	s.subs[ch] = false
	s.subMu.Unlock()
	go func() {
		<-ctx.Done()
		s.subMu.Lock()
		delete(s.subs, ch)
		close(ch)
		s.subMu.Unlock()
	}()
	return ch, nil
}

// publish never blocks a writer. A subscriber whose buffer is full gets a
// resync once it has room again: what it missed may have named jobs.
func (s *driver) publish(e store.Event) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	for ch, lost := range s.subs {
		if lost { // dropped events may have carried uuids: resync first
			select {
			case ch <- store.EventResync:
			default:
				continue
			}
		}
		select {
		case ch <- e:
			s.subs[ch] = false
		default:
			s.subs[ch] = true
		}
	}
}
