package store

import (
	"encoding/json"
	"strings"
	"testing"
)

// Only a \u escape that encodes no character is refused: a surrogate
// pair is one character, and an escaped backslash makes "u…" text.
func TestJSONEscapesThatEncodeNoCharacterAreRefused(t *testing.T) {
	for doc, want := range map[string]string{
		`["\ud83d\ude00"]`:     "",
		`["\uD83D\uDE00 x"]`:   "",
		`["\\ud800"]`:          "",
		`["\\\\ud800"]`:        "",
		`["a\"\u00e9"]`:        "",
		`{"\u00e9":"\u20ac"}`:  "",
		`["\u0000"]`:           "NUL",
		`["\\\u0000"]`:         "NUL",
		`["\ud800"]`:           "surrogate",
		`["\ud800x"]`:          "surrogate",
		`["\ud800\u0041"]`:     "surrogate",
		`["\ud800\ud800"]`:     "surrogate",
		`["\udc00"]`:           "surrogate",
		`["\udfff\ud800"]`:     "surrogate",
		`{"\udbff":1}`:         "surrogate",
		`["\\\ud83d"]`:         "surrogate",
		`["ok", {"k": "\ud83d`: "", // not JSON: refused before, as such
	} {
		err := checkJSON("args", json.RawMessage(doc), 0)
		switch {
		case want == "" && err != nil && json.Valid([]byte(doc)):
			t.Errorf("%s refused: %v", doc, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: %v, want an error naming %s", doc, err, want)
		}
	}
}
