// Package api serves the HTTP API v1 (docs/api.md: the contract and
// what wasmq adds to it), the web UI, health and metrics.
package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/enqueue"
	"github.com/wasmq/wasmq/schedule"
	"github.com/wasmq/wasmq/store"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Plugins is the part of the host the API uses; *host.Host satisfies it.
type Plugins interface {
	Modules(tenant string) []abi.ModuleInfo
	Install(tenant, name string, wasm []byte) (abi.ModuleInfo, error)
	// InstallWithConfig installs wasm (nil: keeps the module in place)
	// with the text of its sidecar, both validated before either is kept.
	InstallWithConfig(tenant, name string, wasm, sidecar []byte) (abi.ModuleInfo, error)
	Remove(tenant, name string) error
	Ready() bool
}

// Runner is the part of the runner the API uses; *runner.Runner does.
type Runner interface {
	// Channels lists the configured channels and those holding the
	// tenant's jobs, with the tenant's counts only ("" = every channel,
	// every tenant).
	Channels(ctx context.Context, tenant string) ([]abi.ChannelStatus, error)
	// SetChannel edits a channel's stored override (every node, across
	// restarts) and returns its status.
	SetChannel(ctx context.Context, name string, edit func(*abi.ChannelOverride)) (abi.ChannelStatus, error)
	Stats() abi.RunnerStats
}

// Tenant is a caller identity: its name and the sha256 of its token.
type Tenant struct {
	Name        string
	TokenSHA256 [32]byte
}

// Options configure the server.
type Options struct {
	Store   store.Store
	Enqueue *enqueue.Service
	Plugins Plugins
	Runner  Runner // nil: channel status and runner metrics are absent
	// Schedules: nil, the /v1/schedules routes answer 404.
	Schedules *schedule.Service
	// Tenants and Admin (sha256 of the admin token). With no tenant and
	// no admin, every request is the "default" tenant without auth.
	Tenants   []Tenant
	Admin     *[32]byte
	BodyLimit int64 // bytes; defaults to DefaultBodyLimit
	// MaxUploads is how many plugin uploads the node takes at once
	// (uploads.go); defaults to DefaultMaxUploads.
	MaxUploads int
	// MaxReads is how many reads (GETs and bulk actions) the node runs
	// against the store at once, TenantMaxReads how many each tenant
	// does (reads.go); defaults DefaultMaxReads, and for a tenant not
	// listed (the one of a server without tenants) the node's.
	MaxReads       int
	TenantMaxReads map[string]int
	// StoreTimeout bounds a read's wait for the store ([store] timeout):
	// past it the answer is 503, not a connection dropped at the write
	// timeout. Writes are bounded by the store itself. 0: unbounded.
	StoreTimeout time.Duration
	UI           http.Handler // mounted at /
	Log          zerolog.Logger
	// Metrics are the node's series /metrics serves next to the job
	// counts, filtered per tenant (nil: only the job counts).
	Metrics prometheus.Gatherer
	// Registerer takes the API's own series (nil: none are kept).
	Registerer prometheus.Registerer
	// Tracer makes a span per request (nil: none, at no cost);
	// Propagator reads an incoming traceparent.
	Tracer     trace.Tracer
	Propagator propagation.TextMapPropagator
}

// DefaultBodyLimit caps a request body when the [server] body_limit is
// not set: 8 MiB.
const DefaultBodyLimit = 8 << 20

// DefaultTenant is the tenant of an unauthenticated single-tenant server.
const DefaultTenant = "default"

type server struct {
	Options
	mux     *http.ServeMux
	uploads *uploadGate
	reads   *readGate
}

