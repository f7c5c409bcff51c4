package host

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
)

const examplesDir = "../plugins/examples"

// examplePlugins lists the built example plugins (not the hostile corpus).
// They are built by `make plugins`; when none is there the tests skip,
// except under CI=true where a missing build is a failure.
func examplePlugins(t *testing.T) []string {
	t.Helper()
	all, _ := filepath.Glob(filepath.Join(examplesDir, "*", "*.wasm"))
	more, _ := filepath.Glob(filepath.Join(examplesDir, "*", "*", "*.wasm"))
	var out []string
	for _, p := range append(all, more...) {
		if !strings.Contains(p, "/hostile/") && !strings.Contains(p, "/target/") && !strings.Contains(p, "/node_modules/") {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		missing(t, "no example plugin is built under "+examplesDir+" (make plugins)")
	}
	return out
}

func missing(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func moduleName(path string) string { return strings.TrimSuffix(filepath.Base(path), ".wasm") }

// examplesHost serves every example plugin as a shared module.
func examplesHost(t *testing.T, paths []string, opts ...Option) *Host {
	t.Helper()
	dir := t.TempDir()
	for _, p := range paths {
		copyFile(t, p, filepath.Join(dir, filepath.Base(p)))
		if side := sidecarPath(p); fileExists(side) {
			copyFile(t, side, sidecarPath(filepath.Join(dir, filepath.Base(p))))
		}
	}
	cfg := testConfig(dir)
	cfg.MemoryLimit = 256 << 20 // Go plugins start at several MiB
	cfg.Timeout = abi.Duration(time.Second)
	return newTestHost(t, cfg, opts...)
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func TestExamplePluginsLoad(t *testing.T) {
	paths := examplePlugins(t)
	h := examplesHost(t, paths)
	for _, m := range h.Modules("") {
		if m.LoadError != "" || len(m.Exports) == 0 {
			t.Errorf("%s: load error %q, exports %v", m.Name, m.LoadError, m.Exports)
		}
	}
}

func TestExamplePluginsMatchTheGoSDK(t *testing.T) {
	for _, p := range examplePlugins(t) {
		t.Run(moduleName(p), func(t *testing.T) {
			diffAgainstGoSDK(t, p, nil, job)
		})
	}
}

// hostileExpectations maps words in a hostile module's file name to the
// sandbox failure it must end with.
var hostileExpectations = []struct{ word, exc string }{
	{"amplif", "done"}, // ends well; its result must not grow
	{"import", "refused"},
	{"oversized", "refused"},
	{"table", abi.ExcMemoryLimit},
	{"recurs", abi.ExcTimeout},
	{"loop", abi.ExcTimeout},
	{"spin", abi.ExcTimeout},
	{"sleep", abi.ExcTimeout},
	{"mem", abi.ExcMemoryLimit},
	{"output", abi.ExcOutputTooLarge},
	{"huge", abi.ExcOutputTooLarge},
	{"exit", abi.ExcExit},
	{"http", abi.ExcHTTPDenied},
	{"net", abi.ExcHTTPDenied},
	{"trap", abi.ExcTrap},
	{"unreachable", abi.ExcTrap},
}

func expectedHostile(name string) string {
	for _, e := range hostileExpectations {
		if strings.Contains(name, e.word) {
			return e.exc
		}
	}
	return ""
}

// Every hostile module ends with its sandbox failure within the timeout
// plus a margin while an echo job keeps being served next to it.
func TestHostileCorpus(t *testing.T) {
	paths, _ := filepath.Glob(filepath.Join(examplesDir, "hostile", "*.wasm"))
	if len(paths) == 0 {
		missing(t, "the hostile corpus is not built (make plugins)")
	}
	timeout := 500 * time.Millisecond
	if raceEnabled { // table_steps must reach table_limit before it
		timeout = 3 * time.Second
	}
	dir := t.TempDir()
	copyFile(t, "testdata/kit.wasm", filepath.Join(dir, "kit.wasm"))
	for _, p := range paths {
		copyFile(t, p, filepath.Join(dir, filepath.Base(p)))
	}
	cfg := testConfig(dir)
	cfg.Timeout = abi.Duration(timeout)
	cfg.MemoryLimit = 32 << 20
	cfg.MaxOutput = 4 << 20  // the default: amplified_output fits, huge_output does not
	cfg.TableLimit = 1 << 18 // table_steps is stopped at its third grow, not its eleventh
	h := newTestHost(t, cfg)
	loaded := map[string]abi.ModuleInfo{}
	for _, m := range h.Modules("") {
		loaded[m.Name] = m
	}

	stop := make(chan struct{})
	echoErr := make(chan error, 1)
	go func() {
		n := 0
		defer func() { close(echoErr) }()
		for {
			select {
			case <-stop:
				if n == 0 {
					echoErr <- errors.New("no echo job completed next to the hostile ones")
				}
				return
			default:
			}
			if o := h.Run(context.Background(), job("kit.echo")); o.Kind != abi.OutcomeDone {
				echoErr <- errors.New("echo failed next to the hostile ones: " + o.ExcName + " " + o.ExcMessage)
				return
			}
			n++
		}
	}()
	var wg sync.WaitGroup
	for _, p := range paths {
		name := moduleName(p)
		want := expectedHostile(name)
		m := loaded[name]
		if want == "" {
			t.Errorf("%s: no expectation for this hostile module; add one to hostileExpectations", name)
			continue
		}
		if want == "refused" {
			if m.LoadError == "" {
				t.Errorf("%s: loaded, want it refused", name)
			}
			continue
		}
		if m.LoadError != "" || len(m.Exports) == 0 {
			t.Errorf("%s: load error %q exports %v", name, m.LoadError, m.Exports)
			continue
		}
		for _, fn := range m.Exports {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				o := h.Run(context.Background(), job(name+"."+fn))
				took := time.Since(start)
				if want == "done" {
					// 4,000,000 NUL bytes: kept as base64, at most 4/3 of them.
					if o.Kind != abi.OutcomeDone || len(o.Result) > 4000000*4/3+64 {
						t.Errorf("%s.%s: got %s %s, a %d-byte result; want done, at most 4/3 of the output", name, fn, o.Kind, o.ExcName, len(o.Result))
					}
					return
				}
				if o.Kind != abi.OutcomeSandbox || o.ExcName != want {
					t.Errorf("%s.%s: got %s %s %q, want %s", name, fn, o.Kind, o.ExcName, o.ExcMessage, want)
				}
				if took > timeout+2*time.Second {
					t.Errorf("%s.%s took %s, want within %s plus a margin", name, fn, took, timeout)
				}
				if want == abi.ExcTimeout {
					t.Logf("%s.%s ended %s after its %s timeout", name, fn, (took - timeout).Round(time.Millisecond), timeout)
				}
			}()
		}
	}
	wg.Wait()
	close(stop)
	if err := <-echoErr; err != nil {
		t.Error(err)
	}
}

// Every testkit function through the host, with its asserted outcome.
func TestTestkitFunctions(t *testing.T) {
	path := filepath.Join(examplesDir, "testkit", "testkit.wasm")
	if !fileExists(path) {
		missing(t, path+" is not built (make plugins)")
	}
	h := examplesHost(t, []string{path})
	mk := func(fn, args, kwargs string, attempt int) *abi.Job {
		j := job("testkit." + fn)
		j.Args, j.Kwargs, j.Attempt = jsonRaw(args), jsonRaw(kwargs), attempt
		return j
	}
	cases := []struct {
		name string
		j    *abi.Job
		kind abi.OutcomeKind
		exc  string
		chk  func(t *testing.T, o abi.Outcome)
	}{
		{"echo", mk("echo", `[1]`, `{}`, 1), abi.OutcomeDone, "", func(t *testing.T, o abi.Outcome) {
			if !strings.Contains(string(o.Result), `"args":[1]`) {
				t.Errorf("result %s", o.Result)
			}
		}},
		{"sleep", mk("sleep", `[]`, `{"ms":20}`, 1), abi.OutcomeDone, "", func(t *testing.T, o abi.Outcome) {
			if !strings.Contains(string(o.Result), `"slept_ms"`) || o.Duration < 20*time.Millisecond {
				t.Errorf("result %s after %s", o.Result, o.Duration)
			}
		}},
		{"retry", mk("retry", `[]`, `{"seconds":30,"ignore_retry":true}`, 1), abi.OutcomeRetry, "", func(t *testing.T, o abi.Outcome) {
			if o.RetryAfter != 30*time.Second || !o.IgnoreRetry {
				t.Errorf("retry %+v", o)
			}
		}},
		{"fail", mk("fail", `[]`, `{"message":"bad"}`, 1), abi.OutcomeFailed, abi.ExcError, func(t *testing.T, o abi.Outcome) {
			if !strings.Contains(o.ExcMessage, "bad") {
				t.Errorf("message %q", o.ExcMessage)
			}
		}},
		{"fail_final", mk("fail_final", `[]`, `{"message":"bad"}`, 1), abi.OutcomeFailed, abi.ExcFailed, nil},
		{"nothing_to_do", mk("nothing_to_do", `[]`, `{}`, 1), abi.OutcomeNothingToDo, "", nil},
		{"script ok", mk("script", `["retry","ok"]`, `{}`, 2), abi.OutcomeDone, "", nil},
		{"script retry", mk("script", `["retry:5","ok"]`, `{}`, 1), abi.OutcomeRetry, "", func(t *testing.T, o abi.Outcome) {
			if o.RetryAfter != 5*time.Second {
				t.Errorf("retry after %s", o.RetryAfter)
			}
		}},
		{"script final", mk("script", `["final:no"]`, `{}`, 3), abi.OutcomeFailed, abi.ExcFailed, nil},
		{"script hang", mk("script", `["hang"]`, `{}`, 1), abi.OutcomeSandbox, abi.ExcTimeout, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := h.Run(context.Background(), c.j)
			if o.Kind != c.kind || o.ExcName != c.exc {
				t.Fatalf("got %s %s %q (result %s), want %s %s", o.Kind, o.ExcName, o.ExcMessage, o.Result, c.kind, c.exc)
			}
			if c.chk != nil {
				c.chk(t, o)
			}
		})
	}
}
