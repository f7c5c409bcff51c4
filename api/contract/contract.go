// Package contract checks HTTP requests and answers against wasmq's
// OpenAPI 3.1 document (api/openapi.json). Tests wrap the server's handler
// in Middleware, so every request a test sends is a contract test: an
// answer that the document does not describe fails the test.
//
// OpenAPI 3.1 schemas are JSON Schema 2020-12, so they are validated by a
// JSON Schema 2020-12 validator (santhosh-tekuri/jsonschema) over the
// document itself, rather than by an OpenAPI library; docs/api.md says why.
package contract

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// docURL names the document for the validator; nothing is fetched.
const docURL = "https://wasmq.invalid/openapi.json"

var methods = []string{"get", "put", "post", "delete", "patch", "head", "options"}

// Checker validates exchanges against one document.
type Checker struct {
	doc map[string]any
	ops []*Operation

	mu       sync.Mutex
	compiler *jsonschema.Compiler
	schemas  map[string]*jsonschema.Schema
}

// Operation is one method of one path of the document.
type Operation struct {
	Method   string // GET
	Template string // /v1/jobs/{uuid}
	re       *regexp.Regexp
	literal  int // characters outside {params}: the more, the more specific
	obj      map[string]any
	params   map[string]map[string]any // query parameters by name
	ptr      string                    // JSON pointer to obj
}

// QueryParameters lists the names of the operation's query parameters.
func (o *Operation) QueryParameters() []string {
	out := make([]string, 0, len(o.params))
	for k := range o.params {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// String is "GET /v1/jobs/{uuid}".
func (o *Operation) String() string { return o.Method + " " + o.Template }

// Load reads an OpenAPI 3.1 document.
func Load(doc []byte) (*Checker, error) {
	var d map[string]any
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("contract: the document is not JSON: %w", err)
	}
	if v, _ := d["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		return nil, fmt.Errorf("contract: openapi %q, want 3.1.x", v)
	}
	raw, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return nil, err
	}
	c := &Checker{doc: d, compiler: jsonschema.NewCompiler(), schemas: map[string]*jsonschema.Schema{}}
	c.compiler.DefaultDraft(jsonschema.Draft2020)
	c.compiler.AssertFormat()
	if err := c.compiler.AddResource(docURL, raw); err != nil {
		return nil, err
	}
	paths, _ := d["paths"].(map[string]any)
	for tmpl, p := range paths {
		item, _ := p.(map[string]any)
		var common []any
		common, _ = item["parameters"].([]any)
		for _, m := range methods {
			obj, ok := item[m].(map[string]any)
			if !ok {
				continue
			}
			o := &Operation{Method: strings.ToUpper(m), Template: tmpl, obj: obj, params: map[string]map[string]any{},
				ptr: "/paths/" + escape(tmpl) + "/" + m}
			o.re, o.literal = templateRegexp(tmpl)
			own, _ := obj["parameters"].([]any)
			for _, pv := range append(append([]any{}, common...), own...) {
				pm := c.resolve(pv)
				if pm["in"] == "query" {
					o.params[pm["name"].(string)] = pm
				}
			}
			c.ops = append(c.ops, o)
		}
	}
	sort.Slice(c.ops, func(i, j int) bool { return c.ops[i].String() < c.ops[j].String() })
	return c, nil
}

// Operations lists every operation of the document.
func (c *Checker) Operations() []*Operation { return c.ops }

// Find returns the operation a request is for: of the path templates
// that match, the most specific ("/v1/schedules/{name}:run" over
// "/v1/schedules/{name}"). pathMatched tells whether a template matched
// at all, with another method.
func (c *Checker) Find(method, escapedPath string) (op *Operation, pathMatched bool) {
	best := -1
	for _, o := range c.ops {
		if !o.re.MatchString(escapedPath) {
			continue
		}
		pathMatched = true
		if o.Method == method && o.literal > best {
			op, best = o, o.literal
		}
	}
	return op, pathMatched
}

// Exchange is one request and its answer.
type Exchange struct {
	Method     string
	URL        *url.URL
	ReqHeader  http.Header
	ReqBody    []byte
	Status     int
	RespHeader http.Header
	RespBody   []byte
}