// New returns the handler of the whole HTTP surface.
func New(o Options) http.Handler {
	if o.BodyLimit == 0 {
		o.BodyLimit = DefaultBodyLimit
	}
	s := &server{Options: o, mux: http.NewServeMux(), uploads: newUploadGate(o.MaxUploads),
		reads: newReadGate(o.MaxReads, o.TenantMaxReads)}
	if o.Registerer != nil {
		s.reads.refused = readsRefused(o.Registerer)
	}
	s.route("POST /v1/jobs", s.createJob)
	s.route("POST /v1/jobs:batch", s.createBatch)
	s.route("GET /v1/jobs", s.listJobs)
	s.route("GET /v1/jobs/{uuid}", s.getJob)
	s.route("PATCH /v1/jobs/{uuid}", s.patchJob)
	s.route("GET /v1/jobs/{uuid}/attempts", s.attempts)
	s.route("GET /v1/jobs/{uuid}/attempts/{n}/record", s.record)
	s.route("GET /v1/jobs/{uuid}/attempts/{n}/record/module", s.recordModule)
	s.route("POST /v1/jobs/{uuid}/requeue", bodiless("", s.action(abi.CauseRequeue)))
	s.route("POST /v1/jobs/{uuid}/cancel", bodiless("", s.action(abi.CauseCancel)))
	s.route("POST /v1/jobs/{uuid}/done", bodiless("", s.action(abi.CauseSetDone)))
	s.route("GET /v1/stats", s.stats)
	s.route("GET /v1/usage", s.usage)
	s.route("GET /v1/channels", s.channels)
	s.route("POST /v1/channels/{action}", bodiless("", s.channelAction))
	s.route("PATCH /v1/channels/{name}", s.patchChannel)
	// A bulk action reads its jobs page by page, as a list does.
	s.route("POST /v1/jobs:requeue", bodiless(bulkHint, s.read(s.bulk(abi.CauseRequeue))))
	s.route("POST /v1/jobs:cancel", bodiless(bulkHint, s.read(s.bulk(abi.CauseCancel))))
	s.route("POST /v1/jobs:done", bodiless(bulkHint, s.read(s.bulk(abi.CauseSetDone))))
	s.route("GET /v1/plugins", s.listPlugins)
	s.route("PUT /v1/plugins/{name}", s.putPlugin)
	s.route("PUT /v1/plugins/{name}/config", s.putPluginConfig)
	s.route("DELETE /v1/plugins/{name}", bodiless("", s.deletePlugin))
	s.scheduleRoutes()
	s.plain("GET /v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openapi)
	})
	s.plain("GET /healthz", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) })
	s.plain("GET /readyz", s.ready)
	s.plain("GET /metrics", s.metrics)
	s.mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		s.writeErr(w, r, caller{}, &httpError{404, "not_found", "no such endpoint: " + r.Method + " " + r.URL.Path, ""})
	})
	if o.UI != nil {
		s.mux.Handle("/", o.UI)
	}
	return s
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The escaped path, as the mux matches it: "..%2Fx" is one segment,
	// a name its route refuses naming it.
	if p := r.URL.EscapedPath(); strings.HasPrefix(p, "/v1/") && cleanPath(p) != p {
		// http.ServeMux would redirect to the cleaned path, which is
		// another route: a client that sent /v1/schedules/.. did not
		// mean /v1/, nor PUT /v1/plugins/. a PUT of /v1/plugins/.
		s.writeErr(w, r, caller{}, &httpError{404, "not_found", "no such endpoint: " + r.Method + " " + p + " (a path with empty, . or .. segments)", ""})
		return
	}
	if s.Tracer == nil {
		s.mux.ServeHTTP(w, r)
		return
	}
	// The span is named by the route's pattern, "GET /v1/jobs/{uuid}",
	// not the path: one name per route, and no job uuid in span names.
	_, pattern := s.mux.Handler(r)
	if pattern == "" {
		pattern = r.Method
	}
	ctx := r.Context()
	if s.Propagator != nil {
		ctx = s.Propagator.Extract(ctx, propagation.HeaderCarrier(r.Header))
	}
	ctx, span := s.Tracer.Start(ctx, pattern, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path),
		attribute.String("http.route", pattern)))
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	s.mux.ServeHTTP(sw, r.WithContext(ctx))
	span.SetAttributes(attribute.Int("http.response.status_code", sw.status))
	if sw.status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(sw.status))
	}
	span.End()
}

// statusWriter remembers the status of an answer, for its span.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// ReadFrom keeps the connection's sendfile for the files the UI serves.
func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	w.wrote = true
	return io.Copy(w.ResponseWriter, r)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// caller is who is asking: a tenant, or the admin (tenant "").
type caller struct {
	tenant string
	admin  bool
}

type handler func(w http.ResponseWriter, r *http.Request, c caller) error

