package enqueue

import (
	"errors"
	"strings"
	"testing"

	"github.com/wasmq/wasmq/abi"
)

// buildOne validates one request the way POST /v1/jobs does.
func buildOne(t *testing.T, r Request) error {
	t.Helper()
	_, err := (&Service{Funcs: funcs{}}).Build(t.Context(), "t", []Request{r}, false)
	return err
}

func TestDescriptionLimitCountsCharactersNotBytes(t *testing.T) {
	at := strings.Repeat("é", MaxDescription) // 2000 bytes
	if err := buildOne(t, Request{Func: "m.f", Description: &at}); err != nil {
		t.Fatalf("%d two-byte characters refused: %v", MaxDescription, err)
	}
	cjk := strings.Repeat("世", MaxDescription-1) + "🙂" // 3000 bytes
	if err := buildOne(t, Request{Func: "m.f", Description: &cjk}); err != nil {
		t.Fatalf("%d three- and four-byte characters refused: %v", MaxDescription, err)
	}
	over := at + "é"
	err := buildOne(t, Request{Func: "m.f", Description: &over})
	var fe *abi.FieldError
	if !errors.As(err, &fe) || fe.Field != "description" || !errors.Is(err, abi.ErrInvalid) {
		t.Fatalf("%d characters: %v, want an invalid-argument error on description", MaxDescription+1, err)
	}
	if !strings.Contains(fe.Msg, "1001") {
		t.Errorf("message %q does not say how many characters it has", fe.Msg)
	}
}

// batchBody is a batch whose entry 3 is bad.
func batchBody(bad string) []byte {
	return []byte(`{"jobs":[{"func":"m.f"},{"func":"m.f"},{"func":"m.f"},` + bad + `]}`)
}

func TestBatchErrorsNameTheEntry(t *testing.T) {
	for _, c := range []struct {
		name, entry, field string
		class              error
	}{
		{"unknown field", `{"func":"m.f","colour":"red"}`, "jobs[3].colour", ErrMalformed},
		{"wrong type", `{"func":"m.f","priority":"high"}`, "jobs[3].priority", ErrMalformed},
		{"wrong type in a list", `{"func":"m.f","depends_on":[7]}`, "jobs[3].depends_on", ErrMalformed},
		{"not an object", `[1]`, "jobs[3]", ErrMalformed},
		{"out of range", `{"func":"m.f","priority":-1}`, "jobs[3].priority", abi.ErrInvalid},
		{"bad eta", `{"func":"m.f","eta":"tomorrow"}`, "jobs[3].eta", abi.ErrInvalid},
		{"missing func", `{"args":[]}`, "jobs[3].func", ErrMalformed},
		{"bad channel", `{"func":"m.f","channel":"a..b"}`, "jobs[3].channel", abi.ErrInvalid},
		{"args not a list", `{"func":"m.f","args":{"a":1}}`, "jobs[3].args", ErrMalformed},
		{"kwargs not an object", `{"func":"m.f","kwargs":[1]}`, "jobs[3].kwargs", ErrMalformed},
		{"bad expected_at", `{"func":"m.f","expected_at":"soon"}`, "jobs[3].expected_at", abi.ErrInvalid},
		{"unknown dependency", `{"func":"m.f","depends_on":["nope"]}`, "jobs[3].depends_on[0]", abi.ErrInvalid},
		{"bad batch_size", `{"func":"m.f","batch_size":0}`, "jobs[3].batch_size", abi.ErrInvalid},
		{"ref used twice", `{"func":"m.f","ref":"a"},{"func":"m.f","ref":"a"}`, "jobs[4].ref", abi.ErrInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			var b BatchRequest
			err := Decode(batchBody(c.entry), &b)
			if err == nil {
				_, err = (&Service{Funcs: funcs{}}).Build(t.Context(), "t", b.Jobs, true)
			}
			var fe *abi.FieldError
			if !errors.As(err, &fe) || fe.Field != c.field || !errors.Is(err, c.class) {
				t.Fatalf("got %v (field %q), want a %v naming %s", err, fieldOf(err), c.class, c.field)
			}
		})
	}
}

func TestBatchDecodingKeepsItsOtherErrors(t *testing.T) {
	for body, field := range map[string]string{
		`{"jobs":[{"func":"m.f"}],"colour":1}`: "colour",
		`{"jobs":{}}`:                          "jobs",
		`{"jobs":[{"func":"m.f"}]} trailing`:   "",
		`{"jobs":[{"func":"m.f"}`:              "",
	} {
		var b BatchRequest
		err := Decode([]byte(body), &b)
		var fe *abi.FieldError
		if !errors.As(err, &fe) || fe.Field != field || !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v (field %q), want a malformed-request error naming %q", body, err, fieldOf(err), field)
		}
	}
	var b BatchRequest
	if err := Decode([]byte(`{"jobs":[{"ref":"a","func":"m.f","priority":2},{"func":"m.g","depends_on":["a"]}]}`), &b); err != nil ||
		len(b.Jobs) != 2 || *b.Jobs[0].Priority != 2 || b.Jobs[1].DependsOn[0] != "a" {
		t.Fatalf("%+v %v", b, err)
	}
}

func fieldOf(err error) string {
	var fe *abi.FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	return ""
}
