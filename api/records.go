package api

import (
	"net/http"
	"strconv"

	"github.com/wasmq/wasmq/abi"
)

// attemptNumber reads {n} of .../attempts/{n}/...: a whole number >= 1.
func attemptNumber(r *http.Request) (int, error) {
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 1 {
		return 0, &abi.FieldError{Field: "attempt", Msg: "must be a whole number >= 1", Err: abi.ErrInvalid}
	}
	return n, nil
}

// record serves an attempt's record for replay (docs/replay.md): the
// job's tenant only, as a job is.
func (s *server) record(w http.ResponseWriter, r *http.Request, c caller) error {
	n, err := attemptNumber(r)
	if err != nil {
		return err
	}
	rec, err := s.Store.Record(r.Context(), c.scope(r), r.PathValue("uuid"), n)
	if err != nil {
		return err
	}
	if rec.Shared && !c.admin && (len(rec.Config) > 0 || len(rec.Function.Config) > 0) {
		// As GET /v1/plugins does: a shared module's config is the
		// operator's (it may hold credentials).
		rec.Config, rec.Function.Config, rec.ConfigWithheld = nil, nil, true
	}
	return writeJSON(w, 200, rec)
}

// recordModule serves the wasm bytes a record refers to, kept after the
// plugin file is replaced or removed.
func (s *server) recordModule(w http.ResponseWriter, r *http.Request, c caller) error {
	n, err := attemptNumber(r)
	if err != nil {
		return err
	}
	wasm, err := s.Store.RecordModule(r.Context(), c.scope(r), r.PathValue("uuid"), n)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/wasm")
	w.Header().Set("Content-Length", strconv.Itoa(len(wasm)))
	w.WriteHeader(200)
	_, err = w.Write(wasm)
	return err
}