func (s *server) route(pattern string, h handler) {
	allowed := allowedQuery(pattern)
	if strings.HasPrefix(pattern, "GET ") {
		h = bodiless("", s.read(h)) // a reading takes its filters from the query string
	}
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		c, err := s.auth(r)
		if s.Tracer != nil {
			trace.SpanFromContext(r.Context()).SetAttributes(attribute.String("wasmq.tenant", c.tenant), attribute.Bool("wasmq.admin", c.admin))
		}
		if err == nil && r.URL.RawQuery != "" {
			err = checkQuery(r.URL.RawQuery, allowed, c.admin)
		}
		if err == nil {
			r.Body = http.MaxBytesReader(w, r.Body, s.BodyLimit)
			if r.Method == http.MethodGet && s.StoreTimeout > 0 {
				ctx, cancel := context.WithTimeout(r.Context(), s.StoreTimeout)
				defer cancel()
				r = r.WithContext(ctx)
			}
			err = h(w, r, c)
		}
		if err != nil {
			s.writeErr(w, r, c, err)
		}
		s.Log.Debug().Str("method", r.Method).Str("path", r.URL.Path).Str("tenant", c.tenant).Dur("took", time.Since(start)).Err(err).Msg("request")
	})
}

// plain registers a route that authenticates by itself, or not at all
// (probes, the document, /metrics), refusing parameters it does not take
// and a body, as route does.
func (s *server) plain(pattern string, h http.HandlerFunc) {
	allowed := allowedQuery(pattern)
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		var err error
		if r.URL.RawQuery != "" {
			err = checkQuery(r.URL.RawQuery, allowed, false)
		}
		if err == nil {
			r.Body = http.MaxBytesReader(w, r.Body, s.BodyLimit)
			err = refuseBody(r, "")
		}
		if err != nil {
			s.writeErr(w, r, caller{}, err)
			return
		}
		h(w, r)
	})
}

// cleanPath is p as http.ServeMux cleans it: no empty, . or .. segment,
// a trailing slash kept.
func cleanPath(p string) string {
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

// checkQuery refuses a query string that does not parse whole, and a
// parameter the operation does not take (it would
// be dropped unseen: POST /v1/jobs?priority=5 made a job of priority 10)
// and, for the admin, a ?tenant= the store could not match, which every
// route that reads it passes on: checked once, here.
func checkQuery(raw string, allowed map[string]bool, admin bool) error {
	q, err := url.ParseQuery(raw)
	if err != nil {
		// r.URL.Query() drops what it cannot read ("state=failed;x"
		// loses the pair): a bulk action would then act on every job.
		return &httpError{400, "invalid_argument", fmt.Sprintf("the query string is malformed: %v", err), "(query)"}
	}
	for k := range q {
		if !allowed[k] {
			return &httpError{400, "invalid_argument", fmt.Sprintf("unknown query parameter %q (this operation takes: %s)", k, names(allowed)), k}
		}
	}
	if ts := q["tenant"]; admin && len(ts) > 1 {
		return &httpError{422, "invalid_argument", fmt.Sprintf("tenant: given %d times: name one", len(ts)), "tenant"}
	}
	if err := store.CheckText("tenant", q.Get("tenant")); admin && err != nil {
		return &httpError{422, "invalid_argument", err.Error(), "tenant"}
	}
	return nil
}

func (s *server) auth(r *http.Request) (caller, error) {
	if len(s.Tenants) == 0 && s.Admin == nil {
		return caller{tenant: DefaultTenant, admin: true}, nil
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return caller{}, &httpError{401, "unauthenticated", "missing bearer token (Authorization: Bearer <token>)", ""}
	}
	sum := sha256.Sum256([]byte(tok))
	if s.Admin != nil && subtle.ConstantTimeCompare(sum[:], s.Admin[:]) == 1 {
		return caller{admin: true}, nil
	}
	for _, t := range s.Tenants {
		if subtle.ConstantTimeCompare(sum[:], t.TokenSHA256[:]) == 1 {
			return caller{tenant: t.Name}, nil
		}
	}
	return caller{}, &httpError{401, "unauthenticated", "unknown token", ""}
}

// scope is the tenant filter for reads: "" lets the admin see all.
func (c caller) scope(r *http.Request) string {
	if c.admin {
		return r.URL.Query().Get("tenant")
	}
	return c.tenant
}

// owner is the tenant new jobs and plugins belong to (or plugins are
// removed from): the caller's own, or for the admin a configured tenant
// named with ?tenant=.
func (s *server) owner(c caller, r *http.Request) (string, error) {
	if !c.admin || c.tenant != "" {
		return c.tenant, nil
	}
	t := r.URL.Query().Get("tenant")
	if t == "" {
		return "", &httpError{422, "invalid_argument", "the admin token must say which tenant with ?tenant=", "tenant"}
	}
	for _, known := range s.Tenants {
		if known.Name == t {
			return t, nil
		}
	}
	return "", &httpError{422, "invalid_argument", fmt.Sprintf("tenant %q is not configured (the [[tenants]] of wasmq.toml)", t), "tenant"}
}

// decodeBody reads the request body under the size limit and decodes it
// strictly into v.
func decodeBody(r *http.Request, v any) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	return enqueue.Decode(body, v)
}

