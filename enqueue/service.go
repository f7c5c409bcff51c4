package enqueue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
	"golang.org/x/time/rate"
)

// Functions resolves a function visible to a tenant; *host.Host does.
type Functions interface {
	Function(tenant, fn string) (abi.FunctionConfig, error)
}

// Limits are a tenant's quotas; zero means unlimited.
type Limits struct {
	MaxPending   int     // jobs waiting, pending or enqueued
	MaxChannels  int     // channels holding the tenant's jobs
	Rate         float64 // jobs created per second, sustained
	Burst        int     // jobs created at once above the rate
	MaxSchedules int     // schedules the tenant creates over the API (package schedule)
}

// Quota is the part of a tenant's limits the store counts for its jobs.
func (l Limits) Quota() store.Quota {
	return store.Quota{MaxPending: l.MaxPending, MaxChannels: l.MaxChannels}
}

// QuotaError says a tenant's quota refused the request (HTTP 429).
type QuotaError struct {
	Msg        string
	RetryAfter time.Duration
}

func (e *QuotaError) Error() string { return e.Msg }

// Service turns requests into stored jobs.
type Service struct {
	Store store.Store
	Funcs Functions
	// Limits per tenant name.
	Limits map[string]Limits
	// Sync, when set, runs jobs at once and stores nothing instead: the
	// synchronous mode of `wasmq run` and WASMQ_NO_DELAY=1. Whoever
	// wires the node sets it (runner.Sync's Run is one).
	Sync func(ctx context.Context, jobs []store.NewJob) ([]abi.Job, error)
	// Coalesce gathers concurrent requests into one store transaction
	// (group commit); set it before the first request.
	Coalesce Coalesce

	mu      sync.Mutex
	buckets map[string]*rate.Limiter

	coOnce sync.Once
	co     *coalescer
}

// Close answers the requests waiting for their group (each is written
// or refused first); later requests are stored one by one.
func (s *Service) Close() {
	s.coOnce.Do(func() {}) // no coalescer is started after Close
	if s.co != nil {
		s.co.close()
	}
}

// insert stores one request's jobs, through a group unless coalescing
// is off.
func (s *Service) insert(ctx context.Context, q store.Quota, jobs []store.NewJob) ([]store.Inserted, error) {
	s.coOnce.Do(func() {
		if !s.Coalesce.Off {
			s.co = newCoalescer(s.Store, s.Coalesce, nil)
		}
	})
	if s.co != nil {
		out, err := s.co.insert(ctx, q, jobs)
		if !errors.Is(err, errNotHandedOver) {
			return out, err
		}
	}
	return s.Store.InsertUnder(ctx, q, jobs)
}

// MaxBatch caps the jobs of one request (after batch splitting).
const MaxBatch = abi.MaxBatch

// MaxDescription caps a job's description, in characters (not bytes).
const MaxDescription = abi.MaxDescription

// Create stores one job (or the jobs a batch_size splits it into).
func (s *Service) Create(ctx context.Context, tenant string, r Request) ([]store.Inserted, error) {
	if r.Ref != "" {
		return nil, &abi.FieldError{Field: "ref", Msg: "ref is for entries of a batch (POST /v1/jobs:batch)", Err: ErrMalformed}
	}
	return s.create(ctx, tenant, []Request{r}, false)
}

// CreateBatch stores every job of a batch, or none.
func (s *Service) CreateBatch(ctx context.Context, tenant string, b BatchRequest) ([]store.Inserted, error) {
	if len(b.Jobs) == 0 {
		return nil, &abi.FieldError{Field: "jobs", Msg: "a batch needs at least one job", Err: abi.ErrInvalid}
	}
	return s.create(ctx, tenant, b.Jobs, true)
}

// Child enqueues a job on behalf of a running plugin: same tenant, the
// request is the JSON body of POST /v1/jobs; the child joins the
// parent's graph (as a graph member, not a dependency: the parent is
// still running).
func (s *Service) Child(ctx context.Context, parent *abi.Job, body []byte) (string, error) {
	var r Request
	if err := Decode(body, &r); err != nil {
		return "", err
	}
	jobs, err := s.Build(ctx, parent.Tenant, []Request{r}, false)
	if err != nil {
		return "", err
	}
	for i := range jobs {
		if jobs[i].GraphUUID == "" {
			jobs[i].GraphUUID = parent.GraphUUID
		}
	}
	ins, err := s.store(ctx, parent.Tenant, jobs)
	if err != nil {
		return "", err
	}
	return ins[0].Job.UUID, nil
}

