package abi_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/wasmq/wasmq/abi"
)

func TestParseChannelNormalisesThenRefusesWhatIsNotAName(t *testing.T) {
	deepest := "root" + strings.Repeat(".a", abi.MaxChannelDepth-1)
	longest := "root." + strings.Repeat("x", abi.MaxChannelLen-len("root."))
	for _, c := range []struct {
		in, want string // want "" means refused
	}{
		{"", "root"},
		{"root", "root"},
		{"mail", "root.mail"},
		{"root.mail", "root.mail"},
		{"mail.bulk_2-x", "root.mail.bulk_2-x"},
		{"rootx", "root.rootx"},
		{deepest, deepest},
		{longest, longest},
		{deepest + ".a", ""},           // 9 levels
		{longest + "x", ""},            // 201 bytes
		{strings.Repeat("x", 201), ""}, // 201 bytes before "root." too
		{"../x", ""},                   // not a path
		{"root.bad name!!", ""},        // space and punctuation
		{"a\x00b", ""},                 // NUL
		{"a\xffb", ""},                 // invalid UTF-8
		{"caf\u00e9", ""},              // letters are ASCII
		{" mail", ""},                  // spaces are not trimmed
		{"mail.", ""},                  // empty last word
		{"mail..bulk", ""},             // empty word
		{".mail", ""},                  // empty first word
		{"root.", ""},                  // empty word after root
		{"mail/bulk", ""},              // slash
		{"mail.*", ""},                 // a filter, not a name
	} {
		got, err := abi.ParseChannel(c.in)
		if c.want != "" {
			if err != nil || got != c.want {
				t.Errorf("ParseChannel(%q) = %q, %v; want %q", c.in, got, err, c.want)
			}
			continue
		}
		var fe *abi.FieldError
		if err == nil || !errors.As(err, &fe) || fe.Field != "channel" || !errors.Is(err, abi.ErrInvalid) {
			t.Errorf("ParseChannel(%q) = %q, %v; want an invalid-argument FieldError on channel", c.in, got, err)
		}
	}
}

func TestNormalizeChannelMakesSubAndRootSubOne(t *testing.T) {
	for in, want := range map[string]string{"": "root", "root": "root", "a": "root.a", "root.a": "root.a", "a.b": "root.a.b"} {
		if got := abi.NormalizeChannel(in); got != want {
			t.Errorf("NormalizeChannel(%q) = %q, want %q", in, got, want)
		}
	}
}