// bulkHint tells a bulk action's caller where its filters go.
const bulkHint = ": its filters go in the query string (?state=failed&channel=root.mail)"

// bodiless refuses a body on an operation that reads none (the OpenAPI
// document gives it none): a client that sends its filter there, a JSON
// filter to a bulk cancel, would see it ignored and the action reach
// every job. A body that carries nothing ({}, null), as some HTTP
// libraries send, passes.
func bodiless(hint string, h handler) handler {
	return func(w http.ResponseWriter, r *http.Request, c caller) error {
		if err := refuseBody(r, hint); err != nil {
			return err
		}
		return h(w, r, c)
	}
}

// refuseBody reads r's body and refuses one that carries anything ({}
// and null pass: some HTTP libraries send them with every request).
func refuseBody(r *http.Request, hint string) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	var m map[string]json.RawMessage
	if len(bytes.TrimSpace(b)) > 0 && (json.Unmarshal(b, &m) != nil || len(m) > 0) {
		return &httpError{400, "invalid_argument", r.Method + " " + r.URL.Path + " takes no body" + hint, "(body)"}
	}
	return nil
}

func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, &httpError{413, "too_large", fmt.Sprintf("the body is over the %d bytes limit", mbe.Limit), ""}
	}
	return b, err
}

// jobOut is a job as the API shows it: the job document, plus
// deduplicated. Answers encode the document (abi.JobDoc) directly: going
// through abi.Job's MarshalJSON would have encoding/json scan each job's
// JSON again, 6 times the cost of encoding it (BenchmarkJobDocument).
type jobOut struct {
	*abi.JobDoc
	Deduplicated bool `json:"deduplicated"`
}

// docs are the documents of jobs, for a list answer.
func docs(jobs []abi.Job) []*abi.JobDoc {
	out := make([]*abi.JobDoc, len(jobs))
	for i := range jobs {
		out[i] = jobs[i].Doc()
	}
	return out
}

func (s *server) createJob(w http.ResponseWriter, r *http.Request, c caller) error {
	owner, err := s.owner(c, r)
	if err != nil {
		return err
	}
	var req enqueue.Request
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	ins, err := s.Enqueue.Create(r.Context(), owner, req)
	if err != nil {
		return err
	}
	if len(ins) > 1 { // split by batch_size
		return writeJobs(w, 201, ins)
	}
	status := 201
	if ins[0].Deduplicated {
		status = 200
	}
	return writeJob(w, status, ins[0])
}

// writeJob answers with one job as writeJSON does with its jobOut, the
// same bytes, through abi.JobDoc.AppendJSON: encoding/json's reflection
// was the larger part of encoding the answer to every POST /v1/jobs.
func writeJob(w http.ResponseWriter, status int, ins store.Inserted) error {
	b, err := appendOut(make([]byte, 0, 1024), &ins)
	if err != nil {
		return err
	}
	return writeBytes(w, status, append(b, '\n'))
}