func (s *Service) create(ctx context.Context, tenant string, reqs []Request, batch bool) ([]store.Inserted, error) {
	jobs, err := s.Build(ctx, tenant, reqs, batch)
	if err != nil {
		return nil, err
	}
	return s.store(ctx, tenant, jobs)
}

func (s *Service) store(ctx context.Context, tenant string, jobs []store.NewJob) ([]store.Inserted, error) {
	if s.Sync != nil {
		done, err := s.Sync(ctx, jobs)
		if err != nil {
			return nil, err
		}
		out := make([]store.Inserted, len(done))
		for i, j := range done {
			out[i] = store.Inserted{Job: j}
		}
		return out, nil
	}
	if err := s.admit(tenant, len(jobs)); err != nil {
		return nil, err
	}
	out, err := s.insert(ctx, s.Limits[tenant].Quota(), jobs)
	return out, Refusal(err)
}

// Refusal is err as the client is answered when the store refused jobs
// past their tenant's quota: a QuotaError whose Retry-After is the few
// seconds in which jobs usually run. Any other err is returned as it is.
func Refusal(err error) error {
	var qe *store.QuotaError
	if errors.As(err, &qe) {
		return &QuotaError{Msg: qe.Msg, RetryAfter: 5 * time.Second}
	}
	return err
}

// Build validates requests and resolves them into jobs, without storing.
func (s *Service) Build(ctx context.Context, tenant string, reqs []Request, batch bool) ([]store.NewJob, error) {
	now := time.Now().UTC()
	refs := map[string]string{} // ref → uuid of the last job it produced
	out := make([]store.NewJob, 0, len(reqs))
	graph := ""
	hasDeps := false
	for _, r := range reqs {
		if len(r.DependsOn) > 0 {
			hasDeps = true
		}
	}
	if batch && hasDeps {
		graph = newUUID()
	}
	for i, r := range reqs {
		// A batch's errors name the entry; the prefix is written only
		// then, not for every job of every batch.
		inEntry := func(err error) error {
			var fe *abi.FieldError
			if batch && errors.As(err, &fe) {
				fe.Field = fmt.Sprintf("jobs[%d].", i) + fe.Field
			}
			return err
		}
		before := len(out)
		var err error
		if out, err = s.build(ctx, tenant, r, now, refs, out); err != nil {
			return nil, inEntry(err)
		}
		jobs := out[before:]
		if r.Ref != "" {
			if _, dup := refs[r.Ref]; dup {
				return nil, inEntry(&abi.FieldError{Field: "ref", Msg: fmt.Sprintf("ref %q is used twice", r.Ref), Err: abi.ErrInvalid})
			}
			if len(jobs) > 1 {
				return nil, inEntry(&abi.FieldError{Field: "ref", Msg: "a job split by batch_size cannot be referenced", Err: abi.ErrInvalid})
			}
			refs[r.Ref] = jobs[0].UUID
		}
		for k := range jobs {
			if graph != "" {
				jobs[k].GraphUUID = graph
			}
		}
		if len(out) > MaxBatch {
			return nil, &abi.FieldError{Field: "jobs", Msg: fmt.Sprintf("at most %d jobs per request", MaxBatch), Err: abi.ErrInvalid}
		}
	}
	return out, nil
}

