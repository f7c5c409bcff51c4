package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

func badParam(name, format string, a ...any) error {
	return &httpError{400, "invalid_argument", name + ": " + fmt.Sprintf(format, a...), name}
}

// parseFilter reads the job list's filter from a query string, checking
// each value before any SQL: a bad one is a 400 naming it. Which
// parameters an operation takes is the route's check (the OpenAPI
// document: the bulk actions take the list's but limit and cursor).
func parseFilter(q url.Values, scope string) (store.Filter, error) {
	for k, vs := range q {
		// Read once, a repeated one would lose its other values
		// unseen: a bulk action would reach fewer jobs than asked.
		if len(vs) > 1 {
			return store.Filter{}, badParam(k, "given %d times: give it once (state takes a comma-separated list)", len(vs))
		}
	}
	f := store.Filter{Tenant: scope, Func: q.Get("func"), GraphUUID: q.Get("graph_uuid"),
		IdentityKey: q.Get("identity_key"), Query: q.Get("q"), Cursor: q.Get("cursor"),
		UserID: q.Get("user_id"), ModelName: q.Get("model_name")}
	if v := q.Get("channel"); v != "" {
		// A channel, or a channel and its subtree with a trailing ".*".
		name, subtree := strings.CutSuffix(v, ".*")
		ch, err := abi.ParseChannel(name)
		if err != nil {
			return f, err
		}
		if subtree {
			ch += ".*"
		}
		f.Channel = ch
	}
	if v := q.Get("state"); v != "" {
		for _, st := range strings.Split(v, ",") {
			if !abi.State(st).Valid() {
				return f, &httpError{422, "invalid_argument", fmt.Sprintf("state %q is not one of %v", st, abi.States), "state"}
			}
			f.States = append(f.States, abi.State(st))
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return f, &httpError{422, "invalid_argument", "limit must be an integer from 1 to 1000", "limit"}
		}
		f.Limit = n
	}
	for _, d := range []struct {
		name string
		to   **time.Time
	}{{"created_after", &f.CreatedAfter}, {"created_before", &f.CreatedBefore},
		{"ended_after", &f.EndedAfter}, {"ended_before", &f.EndedBefore}} {
		v := q.Get(d.name)
		if v == "" {
			continue
		}
		t, err := parseDate(v)
		if err != nil {
			return f, badParam(d.name, "%q is not a date (RFC 3339, e.g. 2026-11-30T14:00:00Z, or 2026-11-30)", v)
		}
		*d.to = &t
	}
	if v := q.Get("args"); v != "" {
		if !json.Valid([]byte(v)) {
			return f, badParam("args", "is not valid JSON (a JSON scalar one of the args must equal, e.g. 42 or \"SO042\")")
		}
		if _, err := store.ParseScalar("args", json.RawMessage(v)); err != nil {
			return f, badParam("args", "%s", fieldMsg(err))
		}
		f.ArgsHas = json.RawMessage(v)
	}
	if v := q.Get("kwargs"); v != "" {
		var m map[string]json.RawMessage
		if json.Valid([]byte(v)) {
			// A key twice or a lone surrogate in a key would be lost
			// in the map: checked on the text.
			if err := store.CheckJSON("kwargs", []byte(v)); err != nil {
				return f, badParam("kwargs", "%s", fieldMsg(err))
			}
		}
		if err := json.Unmarshal([]byte(v), &m); err != nil || m == nil {
			return f, badParam("kwargs", "must be a JSON object of the values kwargs must hold, e.g. {\"partner_id\":7}")
		}
		for k, raw := range m {
			if _, err := store.ParseScalar("kwargs", raw); err != nil {
				return f, badParam("kwargs", "key %q: %s", k, fieldMsg(err))
			}
		}
		f.KwargsHas = m
	}
	if err := f.Validate(); err != nil {
		return f, err
	}
	return f, nil
}

func fieldMsg(err error) string {
	var fe *abi.FieldError
	if errors.As(err, &fe) {
		return fe.Msg
	}
	return err.Error()
}

// parseDate reads an RFC 3339 date, or a day (UTC midnight).
func parseDate(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UTC(), nil
	}
	return time.Parse("2006-01-02", v)
}

// bulkPage is how many jobs a bulk action reads at a time; each job is
// then moved in its own transaction, through the same core path as the
// per-job action.
const bulkPage = 500

