package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"path/filepath"
	"sort"
	"strings"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/enqueue"
	"github.com/wasmq/wasmq/store"
)

// httpError is an error with its HTTP status and API error code.
type httpError struct {
	status int
	code   string
	msg    string
	field  string
}

// retryLater is an httpError whose answer says when to send the request
// again (Retry-After, in seconds).
type retryLater struct {
	*httpError
	after int
}

func (e *retryLater) Unwrap() error { return e.httpError }

func (e *httpError) Error() string { return e.msg }

// StatusClientClosedRequest is the status a request whose client went
// away is recorded with (its span, the request log), as nginx does: no
// client receives it.
const StatusClientClosedRequest = 499

// classify maps an error to the contract's status classes.
func classify(err error) *httpError {
	var he *httpError
	if errors.As(err, &he) {
		return he
	}
	field := ""
	var fe *abi.FieldError
	if errors.As(err, &fe) {
		field = fe.Field
	}
	var qe *enqueue.QuotaError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &qe):
		return &httpError{429, "quota_exceeded", qe.Msg, ""}
	case errors.Is(err, abi.ErrQuota): // without Retry-After: removing something makes room, waiting does not
		return &httpError{429, "quota_exceeded", err.Error(), ""}
	case errors.As(err, &mbe):
		return &httpError{413, "too_large", fmt.Sprintf("the body is over the %d bytes limit", mbe.Limit), ""}
	case errors.Is(err, enqueue.ErrMalformed):
		return &httpError{400, "invalid_argument", err.Error(), field}
	case errors.Is(err, abi.ErrNotFound):
		return &httpError{404, "not_found", err.Error(), field}
	case errors.Is(err, abi.ErrIllegalTransition):
		return &httpError{409, "failed_precondition", err.Error(), field}
	case errors.Is(err, abi.ErrConflict):
		return &httpError{409, "conflict", err.Error(), field}
	case errors.Is(err, abi.ErrInvalid):
		return &httpError{422, "invalid_argument", err.Error(), field}
	}
	// The cause stays in the server's log: it may name the database, its
	// user and host, or a query.
	return &httpError{500, "internal", "internal error; the server log has the details", ""}
}

// writeErr answers err to c in the contract's error shape. A 5xx is
// logged with a reference the answer repeats, so an operator finds the
// cause. Anyone but the admin is never shown a plugin folder (a module's
// load error names its files).
func (s *server) writeErr(w http.ResponseWriter, r *http.Request, c caller, err error) {
	if errors.Is(r.Context().Err(), context.Canceled) {
		// The client closed its connection before its answer (a page left,
		// a proxy's timeout): whatever the request came to, nobody reads
		// it, and it is no fault of the server's — not a 5xx logged as an
		// error and marked on the span, as it was. (The store's timeout
		// ends the context otherwise: DeadlineExceeded, a 503.)
		ev := s.Log.Debug()
		if !errors.Is(err, context.Canceled) {
			ev = s.Log.Info() // what the cancel cut short said something else: keep it
		}
		ev.Err(err).Str("method", r.Method).Str("path", r.URL.Path).Str("tenant", c.tenant).Msg("client went away before its answer")
		w.WriteHeader(StatusClientClosedRequest)
		return
	}
	he := classify(err)
	var doubt *store.InDoubtError
	if errors.As(err, &doubt) {
		// Not "nothing stored": the jobs may be. Sending the request
		// again could make them twice; the client looks them up first.
		he = &httpError{503, "in_doubt", "the store's connection broke while the jobs were being committed, and the store could not tell in time whether they were: look them up (GET /v1/jobs/{uuid}, uuids below) before sending the request again", ""}
	} else if he.status == 500 && s.Store != nil && s.Store.Unavailable(err) {
		// Not a fault of the request nor of wasmq: the database is away,
		// full or read-only. The client may send the same request again;
		// nothing of it was stored.
		he = &httpError{503, "unavailable", "the store cannot serve now; retry later", ""}
	}
	if !c.admin && he.status < 500 && strings.ContainsRune(he.msg, filepath.Separator) {
		h := *he
		h.msg = s.pathHider()(h.msg)
		he = &h
	}
	if he.status >= 500 {
		ref := errorRef()
		ev, what := s.Log.Error(), "internal error"
		if he.status == 503 { // the database's day, not a bug: the log says which
			ev, what = s.Log.Warn(), he.code
			if doubt == nil {
				w.Header().Set("Retry-After", "1")
			}
		}
		ev.Err(err).Str("ref", ref).Str("method", r.Method).Str("path", r.URL.Path).Msg(what)
		he.msg += " (ref " + ref + ")"
	}
	if he.status == 429 {
		var qe *enqueue.QuotaError
		if errors.As(err, &qe) {
			w.Header().Set("Retry-After", fmt.Sprint(int(math.Ceil(max(qe.RetryAfter.Seconds(), 1)))))
		}
	}
	var rl *retryLater
	if errors.As(err, &rl) {
		w.Header().Set("Retry-After", fmt.Sprint(rl.after))
	}
	body := map[string]any{"code": he.code, "message": he.msg}
	if he.field != "" {
		body["field"] = he.field
	}
	if doubt != nil {
		body["uuids"] = doubt.UUIDs
	}
	writeJSON(w, he.status, map[string]any{"error": body})
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

func errorRef() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// pathHider returns a function that removes the folders of the loaded
// plugins (and the plugins folder above a tenant's) from a message,
// leaving file names: a tenant is never shown where the server keeps
// its files.
func (s *server) pathHider() func(string) string {
	seen := map[string]bool{}
	var dirs []string
	add := func(d string) {
		if d = filepath.Clean(d) + string(filepath.Separator); !seen[d] && d != string(filepath.Separator) {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	for _, m := range s.Plugins.Modules("") {
		if m.Path == "" {
			continue
		}
		add(filepath.Dir(m.Path))
		if m.Tenant != "" {
			add(filepath.Dir(filepath.Dir(m.Path)))
		}
	}
	// The longest first: a tenant's folder before the plugins folder.
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	pairs := make([]string, 0, 2*len(dirs))
	for _, d := range dirs {
		pairs = append(pairs, d, "")
	}
	return strings.NewReplacer(pairs...).Replace
}
