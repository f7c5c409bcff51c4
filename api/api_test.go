package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/config"
	"github.com/wasmq/wasmq/host/wasmgen"
	"github.com/wasmq/wasmq/server"
	"github.com/wasmq/wasmq/store/pgtest"
	"github.com/wasmq/wasmq/telemetry"
)

const (
	tokA     = "token-of-acme-0123456789"
	tokB     = "token-of-globex-0123456789"
	tokAdmin = "token-of-the-admin-0123456789"
)

// srv is a real wasmq node (SQLite store, host with the real testkit,
// runner) behind a real HTTP listener, with two tenants and an admin.
type srv struct {
	t   testing.TB
	url string
	n   *server.Node
}

// backend is the store the node runs on; TestOnPostgreSQL switches it.
var backend = "sqlite"

func start(t testing.TB, tweak ...func(*config.File)) *srv {
	t.Helper()
	return startNode(t, nil, tweak...)
}

// startWith is start with the node's spans going to tracing.
func startWith(t testing.TB, tracing *telemetry.Tracing) *srv {
	t.Helper()
	return startNode(t, []server.Option{server.WithTracing(tracing)})
}

func startNode(t testing.TB, opts []server.Option, tweak ...func(*config.File)) *srv {
	t.Helper()
	wasm, err := os.ReadFile("../plugins/examples/testkit/testkit.wasm")
	if err != nil {
		t.Fatalf("testkit.wasm must be built (make plugins): %v", err)
	}
	dir := t.TempDir()
	plugins := filepath.Join(dir, "plugins")
	os.MkdirAll(plugins, 0o755)
	os.WriteFile(filepath.Join(plugins, "testkit.wasm"), wasm, 0o644)
	f := config.File{
		Server:  config.Server{AdminToken: tokAdmin},
		Tenants: []config.Tenant{{Name: "acme", Token: tokA}, {Name: "globex", Token: tokB}},
	}
	f.Store.Path = filepath.Join(dir, "wasmq.db")
	if backend == "postgres" {
		migrate := true
		f.Store.Driver, f.Store.DSN, f.Store.Migrate = "postgres", pgtest.DSN(t), &migrate
	}
	f.Host.PluginsDir = plugins
	f.Host.CacheDir = filepath.Join(os.TempDir(), "wasmq-api-test-cache")
	f.Runner.Channels = "root:4"
	f.Runner.DefaultRetryInterval = abi.Duration(50 * time.Millisecond)
	for _, fn := range tweak {
		fn(&f)
	}
	f = f.WithDefaults()
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	n, err := server.New(context.Background(), f, zerolog.Nop(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Every exchange of every test is checked against the OpenAPI
	// document: an answer it does not describe fails the test. A
	// benchmark measures the server alone.
	h := n.Handler
	if _, bench := t.(*testing.B); !bench {
		h = openapiChecker(t).Middleware(t, h)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(func() { hs.Close(); n.Close(context.Background()) })
	return &srv{t: t, url: hs.URL, n: n}
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("status %d body %q: %v", r.status, r.body, err)
	}
	return m
}

// errOf returns the error object of an error response.
func (r resp) errOf(t testing.TB) (code, message, field string) {
	t.Helper()
	e, ok := r.json(t)["error"].(map[string]any)
	if !ok {
		t.Fatalf("status %d without an error object: %s", r.status, r.body)
	}
	f, _ := e["field"].(string)
	return e["code"].(string), e["message"].(string), f
}

func (s *srv) do(method, path, token string, body any) resp {
	s.t.Helper()
	return s.send(s.request(method, path, token, body))
}

// request builds a request of do's, for a test that sets more headers.
func (s *srv) request(method, path, token string, body any) *http.Request {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, s.url+path, rd)
	if _, isJSON := body.(map[string]any); isJSON {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req
}

func (s *srv) send(req *http.Request) resp {
	s.t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, b}
}

func (s *srv) waitState(token, id string, want abi.State) map[string]any {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		j := s.do("GET", "/v1/jobs/"+id, token, nil).json(s.t)
		if j["state"] == string(want) {
			return j
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("job %s is %v, want %s", id, j["state"], want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *srv) jobCount(token string) int {
	s.t.Helper()
	return len(s.do("GET", "/v1/jobs?limit=1000", token, nil).json(s.t)["jobs"].([]any))
}

func TestCreateRunAndReadAJob(t *testing.T) {
	s := start(t)
	r := s.do("POST", "/v1/jobs", tokA, map[string]any{"func": "testkit.echo", "args": []any{1, "x"}, "kwargs": map[string]any{"lang": "fr"},
		"context": map[string]any{"user": "alice", "model": "res.partner", "records": []int{7}}, "priority": 3, "description": "hello"})
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	j := r.json(t)
	for k, want := range map[string]any{"tenant": "acme", "state": "pending", "priority": 3.0, "channel": "root",
		"func_string": `testkit.echo(1, "x", lang="fr")`, "user_id": "alice", "model_name": "res.partner", "max_retries": 5.0} {
		if j[k] != want && !(k == "state" && j[k] != nil) {
			t.Errorf("%s = %v, want %v", k, j[k], want)
		}
	}
	done := s.waitState(tokA, j["uuid"].(string), abi.StateDone)
	if res := done["result"].(map[string]any); fmt.Sprint(res["args"]) != "[1 x]" {
		t.Fatalf("result %v", res)
	}
	at := s.do("GET", "/v1/jobs/"+j["uuid"].(string)+"/attempts", tokA, nil).json(t)["attempts"].([]any)
	if len(at) != 1 || at[0].(map[string]any)["outcome"] != "done" {
		t.Fatalf("attempts %v", at)
	}
	if st := s.do("GET", "/v1/stats", tokA, nil).json(t)["states"].(map[string]any); st["done"] != 1.0 {
		t.Fatalf("stats %v", st)
	}
}

func TestTenantsNeverSeeEachOther(t *testing.T) {
	s := start(t)
	id := s.do("POST", "/v1/jobs", tokA, map[string]any{"func": "testkit.echo", "eta": 3600}).json(t)["uuid"].(string)
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/jobs/" + id}, {"GET", "/v1/jobs/" + id + "/attempts"}, {"POST", "/v1/jobs/" + id + "/cancel"},
		{"POST", "/v1/jobs/" + id + "/requeue"}, {"POST", "/v1/jobs/" + id + "/done"}, {"PATCH", "/v1/jobs/" + id},
	} {
		var body any
		if c.method == "PATCH" {
			body = map[string]any{"priority": 1}
		}
		if r := s.do(c.method, c.path, tokB, body); r.status != 404 {
			t.Errorf("%s %s by another tenant: %d, want 404", c.method, c.path, r.status)
		}
	}
	if n := s.jobCount(tokB); n != 0 {
		t.Fatalf("globex lists %d jobs of acme", n)
	}
	if n := s.jobCount(tokAdmin); n != 1 {
		t.Fatalf("admin lists %d jobs, want 1", n)
	}
	if r := s.do("GET", "/v1/jobs/"+id, tokAdmin, nil); r.status != 200 {
		t.Fatalf("admin get: %d", r.status)
	}
	if r := s.do("GET", "/v1/jobs", "", nil); r.status != 401 {
		t.Fatalf("no token: %d", r.status)
	}
	if r := s.do("GET", "/v1/jobs", "wrong-token-0123456789", nil); r.status != 401 {
		t.Fatalf("unknown token: %d", r.status)
	}
}

func TestBadRequestsAreRefusedWithTheFieldNamedAndStoreNothing(t *testing.T) {
	s := start(t, func(f *config.File) { f.Server.BodyLimit = 4096 })
	cases := []struct {
		name   string
		body   any
		status int
		field  string
		msg    string
	}{
		{"malformed JSON", `{"func": "testkit.echo",`, 400, "", "cut short"},
		{"unknown field", `{"func": "testkit.echo", "prio": 1}`, 400, "prio", "unknown field"},
		{"wrong type", `{"func": "testkit.echo", "priority": "high"}`, 400, "priority", "must be an integer, not string"},
		{"a fraction for an integer", `{"func": "testkit.echo", "max_retries": 1.5}`, 400, "max_retries", "must be an integer, not number 1.5"},
		{"an integer past 2^63", `{"func": "testkit.echo", "priority": 1e30}`, 400, "priority", "must be an integer"},
		{"args not a list", `{"func": "testkit.echo", "args": {"a": 1}}`, 400, "args", "list"},
		{"missing func", `{"args": []}`, 400, "func", "required"},
		{"negative priority", `{"func": "testkit.echo", "priority": -1}`, 422, "priority", "from 0 to 2147483647"},
		{"priority 2^40", `{"func": "testkit.echo", "priority": 1099511627776}`, 422, "priority", "from 0 to 2147483647"},
		{"negative max_retries", `{"func": "testkit.echo", "max_retries": -2}`, 422, "max_retries", "from 0 to 2147483647"},
		{"max_retries 2^31", `{"func": "testkit.echo", "max_retries": 2147483648}`, 422, "max_retries", "from 0 to 2147483647"},
		{"NUL in the description", `{"func": "testkit.echo", "description": "a\u0000b"}`, 422, "description", "NUL"},
		{"identity key over 255 bytes", `{"func": "testkit.echo", "identity_key": "` + strings.Repeat("k", 256) + `"}`, 422, "identity_key", "at most 255 bytes"},
		{"identity key with no room for the split's suffix", `{"func": "testkit.echo", "batch_size": 1, "context": {"records": [1, 2]}, "identity_key": "` + strings.Repeat("k", 254) + `"}`, 422, "identity_key", "at most 253 bytes"},
		{"bad eta", `{"func": "testkit.echo", "eta": "tomorrow"}`, 422, "eta", "RFC 3339"},
		{"bad channel", `{"func": "testkit.echo", "channel": "a..b"}`, 422, "channel", "channel"},
		{"channel too deep", `{"func": "testkit.echo", "channel": "a.b.c.d.e.f.g.h"}`, 422, "channel", "levels"},
		{"unknown module", `{"func": "nope.run"}`, 404, "func", "nope"},
		{"unknown export lists exports", `{"func": "testkit.nope"}`, 404, "func", "echo"},
		{"unknown dependency", `{"func": "testkit.echo", "depends_on": ["6f1c1a3e-8c43-4c0e-9d53-000000000000"]}`, 422, "depends_on", "does not exist"},
		{"body over the limit", `{"func": "testkit.echo", "args": ["` + strings.Repeat("x", 5000) + `"]}`, 413, "", "limit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := s.do("POST", "/v1/jobs", tokA, c.body)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			_, msg, field := r.errOf(t)
			if field != c.field || !strings.Contains(msg, c.msg) {
				t.Fatalf("field %q message %q, want field %q and %q in the message", field, msg, c.field, c.msg)
			}
		})
	}
	t.Run("a bad channel in a batch names its entry", func(t *testing.T) {
		r := s.do("POST", "/v1/jobs:batch", tokA, map[string]any{"jobs": []any{
			map[string]any{"func": "testkit.echo"}, map[string]any{"func": "testkit.echo", "channel": "../x"},
		}})
		if _, _, field := r.errOf(t); r.status != 422 || field != "jobs[1].channel" {
			t.Fatalf("%d field %q: %s", r.status, field, r.body)
		}
	})
	t.Run("a number out of range in a batch names its entry", func(t *testing.T) {
		r := s.do("POST", "/v1/jobs:batch", tokA, map[string]any{"jobs": []any{
			map[string]any{"func": "testkit.echo"}, map[string]any{"func": "testkit.echo", "priority": 1 << 40},
		}})
		if _, _, field := r.errOf(t); r.status != 422 || field != "jobs[1].priority" {
			t.Fatalf("%d field %q: %s", r.status, field, r.body)
		}
	})
	t.Run("a batch with one bad job stores nothing", func(t *testing.T) {
		r := s.do("POST", "/v1/jobs:batch", tokA, map[string]any{"jobs": []any{
			map[string]any{"func": "testkit.echo", "ref": "a"},
			map[string]any{"func": "testkit.echo", "depends_on": []string{"a"}},
			map[string]any{"func": "testkit.echo", "priority": -5},
		}})
		if r.status != 422 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		if _, _, field := r.errOf(t); field != "jobs[2].priority" {
			t.Fatalf("field %q", field)
		}
	})
	if n := s.jobCount(tokAdmin); n != 0 {
		t.Fatalf("refused requests stored %d jobs", n)
	}
}

func TestBatchBuildsAGraphAndRunsItInOrder(t *testing.T) {
	s := start(t)
	r := s.do("POST", "/v1/jobs:batch", tokA, map[string]any{"jobs": []any{
		map[string]any{"ref": "extract", "func": "testkit.script", "args": []string{"ok:50"}},
		map[string]any{"ref": "a", "func": "testkit.script", "depends_on": []string{"extract"}},
		map[string]any{"ref": "b", "func": "testkit.script", "depends_on": []string{"extract"}},
		map[string]any{"ref": "load", "func": "testkit.script", "depends_on": []string{"a", "b"}},
	}})
	if r.status != 201 {
		t.Fatalf("batch: %d %s", r.status, r.body)
	}
	jobs := r.json(t)["jobs"].([]any)
	graph := jobs[0].(map[string]any)["graph_uuid"]
	for _, j := range jobs {
		if j.(map[string]any)["graph_uuid"] != graph || graph == "" {
			t.Fatal("jobs of one batch graph do not share graph_uuid")
		}
	}
	if jobs[3].(map[string]any)["state"] != "wait_dependencies" {
		t.Fatalf("fan-in job is %v", jobs[3].(map[string]any)["state"])
	}
	last := s.waitState(tokA, jobs[3].(map[string]any)["uuid"].(string), abi.StateDone)
	if len(last["depends_on"].([]any)) != 2 {
		t.Fatalf("depends_on %v", last["depends_on"])
	}
	g := s.do("GET", fmt.Sprintf("/v1/jobs?graph_uuid=%v", graph), tokA, nil).json(t)["jobs"].([]any)
	if len(g) != 4 {
		t.Fatalf("graph lists %d jobs", len(g))
	}
}

func TestActionsAndPatchFollowTheStateTable(t *testing.T) {
	s := start(t)
	id := s.do("POST", "/v1/jobs", tokA, map[string]any{"func": "testkit.echo", "eta": 3600}).json(t)["uuid"].(string)
	if r := s.do("PATCH", "/v1/jobs/"+id, tokA, map[string]any{"priority": 1, "channel": "mail", "description": "x"}); r.status != 200 ||
		r.json(t)["channel"] != "root.mail" || r.json(t)["priority"] != 1.0 {
		t.Fatalf("patch pending: %d %s", r.status, r.body)
	}
	if r := s.do("POST", "/v1/jobs/"+id+"/cancel", tokA, nil); r.status != 200 || r.json(t)["state"] != "cancelled" {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	if r := s.do("POST", "/v1/jobs/"+id+"/cancel", tokA, nil); r.status != 409 {
		t.Fatalf("cancel twice: %d, want 409", r.status)
	}
	if r := s.do("POST", "/v1/jobs/"+id+"/done", tokA, nil); r.status != 409 {
		t.Fatalf("set done on cancelled: %d, want 409", r.status)
	}
	if r := s.do("PATCH", "/v1/jobs/"+id, tokA, map[string]any{"priority": 2}); r.status != 409 {
		t.Fatalf("patch cancelled: %d, want 409", r.status)
	}
	// A started job cannot be patched.
	run := s.do("POST", "/v1/jobs", tokA, map[string]any{"func": "testkit.sleep", "kwargs": map[string]any{"ms": 2000}}).json(t)["uuid"].(string)
	s.waitState(tokA, run, abi.StateStarted)
	if r := s.do("PATCH", "/v1/jobs/"+run, tokA, map[string]any{"priority": 2}); r.status != 409 {
		t.Fatalf("patch started: %d, want 409", r.status)
	}
	if r := s.do("POST", "/v1/jobs/"+id+"/requeue", tokA, nil); r.status != 200 || r.json(t)["state"] != "pending" {
		t.Fatalf("requeue: %d %s", r.status, r.body)
	}
	s.waitState(tokA, id, abi.StateDone)
}

func TestPatchRefusesAnInvalidChannelBeforeTheStore(t *testing.T) {
	s := start(t)
	id := s.do("POST", "/v1/jobs", tokA, map[string]any{"func": "testkit.echo", "eta": 3600}).json(t)["uuid"].(string)
	for _, ch := range []string{"../x", "root.bad name!!", "a\x00b", strings.Repeat("x", 201)} {
		r := s.do("PATCH", "/v1/jobs/"+id, tokA, map[string]any{"channel": ch})
		if r.status != 422 {
			t.Fatalf("PATCH channel %q: %d %s, want 422", ch, r.status, r.body)
		}
		if code, _, field := r.errOf(t); code != "invalid_argument" || field != "channel" {
			t.Fatalf("PATCH channel %q: code %q field %q, want invalid_argument on channel", ch, code, field)
		}
	}
	if got := s.do("GET", "/v1/jobs/"+id, tokA, nil).json(t)["channel"]; got != "root" {
		t.Fatalf("a refused PATCH changed the channel to %v", got)
	}
}

func TestNoDelayRunsTheJobInTheRequestWithTheConfiguredRetryInterval(t *testing.T) {
	s := start(t, func(f *config.File) { f.Server.NoDelay = true })
	r := s.do("POST", "/v1/jobs", tokA, map[string]any{"func": "testkit.retry"})
	if r.status != 201 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var j abi.Job
	if err := json.Unmarshal(r.body, &j); err != nil {
		t.Fatal(err)
	}
	// start configures default_retry_interval = 50ms; the built-in 10m
	// default must not apply.
	if j.State != abi.StatePending || j.ETA == nil || j.ETA.Sub(*j.DateStarted) > 10*time.Second {
		t.Fatalf("state %s eta %v started %v: want pending with an eta 50ms away", j.State, j.ETA, j.DateStarted)
	}
	if n := s.jobCount(tokAdmin); n != 0 {
		t.Fatalf("the synchronous mode stored %d jobs", n)
	}
}

func TestIdentityKeyAnswers200WithTheExistingJob(t *testing.T) {
	s := start(t)
	body := map[string]any{"func": "testkit.echo", "identity_key": "sync-partner-7", "eta": 3600}
	a := s.do("POST", "/v1/jobs", tokA, body)
	b := s.do("POST", "/v1/jobs", tokA, body)
	if a.status != 201 || b.status != 200 || b.json(t)["deduplicated"] != true || a.json(t)["uuid"] != b.json(t)["uuid"] {
		t.Fatalf("dedup: %d %d %s", a.status, b.status, b.body)
	}
	if c := s.do("POST", "/v1/jobs", tokB, body); c.status != 201 {
		t.Fatalf("another tenant's identity key deduplicated: %d", c.status)
	}
}

func TestQuotaAnswers429ThenAcceptsAfterTheWindow(t *testing.T) {
	// One token every 2 s: the third request is over the rate however
	// slowly a loaded machine serves the first two.
	s := start(t, func(f *config.File) { f.Tenants[0].Rate, f.Tenants[0].Burst = 0.5, 2 })
	body := map[string]any{"func": "testkit.echo"}
	for i := 0; i < 2; i++ {
		if r := s.do("POST", "/v1/jobs", tokA, body); r.status != 201 {
			t.Fatalf("within burst: %d", r.status)
		}
	}
	r := s.do("POST", "/v1/jobs", tokA, body)
	if r.status != 429 || r.header.Get("Retry-After") == "" {
		t.Fatalf("over the rate: %d, Retry-After %q", r.status, r.header.Get("Retry-After"))
	}
	if r := s.do("POST", "/v1/jobs", tokB, body); r.status != 201 {
		t.Fatalf("another tenant is throttled too: %d", r.status)
	}
	time.Sleep(2100 * time.Millisecond)
	if r := s.do("POST", "/v1/jobs", tokA, body); r.status != 201 {
		t.Fatalf("after the window: %d %s", r.status, r.body)
	}
}

func TestChannelsPluginsHealthMetricsAndOpenAPI(t *testing.T) {
	s := start(t, func(f *config.File) { f.Runner.Channels = "root:4,mail:2:throttle=1" })
	chs := s.do("GET", "/v1/channels", tokA, nil).json(t)["channels"].([]any)
	if len(chs) != 2 || chs[1].(map[string]any)["name"] != "root.mail" || chs[1].(map[string]any)["throttle"] != 1.0 {
		t.Fatalf("channels %v", chs)
	}
	ps := s.do("GET", "/v1/plugins", tokA, nil).json(t)["plugins"].([]any)
	if len(ps) != 1 {
		t.Fatalf("plugins %v", ps)
	}
	wasm, _ := os.ReadFile("../plugins/examples/testkit/testkit.wasm")
	if r := s.do("PUT", "/v1/plugins/mine", tokA, wasm); r.status != 201 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	if r := s.do("PUT", "/v1/plugins/bad", tokA, []byte("not wasm at all")); r.status != 422 {
		t.Fatalf("upload of garbage: %d", r.status)
	}
	// A compile bomb: 300 KB of blocks 100,000 deep, which held the node's
	// compiler for 86 s, is refused before it is compiled.
	if r := s.do("PUT", "/v1/plugins/bomb", tokA, wasmgen.Module(wasmgen.Nested(100000))); r.status != 422 || !strings.Contains(string(r.body), "nested too deeply") {
		t.Fatalf("upload of a compile bomb: %d %s", r.status, r.body)
	}
	// A bad name is the path's fault, named before the body is read.
	for _, name := range []string{"..%2Fx", "x%00", ".hidden", "a%20b"} {
		for _, path := range []string{"/v1/plugins/" + name, "/v1/plugins/" + name + "/config"} {
			r := s.do("PUT", path, tokA, wasm)
			if _, msg, field := r.errOf(t); r.status != 422 || field != "name" || !strings.Contains(msg, "must be letters") {
				t.Errorf("PUT %s: %d field %q %q", path, r.status, field, msg)
			}
		}
	}
	if n := len(s.do("GET", "/v1/plugins", tokB, nil).json(t)["plugins"].([]any)); n != 1 {
		t.Fatalf("globex sees %d plugins, want the shared one only", n)
	}
	if r := s.do("POST", "/v1/jobs", tokB, map[string]any{"func": "mine.echo"}); r.status != 404 {
		t.Fatalf("globex calling acme's plugin: %d", r.status)
	}
	if r := s.do("POST", "/v1/jobs", tokA, map[string]any{"func": "mine.echo"}); r.status != 201 {
		t.Fatalf("acme calling its plugin: %d %s", r.status, r.body)
	}
	if r := s.do("DELETE", "/v1/plugins/mine", tokA, nil); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if r := s.do("GET", p, "", nil); r.status != 200 {
			t.Fatalf("%s: %d", p, r.status)
		}
	}
	// The node elects itself leader shortly after start.
	for deadline := time.Now().Add(5 * time.Second); ; {
		r := s.do("GET", "/metrics", tokAdmin, nil)
		if r.status == 200 && strings.Contains(string(r.body), "\nwasmq_runner_leader 1\n") && strings.Contains(string(r.body), `wasmq_jobs{channel="root"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics: %d %s", r.status, r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	spec := s.do("GET", "/v1/openapi.json", "", nil).json(t)
	paths := spec["paths"].(map[string]any)
	for _, p := range []string{"/v1/jobs", "/v1/jobs:batch", "/v1/jobs/{uuid}", "/v1/jobs/{uuid}/attempts", "/v1/jobs/{uuid}/requeue",
		"/v1/jobs/{uuid}/cancel", "/v1/jobs/{uuid}/done", "/v1/stats", "/v1/channels", "/v1/plugins", "/v1/plugins/{name}",
		"/healthz", "/readyz", "/metrics", "/v1/schedules", "/v1/schedules/{name}", "/v1/schedules/{name}:pause",
		"/v1/schedules/{name}:resume", "/v1/schedules/{name}:run",
		"/v1/jobs:requeue", "/v1/jobs:cancel", "/v1/jobs:done", "/v1/channels/{name}:pause", "/v1/channels/{name}:resume",
		"/v1/channels/{name}"} {
		if paths[p] == nil {
			t.Errorf("openapi.json lacks %s", p)
		}
	}
	if r := s.do("GET", "/", "", nil); r.status != 200 || !strings.Contains(string(r.body), "<html") {
		t.Fatalf("web UI at /: %d", r.status)
	}
}

func TestListPagingAndFilters(t *testing.T) {
	s := start(t)
	for i := 0; i < 7; i++ {
		s.do("POST", "/v1/jobs", tokA, map[string]any{"func": "testkit.echo", "eta": 3600, "channel": []string{"a", "b"}[i%2]})
	}
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		p := s.do("GET", "/v1/jobs?limit=3&cursor="+cursor, tokA, nil).json(t)
		for _, j := range p["jobs"].([]any) {
			id := j.(map[string]any)["uuid"].(string)
			if seen[id] {
				t.Fatalf("job %s on two pages", id)
			}
			seen[id] = true
		}
		cursor, _ = p["next_cursor"].(string)
		if cursor == "" {
			break
		}
	}
	if len(seen) != 7 {
		t.Fatalf("paging saw %d of 7 jobs", len(seen))
	}
	if n := len(s.do("GET", "/v1/jobs?channel=b&state=pending", tokA, nil).json(t)["jobs"].([]any)); n != 3 {
		t.Fatalf("channel filter: %d", n)
	}
	s.do("POST", "/v1/jobs", tokA, map[string]any{"func": "testkit.echo", "eta": 3600, "channel": "b.sub"})
	if n := len(s.do("GET", "/v1/jobs?channel=b.*", tokA, nil).json(t)["jobs"].([]any)); n != 4 {
		t.Fatalf("channel subtree filter: %d, want 4", n)
	}
	if n := len(s.do("GET", "/v1/jobs?channel=root.b.sub", tokA, nil).json(t)["jobs"].([]any)); n != 1 {
		t.Fatalf("channel filter by full name: %d, want 1", n)
	}
	for _, bad := range []string{"../x", "a%20b.*", "a..*", "*"} {
		r := s.do("GET", "/v1/jobs?channel="+bad, tokA, nil)
		if _, _, field := r.errOf(t); r.status != 422 || field != "channel" {
			t.Fatalf("channel filter %q: %d %s, want 422 on channel", bad, r.status, r.body)
		}
	}
	if r := s.do("GET", "/v1/jobs?state=running", tokA, nil); r.status != 422 {
		t.Fatalf("bad state filter: %d", r.status)
	}
	if r := s.do("GET", "/v1/jobs?cursor=zzz", tokA, nil); r.status != 422 {
		t.Fatalf("bad cursor: %d", r.status)
	}
}

func TestMaxPendingQuotaCountsWaitingJobs(t *testing.T) {
	s := start(t, func(f *config.File) { f.Tenants[0].MaxPending = 2 })
	body := map[string]any{"func": "testkit.echo", "eta": 3600}
	for i := 0; i < 2; i++ {
		if r := s.do("POST", "/v1/jobs", tokA, body); r.status != 201 {
			t.Fatalf("within quota: %d", r.status)
		}
	}
	r := s.do("POST", "/v1/jobs", tokA, body)
	if code, _, _ := r.errOf(t); r.status != 429 || code != "quota_exceeded" || r.header.Get("Retry-After") == "" {
		t.Fatalf("over max_pending: %d %s", r.status, r.body)
	}
	if r := s.do("POST", "/v1/jobs:batch", tokA, map[string]any{"jobs": []any{body}}); r.status != 429 {
		t.Fatalf("a batch over max_pending: %d", r.status)
	}
	id := s.do("GET", "/v1/jobs?limit=1", tokA, nil).json(t)["jobs"].([]any)[0].(map[string]any)["uuid"].(string)
	s.do("POST", "/v1/jobs/"+id+"/cancel", tokA, nil)
	if r := s.do("POST", "/v1/jobs", tokA, body); r.status != 201 {
		t.Fatalf("after a cancel frees a place: %d", r.status)
	}
}

// TestOnPostgreSQL runs every API test again on a node backed by PostgreSQL.
func TestOnPostgreSQL(t *testing.T) {
	pgtest.DSN(t)
	backend = "postgres"
	defer func() { backend = "sqlite" }()
	for _, c := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"CreateRunAndReadAJob", TestCreateRunAndReadAJob},
		{"TenantsNeverSeeEachOther", TestTenantsNeverSeeEachOther},
		{"BadRequestsAreRefusedWithTheFieldNamedAndStoreNothing", TestBadRequestsAreRefusedWithTheFieldNamedAndStoreNothing},
		{"BatchBuildsAGraphAndRunsItInOrder", TestBatchBuildsAGraphAndRunsItInOrder},
		{"ActionsAndPatchFollowTheStateTable", TestActionsAndPatchFollowTheStateTable},
		{"PatchRefusesAnInvalidChannelBeforeTheStore", TestPatchRefusesAnInvalidChannelBeforeTheStore},
		{"IdentityKeyAnswers200WithTheExistingJob", TestIdentityKeyAnswers200WithTheExistingJob},
		{"QuotaAnswers429ThenAcceptsAfterTheWindow", TestQuotaAnswers429ThenAcceptsAfterTheWindow},
		{"ChannelsPluginsHealthMetricsAndOpenAPI", TestChannelsPluginsHealthMetricsAndOpenAPI},
		{"ListPagingAndFilters", TestListPagingAndFilters},
		{"MaxPendingQuotaCountsWaitingJobs", TestMaxPendingQuotaCountsWaitingJobs},
		{"HostileBytesAreRefusedNotAnInternalError", TestHostileBytesAreRefusedNotAnInternalError},
		{"InternalErrorsKeepTheirCauseInTheLog", TestInternalErrorsKeepTheirCauseInTheLog},
		{"TenantIsolationMatrix", TestTenantIsolationMatrix},
		{"SchedulesOverHTTP", TestSchedulesOverHTTP},
	} {
		t.Run(c.name, c.fn)
	}
}
