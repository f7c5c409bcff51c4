package store

import (
	"encoding/json"
	"math/rand/v2"
	"strconv"
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

// A key given twice in one object is refused: PostgreSQL's jsonb keeps
// the last value, SQLite the text as sent, and a plugin's parser may read
// either. Keys are compared as the strings they encode.
func TestAKeyGivenTwiceInOneObjectIsRefused(t *testing.T) {
	many := func(dupAt int) string { // 100 keys: past the pairwise comparison
		var b strings.Builder
		b.WriteString("{")
		for i := range 100 {
			if i > 0 {
				b.WriteString(",")
			}
			k := i
			if i == dupAt {
				k = 3
			}
			b.WriteString(`"k` + strconv.Itoa(k) + `":` + strconv.Itoa(i))
		}
		b.WriteString("}")
		return b.String()
	}
	for doc, dup := range map[string]string{
		`{"a":1,"b":2}`:                       "",
		`[{"a":1},{"a":2}]`:                   "",
		`{"a":{"a":1},"b":{"a":2}}`:           "",
		`{"a":[{"b":1}],"b":2}`:               "",
		`{"a":"a","b":"a:b"}`:                 "",
		`{"a\"":1,"a":2}`:                     "",
		`{"a\\":1,"a":2}`:                     "",
		many(-1):                              "",
		`{"a":1,"a":2}`:                       "a",
		`{ "a" : 1 , "a" : 2 }`:               "a",
		`{"a":1,"b":{"c":[1,{"d":1,"d":2}]}}`: "d",
		`{"a":{"x":1},"b":[],"a":2}`:          "a",
		`{"é":1,"\u00e9":2}`:                  "é",
		`{"\u0061":1,"a":2}`:                  "a",
		`{"a\"b":1,"a\u0022b":2}`:             `a"b`,
		many(30):                              "k3",
		many(90):                              "k3",
	} {
		err := checkJSON("kwargs", json.RawMessage(doc), 0)
		switch {
		case dup == "" && err != nil:
			t.Errorf("%s refused: %v", doc, err)
		case dup != "" && (err == nil || !strings.Contains(err.Error(), strconv.Quote(dup)) || !strings.HasPrefix(err.Error(), "kwargs")):
			t.Errorf("%s: %v, want an error on kwargs naming the key %q", doc, err, dup)
		}
	}
}

// The scanner agrees with a decoder's reading of the same documents:
// random nested objects and lists whose keys are drawn from a few, written
// plain or escaped.
func TestDuplicateKeysAgreeWithADecoder(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 2))
	keys := []string{`"a"`, `"\u0061"`, `"b"`, `"a\"b"`, `"a\u0022b"`, `"é"`, `"\u00e9"`, `"\\"`, `"\ud83d\ude00"`, `"😀"`, `""`, `"{"`, `":"`}
	var gen func(b *strings.Builder, depth int)
	gen = func(b *strings.Builder, depth int) {
		switch k := r.IntN(4); {
		case depth > 3 || k == 0:
			b.WriteString([]string{`1`, `"x,y:{}[]"`, `null`, `"\""`}[r.IntN(4)])
		case k == 1:
			b.WriteString("[")
			for i := range r.IntN(4) {
				if i > 0 {
					b.WriteString(",")
				}
				gen(b, depth+1)
			}
			b.WriteString("]")
		default:
			b.WriteString("{")
			for i := range r.IntN(5) {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString(keys[r.IntN(len(keys))] + ":")
				gen(b, depth+1)
			}
			b.WriteString("}")
		}
	}
	dups := 0
	for range 5000 {
		var b strings.Builder
		gen(&b, 0)
		doc := b.String()
		_, got := duplicateKey([]byte(doc))
		want := decoderSeesDuplicate(t, doc)
		if got != want {
			t.Fatalf("%s: scanner says duplicate %v, decoder %v", doc, got, want)
		}
		if want {
			dups++
		}
	}
	if dups < 500 {
		t.Fatalf("only %d of 5000 documents held a duplicate: the generator tests too little", dups)
	}
}

func decoderSeesDuplicate(t *testing.T, doc string) bool {
	d := json.NewDecoder(strings.NewReader(doc))
	type frame struct {
		object bool
		seen   map[string]bool
		key    bool // the next string is a key
	}
	var stack []*frame
	for {
		tok, err := d.Token()
		if err != nil {
			if err.Error() == "EOF" {
				return false
			}
			t.Fatalf("%s: %v", doc, err)
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				if top != nil && top.object {
					top.key = true
				}
				stack = append(stack, &frame{object: v == '{', seen: map[string]bool{}, key: v == '{'})
			default:
				stack = stack[:len(stack)-1]
			}
		case string:
			if top != nil && top.object && top.key {
				if top.seen[v] {
					return true
				}
				top.seen[v], top.key = true, false
				continue
			}
			if top != nil && top.object {
				top.key = true
			}
		default:
			if top != nil && top.object {
				top.key = true
			}
		}
	}
}
