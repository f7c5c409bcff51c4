package store

import (
	"encoding/json"
	"strings"
	"testing"
)

// BenchmarkCheckJSON is the store's check of one job's kwargs on the
// enqueue path: an object of a few keys, one with a nested list of
// objects, and one of 40 keys (past the pairwise comparison of keys).
func BenchmarkCheckJSON(b *testing.B) {
	var forty strings.Builder
	forty.WriteString(`{"k0":0`)
	for i := 1; i < 40; i++ {
		forty.WriteString(`,"key` + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `":1`)
	}
	forty.WriteString("}")
	for _, bc := range []struct{ name, doc string }{
		{"OneKey", `{"partner_id":42}`},
		{"Order", `{"partner_id":42,"lines":[{"sku":"A-1","qty":2},{"sku":"B-7","qty":1}],"note":"deliver: before noon"}`},
		{"FortyKeys", forty.String()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			raw := json.RawMessage(bc.doc)
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if err := checkJSON("kwargs", raw, '{'); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
