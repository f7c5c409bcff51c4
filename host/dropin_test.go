package host

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmq/wasmq/abi"
)

const vowelsWasm = "../plugins/examples/vowels/vowels.wasm"

// vowelsHost serves the unmodified Extism plugin built from the official
// AssemblyScript PDK as module "vowels", with the given sidecar.
func vowelsHost(t *testing.T, sidecar string) *Host {
	t.Helper()
	if !fileExists(vowelsWasm) {
		missing(t, vowelsWasm+" is not built (make plugins)")
	}
	dir := t.TempDir()
	copyFile(t, vowelsWasm, filepath.Join(dir, "vowels.wasm"))
	if sidecar != "" {
		writeFile(t, filepath.Join(dir, "vowels.toml"), sidecar)
	}
	return newTestHost(t, testConfig(dir))
}

func rawJob(fn string, args string) *abi.Job {
	j := job(fn)
	j.Args = json.RawMessage(args)
	return j
}

const vowelsSidecar = `
[config]
greeting = "from the module"

[functions.count_vowels]
input = "raw"
config = { vowels = "aeiouy" }

[functions.shout]
input = "raw"

[functions.fail]
input = "raw"
`

func TestRawInputRunsAnUnmodifiedExtismPlugin(t *testing.T) {
	h := vowelsHost(t, vowelsSidecar)
	cases := []struct {
		name, fn, args, result string
	}{
		// The first argument, a string, is the whole input; the function's
		// config overrides the module's and config_get serves both.
		{"string", "vowels.count_vowels", `["Yummy tea"]`, `{"count":4,"vowels":"aeiouy","greeting":"from the module"}`},
		// Text that is not JSON is stored as a JSON string.
		{"text output", "vowels.shout", `["hello, world"]`, `"HELLO, WORLD"`},
		// Bytes are given as {"base64": ...}, as results are stored.
		{"base64", "vowels.shout", `[{"base64":"YWJj"}]`, `"ABC"`},
		// Any other first argument is its JSON text (the rest is ignored),
		// and an output that parses as JSON is stored as JSON.
		{"json", "vowels.shout", `[{"a":1}, "ignored"]`, `{"A":1}`},
		{"no argument", "vowels.count_vowels", `[]`, `{"count":0,"vowels":"aeiouy","greeting":"from the module"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := run(t, h, rawJob(c.fn, c.args))
			if o.Kind != abi.OutcomeDone || string(o.Result) != c.result {
				t.Fatalf("got %s %s %q, want done %s", o.Kind, o.Result, o.ExcMessage, c.result)
			}
		})
	}
}

// A plugin written for any Extism host knows no control document: its
// output is its result, whatever it holds.
func TestRawOutputIsNeverAControlDocument(t *testing.T) {
	for _, out := range []string{`{"wasmq":{"fail":{"message":"x"}}}`, `{"wasmq":{"retry":{}}}`} {
		o := rawOutcome([]byte(out))
		if o.Kind != abi.OutcomeDone || string(o.Result) != out {
			t.Errorf("%s: got %s %s", out, o.Kind, o.Result)
		}
	}
	if o := rawOutcome(nil); o.Kind != abi.OutcomeDone || string(o.Result) != "null" {
		t.Errorf("empty output: got %s %s", o.Kind, o.Result)
	}
}

func TestEnvelopeStaysTheDefaultInput(t *testing.T) {
	h := vowelsHost(t, "")
	// Without input = "raw" the plugin reads the envelope document:
	// {"args":[1,"two"],"kwargs":{"k":true},"context":{...}} and counts
	// its vowels; the module has no config, so the default vowels apply.
	o := run(t, h, job("vowels.count_vowels"))
	var r struct {
		Count  int    `json:"count"`
		Vowels string `json:"vowels"`
	}
	if o.Kind != abi.OutcomeDone || json.Unmarshal(o.Result, &r) != nil || r.Count < 10 || r.Vowels != "aeiouAEIOU" {
		t.Fatalf("got %s %s %s", o.Kind, o.Result, o.ExcMessage)
	}
}

func TestAPluginErrorFillsExcInfoWithItsLog(t *testing.T) {
	h := vowelsHost(t, vowelsSidecar)
	o := run(t, h, rawJob("vowels.fail", `["abc"]`))
	if o.Kind != abi.OutcomeFailed || o.ExcName != abi.ExcError || o.ExcMessage != "cannot count the vowels of abc" {
		t.Fatalf("got %s %s %q", o.Kind, o.ExcName, o.ExcMessage)
	}
	for _, want := range []string{"wasmq.Error in vowels.fail: cannot count the vowels of abc", "warn", "looking at the text"} {
		if !strings.Contains(o.ExcInfo, want) {
			t.Errorf("exc_info lacks %q:\n%s", want, o.ExcInfo)
		}
	}
}

func TestATrapFillsExcInfoWithTheNamedWasmStack(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, "testdata/named_trap.wasm", filepath.Join(dir, "ledger.wasm"))
	h := newTestHost(t, testConfig(dir))
	o := run(t, h, job("ledger.post"))
	if o.Kind != abi.OutcomeSandbox || o.ExcName != abi.ExcTrap {
		t.Fatalf("got %s %s %q", o.Kind, o.ExcName, o.ExcMessage)
	}
	// The innermost frame first, each with the module's own names.
	i, j := strings.Index(o.ExcInfo, "ledger.check_balance"), strings.Index(o.ExcInfo, "ledger.post_entry")
	if !strings.Contains(o.ExcInfo, "wasm stack trace") || i < 0 || j < i {
		t.Fatalf("exc_info has no named stack:\n%s", o.ExcInfo)
	}
}

func TestAppendRawInput(t *testing.T) {
	for _, c := range []struct{ args, want, err string }{
		{`["a\u00e9"]`, "aé", ""},
		{`[""]`, "", ""},
		{`null`, "", ""},
		{`[7]`, "7", ""},
		{`[{"base64":"AP8="}]`, "\x00\xff", ""},
		{`[{"base64":"not base64!"}]`, "", "args[0].base64"},
		{`[{"base64":1}]`, "", "args[0].base64"},
		{`[{"base64":"YQ==","more":1}]`, `{"base64":"YQ==","more":1}`, ""},
		{`{"a":1}`, "", "args is not a JSON list"},
	} {
		got, err := appendRawInput(nil, json.RawMessage(c.args))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %q", c.args, err, c.err)
			}
			continue
		}
		if err != nil || string(got) != c.want {
			t.Errorf("%s: got %q, %v; want %q", c.args, got, err, c.want)
		}
	}
}

func TestFunctionInputAndConfigAreValidated(t *testing.T) {
	for _, c := range []struct{ sidecar, want string }{
		{"[functions.shout]\ninput = \"bytes\"\n", `functions.shout.input: "bytes" is not an input mode`},
		{"[functions.shout]\nconfig = { n = 1 }\n", "config"},
		{"[functions.shout]\nconfig = { \"\" = \"x\" }\n", "functions.shout.config: a key must not be empty"},
		{"[config]\nk = \"a\\u0000b\"\n", "config: k: the value must be UTF-8 text without NUL"},
		// What a job takes from its function must be what a store keeps,
		// or every enqueue relying on it is refused for a field the
		// client never sent; a delay past 100 years would wrap around.
		{"[functions.shout]\nmax_retries = 1099511627776\n", "functions.shout.max_retries: must be an integer from 0 to 2147483647"},
		{"[functions.shout]\nchannel = \"../x\"\n", "functions.shout.channel"},
		{"[functions.shout]\ndescription = \"a\\u0000b\"\n", "functions.shout.description: must not contain NUL"},
		{"[functions.shout]\nretry_pattern = { 0 = 1099511627776 }\n", "retry_pattern[0]: at most 3153600000 seconds"},
		{"[functions.shout]\nretry_pattern = { 0 = [1, 3153600001] }\n", "retry_pattern[0]: at most 3153600000 seconds"},
	} {
		h := vowelsHost(t, c.sidecar)
		mods := h.Modules("")
		if len(mods) != 1 || !strings.Contains(mods[0].LoadError, c.want) {
			t.Errorf("sidecar %q: load error %q, want %q", c.sidecar, mods[0].LoadError, c.want)
		}
	}
}
