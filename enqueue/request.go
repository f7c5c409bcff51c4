// Package enqueue is the one path from a request (an HTTP body, the CLI, a
// plugin's child job) to stored jobs: strict decoding, validation that
// names the field, defaults from the function's config, batches with
// dependency refs, batch splitting, quotas and the synchronous mode.
package enqueue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wasmq/wasmq/abi"
)

// ErrMalformed classes errors of a body that is not the expected JSON
// shape (HTTP 400), as opposed to abi.ErrInvalid for values out of range
// (HTTP 422).
var ErrMalformed = errors.New("malformed request")

// Request is the body of POST /v1/jobs and one entry of a batch.
type Request struct {
	// Ref names the job inside a batch so others can depend on it.
	Ref      string          `json:"ref,omitempty"`
	Func     string          `json:"func"`
	Args     json.RawMessage `json:"args,omitempty"`
	Kwargs   json.RawMessage `json:"kwargs,omitempty"`
	Context  json.RawMessage `json:"context,omitempty"`
	Priority *int            `json:"priority,omitempty"`
	// ETA and ExpectedAt are an RFC 3339 instant or whole seconds from
	// now; kept raw so a bad value is reported with its field name.
	ETA         json.RawMessage `json:"eta,omitempty"`
	ExpectedAt  json.RawMessage `json:"expected_at,omitempty"`
	MaxRetries  *int            `json:"max_retries,omitempty"`
	Description *string         `json:"description,omitempty"`
	Channel     *string         `json:"channel,omitempty"`
	IdentityKey string          `json:"identity_key,omitempty"`
	// DependsOn holds job uuids, or refs of earlier entries of a batch.
	DependsOn []string `json:"depends_on,omitempty"`
	// BatchSize splits context.records into jobs of at most this many.
	BatchSize *int `json:"batch_size,omitempty"`
}

// BatchRequest is the body of POST /v1/jobs:batch.
type BatchRequest struct {
	Jobs []Request `json:"jobs"`
}

// ParseWhen reads an RFC 3339 instant or whole seconds from now.
func ParseWhen(field string, raw json.RawMessage, now time.Time) (*time.Time, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err == nil {
			if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
				t = t.UTC()
				return &t, nil
			}
		}
		return nil, &abi.FieldError{Field: field, Msg: fmt.Sprintf("%s is not an RFC 3339 instant (e.g. 2026-11-22T10:00:00Z)", raw), Err: abi.ErrInvalid}
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return nil, &abi.FieldError{Field: field, Msg: "must be an RFC 3339 instant or a whole number of seconds from now", Err: ErrMalformed}
	}
	// A time.Duration holds ±292 years: past that the sum would wrap
	// around (9223372037 s once became 1734).
	if n > maxSecondsFromNow || n < -maxSecondsFromNow {
		return nil, &abi.FieldError{Field: field, Msg: fmt.Sprintf("%d seconds from now is out of range (at most %d)", n, int64(maxSecondsFromNow)), Err: abi.ErrInvalid}
	}
	t := now.Add(time.Duration(n) * time.Second)
	return &t, nil
}

// maxSecondsFromNow bounds an eta or expected_at given in seconds.
const maxSecondsFromNow = abi.MaxSecondsFromNow

// Decode reads one JSON value into v strictly: unknown fields, wrong
// types and trailing data are errors naming the field; inside a
// *BatchRequest the field of an entry is named with its index,
// jobs[3].priority.
func Decode(body []byte, v any) error {
	// encoding/json would turn invalid bytes inside strings into U+FFFD
	// silently (and keep them raw in args and kwargs): refuse them.
	if !utf8.Valid(body) {
		at := 0
		for at < len(body) {
			r, size := utf8.DecodeRune(body[at:])
			if r == utf8.RuneError && size <= 1 {
				break
			}
			at += size
		}
		return &abi.FieldError{Field: "(body)", Msg: fmt.Sprintf("is not valid UTF-8 at byte %d (JSON text must be UTF-8)", at), Err: ErrMalformed}
	}
	if b, ok := v.(*BatchRequest); ok {
		return decodeBatch(body, b)
	}
	return decodeStrict(body, v)
}

// decodeBatch decodes a batch in one pass, and only when that fails
// entry by entry: decoding the whole at once, encoding/json names a field
// of any entry "colour" or "jobs.priority", never which entry, so the
// error comes from the second pass, which names it jobs[3].priority.
// The one pass is the common case: it halves the decoding of a batch of
// 1,000 (a decoder per entry, and every entry read twice), about a tenth
// of the node's CPU per job in the batch bench (docs/benchmarks.md).
func decodeBatch(body []byte, b *BatchRequest) error {
	// The decoder appends to the slice it is given: sized for the
	// entries (each names its function) it grows no more, where growing
	// it from nothing allocated twice the batch's requests.
	whole := BatchRequest{Jobs: make([]Request, 0, min(bytes.Count(body, []byte(`"func"`)), MaxBatch))}
	if decodeStrict(body, &whole) == nil {
		if len(whole.Jobs) == 0 {
			// No entry: read again from nothing, so that a missing list
			// stays nil, as entry by entry reads it.
			whole = BatchRequest{}
			decodeStrict(body, &whole)
		}
		*b = whole
		return nil
	}
	return decodeEntries(body, b)
}

// decodeEntries decodes the entries of a batch one by one, to name the
// entry an error is in.
func decodeEntries(body []byte, b *BatchRequest) error {
	var raw struct {
		Jobs []json.RawMessage `json:"jobs"`
	}
	if err := decodeStrict(body, &raw); err != nil {
		return err
	}
	var jobs []Request
	if raw.Jobs != nil {
		jobs = make([]Request, len(raw.Jobs))
	}
	for i, entry := range raw.Jobs {
		if err := decodeStrict(entry, &jobs[i]); err != nil {
			var fe *abi.FieldError
			if errors.As(err, &fe) {
				if fe.Field == "" || fe.Field == "(body)" {
					fe.Field = fmt.Sprintf("jobs[%d]", i)
				} else {
					fe.Field = fmt.Sprintf("jobs[%d].%s", i, fe.Field)
				}
			}
			return err
		}
	}
	b.Jobs = jobs
	return nil
}

func decodeStrict(body []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := d.Token(); err != io.EOF {
		return &abi.FieldError{Msg: "unexpected data after the JSON document", Err: ErrMalformed}
	}
	return nil
}

func decodeError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "(body)"
		}
		return &abi.FieldError{Field: field, Msg: fmt.Sprintf("must be %s, not %s", jsonKind(te.Type.Kind().String()), te.Value), Err: ErrMalformed}
	case errors.As(err, &se):
		return &abi.FieldError{Msg: fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, err), Err: ErrMalformed}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &abi.FieldError{Msg: "the body is empty or cut short; expected a JSON object", Err: ErrMalformed}
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		f = strings.Trim(f, `"`)
		return &abi.FieldError{Field: f, Msg: "unknown field", Err: ErrMalformed}
	}
	// Errors from a field's own UnmarshalJSON (When) come wrapped by the
	// json package without the field name; keep the message.
	return &abi.FieldError{Msg: strings.TrimPrefix(msg, "json: "), Err: ErrMalformed}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int", "int64", "int32", "uint":
		return "an integer"
	case "float64":
		return "a number"
	case "string":
		return "a string"
	case "slice":
		return "a list"
	case "map", "struct", "ptr":
		return "an object"
	case "bool":
		return "true or false"
	}
	return "of another type"
}