// writeJobs answers {"jobs": [jobOut...]} as writeJSON would, the same
// bytes, without reflection: a batch of 1,000 jobs spent 16 % of the
// node's CPU in encoding/json.
func writeJobs(w http.ResponseWriter, status int, ins []store.Inserted) error {
	buf := answers.Get().(*[]byte)
	defer func() {
		if cap(*buf) <= maxPooledAnswer {
			answers.Put(buf)
		}
	}()
	b := (*buf)[:0]
	if need := 1024*len(ins) + 16; cap(b) < need {
		b = make([]byte, 0, need)
	}
	b = append(b, `{"jobs":[`...)
	for i := range ins {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendOut(b, &ins[i]); err != nil {
			return err
		}
	}
	*buf = append(b, "]}\n"...)
	return writeBytes(w, status, *buf)
}

// answers are the buffers batch answers are written in: a 1,000-job
// answer is about a megabyte, and a new one for each request was a tenth
// of a batch's allocations. Write copies out of it before it returns.
var answers = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// maxPooledAnswer: a larger buffer (a batch at MaxBatch with large
// arguments) is left to the collector rather than kept.
const maxPooledAnswer = 8 << 20

// appendOut appends a jobOut's JSON: the job's document with its
// deduplicated flag inside the braces.
func appendOut(b []byte, ins *store.Inserted) ([]byte, error) {
	b, err := ins.Job.AppendJSON(b)
	if err != nil {
		return nil, err
	}
	b = append(b[:len(b)-1], `,"deduplicated":`...)
	return append(strconv.AppendBool(b, ins.Deduplicated), '}'), nil
}

func writeBytes(w http.ResponseWriter, status int, b []byte) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, err := w.Write(b)
	return err
}

func (s *server) createBatch(w http.ResponseWriter, r *http.Request, c caller) error {
	owner, err := s.owner(c, r)
	if err != nil {
		return err
	}
	var req enqueue.BatchRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	ins, err := s.Enqueue.CreateBatch(r.Context(), owner, req)
	if err != nil {
		return err
	}
	return writeJobs(w, 201, ins)
}

func (s *server) getJob(w http.ResponseWriter, r *http.Request, c caller) error {
	j, err := s.Store.Get(r.Context(), c.scope(r), r.PathValue("uuid"))
	if err != nil {
		return err
	}
	return writeJSON(w, 200, j.Doc())
}

func (s *server) attempts(w http.ResponseWriter, r *http.Request, c caller) error {
	a, err := s.Store.Attempts(r.Context(), c.scope(r), r.PathValue("uuid"))
	if err != nil {
		return err
	}
	return writeJSON(w, 200, map[string]any{"attempts": a})
}

func (s *server) listJobs(w http.ResponseWriter, r *http.Request, c caller) error {
	f, err := parseFilter(r.URL.Query(), c.scope(r))
	if err != nil {
		return err
	}
	p, err := s.Store.List(r.Context(), f)
	if err != nil {
		return err
	}
	return writeJSON(w, 200, map[string]any{"jobs": docs(p.Jobs), "next_cursor": p.NextCursor})
}

func (s *server) action(cause abi.Cause) handler {
	return func(w http.ResponseWriter, r *http.Request, c caller) error {
		ctx, id, scope := r.Context(), r.PathValue("uuid"), c.scope(r)
		var j abi.Job
		var err error
		switch cause {
		case abi.CauseRequeue:
			j, err = s.Store.Requeue(ctx, scope, id)
		case abi.CauseCancel:
			j, err = s.Store.Cancel(ctx, scope, id)
		case abi.CauseSetDone:
			j, err = s.Store.SetDone(ctx, scope, id, nil)
		}
		if err != nil {
			return err
		}
		return writeJSON(w, 200, j.Doc())
	}
}

func (s *server) patchJob(w http.ResponseWriter, r *http.Request, c caller) error {
	var req struct {
		Priority    *int            `json:"priority"`
		ETA         json.RawMessage `json:"eta"`
		Channel     *string         `json:"channel"`
		MaxRetries  *int            `json:"max_retries"`
		Description *string         `json:"description"`
	}
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	p := store.Patch{Priority: req.Priority, MaxRetries: req.MaxRetries, Description: req.Description}
	if req.Channel != nil {
		ch, err := abi.ParseChannel(*req.Channel)
		if err != nil {
			return err
		}
		p.Channel = &ch
	}
	if len(req.ETA) > 0 {
		eta, err := enqueue.ParseWhen("eta", req.ETA, time.Now().UTC())
		if err != nil {
			return err
		}
		p.ETA = &eta
	}
	j, err := s.Store.Update(r.Context(), c.scope(r), r.PathValue("uuid"), p)
	if err != nil {
		return err
	}
	return writeJSON(w, 200, j.Doc())
}

