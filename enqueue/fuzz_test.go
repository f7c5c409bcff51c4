package enqueue

import (
	"errors"
	"reflect"
	"testing"

	"github.com/wasmq/wasmq/abi"
)

// FuzzDecode: no body makes the strict decoder panic, and every refusal,
// of a job or of a batch, is a FieldError of a known class (so the API
// answers 400 or 422, never 500).
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"func":"m.f"}`, `{"func":"m.f","args":[1,"x"],"kwargs":{"a":null},"eta":60}`,
		`{"func":"m.f","eta":"2026-11-22T10:00:00Z","priority":-1}`, `{"jobs":[{"ref":"a","func":"m.f"}]}`,
		`{"jobs":[{"func":"m.f"},{"func":"m.f","colour":1}]}`, `{"jobs":[1]}`,
		`{"func":`, `[]`, `null`, `{"func":"m.f"} trailing`, `{"func":1}`, `{"prio":1}`, "",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var r Request
		if err := Decode(body, &r); err != nil {
			var fe *abi.FieldError
			if !errors.As(err, &fe) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("decode error %v is not a malformed-request FieldError", err)
			}
			return
		}
		if _, err := ParseWhen("eta", r.ETA, timeZero); err != nil {
			var fe *abi.FieldError
			if !errors.As(err, &fe) || fe.Field != "eta" {
				t.Fatalf("eta error %v does not name the field", err)
			}
		}
		var b BatchRequest
		if err := Decode(body, &b); err != nil {
			var fe *abi.FieldError
			if !errors.As(err, &fe) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("batch decode error %v is not a malformed-request FieldError", err)
			}
		}
	})
}

// FuzzBatchOnePassAgreesWithEntryByEntry: the one-pass decoding of a
// batch accepts exactly what decoding entry by entry accepts, into the
// same requests; it is only a faster way to the same answer.
func FuzzBatchOnePassAgreesWithEntryByEntry(f *testing.F) {
	for _, seed := range []string{
		`{"jobs":[{"ref":"a","func":"m.f","args":[1, {"x" : "y"}],"kwargs":{"k":[]},"depends_on":["b"]}]}`,
		`{"jobs":[{"func":"m.f"},{"func":"m.f","colour":1}]}`, `{"jobs":[1]}`, `{"jobs":[null]}`,
		`{"jobs":null}`, `{"jobs":[]}`, `{}`, `{"jobs":[{"func":"m.f"}]} trailing`, `{"jobs":[{"func":"m.f"}],"jobs":[]}`,
		`{"jobs":[{"func":"m.f","func":"n.g","priority":1e3}]}`, `{"jobs":[{"Func":"m.f"}]}`, `{"jobs":[{"eta":"x"}],"extra":1}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var one, each BatchRequest
		errOne := decodeBatch(body, &one)
		errEach := decodeEntries(body, &each)
		if (errOne == nil) != (errEach == nil) {
			t.Fatalf("one pass: %v; entry by entry: %v", errOne, errEach)
		}
		if errOne != nil {
			return // the message is entry by entry's own: decodeBatch falls back to it
		}
		if !reflect.DeepEqual(one, each) {
			t.Fatalf("one pass read %+v, entry by entry %+v", one, each)
		}
	})
}