// build appends to out the job (or, split by batch_size, the jobs) of one
// request. Its errors name the request's fields; Build prefixes them with
// the entry of a batch.
func (s *Service) build(ctx context.Context, tenant string, r Request, now time.Time, refs map[string]string, out []store.NewJob) ([]store.NewJob, error) {
	bad := func(field, msg string) error {
		return &abi.FieldError{Field: field, Msg: msg, Err: abi.ErrInvalid}
	}
	if r.Func == "" {
		return nil, &abi.FieldError{Field: "func", Msg: "is required (module.function)", Err: ErrMalformed}
	}
	if _, _, err := abi.SplitFunc(r.Func); err != nil {
		return nil, bad("func", err.Error())
	}
	fc, err := s.Funcs.Function(tenant, r.Func)
	if err != nil {
		if errors.Is(err, abi.ErrNotFound) {
			return nil, &abi.FieldError{Field: "func", Msg: err.Error(), Err: abi.ErrNotFound}
		}
		return nil, fmt.Errorf("resolve %s: %w", r.Func, err)
	}
	args, err := jsonOf(r.Args, '[', "[]")
	if err != nil {
		return nil, &abi.FieldError{Field: "args", Msg: "must be a JSON list", Err: ErrMalformed}
	}
	kwargs, err := jsonOf(r.Kwargs, '{', "{}")
	if err != nil {
		return nil, &abi.FieldError{Field: "kwargs", Msg: "must be a JSON object", Err: ErrMalformed}
	}
	ctxt, err := jsonOf(r.Context, '{', "{}")
	if err != nil {
		return nil, &abi.FieldError{Field: "context", Msg: "must be a JSON object", Err: ErrMalformed}
	}
	j := store.NewJob{UUID: newUUID(), Tenant: tenant, Func: r.Func, Args: args, Kwargs: kwargs, Context: ctxt,
		Priority: abi.DefaultPriority, MaxRetries: abi.DefaultMaxRetries, IdentityKey: r.IdentityKey}
	if r.Priority != nil {
		j.Priority = *r.Priority
	}
	switch {
	case r.MaxRetries != nil:
		j.MaxRetries = *r.MaxRetries
	case fc.MaxRetries != nil:
		j.MaxRetries = *fc.MaxRetries
	}
	j.Description = r.Func
	if fc.Description != "" {
		j.Description = fc.Description
	}
	if r.Description != nil {
		j.Description = *r.Description
	}
	channel := fc.Channel
	if r.Channel != nil {
		channel = *r.Channel
	}
	if j.Channel, err = abi.ParseChannel(channel); err != nil {
		var fe *abi.FieldError
		if errors.As(err, &fe) {
			return nil, bad(fe.Field, fe.Msg)
		}
		return nil, err
	}
	if j.ETA, err = ParseWhen("eta", r.ETA, now); err != nil {
		return nil, err
	}
	if j.ExpectedAt, err = ParseWhen("expected_at", r.ExpectedAt, now); err != nil {
		return nil, err
	}
	for k, d := range r.DependsOn {
		if id, ok := refs[d]; ok {
			d = id
		} else if _, err := uuid.Parse(d); err != nil {
			return nil, bad(fmt.Sprintf("depends_on[%d]", k), fmt.Sprintf("%q is neither a job uuid nor the ref of an earlier job of this batch", d))
		}
		j.DependsOn = append(j.DependsOn, d)
	}
	// The store's rules, in the one place they live (JSON, NUL bytes,
	// lengths, numbers at their bounds), named by the request's fields;
	// the store checks them again for its other callers. Before the
	// fields derived from the payload (user, model, func_string), which
	// read it as the valid JSON this proves it is.
	if err := j.Validate(); err != nil {
		return nil, err
	}
	var c struct {
		User    any   `json:"user"`
		Model   any   `json:"model"`
		Records []any `json:"records"`
	}
	// Most requests have no context: "{}" has nothing to read.
	if string(ctxt) != "{}" {
		if err := json.Unmarshal(ctxt, &c); err != nil {
			return nil, &abi.FieldError{Field: "context.records", Msg: "must be a list of record ids", Err: ErrMalformed}
		}
	}
	j.UserID, j.ModelName = scalar(c.User), scalar(c.Model)
	j.FuncString = FuncString(r.Func, args, kwargs)
	if r.BatchSize == nil {
		return append(out, j), nil
	}
	if *r.BatchSize < 1 {
		return nil, bad("batch_size", "must be an integer >= 1")
	}
	jobs, err := split(j, c.Records, *r.BatchSize)
	if err != nil {
		return nil, err
	}
	return append(out, jobs...), nil
}

// split makes one job per batch_size records of context.records
// (Tryton's queue_batch); each gets its own uuid and description suffix.
func split(j store.NewJob, records []any, size int) ([]store.NewJob, error) {
	if len(records) <= size {
		return []store.NewJob{j}, nil
	}
	var ctx map[string]any
	if err := json.Unmarshal(j.Context, &ctx); err != nil {
		return nil, err
	}
	var out []store.NewJob
	parts := (len(records) + size - 1) / size
	// The key is an identity: cut, two requests' parts could collide.
	if last := fmt.Sprintf("#%d", parts); j.IdentityKey != "" && len(j.IdentityKey)+len(last) > abi.MaxIdentityKey {
		return nil, &abi.FieldError{Field: "identity_key", Err: abi.ErrInvalid,
			Msg: fmt.Sprintf("split by batch_size into %d jobs, each key gains a suffix up to %q: at most %d bytes (this one has %d)",
				parts, last, abi.MaxIdentityKey-len(last), len(j.IdentityKey))}
	}
	for i := 0; i < len(records); i += size {
		part := j
		part.UUID = newUUID()
		ctx["records"] = records[i:min(i+size, len(records))]
		part.Context, _ = json.Marshal(ctx)
		part.Description = partDescription(j.Description, fmt.Sprintf(" (%d/%d)", i/size+1, parts))
		if j.IdentityKey != "" {
			part.IdentityKey = fmt.Sprintf("%s#%d", j.IdentityKey, i/size+1)
		}
		out = append(out, part)
	}
	return out, nil
}

