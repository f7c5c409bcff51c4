package store

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wasmq/wasmq/abi"
)

// Bounds of what a job may hold. Every store keeps them (PostgreSQL's
// integer columns are 32-bit), so the core refuses what lies outside
// before any SQL, naming the field, the same on every backend.
const (
	// MaxPriority and MaxRetries bound priority and max_retries.
	MaxPriority   = abi.MaxPriority
	MaxMaxRetries = abi.MaxMaxRetries
)

// MinDate and MaxDate bound every date a caller sets (eta, expected_at):
// a date outside is a mistake (an overflowed number of seconds), not a
// plan.
var (
	MinDate = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxDate = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

func invalid(field, format string, a ...any) error {
	return &abi.FieldError{Field: field, Msg: fmt.Sprintf(format, a...), Err: abi.ErrInvalid}
}

// CheckJSON refuses a JSON document no store keeps as it was sent (not
// JSON, not UTF-8, NUL, a lone surrogate, a key twice in one object),
// naming the field: for an edge that decodes a document before the store
// sees it, and would lose what makes it bad (a filter's object).
func CheckJSON(field string, raw []byte) error { return checkJSON(field, raw, 0) }

// CheckText refuses what no store keeps as text, naming the field: for
// an edge that passes a name to the store outside a job or a filter.
func CheckText(field, s string) error { return abi.CheckText(field, s) }

func checkText(field, s string) error { return abi.CheckText(field, s) }

// checkJSON refuses a document that is not JSON of the wanted kind ('['
// list, '{' object, 0 any), is not UTF-8, or holds a NUL in a string or
// a key.
func checkJSON(field string, raw json.RawMessage, kind byte) error {
	if len(raw) == 0 {
		return nil // the default ([] or {}) is stored
	}
	if len(raw) == 2 && (string(raw) == "[]" || string(raw) == "{}") {
		if kind != 0 && raw[0] != kind {
			return invalid(field, "must be a JSON %s", map[byte]string{'[': "list", '{': "object"}[kind])
		}
		return nil // most kwargs and contexts: no scanner needed
	}
	if !utf8.Valid(raw) {
		return invalid(field, "is not valid UTF-8")
	}
	if !json.Valid(raw) {
		return invalid(field, "is not valid JSON")
	}
	if kind != 0 {
		if t := bytes.TrimLeft(raw, " \t\r\n"); t[0] != kind {
			return invalid(field, "must be a JSON %s", map[byte]string{'[': "list", '{': "object"}[kind])
		}
	}
	if bytes.Contains(raw, []byte(`\u`)) {
		switch badEscape(raw) {
		case escNUL:
			return invalid(field, "must not contain NUL (\\u0000) in a string or key")
		case escSurrogate:
			return invalid(field, "must not hold a lone UTF-16 surrogate (\\ud800 to \\udfff not in a pair) in a string or key: it encodes no character")
		}
	}
	if bytes.Count(raw, []byte{':'}) > 1 { // else no object has two keys
		if k, ok := duplicateKey(raw); ok {
			return invalid(field, "the key %q appears twice in one object: PostgreSQL keeps the last value, a plugin's parser may read the first", k)
		}
	}
	return nil
}

var keySeed = maphash.MakeSeed()

// closingQuote is the index of the quote that ends the string opening at
// raw[open] (valid JSON): the first one not escaped.
func closingQuote(raw []byte, open int) int {
	end := open + 1
	for {
		end += bytes.IndexByte(raw[end:], '"')
		backslashes := 0
		for raw[end-1-backslashes] == '\\' {
			backslashes++
		}
		if backslashes%2 == 0 {
			return end
		}
		end++
	}
}

// duplicateKey finds a key that appears twice in one object of raw (valid
// JSON), comparing keys as the strings they encode ("a" and "\u0061" are
// one key). Keys are compared pairwise while an object has up to 64 (a
// job's kwargs: BenchmarkCheckJSON), by a set of their hashes past that,
// so a large object costs no more than its length.
func duplicateKey(raw []byte) (string, bool) {
	type frame struct {
		object bool
		first  int // the object's first key in keys
		set    map[uint64]struct{}
	}
	const pairwise = 64
	var (
		stackBuf  [8]frame
		keysBuf   [pairwise][]byte
		stack     = stackBuf[:0]
		keys      = keysBuf[:0] // unescaped keys point into raw
		expectKey bool
	)
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; c {
		case '{', '[':
			stack = append(stack, frame{object: c == '{', first: len(keys)})
			expectKey = c == '{'
		case '}', ']':
			top := stack[len(stack)-1]
			keys, stack = keys[:top.first], stack[:len(stack)-1]
			expectKey = false
		case ',':
			expectKey = stack[len(stack)-1].object
		case '"':
			end := closingQuote(raw, i)
			if expectKey {
				top := &stack[len(stack)-1]
				k := raw[i+1 : end]
				if bytes.IndexByte(k, '\\') >= 0 {
					var d string
					json.Unmarshal(raw[i:end+1], &d) // valid JSON: cannot fail
					k = []byte(d)
				}
				if n := len(keys) - top.first; n < pairwise {
					for _, o := range keys[top.first:] {
						if bytes.Equal(o, k) {
							return string(k), true
						}
					}
				} else {
					// A set of the keys' hashes; a hash seen before is
					// a duplicate only if one of the keys is equal.
					if top.set == nil {
						top.set = make(map[uint64]struct{}, 4*pairwise)
						for _, o := range keys[top.first:] {
							top.set[maphash.Bytes(keySeed, o)] = struct{}{}
						}
					}
					h := maphash.Bytes(keySeed, k)
					if _, seen := top.set[h]; seen {
						for _, o := range keys[top.first:] {
							if bytes.Equal(o, k) {
								return string(k), true
							}
						}
					}
					top.set[h] = struct{}{}
				}
				keys = append(keys, k)
				expectKey = false
			}
			i = end
		}
	}
	return "", false
}

