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