// Check returns what of x the document does not describe (nil: all is).
func (c *Checker) Check(x Exchange) error {
	path := x.URL.EscapedPath()
	op, pathMatched := c.Find(x.Method, path)
	if op == nil {
		if !strings.HasPrefix(path, "/v1/") && !pathMatched {
			return nil // the web UI's files: not part of the API
		}
		// An undocumented route or method: the answer must be the
		// error document of a 404 or 405.
		if x.Status != 404 && x.Status != 405 {
			return fmt.Errorf("%s %s is not in the document, and was answered %d (want 404 or 405)", x.Method, path, x.Status)
		}
		return c.validateJSON("/components/schemas/Error", x.RespBody, fmt.Sprintf("%s %s: %d answer", x.Method, path, x.Status))
	}
	where := fmt.Sprintf("%s (%s %s)", op, x.Method, x.URL.RequestURI())
	if x.Status < 300 {
		// What the server accepted, the document must accept too.
		if err := c.checkRequest(op, x, where); err != nil {
			return err
		}
	}
	return c.checkResponse(op, x, where)
}

func (c *Checker) checkRequest(op *Operation, x Exchange, where string) error {
	for k, vs := range x.URL.Query() {
		p, ok := op.params[k]
		if !ok {
			return fmt.Errorf("%s: query parameter %q was accepted but is not in the document", where, k)
		}
		if s, _ := p["schema"].(map[string]any); s != nil && s["type"] == "integer" {
			for _, v := range vs {
				if _, err := strconv.ParseInt(v, 10, 64); err != nil {
					return fmt.Errorf("%s: query parameter %q = %q was accepted but the document says integer", where, k, v)
				}
			}
		}
	}
	rb, _ := op.obj["requestBody"].(map[string]any)
	if len(x.ReqBody) == 0 {
		if rb != nil && rb["required"] == true {
			return fmt.Errorf("%s: accepted without the body the document requires", where)
		}
		return nil
	}
	if rb == nil {
		if carriesNothing(x.ReqBody) {
			return nil
		}
		return fmt.Errorf("%s: accepted with a body, but the document gives the operation none", where)
	}
	content, _ := rb["content"].(map[string]any)
	mt, _, _ := mime.ParseMediaType(x.ReqHeader.Get("Content-Type"))
	if mt == "" && content["application/json"] != nil {
		mt = "application/json" // the server reads JSON bodies whatever their label
	}
	media, ok := mediaOf(content, mt)
	if !ok {
		return fmt.Errorf("%s: request Content-Type %q is not one of the document's %v", where, mt, keys(content))
	}
	if mt == "application/json" && media["schema"] != nil {
		return c.validateJSON(op.ptr+"/requestBody/content/application~1json/schema", x.ReqBody, where+": request body", foldKeys)
	}
	return nil
}

// foldKeys lower-cases the keys of every object of a request body: the
// server matches field names without regard to case, as encoding/json
// does ("ETA" is "eta"), and the document spells them in lower case
// (docs/api.md). Free-form values (kwargs, context) are objects of any
// keys, so folding theirs changes nothing the schemas check.
func foldKeys(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[strings.ToLower(k)] = foldKeys(e)
		}
		return out
	case []any:
		for i := range x {
			x[i] = foldKeys(x[i])
		}
	}
	return v
}

func (c *Checker) checkResponse(op *Operation, x Exchange, where string) error {
	responses, _ := op.obj["responses"].(map[string]any)
	code := strconv.Itoa(x.Status)
	rv, ok := responses[code]
	ptr := op.ptr + "/responses/" + code
	if !ok {
		if rv, ok = responses["default"]; !ok {
			return fmt.Errorf("%s: status %d is not in the document (%v); body %.300s", where, x.Status, keys(responses), x.RespBody)
		}
		ptr = op.ptr + "/responses/default"
	}
	resp := c.resolve(rv)
	if r, isRef := rv.(map[string]any)["$ref"].(string); isRef {
		ptr = strings.TrimPrefix(r, "#")
	}
	for name, h := range mapOf(resp["headers"]) {
		// A header is promised unless the document says it is not
		// (required: false): stricter than OpenAPI's default, so that a
		// documented header cannot go missing unnoticed.
		if req, said := mapOf(h)["required"].(bool); said && !req {
			continue
		}
		if x.RespHeader.Get(name) == "" {
			return fmt.Errorf("%s: status %d without the header %s the document promises", where, x.Status, name)
		}
	}
	content := mapOf(resp["content"])
	if len(content) == 0 {
		if len(x.RespBody) != 0 {
			return fmt.Errorf("%s: status %d has a body (%.100s) but the document gives it none", where, x.Status, x.RespBody)
		}
		return nil
	}
	mt, _, _ := mime.ParseMediaType(x.RespHeader.Get("Content-Type"))
	media, ok := mediaOf(content, mt)
	if !ok {
		return fmt.Errorf("%s: status %d Content-Type %q is not one of the document's %v", where, x.Status, mt, keys(content))
	}
	if mt == "application/json" && media["schema"] != nil {
		return c.validateJSON(ptr+"/content/application~1json/schema", x.RespBody, fmt.Sprintf("%s: status %d answer", where, x.Status))
	}
	return nil
}