func (s *server) stats(w http.ResponseWriter, r *http.Request, c caller) error {
	counts, err := s.Store.Counts(r.Context(), c.scope(r))
	if err != nil {
		return err
	}
	total := map[abi.State]int{}
	for _, st := range abi.States {
		total[st] = 0
	}
	for _, cc := range counts {
		for st, n := range cc.Counts {
			total[st] += n
		}
	}
	return writeJSON(w, 200, map[string]any{"states": total})
}

func (s *server) channels(w http.ResponseWriter, r *http.Request, c caller) error {
	if s.Runner == nil {
		return writeJSON(w, 200, map[string]any{"channels": []abi.ChannelStatus{}})
	}
	chs, err := s.Runner.Channels(r.Context(), c.scope(r))
	if err != nil {
		return err
	}
	return writeJSON(w, 200, map[string]any{"channels": chs})
}

// pluginOut is a plugin as the API shows it: its path only to the admin.
type pluginOut struct {
	abi.ModuleInfo
	Path string `json:"path,omitempty"` // shadows ModuleInfo.Path
}

// pluginsFor shows mods to c: the admin sees where each is kept; anyone
// else sees no path, in no field.
func (s *server) pluginsFor(c caller, mods []abi.ModuleInfo) []pluginOut {
	out := make([]pluginOut, len(mods))
	var hide func(string) string
	for i, m := range mods {
		if c.admin {
			out[i] = pluginOut{m, m.Path}
			continue
		}
		if m.LoadError != "" {
			if hide == nil {
				hide = s.pathHider()
			}
			m.LoadError = hide(m.LoadError)
		}
		m.Path = ""
		if m.Tenant == "" {
			m.Functions = withoutConfig(m.Functions)
		}
		out[i] = pluginOut{ModuleInfo: m}
	}
	return out
}

// withoutConfig drops the config values of a shared module's functions:
// the operator's settings (often keys to other services), not the
// tenants'. A tenant sees its own modules' config.
func withoutConfig(fns map[string]abi.FunctionConfig) map[string]abi.FunctionConfig {
	out := make(map[string]abi.FunctionConfig, len(fns))
	for k, fc := range fns {
		fc.Config = nil
		out[k] = fc
	}
	return out
}

func (s *server) listPlugins(w http.ResponseWriter, r *http.Request, c caller) error {
	return writeJSON(w, 200, map[string]any{"plugins": s.pluginsFor(c, s.Plugins.Modules(c.scope(r)))})
}

func (s *server) putPlugin(w http.ResponseWriter, r *http.Request, c caller) error {
	owner, err := s.owner(c, r)
	if err != nil {
		return err
	}
	if err := checkPluginName(r); err != nil {
		return err
	}
	leave, err := s.uploads.enter(owner)
	if err != nil {
		return err
	}
	defer leave()
	var info abi.ModuleInfo
	field := "body"
	if mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
		// The module and its sidecar in one request: part "wasm" and
		// part "config" (the text of <name>.toml).
		wasm, config, err := pluginParts(r, params["boundary"])
		if err != nil {
			return err
		}
		if config == nil {
			info, err = s.Plugins.Install(owner, r.PathValue("name"), wasm)
		} else {
			field = "config"
			info, err = s.Plugins.InstallWithConfig(owner, r.PathValue("name"), wasm, config)
		}
		if err != nil {
			return pluginErr(err, field)
		}
		return writeJSON(w, 201, s.pluginsFor(c, []abi.ModuleInfo{info})[0])
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	info, err = s.Plugins.Install(owner, r.PathValue("name"), body)
	if err != nil {
		return pluginErr(err, field)
	}
	return writeJSON(w, 201, s.pluginsFor(c, []abi.ModuleInfo{info})[0])
}

// checkPluginName refuses the path's module name before the body is
// read, naming it: the body is not what is wrong.
func checkPluginName(r *http.Request) error {
	if err := abi.CheckPluginName("module", r.PathValue("name")); err != nil {
		return &httpError{422, "invalid_plugin", err.Error(), "name"}
	}
	return nil
}

