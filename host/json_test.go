package host

import (
	"encoding/json"
	"math/rand"
	"strings"
	"testing"
)

var jsonCases = []string{
	``, ` `, `null`, `nul`, `nulls`, `true`, `false`, `tru`, `0`, `-0`, `01`, `-`, `1.`, `1.5`, `.5`,
	`1e5`, `1E+5`, `1e-5`, `1e`, `1e+`, `-1.25e10`, `2.`, `"`, `""`, `"a"`, `"\"`, `"\\"`, `"\u00e9"`,
	`"\u00g9"`, `"\u00e"`, `"\x"`, `"\/\b\f\n\r\t"`, "\"tab\there\"", "\"\xff\xfe\"", `[]`, `[ ]`,
	`[1,]`, `[,1]`, `[1 2]`, `[1,2]`, `{}`, `{ }`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":1}`, `{1:2}`,
	`{"a":1 "b":2}`, `{"a":[1,{"b":null}],"c":"d"}`, `[[[]]]`, `[[[]]`, `[]]`, `{"a":1}}`, ` {"a" : 1 } `,
	"\t[\n1\r]\n", `[1]x`, `"a" "b"`, `{"wasmq":{"retry":{"seconds":1}}}`, `[true,false,null]`, `[-]`,
	`{"a":-01}`, `1.0e`, `[1e1000]`,
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000),
	strings.Repeat(`{"a":`, 10000) + "{}" + strings.Repeat("}", 10000),
}

func TestValidJSONAgreesWithEncodingJSON(t *testing.T) {
	check := func(s string) {
		if got, want := validJSON([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Fatalf("validJSON(%.80q) = %v, json.Valid says %v", s, got, want)
		}
	}
	for _, s := range jsonCases {
		check(s)
	}
	// Mutations of valid documents: cut, byte replaced, byte inserted.
	rng := rand.New(rand.NewSource(1))
	alphabet := []byte("{}[]:,\"\\ \t\n0123456789-+.eEtrufalsn/bu\x01\xff")
	for n := 0; n < 200000; n++ {
		b := []byte(jsonCases[rng.Intn(len(jsonCases)-4)])
		for k := rng.Intn(3) + 1; k > 0 && len(b) > 0; k-- {
			i := rng.Intn(len(b))
			switch rng.Intn(3) {
			case 0:
				b = b[:i]
			case 1:
				b[i] = alphabet[rng.Intn(len(alphabet))]
			default:
				b = append(b[:i], append([]byte{alphabet[rng.Intn(len(alphabet))]}, b[i:]...)...)
			}
		}
		check(string(b))
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, s := range jsonCases {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid says %v", b, got, want)
		}
	})
}

func BenchmarkValidJSON(b *testing.B) {
	doc := []byte(`{"args":["x"],"kwargs":{},"context":{"job_uuid":"00000000-0000-4000-8000-000000000001","tenant":"acme","channel":"root","retry":1,"attempt":1,"max_retries":5,"priority":10,"deadline":"2026-01-01T00:00:00.123456789Z","user":"","model":"","records":[]}}`)
	for _, v := range []struct {
		name string
		fn   func([]byte) bool
	}{{"encoding-json", json.Valid}, {"validJSON", validJSON}} {
		b.Run(v.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if !v.fn(doc) {
					b.Fatal("invalid")
				}
			}
		})
	}
}