// partDescription is the description with the part's suffix; a
// description at its limit gives up its tail, marked "…", to make room.
func partDescription(d, suffix string) string {
	if n := utf8.RuneCountInString(d) + utf8.RuneCountInString(suffix); n > abi.MaxDescription {
		r := []rune(d)
		d = string(r[:max(0, len(r)-(n-abi.MaxDescription)-1)]) + "…"
	}
	return d + suffix
}

func scalar(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

// jsonOf checks raw starts as a JSON value of the kind open (list or
// object), and returns it without the spaces around it (a slice of raw);
// that it is valid JSON is the store's rule, which build applies next.
func jsonOf(raw json.RawMessage, open byte, def string) (json.RawMessage, error) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || string(t) == "null" {
		return json.RawMessage(def), nil
	}
	if t[0] != open {
		return nil, errors.New("wrong JSON type")
	}
	return t, nil
}

// FuncString is the human form of a call: mail.send(42, "x", lang="fr").
// Each argument is shown as its JSON text; keyword arguments sorted by
// name; the whole cut to 500 bytes.
func FuncString(fn string, args, kwargs json.RawMessage) string {
	var b strings.Builder
	b.Grow(len(fn) + len(args) + len(kwargs) + 8)
	b.WriteString(fn)
	b.WriteByte('(')
	n := 0
	sep := func() {
		if n > 0 {
			b.WriteString(", ")
		}
		n++
	}
	// Most calls have a few positional arguments: they are read off the
	// valid JSON in place, where decoding them allocated a value each (a
	// tenth of a batch's build, docs/benchmarks.md).
	if json.Valid(args) {
		eachElement(args, func(v []byte) {
			sep()
			b.Write(v)
		})
	}
	for _, kv := range keywordArgs(kwargs) {
		sep()
		b.WriteString(kv)
	}
	b.WriteByte(')')
	return cutFuncString(b.String())
}

// keywordArgs are a call's keyword arguments as name=value, by name.
func keywordArgs(kwargs json.RawMessage) []string {
	var kw map[string]json.RawMessage
	if string(kwargs) == "{}" || json.Unmarshal(kwargs, &kw) != nil {
		return nil
	}
	keys := make([]string, 0, len(kw))
	for k := range kw {
		keys = append(keys, k)
	}
	sortStrings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + string(kw[k])
	}
	return parts
}

// cutFuncString cuts s to 500 bytes, on a character boundary: half a
// character is not UTF-8, and the store refuses what is not.
func cutFuncString(s string) string {
	if len(s) <= 500 {
		return s
	}
	cut := 497
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// eachElement calls fn with the text of each element of a valid JSON
// array, without the white space around it; of any other valid JSON
// value, with nothing.
func eachElement(array []byte, fn func([]byte)) {
	i := skipSpace(array, 0)
	if i == len(array) || array[i] != '[' {
		return
	}
	i = skipSpace(array, i+1)
	if array[i] == ']' {
		return
	}
	for {
		start, depth := i, 0
		for ; depth > 0 || (array[i] != ',' && array[i] != ']'); i++ {
			switch array[i] {
			case '[', '{':
				depth++
			case ']', '}':
				depth--
			case '"':
				for i++; array[i] != '"'; i++ {
					if array[i] == '\\' {
						i++
					}
				}
			}
		}
		end := i
		for isSpace(array[end-1]) {
			end--
		}
		fn(array[start:end])
		if array[i] == ']' {
			return
		}
		i = skipSpace(array, i+1)
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// newUUID is a job's (or a graph's) uuid: a UUIDv7, whose leading 48
// bits are the time in milliseconds. New jobs then land at the end of
// the jobs' primary key, pages already in memory, rather than on a
// random page of it: with a million jobs stored, random (v4) uuids made
// each insert write a whole index page to the WAL (4.4 KB an insert
// against 0.95 KB) and cost the idle enqueue→start 10–20 %
// (docs/benchmarks.md). The time is no secret: it is the job's
// date_created, shown to whoever may see the job.
func newUUID() string {
	return uuid.Must(uuid.NewV7()).String()
}