// bulk acts on every job matching the list's filter: the caller's own
// jobs (the admin's: those of ?tenant=, or every tenant's), page by page.
// Each page is moved in one transaction by the store's per-job rules
// (Store.Act); a job the action does not apply to in its state is
// skipped, not an error: the answer counts matched, changed and skipped
// jobs.
func (s *server) bulk(cause abi.Cause) handler {
	return func(w http.ResponseWriter, r *http.Request, c caller) error {
		f, err := parseFilter(r.URL.Query(), c.scope(r))
		if err != nil {
			return err
		}
		ctx := r.Context()
		f.Limit = bulkPage
		matched, changed, skipped := 0, 0, 0
		for {
			page, err := s.Store.List(ctx, f)
			if err != nil {
				return err
			}
			ids := make([]string, len(page.Jobs))
			for i, j := range page.Jobs {
				ids[i] = j.UUID
			}
			// The caller's scope, not each job's tenant: the store checks
			// ownership again under lock.
			moved, err := s.Store.Act(ctx, f.Tenant, cause, ids)
			if err != nil {
				return err
			}
			matched += len(ids)
			changed += len(moved)
			skipped += len(ids) - len(moved)
			if page.NextCursor == "" {
				break
			}
			f.Cursor = page.NextCursor
		}
		return writeJSON(w, 200, map[string]int{"matched": matched, "changed": changed, "skipped": skipped})
	}
}

// channelAction serves POST /v1/channels/{name}:pause and :resume.
func (s *server) channelAction(w http.ResponseWriter, r *http.Request, c caller) error {
	name, verb, ok := cutLast(r.PathValue("action"), ':')
	if !ok || (verb != "pause" && verb != "resume") {
		return &httpError{404, "not_found", "no such endpoint: " + r.Method + " " + r.URL.Path + " (POST /v1/channels/{name}:pause or :resume)", ""}
	}
	if err := s.channelAdmin(c); err != nil {
		return err
	}
	paused := verb == "pause"
	st, err := s.Runner.SetChannel(r.Context(), name, func(o *abi.ChannelOverride) { o.Paused = &paused })
	if err != nil {
		return err
	}
	return writeJSON(w, 200, st)
}

// patchChannel serves PATCH /v1/channels/{name}: capacity, throttle and
// paused override the configuration; null drops that override.
func (s *server) patchChannel(w http.ResponseWriter, r *http.Request, c caller) error {
	if err := s.channelAdmin(c); err != nil {
		return err
	}
	var body map[string]json.RawMessage
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	if len(body) == 0 { // {} or null: the document asks for one field at least
		return badParam("(body)", "names nothing to change: give capacity, throttle or paused")
	}
	var capacity *int
	var throttle *float64
	var paused *bool
	set := map[string]bool{}
	for k, raw := range body {
		null := string(raw) == "null"
		var err error
		switch k {
		case "capacity":
			if !null {
				err = json.Unmarshal(raw, &capacity)
			}
		case "throttle":
			if !null {
				err = json.Unmarshal(raw, &throttle)
			}
		case "paused":
			if !null {
				err = json.Unmarshal(raw, &paused)
			}
		default:
			return badParam(k, "unknown field (capacity, throttle, paused)")
		}
		if err != nil {
			return badParam(k, "%s", map[string]string{"capacity": "must be an integer", "throttle": "must be a number of seconds", "paused": "must be true or false"}[k])
		}
		set[k] = true
	}
	st, err := s.Runner.SetChannel(r.Context(), r.PathValue("name"), func(o *abi.ChannelOverride) {
		if set["capacity"] {
			o.Capacity = capacity
		}
		if set["throttle"] {
			o.Throttle = throttle
		}
		if set["paused"] {
			o.Paused = paused
		}
	})
	if err != nil {
		return err
	}
	return writeJSON(w, 200, st)
}

// channelAdmin: channels are the operator's, shared by every tenant, so
// only the admin changes them once tenants exist (a server without
// tenants makes every caller its admin).
func (s *server) channelAdmin(c caller) error {
	if !c.admin {
		return &httpError{403, "permission_denied", "only the admin token changes channels: they are shared by every tenant", ""}
	}
	if s.Runner == nil {
		return &httpError{503, "unavailable", "this server runs no runner", ""}
	}
	return nil
}

func cutLast(s string, sep byte) (string, string, bool) {
	i := strings.LastIndexByte(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}