const (
	escOK = iota
	escNUL
	escSurrogate
)

// badEscape walks the \u escapes of raw (valid JSON) for what no store
// keeps: NUL, and a surrogate not in a high-low pair, which PostgreSQL's
// jsonb refuses and Go's decoder turns into U+FFFD. Only escapes count:
// in `\\u0000` the backslash is escaped, and "u0000" is text.
func badEscape(raw []byte) int {
	inString := false
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c == '"':
			inString = !inString
		case c == '\\' && inString:
			if raw[i+1] != 'u' {
				i++ // the escaped character, a quote or backslash among them
				continue
			}
			u := hex4(raw[i+2 : i+6])
			i += 5
			switch {
			case u == 0:
				return escNUL
			case u >= 0xdc00 && u <= 0xdfff:
				return escSurrogate // a low half first, or alone
			case u >= 0xd800 && u <= 0xdbff:
				if i+6 >= len(raw) || raw[i+1] != '\\' || raw[i+2] != 'u' {
					return escSurrogate
				}
				if lo := hex4(raw[i+3 : i+7]); lo < 0xdc00 || lo > 0xdfff {
					return escSurrogate
				}
				i += 6
			}
		}
	}
	return escOK
}

// hex4 is the value of four hex digits (valid JSON has them after \u).
func hex4(b []byte) int {
	v := 0
	for _, c := range b {
		v <<= 4
		switch {
		case c >= '0' && c <= '9':
			v |= int(c - '0')
		case c >= 'a' && c <= 'f':
			v |= int(c-'a') + 10
		default:
			v |= int(c-'A') + 10
		}
	}
	return v
}

func checkDescription(d string) error { return abi.CheckDescription(d) }

func checkDate(field string, t *time.Time) error {
	if t != nil && (t.Before(MinDate) || t.After(MaxDate)) {
		return invalid(field, "%s is out of range (%d to %d)", t.UTC().Format(time.RFC3339), MinDate.Year(), MaxDate.Year())
	}
	return nil
}

// CheckTime refuses an instant outside the dates a store keeps, naming
// the field: for an edge that parsed a time the zero value cannot tell
// from one not given (0001-01-01 is Go's zero time).
func CheckTime(field string, t time.Time) error { return checkDate(field, &t) }

func checkRange(field string, v, lo, hi int) error {
	if v < lo || v > hi {
		return invalid(field, "must be an integer from %d to %d", lo, hi)
	}
	return nil
}

// checkChannel refuses a channel name that is not a full, valid one: the
// edges normalise names (abi.ParseChannel); the store keeps them as given.
func checkChannel(c string) error {
	if c == "" {
		return invalid("channel", "must not be empty")
	}
	if abi.NormalizeChannel(c) != c {
		return invalid("channel", "%q is not a full channel name (root or root.…)", c)
	}
	return abi.CheckChannel(c)
}

