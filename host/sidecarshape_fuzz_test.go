package host

import (
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// FuzzSidecarShape holds the shape check's reading to the TOML parser's:
// what the parser reads is no deeper than the nesting and the key parts
// the check saw allow (a header's parts, a key's parts, the value's
// nesting, each array of tables a level more). A document that hid
// brackets or dots from the check, in a string or a comment the parser
// reads otherwise, would come out deeper. `go test` runs the seeds; `go test -fuzz
// FuzzSidecarShape ./host` searches.
func FuzzSidecarShape(f *testing.F) {
	for _, seed := range []string{
		"[config]\na = \"x\"\n",
		"[functions.run]\nconfig = { a = { b = \"c\" } }\n",
		"a = \"\"\"x\"\"\"\"\"\nb = [[1]]\n",
		"a = '''x\n{{'''''\nb = {c={d=1}}\n",
		"a = \"x\\\"[[\"\nb = [1]\n",
		"# {[\n[" + strings.Repeat("b.", 31) + "c]\n" + strings.Repeat("d.", 31) + "e = " + strings.Repeat("[", 32) + strings.Repeat("]", 32) + "\n",
		"a = 'x\\'\nb = [[[]]]\n",
		"\"a.b\".c = 1\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > 4096 {
			return
		}
		depth, parts, err := sidecarShape([]byte(text), maxSidecarDepth, maxSidecarKeyParts)
		if err != nil {
			return
		}
		var v map[string]any
		if _, err := toml.Decode(text, &v); err != nil {
			return
		}
		if d := depthOf(v); d > 2*(depth+2*parts)+1 {
			t.Fatalf("the shape check saw %d deep and %d key parts, the parser read %d deep: %q", depth, parts, d, text)
		}
	})
}

// depthOf is how deep tables and arrays nest in a decoded document.
func depthOf(v any) int {
	d := 0
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			d = max(d, depthOf(e))
		}
	case []any:
		for _, e := range x {
			d = max(d, depthOf(e))
		}
	case []map[string]any:
		for _, e := range x {
			d = max(d, depthOf(e))
		}
	default:
		return 0
	}
	return d + 1
}
