package host

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/wasmq/wasmq/abi"
)

// maxStored is the bound on a stored result for an output of n bytes:
// its base64 form, {"base64":"..."}.
func maxStored(n int) int { return len(`{"base64":""}`) + base64.StdEncoding.EncodedLen(n) }

// decodeResult gives back the bytes a stored result was made from.
func decodeResult(t *testing.T, result json.RawMessage) []byte {
	t.Helper()
	var s string
	if json.Unmarshal(result, &s) == nil {
		return []byte(s)
	}
	var b struct {
		Base64 []byte `json:"base64"`
	}
	if err := json.Unmarshal(result, &b); err != nil {
		t.Fatalf("result %.80s is neither a string nor {\"base64\"}: %v", result, err)
	}
	return b.Base64
}

// TestLargeOutputsAreStoredAtMostAThirdLarger runs the amplify fixture,
// whose exports each set a 4 MiB output, and bounds what would be stored:
// a JSON string without HTML escaping for text, {"base64": ...} for binary
// output and for text whose string form would be larger than that.
func TestLargeOutputsAreStoredAtMostAThirdLarger(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, "testdata/amplify.wasm", filepath.Join(dir, "amplify.wasm"))
	cfg := testConfig(dir)
	cfg.MaxOutput = 4 << 20
	cfg.MemoryLimit = 32 << 20
	h := newTestHost(t, cfg)
	for _, c := range []struct {
		fn     string
		n      int // output bytes
		base64 bool
		max    float64 // stored bytes per output byte
	}{
		{"binary", 4 << 20, true, 4.0 / 3},     // every byte value: not UTF-8
		{"ff", 4 << 20, true, 4.0 / 3},         // 0xff: was six bytes each, as U+FFFD escaped
		{"ansi", 4 << 20, true, 4.0 / 3},       // valid UTF-8, but two ESC (\u001b) and a CRLF every 16 bytes
		{"html", 4 << 20, false, 17.0 / 16},    // < > & as they are; one \n every 16 bytes
		{"utf8", 4<<20 - 16, false, 25.0 / 24}, // multi-byte characters as they are; one \n every 24 bytes
	} {
		t.Run(c.fn, func(t *testing.T) {
			o := run(t, h, job("amplify."+c.fn))
			if o.Kind != abi.OutcomeDone {
				t.Fatalf("got %s %s %q", o.Kind, o.ExcName, o.ExcMessage)
			}
			n := c.n
			ratio := float64(len(o.Result)) / float64(n)
			t.Logf("%s: output %d bytes, stored %d bytes (%.3f×)", c.fn, n, len(o.Result), ratio)
			if len(o.Result) > maxStored(n) {
				t.Errorf("stored %d bytes for %d, over its base64 form (%d)", len(o.Result), n, maxStored(n))
			}
			if ratio > c.max+0.01 {
				t.Errorf("stored %.3f× the output, want at most %.3f×", ratio, c.max)
			}
			if got := bytes.HasPrefix(o.Result, []byte(`{"base64":"`)); got != c.base64 {
				t.Errorf("stored as base64: %v, want %v (%.40s…)", got, c.base64, o.Result)
			}
			if out := decodeResult(t, o.Result); len(out) != n {
				t.Errorf("the result decodes to %d bytes, want the %d of the output", len(out), n)
			}
			if c.fn == "html" && !bytes.HasPrefix(o.Result, []byte(`"<p>Tom & Jerry!\n<p>`)) {
				t.Errorf("HTML text escaped: %.40s…", o.Result)
			}
		})
	}
}

// TestOutputsBecomeResults: UTF-8 JSON output is stored byte for byte;
// text as a JSON string; anything else, or text whose string would be
// larger than its base64 form, as {"base64": ...}; the stored form always
// decodes back to the output.
func TestOutputsBecomeResults(t *testing.T) {
	for _, c := range []struct{ out, want string }{
		{``, `null`},
		{" \n", `null`},
		{`{"a": [1, "<&>"]}`, `{"a": [1, "<&>"]}`},
		{"\"caf\xe9\"", `{"base64":"ImNhZuki"}`}, // JSON, but not UTF-8
		{`42`, `42`},
		{`boom`, `"boom"`},
		{"a <b> & c", `"a <b> & c"`},
		{"line 1\nline 2\ttab\r\n", `"line 1\nline 2\ttab\r\n"`},
		{`say "hi" \o/`, `"say \"hi\" \\o/"`},
		{"héllo ✓\u2028", "\"héllo ✓\u2028\""},
		{"ok\x01", `"ok\u0001"`},                      // a control byte or two: still a string
		{"\x01\x02\x03\x04", `{"base64":"AQIDBA=="}`}, // six bytes each as a string
		{"ok\x00", `{"base64":"b2sA"}`},               // NUL: the store would mend it into U+FFFD
		{"caf\xe9", `{"base64":"Y2Fm6Q=="}`},          // Latin-1, not UTF-8
		{"\xff", `{"base64":"/w=="}`},
		{"{\"wasmq\":{\"result\":\"\xff\"}}", `{"base64":"Iv8i"}`}, // a control document's result
	} {
		o := resultOutcome([]byte(c.out))
		if o.Kind != abi.OutcomeDone || string(o.Result) != c.want {
			t.Errorf("output %q: got %s %s, want %s", c.out, o.Kind, o.Result, c.want)
			continue
		}
		if !json.Valid(o.Result) {
			t.Errorf("output %q: result %s is not JSON", c.out, o.Result)
		}
		if strings.TrimSpace(c.out) != "" && (!json.Valid([]byte(c.out)) || !utf8.ValidString(c.out)) && !strings.Contains(c.out, "wasmq") {
			if got := decodeResult(t, o.Result); !bytes.Equal(got, []byte(c.out)) {
				t.Errorf("output %q: result %s decodes to %q", c.out, o.Result, got)
			}
			if !utf8.Valid(o.Result) {
				t.Errorf("output %q: result %q is not UTF-8", c.out, o.Result)
			}
		}
	}
}

// FuzzOutputsBecomeResults: any output that is not UTF-8 JSON is stored as
// UTF-8 JSON that decodes back to it, never larger than its base64 form.
func FuzzOutputsBecomeResults(f *testing.F) {
	for _, s := range []string{"boom", "a\x00b", "caf\xe9", "<&>", "\x1b[0m", "{", `"\ud800"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		o := resultOutcome(out)
		if len(bytes.TrimSpace(out)) == 0 || validJSON(out) && utf8.Valid(out) || bytes.Contains(out, []byte("wasmq")) {
			return // null, JSON as it is, or a control document
		}
		if o.Kind != abi.OutcomeDone || !json.Valid(o.Result) || !utf8.Valid(o.Result) {
			t.Fatalf("output %q: %s %q", out, o.Kind, o.Result)
		}
		if len(o.Result) > maxStored(len(out)) {
			t.Fatalf("output %q: stored %d bytes, over %d", out, len(o.Result), maxStored(len(out)))
		}
		if got := decodeResult(t, o.Result); !bytes.Equal(got, out) {
			t.Fatalf("output %q: decodes to %q", out, got)
		}
	})
}