func (c *Checker) validateJSON(ptr string, body []byte, where string, transform ...func(any) any) error {
	s, err := c.schema(ptr)
	if err != nil {
		return err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: not JSON: %v: %.300s", where, err, body)
	}
	for _, f := range transform {
		v = f(v)
	}
	if err := s.Validate(v); err != nil {
		return fmt.Errorf("%s does not match the document (%s): %v\nbody: %.2000s", where, ptr, err, body)
	}
	return nil
}

func (c *Checker) schema(ptr string) (*jsonschema.Schema, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.schemas[ptr]; ok {
		return s, nil
	}
	s, err := c.compiler.Compile(docURL + "#" + (&url.URL{Fragment: ptr}).EscapedFragment())
	if err != nil {
		return nil, fmt.Errorf("contract: schema %s: %w", ptr, err)
	}
	c.schemas[ptr] = s
	return s, nil
}

// resolve follows a local $ref of the document.
func (c *Checker) resolve(v any) map[string]any {
	m := mapOf(v)
	r, ok := m["$ref"].(string)
	if !ok {
		return m
	}
	var cur any = c.doc
	for _, part := range strings.Split(strings.TrimPrefix(r, "#/"), "/") {
		part = strings.NewReplacer("~1", "/", "~0", "~").Replace(part)
		cur = mapOf(cur)[part]
	}
	return mapOf(cur)
}

// mediaOf is the media type object for mt: its own, else its range
// (text/*), else */*.
func mediaOf(content map[string]any, mt string) (map[string]any, bool) {
	major, _, _ := strings.Cut(mt, "/")
	for _, k := range []string{mt, major + "/*", "*/*"} {
		if m, ok := content[k].(map[string]any); ok {
			return m, true
		}
	}
	return nil, false
}

func mapOf(v any) map[string]any { m, _ := v.(map[string]any); return m }

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// escape makes a path template a JSON pointer token.
func escape(s string) string { return strings.NewReplacer("~", "~0", "/", "~1").Replace(s) }

var param = regexp.MustCompile(`\{[^}]+\}`)

// templateRegexp matches the escaped paths of a template: a {param} is
// one path segment, never empty.
func templateRegexp(tmpl string) (*regexp.Regexp, int) {
	var b strings.Builder
	literal := 0
	last := 0
	b.WriteString("^")
	for _, loc := range param.FindAllStringIndex(tmpl, -1) {
		b.WriteString(regexp.QuoteMeta(tmpl[last:loc[0]]))
		literal += loc[0] - last
		b.WriteString(`[^/]+`)
		last = loc[1]
	}
	b.WriteString(regexp.QuoteMeta(tmpl[last:]))
	literal += len(tmpl) - last
	b.WriteString("$")
	return regexp.MustCompile(b.String()), literal
}

// Reporter is the part of testing.TB the middleware uses.
type Reporter interface {
	Errorf(format string, args ...any)
}

// Middleware checks every exchange h serves and reports each mismatch
// to t. It buffers request bodies (the server limits their size anyway).
func (c *Checker) Middleware(t Reporter, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var reqBody []byte
		if r.Body != nil {
			reqBody, _ = io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(reqBody))
		}
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		if r.Context().Err() != nil {
			return // the client went away: no answer reached anyone
		}
		x := Exchange{Method: r.Method, URL: r.URL, ReqHeader: r.Header, ReqBody: reqBody,
			Status: rec.status, RespHeader: w.Header(), RespBody: rec.body.Bytes()}
		if err := c.Check(x); err != nil {
			t.Errorf("contract: %v", err)
		}
	})
}

// recorder passes an answer through and keeps a copy.
type recorder struct {
	http.ResponseWriter
	status int
	wrote  bool
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}

// Flush keeps streaming answers streaming.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// carriesNothing: no body, or one that holds nothing ({} or null), which
// an operation the document gives no body accepts as none.
func carriesNothing(b []byte) bool {
	var m map[string]json.RawMessage
	return len(bytes.TrimSpace(b)) == 0 || (json.Unmarshal(b, &m) == nil && len(m) == 0)
}
