package enqueue

import (
	"encoding/json"
	"strings"
	"testing"
)

// funcStringByDecoding is FuncString as it was first written: each
// positional argument decoded into a json.RawMessage of its own. The
// in-place reading must agree with it on every input.
func funcStringByDecoding(fn string, args, kwargs json.RawMessage) string {
	var parts []string
	var a []json.RawMessage
	if json.Unmarshal(args, &a) == nil {
		for _, v := range a {
			parts = append(parts, string(v))
		}
	}
	parts = append(parts, keywordArgs(kwargs)...)
	return cutFuncString(fn + "(" + strings.Join(parts, ", ") + ")")
}

var funcStringArgs = []string{
	`[]`, ` [ ] `, `[1]`, `[ 1 , "x" ]`, "[\n\t1,\r\n2\n]", `[[1,[2]],{"a":[3,"]"]}]`, `["a,b", "c]d", "e\"f", "\\"]`,
	`[{"a" : 1 , "b":{}}, null, true, -1.5e3]`, `["é", "\u00e9", "日本"]`, `{"a":1}`, `1`, `"[1,2]"`, `null`,
	`[1,]`, `[`, `[1 2]`, ``, `["unterminated]`,
}

func TestFuncStringReadsTheArgumentsAsDecodingDoes(t *testing.T) {
	for _, args := range funcStringArgs {
		for _, kwargs := range []string{`{}`, `{"b":2,"a":[1, 2]}`, `{ }`, `[]`} {
			got := FuncString("m.f", json.RawMessage(args), json.RawMessage(kwargs))
			if want := funcStringByDecoding("m.f", json.RawMessage(args), json.RawMessage(kwargs)); got != want {
				t.Errorf("args %s kwargs %s: %s, want %s", args, kwargs, got, want)
			}
		}
	}
}

func FuzzFuncStringReadsTheArgumentsAsDecodingDoes(f *testing.F) {
	for _, args := range funcStringArgs {
		f.Add(args, `{}`)
	}
	f.Add(`[1]`, `{"x":"y"}`)
	f.Fuzz(func(t *testing.T, args, kwargs string) {
		got := FuncString("m.f", json.RawMessage(args), json.RawMessage(kwargs))
		if want := funcStringByDecoding("m.f", json.RawMessage(args), json.RawMessage(kwargs)); got != want {
			t.Errorf("args %q kwargs %q: %q, want %q", args, kwargs, got, want)
		}
	})
}

func BenchmarkFuncString(b *testing.B) {
	args, kwargs := json.RawMessage(`[42, "x", {"id": 7}]`), json.RawMessage(`{}`)
	b.Run("decoding", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			funcStringByDecoding("mail.send", args, kwargs)
		}
	})
	b.Run("in place", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			FuncString("mail.send", args, kwargs)
		}
	})
}
