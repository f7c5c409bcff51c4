package api_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/client"
	"github.com/wasmq/wasmq/config"
	"github.com/wasmq/wasmq/host"
)

// multipartPlugin is a body of PUT /v1/plugins/{name} with the given
// parts, and its content type.
func multipartPlugin(t *testing.T, parts map[string][]byte) (*bytes.Buffer, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for name, data := range parts {
		fw, err := mw.CreateFormFile(name, name)
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(data)
	}
	mw.Close()
	return &buf, mw.FormDataContentType()
}

func (s *srv) putMultipart(path, token string, parts map[string][]byte) resp {
	s.t.Helper()
	body, ct := multipartPlugin(s.t.(*testing.T), parts)
	req := s.request("PUT", path, token, body.Bytes())
	req.Header.Set("Content-Type", ct)
	return s.send(req)
}

func (s *srv) runJob(token string, req map[string]any, want abi.State) map[string]any {
	s.t.Helper()
	r := s.do("POST", "/v1/jobs", token, req)
	if r.status != 201 {
		s.t.Fatalf("create %v: %d %s", req, r.status, r.body)
	}
	return s.waitState(token, r.json(s.t)["uuid"].(string), want)
}

func TestAPluginIsUploadedWithItsConfigOverHTTP(t *testing.T) {
	wasm, err := os.ReadFile("../plugins/examples/vowels/vowels.wasm")
	if err != nil {
		t.Fatalf("vowels.wasm must be built (make plugins): %v", err)
	}
	s := start(t)
	sidecar := "[config]\ngreeting = \"hi\"\n\n[functions.count_vowels]\ninput = \"raw\"\nmax_fuel = 50_000_000\nconfig = { vowels = \"aeiouy\" }\n"
	r := s.putMultipart("/v1/plugins/vowels", tokA, map[string][]byte{"wasm": wasm, "config": []byte(sidecar)})
	if r.status != 201 || strings.Contains(string(r.body), `"path"`) {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	fn := r.json(t)["functions"].(map[string]any)["count_vowels"].(map[string]any)
	if fn["input"] != "raw" || fn["config"].(map[string]any)["vowels"] != "aeiouy" || fn["max_fuel"] != 5e7 {
		t.Fatalf("the owner sees functions.count_vowels = %v", fn)
	}
	j := s.runJob(tokA, map[string]any{"func": "vowels.count_vowels", "args": []any{"Yummy tea"}}, abi.StateDone)
	if res := j["result"].(map[string]any); res["count"] != 4.0 || res["greeting"] != "hi" {
		t.Fatalf("result %v", res)
	}

	// The config alone, by its own route.
	if r := s.do("PUT", "/v1/plugins/vowels/config", tokA, "[functions.count_vowels]\ninput = \"raw\"\nconfig = { vowels = \"y\" }\n"); r.status != 200 {
		t.Fatalf("config: %d %s", r.status, r.body)
	}
	j = s.runJob(tokA, map[string]any{"func": "vowels.count_vowels", "args": []any{"Yummy tea"}}, abi.StateDone)
	if res := j["result"].(map[string]any); res["count"] != 1.0 || res["greeting"] != nil {
		t.Fatalf("result after the new config %v", res)
	}

	// Refused configs name the key, show no server path, and change nothing.
	for _, c := range []struct{ body, want string }{
		{"[functions.count_vowels]\ninput = \"bytes\"\n", `functions.count_vowels.input: "bytes" is not an input mode`},
		{"[functions.nope]\ninput = \"raw\"\n", "vowels.toml: [functions.nope] names no export of the module"},
		{"[functions.count_vowels]\ncolour = 1\n", "unknown key functions.count_vowels.colour"},
		{"[functions.count_vowels]\nmax_fuel = -1\n", "functions.count_vowels.max_fuel: must be between 0"},
		{"not toml = = 1", "vowels.toml"},
		// The TOML parser takes the square of the nesting: 10,000 inline
		// tables (40 KB) would hold it for a minute.
		{"[config]\na = " + strings.Repeat("{b=", 10000) + "1" + strings.Repeat("}", 10000) + "\n", "vowels.toml: line 2: tables and arrays nest more than 32 deep"},
	} {
		r := s.do("PUT", "/v1/plugins/vowels/config", tokA, c.body)
		code, msg, field := r.errOf(t)
		if r.status != 422 || code != "invalid_plugin" || field != "body" || !strings.Contains(msg, c.want) || strings.Contains(msg, "/") {
			t.Errorf("config %q: %d %s %q (field %s), want 422 naming %q", c.body, r.status, code, msg, field, c.want)
		}
	}
	r = s.putMultipart("/v1/plugins/vowels", tokA, map[string][]byte{"wasm": wasm, "config": []byte("[functions.count_vowels]\ninput = 3\n")})
	if _, _, field := r.errOf(t); r.status != 422 || field != "config" {
		t.Errorf("multipart with a bad config: %d %s", r.status, r.body)
	}
	j = s.runJob(tokA, map[string]any{"func": "vowels.count_vowels", "args": []any{"Yummy tea"}}, abi.StateDone)
	if res := j["result"].(map[string]any); res["count"] != 1.0 {
		t.Fatalf("a refused config changed the function: %v", res)
	}

	// Malformed multipart bodies.
	for _, c := range []struct {
		parts map[string][]byte
		field string
	}{
		{map[string][]byte{"config": []byte(sidecar)}, "wasm"},
		{map[string][]byte{"wasm": wasm, "colour": []byte("x")}, "colour"},
	} {
		r := s.putMultipart("/v1/plugins/vowels", tokA, c.parts)
		if _, _, field := r.errOf(t); r.status != 400 || field != c.field {
			t.Errorf("parts %v: %d %s", len(c.parts), r.status, r.body)
		}
	}
	// The other tenant sees no module of A's, and no config of a shared one.
	if r := s.do("PUT", "/v1/plugins/vowels/config", tokB, sidecar); r.status != 404 {
		t.Errorf("B configuring A's module: %d %s", r.status, r.body)
	}
}

// The Go client's calls for the two upload forms (the CLI's
// `wasmq plugins upload NAME FILE CONFIG.toml` and `plugins config`).
func TestTheClientUploadsAPluginWithItsConfig(t *testing.T) {
	wasm, err := os.ReadFile("../plugins/examples/vowels/vowels.wasm")
	if err != nil {
		t.Fatalf("vowels.wasm must be built (make plugins): %v", err)
	}
	s := start(t)
	c := &client.Client{BaseURL: s.url, Token: tokA}
	ctx := context.Background()
	info, err := c.UploadPluginWithConfig(ctx, "vowels", wasm, []byte("[functions.shout]\ninput = \"raw\"\n"))
	if err != nil || info["name"] != "vowels" {
		t.Fatalf("upload: %v %v", info, err)
	}
	j := s.runJob(tokA, map[string]any{"func": "vowels.shout", "args": []any{"abc"}}, abi.StateDone)
	if j["result"] != "ABC" {
		t.Fatalf("result %v", j["result"])
	}
	_, err = c.SetPluginConfig(ctx, "vowels", []byte("[functions.shout]\ninput = \"bytes\"\n"))
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != 422 || !strings.Contains(ce.Message, "functions.shout.input") {
		t.Fatalf("a bad config: %v", err)
	}
	if _, err := c.SetPluginConfig(ctx, "vowels", []byte("")); err != nil {
		t.Fatalf("an empty config: %v", err)
	}
	// Without input = "raw" the plugin reads the envelope document.
	j = s.runJob(tokA, map[string]any{"func": "vowels.shout", "args": []any{"abc"}}, abi.StateDone)
	if r, _ := j["result"].(map[string]any); r == nil || r["ARGS"] == nil {
		t.Fatalf("result with the envelope %v", j["result"])
	}
}

// A tenant's plugin quota is answered 429 quota_exceeded naming the key,
// without a Retry-After (waiting does not make room; removing a module
// does), and bounds that tenant alone.
func TestAPluginQuotaIsAnswered429NamingTheKey(t *testing.T) {
	wasm, err := os.ReadFile("../plugins/examples/vowels/vowels.wasm")
	if err != nil {
		t.Fatalf("vowels.wasm must be built (make plugins): %v", err)
	}
	s := start(t, func(f *config.File) {
		f.Tenants[0].MaxPlugins = 1
		f.Tenants[1].MaxPluginBytes = host.ByteSize(len(wasm) - 1)
	})
	if r := s.do("PUT", "/v1/plugins/one", tokA, wasm); r.status != 201 {
		t.Fatalf("acme's first module: %d %s", r.status, r.body)
	}
	for _, c := range []struct {
		token, key string
		r          func() resp
	}{
		{tokA, "(max_plugins)", func() resp { return s.do("PUT", "/v1/plugins/two", tokA, wasm) }},
		{tokA, "(max_plugins)", func() resp {
			return s.putMultipart("/v1/plugins/two", tokA, map[string][]byte{"wasm": wasm, "config": []byte("[config]\n")})
		}},
		{tokB, "(max_plugin_bytes: ", func() resp { return s.do("PUT", "/v1/plugins/one", tokB, wasm) }},
	} {
		r := c.r()
		code, msg, _ := r.errOf(t)
		if r.status != 429 || code != "quota_exceeded" || !strings.Contains(msg, c.key) || r.header.Get("Retry-After") != "" {
			t.Errorf("past the quota: %d %s %q Retry-After %q, want 429 naming %s", r.status, code, msg, r.header.Get("Retry-After"), c.key)
		}
	}
	if r := s.do("PUT", "/v1/plugins/one", tokA, wasm); r.status != 201 {
		t.Errorf("replacing acme's module at its quota: %d %s", r.status, r.body)
	}
	if r := s.do("DELETE", "/v1/plugins/one", tokA, nil); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r := s.do("PUT", "/v1/plugins/two", tokA, wasm); r.status != 201 {
		t.Errorf("an upload after a removal made room: %d %s", r.status, r.body)
	}
}

// Uploads pass a gate before their body is read: a tenant has one in
// flight at a time (another is 429 with Retry-After) and the node
// max_uploads (past them 503 with Retry-After). A hundred uploads of 8 MiB
// sent at once by one tenant were all read into memory while they waited
// for the compiler (the node's RSS reached 1.9 GB). Here acme's first
// upload holds the gate while its body is still arriving.
func TestUploadsPassAGateBeforeTheirBodyIsRead(t *testing.T) {
	wasm, err := os.ReadFile("../plugins/examples/vowels/vowels.wasm")
	if err != nil {
		t.Fatalf("vowels.wasm must be built (make plugins): %v", err)
	}
	s := start(t, func(f *config.File) { f.Server.MaxUploads = 1 })
	// The contract checker reads a body whole before the handler sees
	// it; this front does not, so the first upload's body can dawdle.
	front := httptest.NewServer(s.n.Handler)
	defer front.Close()
	put := func(token, name string, body io.Reader) (*http.Response, string) {
		req, _ := http.NewRequest("PUT", front.URL+"/v1/plugins/"+name, body)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}
	// The slow upload must pass the gate before acme's others: one of
	// them in flight at that instant refuses it (429, as it should; its
	// answer comes once its body is closed), and then it is sent again.
	// On a loaded machine a loop that did not look for that hammered the
	// gate for ten seconds with the slow upload long refused.
	type answer struct {
		status int
		body   string
	}
	var pw *io.PipeWriter
	var first chan answer
	sendSlow := func() {
		var pr *io.PipeReader
		pr, pw = io.Pipe()
		first = make(chan answer, 1)
		go func(done chan answer) {
			res, body := put(tokA, "slow", pr)
			done <- answer{res.StatusCode, body}
		}(first)
		pw.Write(wasm[:100])
	}
	sendSlow()
	var res *http.Response
	var body string
	for tries, deadline := 0, time.Now().Add(10*time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		// Before the slow upload is in, this one goes through.
		if res, body = put(tokA, "quick", bytes.NewReader(wasm)); res.StatusCode != 201 {
			break
		}
		if tries++; tries%20 == 0 { // the slow one was refused, or is not in yet
			pw.Close()
			<-first
			sendSlow()
		}
	}
	if res.StatusCode != 429 || !strings.Contains(body, "an upload of tenant acme is in progress") || res.Header.Get("Retry-After") != "1" {
		t.Errorf("acme's second upload meanwhile: %d %s (Retry-After %q), want 429 with Retry-After", res.StatusCode, body, res.Header.Get("Retry-After"))
	}
	res, body = put(tokB, "other", bytes.NewReader(wasm))
	if res.StatusCode != 503 || !strings.Contains(body, "server.max_uploads") || res.Header.Get("Retry-After") == "" {
		t.Errorf("globex's upload with the node's one slot taken: %d %s, want 503 with Retry-After", res.StatusCode, body)
	}
	pw.Write(wasm[100:])
	pw.Close()
	if a := <-first; a.status != 201 {
		t.Errorf("the slow upload: %d %s", a.status, a.body)
	}
	for _, c := range []struct{ token, name string }{{tokA, "quick"}, {tokB, "other"}} {
		if res, body := put(c.token, c.name, bytes.NewReader(wasm)); res.StatusCode != 201 {
			t.Errorf("%s after the slow upload: %d %s", c.name, res.StatusCode, body)
		}
	}
}
