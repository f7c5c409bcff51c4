package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// usage answers GET /v1/usage?from=&to=: what attempts used, summed per
// tenant and function over the whole minutes in [from, to), from the
// store's aggregate. A tenant sees its own; the admin every tenant's, or
// those of ?tenant=.
func (s *server) usage(w http.ResponseWriter, r *http.Request, c caller) error {
	q := r.URL.Query()
	var uq store.UsageQuery
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"from", &uq.From}, {"to", &uq.To}} {
		v := q.Get(p.name)
		if v == "" {
			return badParam(p.name, "is required (RFC 3339, e.g. 2026-11-30T00:00:00Z)")
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return badParam(p.name, "must be an RFC 3339 time, e.g. 2026-11-30T00:00:00Z")
		}
		if err := store.CheckTime(p.name, t); err != nil {
			return badParam(p.name, "%s", fieldMsg(err))
		}
		*p.t = t.UTC()
	}
	if err := uq.Check(); err != nil {
		return badParam(fieldOf(err), "%s", fieldMsg(err))
	}
	uq.Tenant = c.scope(r)
	rows, err := s.Store.Usage(r.Context(), uq)
	if err != nil {
		return err
	}
	return writeJSON(w, 200, map[string]any{"from": uq.From, "to": uq.To, "usage": rows})
}

// fieldOf is the field a validation error names ("" if none).
func fieldOf(err error) string {
	var fe *abi.FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	return ""
}
