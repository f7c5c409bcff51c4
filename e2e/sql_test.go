package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/client"
	wserver "github.com/wasmq/wasmq/server"
	"github.com/wasmq/wasmq/store"
	"github.com/wasmq/wasmq/store/pgtest"
)

// pgServer is a real node on PostgreSQL whose tenants acme and globex
// each have an application role that may enqueue with SQL.
type pgServer struct {
	*server
	dsn, schema  string
	roleA, roleB string
	pool         *pgxpool.Pool // the application's connections (a superuser's, SET ROLE per transaction)
	node         *wserver.Node
}

func newPGRole(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("wasmq_t_app_%d", rand.Uint64()%1e12)
	conn, err := pgx.Connect(context.Background(), pgtest.URL())
	if err != nil {
		t.Skipf("no PostgreSQL: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), "CREATE ROLE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), pgtest.URL())
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

// startPGServer starts the real server on a fresh PostgreSQL schema with
// the testkit plugin shared and a private module "vault" (testkit again)
// of globex; acme's jobs are capped at maxPending (0: no cap).
func startPGServer(t *testing.T, maxPending int) *pgServer {
	t.Helper()
	dsn := pgtest.DSN(t)
	s := &pgServer{dsn: dsn, roleA: newPGRole(t), roleB: newPGRole(t),
		server: &server{Admin: "admin-token-0123456789", TokenA: "acme-token-0123456789", TokenB: "globex-token-0123456789"}}
	dir := t.TempDir()
	plugins := filepath.Join(dir, "plugins")
	if err := os.MkdirAll(filepath.Join(plugins, "globex"), 0o755); err != nil {
		t.Fatal(err)
	}
	wasm, err := os.ReadFile(filepath.Join("..", "plugins", "examples", "testkit", "testkit.wasm"))
	if err != nil {
		t.Fatalf("testkit plugin: %v (run make plugins)", err)
	}
	for _, p := range []string{filepath.Join(plugins, "testkit.wasm"), filepath.Join(plugins, "globex", "vault.wasm")} {
		if err := os.WriteFile(p, wasm, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	toml := fmt.Sprintf(`
[server]
listen = "127.0.0.1:0"
admin_token = %q
[store]
driver = "postgres"
dsn = %q
migrate = true
[runner]
channels = "root:4,mail:2"
[host]
plugins_dir = %q
cache_dir = %q
[[tenants]]
name = "acme"
token = %q
max_pending = %d
sql_roles = [%q]
[[tenants]]
name = "globex"
token = %q
sql_roles = [%q]
`, s.Admin, dsn, plugins, filepath.Join(dir, "cache"), s.TokenA, maxPending, s.roleA, s.TokenB, s.roleB)
	s.node, s.URL = serveConfig(t, dir, toml)
	u, _ := pgx.ParseConfig(dsn)
	s.schema = u.RuntimeParams["search_path"]
	// The application's own connections: search_path does not include
	// wasmq's schema; the functions are called by their full name.
	if s.pool, err = pgxpool.New(context.Background(), pgtest.URL()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.pool.Close)
	return s
}

// inTx runs fn in a transaction of the application role, committing if
// fn returns nil.
func (s *pgServer) inTx(t *testing.T, role string, fn func(tx pgx.Tx) error) error {
	t.Helper()
	ctx := context.Background()
	tx, err := s.pool.Begin(ctx)
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

func TestJobEnqueuedWithSQLRunsWhenTheTransactionCommits(t *testing.T) {
	s := startPGServer(t, 0)
	ctx := context.Background()
	var committed, rolledBack string
	if err := s.inTx(t, s.roleA, func(tx pgx.Tx) (err error) {
		// the application's own write, then the job about it
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE invoice (id int) ON COMMIT DROP; INSERT INTO invoice VALUES (7)`); err != nil {
			return err
		}
		committed, err = client.EnqueueTx(ctx, tx, client.JobRequest{Func: "testkit.script", Args: []any{"ok"}, Channel: "mail"}, client.Schema(s.schema))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	j := waitState(t, s.URL, s.TokenA, committed, abi.StateDone, 15*time.Second)
	t.Logf("committed SQL job done %s after the commit", time.Since(start).Round(time.Millisecond))
	if j.Tenant != "acme" || j.Channel != "root.mail" {
		t.Errorf("job: tenant %s, channel %s", j.Tenant, j.Channel)
	}
	rollback := errors.New("the invoice is not saved")
	if err := s.inTx(t, s.roleA, func(tx pgx.Tx) (err error) {
		if rolledBack, err = client.EnqueueTx(ctx, tx, client.JobRequest{Func: "testkit.script", Args: []any{"ok"}}, client.Schema(s.schema)); err != nil {
			return err
		}
		return rollback
	}); !errors.Is(err, rollback) {
		t.Fatal(err)
	}
	call(t, s.URL, s.TokenA, http.MethodGet, "/v1/jobs/"+rolledBack, nil, http.StatusNotFound, nil)
	// The job of a role mapped to globex is globex's: acme does not see it.
	var theirs string
	if err := s.inTx(t, s.roleB, func(tx pgx.Tx) (err error) {
		theirs, err = client.EnqueueTx(ctx, tx, client.JobRequest{Func: "vault.echo", Args: []any{1}}, client.Schema(s.schema))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	waitState(t, s.URL, s.TokenB, theirs, abi.StateDone, 15*time.Second)
	call(t, s.URL, s.TokenA, http.MethodGet, "/v1/jobs/"+theirs, nil, http.StatusNotFound, nil)
	err := s.inTx(t, s.roleA, func(tx pgx.Tx) error {
		_, err := client.EnqueueTx(ctx, tx, client.JobRequest{Func: "vault.echo"}, client.Schema(s.schema))
		return err
	})
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != 404 || ce.Field != "func" {
		t.Errorf("acme's role enqueueing globex's module: %v, want 404 on func", err)
	}
}

// sqlCase is one job of the corpus: a POST /v1/jobs body, and the field
// both paths must refuse it for ("" = both accept it).
type sqlCase struct {
	name  string
	body  map[string]any
	field string
	// byPostgres: PostgreSQL's jsonb refuses the value (NUL) before
	// wasmq's function runs, so SQL names no field.
	byPostgres bool
}

func sqlCorpus(parent, othersJob string) []sqlCase {
	tk := "testkit.echo"
	j := func(kv ...any) map[string]any {
		m := map[string]any{"func": tk}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	deep := "a.b.c.d.e.f.g"
	return []sqlCase{
		{name: "minimal", body: j()},
		{name: "every field", body: j("args", []any{1200, 350, "x", map[string]any{"k": []any{1}}}, "kwargs", map[string]any{"lang": "fr", "a": 1},
			"context", map[string]any{"user": "alice", "model": "account.move", "records": []any{7, 8}, "extra": true},
			"priority", 0, "eta", "2030-01-01T10:00:00Z", "expected_at", 7200, "max_retries", 0, "description", "Send the invoice",
			"channel", "mail", "identity_key", "invoice-7")},
		{name: "highest priority", body: j("priority", store.MaxPriority, "eta", 3600)},
		{name: "description of the longest, in characters", body: j("description", strings.Repeat("é", abi.MaxDescription), "eta", 3600)},
		{name: "the root channel by its full name", body: j("channel", "root", "eta", 3600)},
		{name: "an empty channel is the root", body: j("channel", "", "eta", 3600)},
		{name: "deepest channel", body: j("channel", deep, "eta", 3600)},
		{name: "longest channel", body: j("channel", strings.Repeat("c", abi.MaxChannelLen-5), "eta", 3600)},
		{name: "longest identity key", body: j("identity_key", strings.Repeat("k", abi.MaxIdentityKey), "eta", 3600)},
		{name: "eta in the past, in seconds", body: j("eta", -5)},
		{name: "eta with nanoseconds and an offset", body: j("eta", "2030-01-01T00:00:00.123456789+02:00")},
		{name: "null values are absent", body: j("eta", nil, "priority", nil, "args", nil, "channel", nil)},
		{name: "a dependency", body: j("depends_on", []any{parent}, "eta", 3600)},
		{name: "records null", body: j("context", map[string]any{"records": nil}, "eta", 3600)},
		{name: "batch_size with nothing to split", body: j("batch_size", 5, "context", map[string]any{"records": []any{1, 2}}, "eta", 3600)},
		{name: "field names ignore case", body: j("Priority", 3, "ETA", 3600)},

		{name: "no func", body: map[string]any{"args": []any{}}, field: "func"},
		{name: "empty func", body: j("func", ""), field: "func"},
		{name: "func without a dot", body: j("func", "testkit"), field: "func"},
		{name: "func without a module", body: j("func", ".echo"), field: "func"},
		{name: "func without a function", body: j("func", "testkit."), field: "func"},
		{name: "unknown module", body: j("func", "nosuch.echo"), field: "func"},
		{name: "unknown export", body: j("func", "testkit.nope"), field: "func"},
		{name: "another tenant's module", body: j("func", "vault.echo"), field: "func"},
		{name: "args an object", body: j("args", map[string]any{}), field: "args"},
		{name: "args a string", body: j("args", "x"), field: "args"},
		{name: "kwargs a list", body: j("kwargs", []any{}), field: "kwargs"},
		{name: "context a list", body: j("context", []any{1}), field: "context"},
		{name: "records not a list", body: j("context", map[string]any{"records": "7"}), field: "context.records"},
		{name: "negative priority", body: j("priority", -1), field: "priority"},
		{name: "priority over 32 bits", body: j("priority", int64(store.MaxPriority)+1), field: "priority"},
		{name: "priority a string", body: j("priority", "5"), field: "priority"},
		{name: "priority a fraction", body: j("priority", 1.5), field: "priority"},
		{name: "priority beyond 64 bits", body: j("priority", json.Number("123456789012345678901234")), field: "priority"},
		{name: "negative max_retries", body: j("max_retries", -1), field: "max_retries"},
		{name: "max_retries over 32 bits", body: j("max_retries", int64(store.MaxMaxRetries)+1), field: "max_retries"},
		{name: "description too long", body: j("description", strings.Repeat("é", abi.MaxDescription+1)), field: "description"},
		{name: "description a number", body: j("description", 5), field: "description"},
		{name: "channel with a space", body: j("channel", "a b"), field: "channel"},
		{name: "channel with an empty level", body: j("channel", "root..x"), field: "channel"},
		{name: "channel too deep", body: j("channel", deep+".h"), field: "channel"},
		{name: "channel too long", body: j("channel", strings.Repeat("c", abi.MaxChannelLen-4)), field: "channel"},
		{name: "channel a list", body: j("channel", []any{"a"}), field: "channel"},
		{name: "identity key too long", body: j("identity_key", strings.Repeat("k", abi.MaxIdentityKey+1)), field: "identity_key"},
		{name: "eta a word", body: j("eta", "tomorrow"), field: "eta"},
		{name: "eta a date without time", body: j("eta", "2030-01-01"), field: "eta"},
		{name: "eta month 13", body: j("eta", "2030-13-01T00:00:00Z"), field: "eta"},
		{name: "eta hour 24", body: j("eta", "2030-01-01T24:00:00Z"), field: "eta"},
		{name: "eta a fraction of seconds", body: j("eta", 1.5), field: "eta"},
		{name: "eta too far in seconds", body: j("eta", int64(abi.MaxSecondsFromNow)+1), field: "eta"},
		{name: "eta before 1970", body: j("eta", "1969-12-31T23:59:59Z"), field: "eta"},
		{name: "eta true", body: j("eta", true), field: "eta"},
		{name: "expected_at a word", body: j("expected_at", "soon"), field: "expected_at"},
		{name: "depends_on not a uuid", body: j("depends_on", []any{"parent"}), field: "depends_on[0]"},
		{name: "depends_on an unknown job", body: j("depends_on", []any{uuid.NewString()}), field: "depends_on"},
		{name: "depends_on another tenant's job", body: j("depends_on", []any{othersJob}), field: "depends_on"},
		{name: "depends_on a string", body: j("depends_on", parent), field: "depends_on"},
		{name: "depends_on a list of numbers", body: j("depends_on", []any{1}), field: "depends_on"},
		{name: "unknown field", body: j("colour", "red"), field: "colour"},
		{name: "no tenant field", body: j("tenant", "globex"), field: "tenant"},
		{name: "ref outside a batch", body: j("ref", "a"), field: "ref"},
		{name: "batch_size zero", body: j("batch_size", 0), field: "batch_size"},
		{name: "NUL in args", body: j("args", []any{"a\x00b"}), field: "args", byPostgres: true},
		{name: "NUL in identity_key", body: j("identity_key", "a\x00b"), field: "identity_key", byPostgres: true},
	}
}

// sqlCreate runs a corpus body through wasmq.enqueue: func, args and
// kwargs as its parameters, the rest as its options.
func (s *pgServer) sqlCreate(t *testing.T, body map[string]any) (string, error) {
	opts := map[string]any{}
	for k, v := range body {
		opts[k] = v
	}
	var fn *string
	if f, ok := opts["func"].(string); ok {
		fn = &f
	}
	param := func(k string) *string {
		v, ok := opts[k]
		if !ok {
			return nil
		}
		delete(opts, k)
		b, _ := json.Marshal(v)
		s := string(b)
		return &s
	}
	delete(opts, "func")
	args, kwargs := param("args"), param("kwargs")
	o, _ := json.Marshal(opts)
	var id string
	err := s.inTx(t, s.roleA, func(tx pgx.Tx) error {
		return tx.QueryRow(context.Background(), `SELECT `+pgx.Identifier{s.schema}.Sanitize()+`.enqueue($1, $2::jsonb, $3::jsonb, $4::jsonb)::text`,
			fn, args, kwargs, string(o)).Scan(&id)
	})
	return id, err
}

func (s *pgServer) httpCreate(t *testing.T, body map[string]any) (abi.Job, *client.Error) {
	t.Helper()
	c := client.New(s.URL, s.TokenA)
	var j abi.Job
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/jobs", strings.NewReader(string(b)))
	req.Header.Set("Authorization", "Bearer "+s.TokenA)
	res, err := c.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusCreated {
		if err := json.NewDecoder(res.Body).Decode(&j); err != nil {
			t.Fatal(err)
		}
		return j, nil
	}
	var e struct {
		Error struct{ Code, Message, Field string } `json:"error"`
	}
	_ = json.NewDecoder(res.Body).Decode(&e)
	return j, &client.Error{Status: res.StatusCode, Code: e.Error.Code, Message: e.Error.Message, Field: e.Error.Field}
}

func TestSQLAndHTTPAgreeOnEveryJobOfTheCorpus(t *testing.T) {
	s := startPGServer(t, 0)
	parent := createJob(t, s.URL, s.TokenA, map[string]any{"func": "testkit.echo", "eta": 3600}).UUID
	others := createJob(t, s.URL, s.TokenB, map[string]any{"func": "testkit.echo", "eta": 3600}).UUID
	for _, c := range sqlCorpus(parent, others) {
		t.Run(c.name, func(t *testing.T) {
			hj, herr := s.httpCreate(t, c.body)
			if herr != nil && herr.Status >= 500 {
				t.Fatalf("HTTP: %v", herr)
			}
			if _, keyed := c.body["identity_key"]; keyed && hj.UUID != "" {
				// Out of the way of the SQL job's identity key.
				call(t, s.URL, s.TokenA, http.MethodPost, "/v1/jobs/"+hj.UUID+"/cancel", nil, http.StatusOK, nil)
			}
			id, serr := s.sqlCreate(t, c.body)
			var pe *pgconn.PgError
			if serr != nil && !errors.As(serr, &pe) {
				t.Fatalf("SQL: %v", serr)
			}
			httpField, sqlField := "", ""
			if herr != nil {
				httpField = herr.Field
			}
			if pe != nil {
				sqlField = pe.ColumnName
			}
			switch {
			case c.field == "" && (herr != nil || serr != nil):
				t.Fatalf("want both to accept: HTTP %v; SQL %v", herr, serr)
			case c.field != "" && (herr == nil || serr == nil):
				t.Fatalf("want both to refuse %s: HTTP %v; SQL %v", c.field, herr, serr)
			case c.field != "" && httpField != c.field:
				t.Errorf("HTTP refuses on %q (%s), want %q", httpField, herr.Message, c.field)
			case c.byPostgres:
				if pe.Code != "22P05" {
					t.Errorf("SQL: %s %q, want PostgreSQL's 22P05 (jsonb holds no NUL)", pe.Code, pe.Message)
				}
			case c.field != "" && sqlField != c.field:
				t.Errorf("SQL refuses on %q (%s %s), want %q", sqlField, pe.Code, pe.Message, c.field)
			}
			if c.field != "" {
				if pe.Code == "42704" != (herr.Status == 404) {
					t.Errorf("SQL %s vs HTTP %d: one says unknown function, the other not", pe.Code, herr.Status)
				}
				return
			}
			var sj abi.Job
			call(t, s.URL, s.TokenA, http.MethodGet, "/v1/jobs/"+id, nil, http.StatusOK, &sj)
			sameJob(t, hj, sj)
		})
	}
}

// sameJob compares what a creator decides of a job (not what happens to
// it later, nor its identity).
func sameJob(t *testing.T, h, s abi.Job) {
	t.Helper()
	type made struct {
		Tenant, Func, FuncString, Description, Channel, IdentityKey, UserID, ModelName string
		Priority, MaxRetries                                                           int
		Args, Kwargs, Context                                                          any
		DependsOn                                                                      []string
		HasETA, HasExpected                                                            bool
	}
	of := func(j abi.Job) made {
		m := made{j.Tenant, j.Func, j.FuncString, j.Description, j.Channel, j.IdentityKey, j.UserID, j.ModelName,
			j.Priority, j.MaxRetries, nil, nil, nil, j.DependsOn, j.ETA != nil, j.ExpectedAt != nil}
		_ = json.Unmarshal(j.Args, &m.Args)
		_ = json.Unmarshal(j.Kwargs, &m.Kwargs)
		_ = json.Unmarshal(j.Context, &m.Context)
		// A nested value reads as the creator wrote it over HTTP, as
		// PostgreSQL prints jsonb (a space after ':' and ',') with SQL.
		m.FuncString = strings.NewReplacer(": ", ":", ", ", ",").Replace(m.FuncString)
		return m
	}
	a, _ := json.Marshal(of(h))
	b, _ := json.Marshal(of(s))
	if string(a) != string(b) {
		t.Errorf("over HTTP: %s\nwith SQL:  %s", a, b)
	}
	for _, p := range [][2]*time.Time{{h.ETA, s.ETA}, {h.ExpectedAt, s.ExpectedAt}} {
		if p[0] != nil && p[1] != nil && p[0].Sub(*p[1]).Abs() > 5*time.Second {
			t.Errorf("dates differ: %s over HTTP, %s with SQL", p[0], p[1])
		}
	}
}

func TestSQLAndHTTPCreatorsOfOneIdentityKeyMakeOneJob(t *testing.T) {
	s := startPGServer(t, 0)
	ctx := context.Background()
	for round := range 4 {
		key := fmt.Sprintf("invoice-%d", round)
		ids := make([]string, 12)
		var wg sync.WaitGroup
		for i := range ids {
			wg.Go(func() {
				req := client.JobRequest{Func: "testkit.echo", IdentityKey: key, ETA: 3600}
				if i%2 == 0 {
					err := s.inTx(t, s.roleA, func(tx pgx.Tx) (err error) {
						ids[i], err = client.EnqueueTx(ctx, tx, req, client.Schema(s.schema))
						return err
					})
					if err != nil {
						t.Error(err)
					}
					return
				}
				j, err := client.New(s.URL, s.TokenA).Enqueue(ctx, req)
				if err != nil {
					t.Error(err)
					return
				}
				ids[i] = j.UUID
			})
		}
		wg.Wait()
		var page struct{ Jobs []abi.Job }
		call(t, s.URL, s.TokenA, http.MethodGet, "/v1/jobs?identity_key="+key, nil, http.StatusOK, &page)
		if len(page.Jobs) != 1 {
			t.Fatalf("round %d: %d jobs with key %s, want 1", round, len(page.Jobs), key)
		}
		for i, id := range ids {
			if id != page.Jobs[0].UUID {
				t.Errorf("round %d: creator %d (SQL: %v) got %s, want %s", round, i, i%2 == 0, id, page.Jobs[0].UUID)
			}
		}
	}
}

func TestSQLEnqueueObeysTheQuotaHTTPFilled(t *testing.T) {
	s := startPGServer(t, 2)
	ctx := context.Background()
	for range 2 {
		createJob(t, s.URL, s.TokenA, map[string]any{"func": "testkit.echo", "eta": 3600})
	}
	err := s.inTx(t, s.roleA, func(tx pgx.Tx) error {
		_, err := client.EnqueueTx(ctx, tx, client.JobRequest{Func: "testkit.echo"}, client.Schema(s.schema))
		return err
	})
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != 429 || ce.Code != "quota_exceeded" {
		t.Fatalf("SQL enqueue over max_pending: %v, want 429 quota_exceeded", err)
	}
	// globex has no quota
	if err := s.inTx(t, s.roleB, func(tx pgx.Tx) error {
		_, err := client.EnqueueBatchTx(ctx, tx, []client.JobRequest{{Func: "vault.echo", ETA: 3600}, {Func: "testkit.echo", ETA: 3600}}, client.Schema(s.schema))
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func TestAModuleDroppedIntoPluginsDirBecomesEnqueueableWithSQL(t *testing.T) {
	s := startPGServer(t, 0)
	ctx := context.Background()
	enq := func() error {
		return s.inTx(t, s.roleA, func(tx pgx.Tx) error {
			_, err := client.EnqueueTx(ctx, tx, client.JobRequest{Func: "fresh.echo", ETA: 3600}, client.Schema(s.schema))
			return err
		})
	}
	var ce *client.Error
	if err := enq(); !errors.As(err, &ce) || ce.Status != 404 {
		t.Fatalf("before the module exists: %v, want 404", err)
	}
	wasm, err := os.ReadFile(filepath.Join("..", "plugins", "examples", "testkit", "testkit.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.node.Host.Install("", "fresh", wasm); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for err := enq(); err != nil; err = enq() {
		if time.Now().After(deadline) {
			t.Fatalf("10 s after the module was installed: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestSQLAndHTTPAgreeOnBatches(t *testing.T) {
	s := startPGServer(t, 0)
	ok := func(kv ...any) map[string]any {
		m := map[string]any{"func": "testkit.echo", "eta": 3600}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	cases := []struct {
		name  string
		jobs  []any
		field string
	}{
		{"a chain by refs", []any{ok("ref", "a"), ok("ref", "b", "depends_on", []any{"a"}), ok("depends_on", []any{"a", "b"})}, ""},
		{"no job", []any{}, "jobs"},
		{"an entry that is not an object", []any{ok(), "x"}, "jobs[1]"},
		{"an unknown field in an entry", []any{ok(), ok("colour", "red")}, "jobs[1].colour"},
		{"a bad value in an entry", []any{ok(), ok("priority", -1)}, "jobs[1].priority"},
		{"a ref given twice", []any{ok("ref", "a"), ok("ref", "a")}, "jobs[1].ref"},
		{"a ref of a later entry", []any{ok("depends_on", []any{"b"}), ok("ref", "b")}, "jobs[0].depends_on[0]"},
		{"an unknown function in an entry", []any{ok(), ok("func", "nosuch.x")}, "jobs[1].func"},
		{"a number past its bound in an entry", []any{ok(), ok("priority", int64(store.MaxPriority)+1)}, "jobs[1].priority"},
		{"max_retries past its bound in an entry", []any{ok(), ok("max_retries", int64(store.MaxMaxRetries)+1)}, "jobs[1].max_retries"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, _ := json.Marshal(map[string]any{"jobs": c.jobs})
			req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/jobs:batch", strings.NewReader(string(b)))
			req.Header.Set("Authorization", "Bearer "+s.TokenA)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var e struct {
				Error struct{ Field, Message string } `json:"error"`
			}
			_ = json.NewDecoder(res.Body).Decode(&e)
			res.Body.Close()
			list, _ := json.Marshal(c.jobs)
			var ids []string
			serr := s.inTx(t, s.roleA, func(tx pgx.Tx) error {
				return tx.QueryRow(context.Background(), `SELECT `+pgx.Identifier{s.schema}.Sanitize()+`.enqueue_batch($1::jsonb)::text[]`, string(list)).Scan(&ids)
			})
			if c.field == "" {
				if res.StatusCode != http.StatusCreated || serr != nil || len(ids) != len(c.jobs) {
					t.Fatalf("want both to accept: HTTP %d %s; SQL %v", res.StatusCode, e.Error.Message, serr)
				}
				var last abi.Job
				call(t, s.URL, s.TokenA, http.MethodGet, "/v1/jobs/"+ids[2], nil, http.StatusOK, &last)
				if len(last.DependsOn) != 2 || last.DependsOn[0] != ids[0] || last.DependsOn[1] != ids[1] || last.GraphUUID == "" {
					t.Errorf("last job of the chain: depends on %v, graph %q; uuids %v", last.DependsOn, last.GraphUUID, ids)
				}
				return
			}
			var pe *pgconn.PgError
			if res.StatusCode < 400 || res.StatusCode >= 500 || !errors.As(serr, &pe) {
				t.Fatalf("want both to refuse %s: HTTP %d; SQL %v", c.field, res.StatusCode, serr)
			}
			if e.Error.Field != c.field || pe.ColumnName != c.field {
				t.Errorf("HTTP refuses on %q (%s), SQL on %q (%s); want %q", e.Error.Field, e.Error.Message, pe.ColumnName, pe.Message, c.field)
			}
		})
	}
}