// pluginErr maps a refused upload to a 422 naming field. A node that
// cannot write the file because its disk is full or read-only answers
// 503 (send it again later: nothing was installed); any other failure to
// write it is a 500, the cause in the log.
func pluginErr(err error, field string) error {
	if errors.Is(err, abi.ErrInvalid) {
		return &httpError{422, "invalid_plugin", err.Error(), field}
	}
	if errors.Is(err, abi.ErrQuota) {
		return &httpError{429, "quota_exceeded", err.Error(), ""}
	}
	if noRoom(err) {
		return &httpError{503, "unavailable", "the node cannot write the plugin now: its disk is full or read-only; nothing was installed, retry later", ""}
	}
	return err
}

// noRoom: a write failed for want of room on the node's disk, or of a
// disk that takes writes.
func noRoom(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EROFS)
}

// pluginParts reads the parts "wasm" (required) and "config" (optional)
// of a multipart upload, under the body limit; any other part is refused.
func pluginParts(r *http.Request, boundary string) (wasm, config []byte, err error) {
	if boundary == "" {
		return nil, nil, &httpError{400, "invalid_argument", "multipart/form-data without a boundary", "body"}
	}
	mr := multipart.NewReader(r.Body, boundary)
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, nil, &httpError{413, "too_large", fmt.Sprintf("the body is over the %d bytes limit", mbe.Limit), ""}
		}
		if err != nil {
			return nil, nil, &httpError{400, "invalid_argument", "malformed multipart body: " + err.Error(), "body"}
		}
		name := p.FormName()
		if name != "wasm" && name != "config" {
			return nil, nil, &httpError{400, "invalid_argument", fmt.Sprintf("unknown part %q: send \"wasm\" and optionally \"config\"", name), name}
		}
		b, err := io.ReadAll(p)
		if errors.As(err, &mbe) {
			return nil, nil, &httpError{413, "too_large", fmt.Sprintf("the body is over the %d bytes limit", mbe.Limit), ""}
		}
		if err != nil {
			return nil, nil, &httpError{400, "invalid_argument", "malformed multipart body: " + err.Error(), name}
		}
		if name == "wasm" {
			wasm = b
		} else {
			config = b
		}
	}
	if wasm == nil {
		return nil, nil, &httpError{400, "invalid_argument", "the part \"wasm\" (the module) is missing", "wasm"}
	}
	return wasm, config, nil
}

// putPluginConfig replaces the sidecar of one of the caller's modules:
// the body is the text of <name>.toml, validated as the file is.
func (s *server) putPluginConfig(w http.ResponseWriter, r *http.Request, c caller) error {
	owner, err := s.owner(c, r)
	if err != nil {
		return err
	}
	if err := checkPluginName(r); err != nil {
		return err
	}
	leave, err := s.uploads.enter(owner)
	if err != nil {
		return err
	}
	defer leave()
	body, err := readBody(r)
	if err != nil {
		return err
	}
	info, err := s.Plugins.InstallWithConfig(owner, r.PathValue("name"), nil, body)
	if err != nil {
		return pluginErr(err, "body")
	}
	return writeJSON(w, 200, s.pluginsFor(c, []abi.ModuleInfo{info})[0])
}

func (s *server) deletePlugin(w http.ResponseWriter, r *http.Request, c caller) error {
	owner, err := s.owner(c, r)
	if err != nil {
		return err
	}
	if err := s.Plugins.Remove(owner, r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(204)
	return nil
}

func (s *server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.Store.Ping(ctx); err != nil {
		// Unauthenticated: the cause (which may name the database, its
		// user and host) goes to the log only.
		s.Log.Warn().Err(err).Msg("readiness: store unreachable")
		w.Header().Set("Retry-After", "1")
		writeJSON(w, 503, map[string]string{"status": "store unreachable"})
		return
	}
	if !s.Plugins.Ready() {
		w.Header().Set("Retry-After", "1")
		writeJSON(w, 503, map[string]string{"status": "plugins not loaded"})
		return
	}
	writeJSON(w, 200, map[string]string{"status": "ready"})
}