// Validate refuses a job no store may keep, naming the field: before any
// SQL, the same on every backend.
func (j NewJob) Validate() error {
	for _, f := range []struct{ name, v string }{
		{"uuid", j.UUID}, {"tenant", j.Tenant}, {"func", j.Func}, {"user_id", j.UserID},
		{"model_name", j.ModelName}, {"func_string", j.FuncString}, {"description", j.Description},
		{"identity_key", j.IdentityKey}, {"graph_uuid", j.GraphUUID},
	} {
		if err := checkText(f.name, f.v); err != nil {
			return err
		}
	}
	if j.UUID == "" {
		return invalid("uuid", "must not be empty")
	}
	if j.Func == "" {
		return invalid("func", "must not be empty")
	}
	for _, p := range j.DependsOn {
		if err := checkText("depends_on", p); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		kind byte
	}{{"args", j.Args, '['}, {"kwargs", j.Kwargs, '{'}, {"context", j.Context, '{'}} {
		if err := checkJSON(f.name, f.raw, f.kind); err != nil {
			return err
		}
	}
	if err := checkChannel(j.Channel); err != nil {
		return err
	}
	if err := checkDescription(j.Description); err != nil {
		return err
	}
	if len(j.IdentityKey) > abi.MaxIdentityKey {
		return invalid("identity_key", "at most %d bytes (this one has %d)", abi.MaxIdentityKey, len(j.IdentityKey))
	}
	if err := checkRange("priority", j.Priority, 0, MaxPriority); err != nil {
		return err
	}
	if err := checkRange("max_retries", j.MaxRetries, 0, MaxMaxRetries); err != nil {
		return err
	}
	if err := checkDate("eta", j.ETA); err != nil {
		return err
	}
	return checkDate("expected_at", j.ExpectedAt)
}

// Validate refuses values out of range, naming the field.
func (p Patch) Validate() error {
	if p.Priority != nil {
		if err := checkRange("priority", *p.Priority, 0, MaxPriority); err != nil {
			return err
		}
	}
	if p.MaxRetries != nil {
		if err := checkRange("max_retries", *p.MaxRetries, 0, MaxMaxRetries); err != nil {
			return err
		}
	}
	if p.Channel != nil {
		if err := checkChannel(*p.Channel); err != nil {
			return err
		}
	}
	if p.Description != nil {
		if err := checkDescription(*p.Description); err != nil {
			return err
		}
	}
	if p.ETA != nil {
		return checkDate("eta", *p.ETA)
	}
	return nil
}

// Validate refuses a filter no store can match: text that is not UTF-8
// or holds NUL, a state that does not exist.
// MaxKwargsFilter bounds the keys a kwargs filter names: each is a
// condition of its own.
const MaxKwargsFilter = 16

func (f Filter) Validate() error {
	for _, x := range []struct{ name, v string }{
		{"tenant", f.Tenant}, {"channel", f.Channel}, {"func", f.Func}, {"graph_uuid", f.GraphUUID},
		{"identity_key", f.IdentityKey}, {"q", f.Query}, {"cursor", f.Cursor},
		{"user_id", f.UserID}, {"model_name", f.ModelName},
	} {
		if err := checkText(x.name, x.v); err != nil {
			return err
		}
	}
	for _, d := range []struct {
		name string
		t    *time.Time
	}{{"created_after", f.CreatedAfter}, {"created_before", f.CreatedBefore}, {"ended_after", f.EndedAfter}, {"ended_before", f.EndedBefore}} {
		if err := checkDate(d.name, d.t); err != nil {
			return err
		}
	}
	if len(f.ArgsHas) > 0 {
		if _, err := ParseScalar("args", f.ArgsHas); err != nil {
			return err
		}
	}
	if len(f.KwargsHas) > MaxKwargsFilter {
		return invalid("kwargs", "at most %d keys", MaxKwargsFilter)
	}
	for k, v := range f.KwargsHas {
		if err := checkText("kwargs", k); err != nil {
			return err
		}
		if _, err := ParseScalar("kwargs", v); err != nil {
			return err
		}
	}
	for _, st := range f.States {
		if !st.Valid() {
			return invalid("state", "%q is not a job state", st)
		}
	}
	return nil
}

// clean makes a plugin's report storable: an outcome cannot be refused.
// Text that is not UTF-8 or holds NUL is mended (U+FFFD); a result the
// store cannot keep as it is (not JSON, not UTF-8, a NUL in a string) is
// kept whole as {"base64": "..."}, as the host stores a binary output:
// lossless, and at most 4/3 of its size.
func (c Completion) clean() Completion {
	c.ExcName, c.ExcMessage, c.ExcInfo = cleanText(c.ExcName), cleanText(c.ExcMessage), cleanText(c.ExcInfo)
	if len(c.Result) > 0 && checkJSON("result", c.Result, 0) != nil {
		c.Result, _ = json.Marshal(map[string]string{"base64": base64.StdEncoding.EncodeToString(c.Result)})
	}
	if len(c.Logs) > 0 {
		logs := make([]abi.LogLine, len(c.Logs))
		for i, l := range c.Logs {
			l.Level, l.Message = cleanText(l.Level), cleanText(l.Message)
			logs[i] = l
		}
		c.Logs = logs
	}
	return c
}

func cleanText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\ufffd"), "\x00", "\ufffd")
}
