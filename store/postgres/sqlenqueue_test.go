package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/enqueue"
	"github.com/wasmq/wasmq/store"
	"github.com/wasmq/wasmq/store/storetest"
)

// sqlFixture is a migrated schema with a published plugin registry and
// two application roles mapped to the tenants acme and globex.
type sqlFixture struct {
	s            *Store
	acme, globex string // role names
}

func ptr[T any](v T) *T { return &v }

// testModules are the registry the fixture publishes: a shared module
// with configured defaults, and one private module per tenant.
var testModules = []abi.ModuleInfo{
	{Name: "invoice", SHA256: "aa", Exports: []string{"total", "plain"}, Functions: map[string]abi.FunctionConfig{
		"total": {Channel: "mail", MaxRetries: ptr(3), Description: "Total of an invoice"}, "plain": {}}},
	{Name: "ledger", Tenant: "acme", SHA256: "bb", Exports: []string{"post"}, Functions: map[string]abi.FunctionConfig{"post": {}}},
	{Name: "secret", Tenant: "globex", SHA256: "cc", Exports: []string{"run"}, Functions: map[string]abi.FunctionConfig{"run": {}}},
	{Name: "broken", Exports: []string{}, Functions: map[string]abi.FunctionConfig{}},
}

func newSQLFixture(t testing.TB, maxPending int) *sqlFixture {
	t.Helper()
	f := &sqlFixture{s: openTest(t), acme: newRole(t), globex: newRole(t)}
	ctx := context.Background()
	if err := f.s.PublishPlugins(ctx, "node-1", testModules); err != nil {
		t.Fatal(err)
	}
	if err := f.s.ApplySQLTenants(ctx, []store.SQLTenant{
		{Name: "acme", Roles: []string{f.acme}, MaxPending: maxPending, Key: "tenants[0]"},
		{Name: "globex", Roles: []string{f.globex}, Key: "tenants[1]"},
	}); err != nil {
		t.Fatal(err)
	}
	// Whatever a test did with SQL, the counts agree with the jobs, as
	// after every conformance case.
	t.Cleanup(func() {
		if !t.Failed() {
			countsMatchTheJobs(t, f.s)
		}
	})
	return f
}

func countsMatchTheJobs(t testing.TB, s *Store) {
	ctx := context.Background()
	page, err := s.List(ctx, store.Filter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	truth := map[string]int{}
	for _, j := range page.Jobs {
		truth[j.Channel+" "+string(j.State)]++
	}
	counts, err := s.Counts(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := storetest.CountsByKey(counts); !maps.Equal(got, truth) {
		t.Errorf("Counts %v, jobs %v", got, truth)
	}
}

// newRole creates a role of its own for the test, dropped at its end
// (before its schema: cleanups run last first).
func newRole(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("wasmq_t_role_%d", rand.Uint64()%1e12)
	conn, err := pgx.Connect(context.Background(), baseDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), "CREATE ROLE "+name+" LOGIN"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), baseDSN())
		if err != nil {
			t.Errorf("drop role %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		for _, q := range []string{"DROP OWNED BY " + name, "DROP ROLE " + name} {
			if _, err := c.Exec(context.Background(), q); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	})
	return name
}

// asRole runs fn in a transaction of the application role: what an
// application connected as role does.
func (f *sqlFixture) asRole(t *testing.T, role string, fn func(tx pgx.Tx) error) error {
	t.Helper()
	ctx := context.Background()
	tx, err := f.s.d.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+role); err != nil {
		t.Fatal(err)
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func sqlEnqueue(tx pgx.Tx, fn, args, options string) (string, error) {
	var id string
	err := tx.QueryRow(context.Background(), `SELECT enqueue($1, $2::jsonb, options => $3::jsonb)::text`, fn, args, options).Scan(&id)
	return id, err
}

func pgErr(t *testing.T, err error) *pgconn.PgError {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("want a PostgreSQL error, got %v", err)
	}
	return pe
}

// nextPending waits for the next pending event and returns its uuids.
func nextPending(t *testing.T, events <-chan store.Event) []string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-events:
			if e.Kind == store.EventPending {
				return e.UUIDs
			}
		case <-timeout:
			t.Fatal("no pending event within 10 s")
		}
	}
}

// functionsOf serves enqueue.Service the registry the fixture publishes.
type functionsOf []abi.ModuleInfo

func (m functionsOf) Function(tenant, fn string) (abi.FunctionConfig, error) {
	mod, export, err := abi.SplitFunc(fn)
	if err != nil {
		return abi.FunctionConfig{}, err
	}
	for _, own := range []bool{true, false} {
		for _, x := range m {
			if x.Name == mod && (own && x.Tenant == tenant || !own && x.Tenant == "") {
				if fc, ok := x.Functions[export]; ok {
					return fc, nil
				}
				return abi.FunctionConfig{}, fmt.Errorf("%w: no function %s", abi.ErrNotFound, fn)
			}
		}
	}
	return abi.FunctionConfig{}, fmt.Errorf("%w: no module %s", abi.ErrNotFound, mod)
}

func TestSQLEnqueueCommitsAJobTheStoreCannotTellFromOneMadeOverHTTP(t *testing.T) {
	f := newSQLFixture(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := f.s.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	options := `{"priority": 5, "context": {"user": "alice", "model": "account.move", "records": [7]}, "identity_key": "inv-7"}`
	var id string
	if err := f.asRole(t, f.acme, func(tx pgx.Tx) error {
		id, err = sqlEnqueue(tx, "invoice.total", `[1200, 350]`, options)
		if err != nil {
			return err
		}
		// Not there for anyone else before the commit.
		if _, err := f.s.Get(ctx, "", id); !errors.Is(err, abi.ErrNotFound) {
			t.Errorf("before commit: Get = %v, want not found", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := nextPending(t, events); !slices.Equal(got, []string{id}) {
		t.Fatalf("pending event names %v, want [%s]", got, id)
	}
	viaSQL, err := f.s.Get(ctx, "acme", id)
	if err != nil {
		t.Fatal(err)
	}

	svc := &enqueue.Service{Store: f.s, Funcs: functionsOf(testModules)}
	var r enqueue.Request
	if err := enqueue.Decode([]byte(`{"func": "invoice.total", "args": [1200, 350], "priority": 5,
		"context": {"user": "alice", "model": "account.move", "records": [7]}, "identity_key": "inv-8"}`), &r); err != nil {
		t.Fatal(err)
	}
	ins, err := svc.Create(ctx, "acme", r)
	if err != nil {
		t.Fatal(err)
	}
	viaGo := ins[0].Job
	// Both uuids are UUIDv7 (the time first: new jobs land at the end of
	// the primary key), holding the job's creation to the millisecond.
	for _, j := range []abi.Job{viaSQL, viaGo} {
		u, err := uuid.Parse(j.UUID)
		if err != nil || u.Version() != 7 || u.Variant() != uuid.RFC4122 || u.String() != j.UUID {
			t.Errorf("uuid %q (version %v, %v): want a canonical UUIDv7", j.UUID, u.Version(), err)
			continue
		}
		sec, nsec := u.Time().UnixTime()
		if d := time.Unix(sec, nsec).Sub(j.DateCreated); d < -time.Second || d > time.Second {
			t.Errorf("uuid %s holds %v, the job was created %v", j.UUID, time.Unix(sec, nsec).UTC(), j.DateCreated)
		}
	}
	// What differs between two jobs made one after the other, and nothing else.
	for _, j := range []*abi.Job{&viaSQL, &viaGo} {
		j.UUID, j.DateCreated, j.Seq, j.IdentityKey = "", time.Time{}, 0, ""
		j.Context = json.RawMessage(compact(t, j.Context))
	}
	a, _ := json.Marshal(viaSQL)
	b, _ := json.Marshal(viaGo)
	if string(a) != string(b) {
		t.Errorf("job made by SQL:\n%s\njob made by the enqueue path:\n%s", a, b)
	}
	if viaSQL.Channel != "root.mail" || viaSQL.MaxRetries != 3 || viaSQL.Description != "Total of an invoice" ||
		viaSQL.FuncString != "invoice.total(1200, 350)" || viaSQL.UserID != "alice" || viaSQL.State != abi.StatePending {
		t.Errorf("defaults of the function's config not applied: %+v", viaSQL)
	}
	// The scheduler's view: in pending_log, and counted.
	cands, err := f.s.PendingSince(ctx, 0, 100)
	if err != nil || len(cands) != 2 || cands[0].UUID != id {
		t.Errorf("PendingSince = %+v, %v; want the SQL job first of 2", cands, err)
	}
	counts, err := f.s.Counts(ctx, "acme")
	if err != nil || len(counts) != 1 || counts[0].Counts[abi.StatePending] != 2 {
		t.Errorf("Counts = %+v, %v; want 2 pending in root.mail", counts, err)
	}
}

func compact(t *testing.T, raw json.RawMessage) string {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func TestSQLEnqueueRolledBackLeavesNoJobAndWakesNobody(t *testing.T) {
	f := newSQLFixture(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := f.s.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var rolledBack, inSavepoint, kept string
	rollback := errors.New("the application rolls back")
	if err := f.asRole(t, f.acme, func(tx pgx.Tx) error {
		rolledBack, err = sqlEnqueue(tx, "invoice.plain", `[1]`, `{}`)
		if err != nil {
			t.Fatal(err)
		}
		return rollback
	}); !errors.Is(err, rollback) {
		t.Fatal(err)
	}
	if err := f.asRole(t, f.acme, func(tx pgx.Tx) error {
		if kept, err = sqlEnqueue(tx, "invoice.plain", `[2]`, `{}`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SAVEPOINT line"); err != nil {
			return err
		}
		if inSavepoint, err = sqlEnqueue(tx, "invoice.plain", `[3]`, `{}`); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "ROLLBACK TO SAVEPOINT line")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// Notifications arrive in commit order: the first is the kept job's.
	if got := nextPending(t, events); !slices.Equal(got, []string{kept}) {
		t.Fatalf("first pending event names %v, want only the committed job %s", got, kept)
	}
	for _, id := range []string{rolledBack, inSavepoint} {
		if _, err := f.s.Get(ctx, "", id); !errors.Is(err, abi.ErrNotFound) {
			t.Errorf("job %s of a rolled-back (sub)transaction: %v, want not found", id, err)
		}
	}
	counts, err := f.s.Counts(ctx, "")
	if err != nil || len(counts) != 1 || counts[0].Counts[abi.StatePending] != 1 {
		t.Errorf("Counts = %+v, %v; want the one kept job", counts, err)
	}
	cands, err := f.s.PendingSince(ctx, 0, 100)
	if err != nil || len(cands) != 1 || cands[0].UUID != kept {
		t.Errorf("pending_log holds %+v, %v; want only %s", cands, err, kept)
	}
}

func TestSQLEnqueueTakesTheTenantFromTheCallingRole(t *testing.T) {
	f := newSQLFixture(t, 0)
	ctx := context.Background()
	var mine string
	if err := f.asRole(t, f.acme, func(tx pgx.Tx) (err error) {
		mine, err = sqlEnqueue(tx, "ledger.post", `[]`, `{}`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if j, err := f.s.Get(ctx, "acme", mine); err != nil || j.Tenant != "acme" {
		t.Fatalf("job of acme's role: %+v, %v", j, err)
	}
	var theirs string
	if err := f.asRole(t, f.globex, func(tx pgx.Tx) (err error) {
		theirs, err = sqlEnqueue(tx, "secret.run", `[]`, `{}`)
		return err
	}); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name, fn, options, code, field string
	}{
		{"another tenant's module is unknown, word for word", "secret.run", `{}`, "42704", "func"},
		{"an unknown module", "nosuch.run", `{}`, "42704", "func"},
		{"no tenant option", "invoice.plain", `{"tenant": "globex"}`, "22023", "tenant"},
		{"no dependency on another tenant's job", "invoice.plain", fmt.Sprintf(`{"depends_on": [%q]}`, theirs), "22023", "depends_on"},
	}
	msgs := map[string]string{}
	for _, c := range cases {
		err := f.asRole(t, f.acme, func(tx pgx.Tx) error { _, err := sqlEnqueue(tx, c.fn, `[]`, c.options); return err })
		pe := pgErr(t, err)
		if pe.Code != c.code || pe.ColumnName != c.field {
			t.Errorf("%s: %s %q (column %q), want %s on %s", c.name, pe.Code, pe.Message, pe.ColumnName, c.code, c.field)
		}
		msgs[c.fn] = pe.Message
	}
	if msgs["secret.run"] != `wasmq: func: no plugin module "secret"` {
		t.Errorf("another tenant's module: %q, want the message of a module that does not exist", msgs["secret.run"])
	}

	// What the role may do: call the three functions, read nothing.
	for _, q := range []string{`SELECT count(*) FROM jobs`, `SELECT count(*) FROM plugin_registry`,
		`SELECT _sql_jobs('globex', '[{"func": "secret.run"}]', false)`, `INSERT INTO sql_roles VALUES ('x', 'globex')`} {
		err := f.asRole(t, f.acme, func(tx pgx.Tx) error { _, err := tx.Exec(ctx, q); return err })
		if pe := pgErr(t, err); pe.Code != "42501" {
			t.Errorf("%s as the application role: %v, want permission denied", q, err)
		}
	}
	var visible []string
	if err := f.asRole(t, f.acme, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT func FROM functions() ORDER BY 1`)
		if err != nil {
			return err
		}
		visible, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"invoice.plain", "invoice.total", "ledger.post"}; !slices.Equal(visible, want) {
		t.Errorf("functions() for acme = %v, want %v", visible, want)
	}

	// A role that is not mapped: no EXECUTE, and none would help.
	stranger := newRole(t)
	err := f.asRole(t, stranger, func(tx pgx.Tx) error { _, err := sqlEnqueue(tx, "invoice.plain", `[]`, `{}`); return err })
	if pe := pgErr(t, err); pe.Code != "42501" && pe.Code != "42883" {
		t.Errorf("unmapped role: %v, want permission denied or no such function", err)
	}
	if _, err := f.s.d.pool.Exec(ctx, `GRANT USAGE ON SCHEMA `+schemaOf(t, f.s)+` TO `+stranger+`;
		GRANT EXECUTE ON FUNCTION enqueue(text, jsonb, jsonb, jsonb) TO `+stranger); err != nil {
		t.Fatal(err)
	}
	err = f.asRole(t, stranger, func(tx pgx.Tx) error { _, err := sqlEnqueue(tx, "invoice.plain", `[]`, `{}`); return err })
	if pe := pgErr(t, err); pe.Code != "42501" {
		t.Errorf("role with EXECUTE but no tenant: %v, want 42501", err)
	}

	// Unmapping a role takes its EXECUTE back.
	if err := f.s.ApplySQLTenants(ctx, []store.SQLTenant{{Name: "globex", Roles: []string{f.globex}, Key: "tenants[0]"}}); err != nil {
		t.Fatal(err)
	}
	err = f.asRole(t, f.acme, func(tx pgx.Tx) error { _, err := sqlEnqueue(tx, "invoice.plain", `[]`, `{}`); return err })
	if pe := pgErr(t, err); pe.Code != "42501" {
		t.Errorf("role no longer mapped: %v, want permission denied", err)
	}
}

func schemaOf(t *testing.T, s *Store) string {
	var schema string
	if err := s.d.pool.QueryRow(context.Background(), `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	return pgx.Identifier{schema}.Sanitize()
}

// login connects as role, as an application would, for the test.
func (f *sqlFixture) login(t *testing.T, role string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(f.s.d.cfg.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	cfg.User = role
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Skipf("cannot log in as a new role here (pg_hba): %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestSQLEnqueueFromALoginRoleConnection(t *testing.T) {
	f := newSQLFixture(t, 0)
	ctx := context.Background()
	conn := f.login(t, f.globex)
	var id string
	if err := conn.QueryRow(ctx, `SELECT enqueue('secret.run')::text`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if j, err := f.s.Get(ctx, "globex", id); err != nil || j.Tenant != "globex" {
		t.Errorf("job of globex's login role: %+v, %v", j, err)
	}
}

// A tenant's login role cannot hear the events, which name other
// tenants' jobs, channels and tenants: PostgreSQL lets any role LISTEN on
// any channel, so the channel's name is wasmq's secret. The role cannot
// read it from the table, the functions' source or the sessions' queries,
// and listening on the names it could guess brings nothing, while the
// node hears both tenants' jobs.
func TestATenantRoleCannotHearTheEvents(t *testing.T) {
	f := newSQLFixture(t, 0)
	ctx := context.Background()
	events, err := f.s.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	spy := f.login(t, f.acme)
	secret := f.s.d.notify
	if !strings.HasPrefix(secret, "wasmq_") || len(secret) != len("wasmq_")+32 {
		t.Fatalf("event channel %q, want wasmq_ and 32 random hex digits", secret)
	}

	if _, err := spy.Exec(ctx, `SELECT name FROM event_channel`); pgErr(t, err).Code != "42501" {
		t.Errorf("the role read event_channel: %v, want permission denied", err)
	}
	for _, q := range []string{
		`SELECT prosrc FROM pg_proc`,
		`SELECT coalesce(query, '') FROM pg_stat_activity`,
		`SELECT obj_description(oid) FROM pg_class WHERE obj_description(oid) IS NOT NULL`,
	} {
		rows, err := spy.Query(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		for _, text := range texts {
			if strings.Contains(text, secret) {
				t.Errorf("%s shows the role the channel's name: %.200q", q, text)
			}
		}
	}
	schema := strings.Trim(schemaOf(t, f.s), `"`)
	for _, guess := range []string{"wasmq_events", "wasmq_events_" + schema, "wasmq", schema} {
		if _, err := spy.Exec(ctx, "LISTEN "+pgx.Identifier{guess}.Sanitize()); err != nil {
			t.Fatal(err)
		}
	}

	var mine, theirs string
	if err := f.asRole(t, f.globex, func(tx pgx.Tx) error {
		var err error
		theirs, err = sqlEnqueue(tx, "secret.run", `[]`, `{"channel": "root.globex-private"}`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	mine = uuid.NewString()
	if _, err := f.s.Insert(ctx, []store.NewJob{{UUID: mine, Tenant: "globex", Func: "invoice.plain", Channel: "root", Priority: 10, MaxRetries: 5}}); err != nil {
		t.Fatal(err)
	}
	heard := map[string]bool{}
	deadline := time.After(5 * time.Second)
	for !heard[mine] || !heard[theirs] {
		select {
		case e := <-events:
			for _, id := range e.UUIDs {
				heard[id] = true
			}
			for _, c := range e.Jobs {
				heard[c.UUID] = true
			}
		case <-deadline:
			t.Fatalf("the node heard %v, want both jobs", heard)
		}
	}
	// Notifications go to every listener of a channel at commit: had the
	// role listened on the right one, it would have had them by now.
	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if n, err := spy.WaitForNotification(wctx); err == nil {
		t.Errorf("the tenant's role heard %s: %.200s", n.Channel, n.Payload)
	}
}

func TestSQLEnqueueRefusesOverTheTenantsMaxPending(t *testing.T) {
	f := newSQLFixture(t, 3)
	enq := func(role string, n int) error {
		return f.asRole(t, role, func(tx pgx.Tx) error {
			jobs := make([]map[string]any, n)
			for i := range jobs {
				jobs[i] = map[string]any{"func": "invoice.plain"}
			}
			b, _ := json.Marshal(jobs)
			_, err := tx.Exec(context.Background(), `SELECT enqueue_batch($1::jsonb)`, string(b))
			return err
		})
	}
	if err := enq(f.acme, 2); err != nil {
		t.Fatal(err)
	}
	err := enq(f.acme, 2)
	if pe := pgErr(t, err); pe.Code != "53400" || pe.Message != "wasmq: tenant acme has 2 jobs waiting; its quota is 3" {
		t.Errorf("over the quota: %s %q", pe.Code, pe.Message)
	}
	if err := enq(f.acme, 1); err != nil {
		t.Errorf("up to the quota: %v", err)
	}
	if err := enq(f.globex, 5); err != nil {
		t.Errorf("a tenant without quota: %v", err)
	}
}

// max_channels holds for SQL as over HTTP: a tenant's new channel past it
// is refused; a channel in use stays open; the store's own inserts and
// the SQL function count the same channels.
func TestSQLEnqueueRefusesANewChannelPastMaxChannels(t *testing.T) {
	f := newSQLFixture(t, 0)
	ctx := context.Background()
	if err := f.s.ApplySQLTenants(ctx, []store.SQLTenant{{Name: "acme", Roles: []string{f.acme}, MaxChannels: 2, Key: "tenants[0]"}}); err != nil {
		t.Fatal(err)
	}
	in := func(channel string) error {
		return f.asRole(t, f.acme, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `SELECT enqueue('invoice.plain', '[]', '{}', $1::jsonb)`, `{"channel":"`+channel+`"}`)
			return err
		})
	}
	if err := in("root.a"); err != nil {
		t.Fatal(err)
	}
	// The second channel comes from the store's path, the Go side.
	nj := store.NewJob{UUID: uuid.NewString(), Tenant: "acme", Func: "invoice.plain", Channel: "root.b"}
	if _, err := f.s.InsertUnder(ctx, store.Quota{MaxChannels: 2}, []store.NewJob{nj}); err != nil {
		t.Fatal(err)
	}
	err := in("root.c")
	if pe := pgErr(t, err); pe.Code != "53400" || !strings.Contains(pe.Message, "3 channels; its quota is 2") {
		t.Errorf("a third channel: %s %q", pe.Code, pe.Message)
	}
	if err := in("root.b"); err != nil {
		t.Errorf("a channel in use: %v", err)
	}
}

func TestSQLEnqueueQuotaHoldsBetweenConcurrentTransactions(t *testing.T) {
	f := newSQLFixture(t, 5)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, refused := 0, 0
	for range 12 {
		wg.Go(func() {
			err := f.asRole(t, f.acme, func(tx pgx.Tx) error { _, err := sqlEnqueue(tx, "invoice.plain", `[]`, `{}`); return err })
			mu.Lock()
			defer mu.Unlock()
			var pe *pgconn.PgError
			switch {
			case err == nil:
				ok++
			case errors.As(err, &pe) && pe.Code == "53400":
				refused++
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ok != 5 || refused != 7 {
		t.Errorf("12 concurrent enqueues under max_pending 5: %d created, %d refused", ok, refused)
	}
}

func TestSQLAndStoreEnqueuesOfOneIdentityKeyMakeOneJob(t *testing.T) {
	f := newSQLFixture(t, 0)
	ctx := context.Background()
	svc := &enqueue.Service{Store: f.s, Funcs: functionsOf(testModules)}
	for round := range 5 {
		key := fmt.Sprintf("invoice-%d", round)
		var wg sync.WaitGroup
		ids := make([]string, 16)
		for i := range ids {
			wg.Go(func() {
				if i%2 == 0 {
					err := f.asRole(t, f.acme, func(tx pgx.Tx) (err error) {
						ids[i], err = sqlEnqueue(tx, "invoice.plain", `[]`, fmt.Sprintf(`{"identity_key": %q}`, key))
						return err
					})
					if err != nil {
						t.Error(err)
					}
					return
				}
				ins, err := svc.Create(ctx, "acme", enqueue.Request{Func: "invoice.plain", IdentityKey: key})
				if err != nil {
					t.Error(err)
					return
				}
				ids[i] = ins[0].Job.UUID
			})
		}
		wg.Wait()
		page, err := f.s.List(ctx, store.Filter{Tenant: "acme", IdentityKey: key})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Jobs) != 1 {
			t.Fatalf("round %d: %d jobs with key %s, want 1", round, len(page.Jobs), key)
		}
		for i, id := range ids {
			if id != page.Jobs[0].UUID {
				t.Errorf("round %d: creator %d got %s, want the one job %s", round, i, id, page.Jobs[0].UUID)
			}
		}
	}
}

func TestSQLEnqueueBatchBuildsAGraphWithRefs(t *testing.T) {
	f := newSQLFixture(t, 0)
	ctx := context.Background()
	var ids []string
	err := f.asRole(t, f.acme, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT enqueue_batch($1::jsonb)::text[]`, `[
			{"ref": "a", "func": "invoice.plain", "args": [1]},
			{"ref": "b", "func": "invoice.plain", "args": [2], "identity_key": "same"},
			{"ref": "c", "func": "invoice.plain", "args": [3], "identity_key": "same"},
			{"func": "ledger.post", "depends_on": ["a", "c"]}]`).Scan(&ids)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 4 || ids[1] != ids[2] {
		t.Fatalf("uuids %v: want 4, the third deduplicated to the second", ids)
	}
	child, err := f.s.Get(ctx, "acme", ids[3])
	if err != nil {
		t.Fatal(err)
	}
	if child.State != abi.StateWaitDependencies || !slices.Equal(child.DependsOn, []string{ids[0], ids[1]}) || child.GraphUUID == "" {
		t.Errorf("child: state %s, depends on %v (want %v), graph %q", child.State, child.DependsOn, ids[:2], child.GraphUUID)
	}
	parent, _ := f.s.Get(ctx, "acme", ids[0])
	if parent.GraphUUID != child.GraphUUID {
		t.Errorf("graph of the parent %q, of the child %q", parent.GraphUUID, child.GraphUUID)
	}
	// A parent done by hand promotes the child, as for any job.
	for _, p := range ids[:2] {
		if _, err := f.s.SetDone(ctx, "acme", p, nil); err != nil {
			t.Fatal(err)
		}
	}
	if child, _ = f.s.Get(ctx, "acme", ids[3]); child.State != abi.StatePending {
		t.Errorf("child after its parents are done: %s", child.State)
	}
	// Nothing of a refused batch is kept.
	err = f.asRole(t, f.acme, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SELECT enqueue_batch('[{"func": "invoice.plain"}, {"func": "invoice.plain", "priority": -1}]')`)
		return err
	})
	if pe := pgErr(t, err); pe.ColumnName != "jobs[1].priority" {
		t.Errorf("bad second entry: %q on %q, want jobs[1].priority", pe.Message, pe.ColumnName)
	}
	if page, _ := f.s.List(ctx, store.Filter{Tenant: "acme"}); len(page.Jobs) != 3 {
		t.Errorf("%d jobs after a refused batch, want 3", len(page.Jobs))
	}
}

func TestSQLFunctionsAreReinstalledWhenNotThisBinarys(t *testing.T) {
	dsn := testDSN(t)
	ctx := context.Background()
	s, err := Open(ctx, dsn, true)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := sqlEnqueueInstalled(ctx, s.d.pool)
	// Another binary's functions: different limits, another mark.
	if _, err := s.d.pool.Exec(ctx, `CREATE OR REPLACE FUNCTION _sql_channel(field text, c text) RETURNS text
		LANGUAGE sql AS $$ SELECT c $$; COMMENT ON FUNCTION _sql_jobs(text, jsonb, boolean) IS 'wasmq old'`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(ctx, dsn, false); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, _ := sqlEnqueueInstalled(ctx, s.d.pool); got != want || want == "" {
		t.Errorf("installed mark after Open: %q, want this binary's %q", got, want)
	}
	var c string
	err = s.d.pool.QueryRow(ctx, `SELECT _sql_channel('channel', 'a b')`).Scan(&c)
	if pe := pgErr(t, err); pe.ColumnName != "channel" {
		t.Errorf("the old function is still installed: %v", err)
	}
}

func TestPluginRegistryOfANodeGoneSilentExpires(t *testing.T) {
	f := newSQLFixture(t, 0)
	ctx := context.Background()
	gone := []abi.ModuleInfo{{Name: "legacy", SHA256: "dd", Exports: []string{"run"}, Functions: map[string]abi.FunctionConfig{"run": {}}}}
	if err := f.s.PublishPlugins(ctx, "node-killed", gone); err != nil {
		t.Fatal(err)
	}
	enq := func() error {
		return f.asRole(t, f.acme, func(tx pgx.Tx) error { _, err := sqlEnqueue(tx, "legacy.run", `[]`, `{}`); return err })
	}
	if err := enq(); err != nil {
		t.Fatalf("a function another node publishes: %v", err)
	}
	if _, err := f.s.d.pool.Exec(ctx, `UPDATE plugin_registry SET published = now() - interval '11 minutes' WHERE node = 'node-killed'`); err != nil {
		t.Fatal(err)
	}
	if err := f.s.PublishPlugins(ctx, "node-1", testModules); err != nil {
		t.Fatal(err)
	}
	if pe := pgErr(t, enq()); pe.Code != "42704" {
		t.Errorf("function only a silent node had: %v, want unknown", pe)
	}
	if err := f.s.UnpublishPlugins(ctx, "node-1"); err != nil {
		t.Fatal(err)
	}
	err := f.asRole(t, f.acme, func(tx pgx.Tx) error { _, err := sqlEnqueue(tx, "invoice.plain", `[]`, `{}`); return err })
	if pe := pgErr(t, err); pe.Code != "42704" {
		t.Errorf("after the last node stopped: %v, want unknown function", pe)
	}
}

func TestSQLEnqueueOfJobsInManyLongChannelsStillWakesTheScheduler(t *testing.T) {
	f := newSQLFixture(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := f.s.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// 50 channels of 190 bytes: more than a NOTIFY payload holds.
	jobs := make([]map[string]any, 50)
	for i := range jobs {
		jobs[i] = map[string]any{"func": "invoice.plain", "channel": fmt.Sprintf("%0190d", i)}
	}
	b, _ := json.Marshal(jobs)
	var ids []string
	if err := f.asRole(t, f.acme, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT enqueue_batch($1::jsonb)::text[]`, string(b)).Scan(&ids)
	}); err != nil {
		t.Fatal(err)
	}
	if got := nextPending(t, events); !slices.Equal(got, ids) {
		t.Errorf("pending event names %d jobs, want the %d created", len(got), len(ids))
	}
}

// BenchmarkSQLEnqueue: one job per transaction, as an application
// enqueues next to its own write; compare BenchmarkSQLEnqueueStoreInsert,
// the store insert an HTTP request ends in.
func BenchmarkSQLEnqueue(b *testing.B) {
	f := newSQLFixture(b, 0)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		tx, err := f.s.d.pool.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+f.acme); err != nil {
			b.Fatal(err)
		}
		if _, err := sqlEnqueue(tx, "invoice.total", `[1200, 350]`, `{"priority": 5}`); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSQLEnqueueStoreInsert(b *testing.B) {
	f := newSQLFixture(b, 0)
	svc := &enqueue.Service{Store: f.s, Funcs: functionsOf(testModules)}
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		if _, err := svc.Create(ctx, "acme", enqueue.Request{Func: "invoice.total", Args: json.RawMessage(`[1200, 350]`), Priority: ptr(5)}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSQLEnqueueBatch100: enqueue_batch of 100 jobs per transaction
// (ns/op is per batch).
func BenchmarkSQLEnqueueBatch100(b *testing.B) {
	f := newSQLFixture(b, 0)
	ctx := context.Background()
	jobs := make([]map[string]any, 100)
	for i := range jobs {
		jobs[i] = map[string]any{"func": "invoice.total", "args": []int{i}}
	}
	body, _ := json.Marshal(jobs)
	b.ResetTimer()
	for range b.N {
		tx, err := f.s.d.pool.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+f.acme); err != nil {
			b.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `SELECT enqueue_batch($1::jsonb)`, string(body)); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func TestANodeThatDoesNotOwnTheFunctionsLeavesTheMappingToMigrate(t *testing.T) {
	f := newSQLFixture(t, 0)
	ctx := context.Background()
	lesser := newRole(t)
	schema := schemaOf(t, f.s)
	if _, err := f.s.d.pool.Exec(ctx, `GRANT USAGE ON SCHEMA `+schema+` TO `+lesser+`;
		GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA `+schema+` TO `+lesser); err != nil {
		t.Fatal(err)
	}
	cfg := f.s.d.cfg.Copy()
	cfg.User = lesser
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Skipf("cannot log in as a new role here (pg_hba): %v", err)
	}
	conn.Close(ctx)
	pool, err := pgxpoolFor(ctx, cfg.ConnString(), lesser)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	node := &Store{d: &driver{pool: pool}}
	err = node.ApplySQLTenants(ctx, []store.SQLTenant{{Name: "acme", Roles: []string{f.acme}, Key: "tenants[0]"}})
	if !errors.Is(err, store.ErrNotOwner) {
		t.Fatalf("ApplySQLTenants as a role that owns nothing: %v, want ErrNotOwner", err)
	}
	// and what the owner applied stands
	if err := f.asRole(t, f.acme, func(tx pgx.Tx) error { _, err := sqlEnqueue(tx, "invoice.plain", `[]`, `{}`); return err }); err != nil {
		t.Errorf("after a node's failed attempt: %v", err)
	}
}

// pgxpoolFor opens a pool on dsn as user.
func pgxpoolFor(ctx context.Context, dsn, user string) (*pgxpool.Pool, error) {
	c, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	c.ConnConfig.User = user
	return pgxpool.NewWithConfig(ctx, c)
}
