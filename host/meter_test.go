package host

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/wasmq/wasmq/abi"
)

// An endless loop under max_fuel ends wasmq.FuelExhausted at exactly its
// max_fuel, on every run, on a pooled instance that ran other calls before
// and on a fresh one: fuel does not depend on the machine or the timing.
func TestMaxFuelStopsAnEndlessLoopAtTheSameFuelEveryRun(t *testing.T) {
	for _, maxFuel := range []int64{10, checkEvery, 100_003} {
		for _, isolation := range []string{IsolationPooled, IsolationFresh} {
			dir := t.TempDir()
			copyFile(t, "testdata/kit.wasm", filepath.Join(dir, "kit.wasm"))
			writeFile(t, filepath.Join(dir, "kit.toml"), "[functions.loop]\nmax_fuel = "+strconv.FormatInt(maxFuel, 10)+"\n")
			cfg := testConfig(dir)
			cfg.Isolation = isolation
			h := newTestHost(t, cfg)
			for i := range 5 {
				// A call before leaves the pooled instance's counter
				// anywhere: the limit must not depend on it.
				if o := run(t, h, job("kit.echo")); o.Kind != abi.OutcomeDone {
					t.Fatalf("echo: %s %s", o.Kind, o.ExcMessage)
				}
				o := run(t, h, job("kit.loop"))
				if o.Kind != abi.OutcomeSandbox || o.ExcName != abi.ExcFuelExhausted {
					t.Fatalf("max_fuel %d %s run %d: %s %s %s, want %s", maxFuel, isolation, i, o.Kind, o.ExcName, o.ExcMessage, abi.ExcFuelExhausted)
				}
				if o.Usage.Fuel != maxFuel {
					t.Fatalf("max_fuel %d %s run %d: used %d fuel", maxFuel, isolation, i, o.Usage.Fuel)
				}
			}
		}
	}
}

// Fuel counts function entries and loop iterations: kit.echo enters once
// and copies its input in a loop whose header runs once per byte and once
// more to leave, so it uses len(input)+2, the same on every run.
func TestFuelOfAKnownFunctionIsExactAndStable(t *testing.T) {
	var inputs [][]byte
	h, _ := kitHost(t, "", func(o *options) {
		o.observe = func(input, _ []byte, _ int32, _ string) { inputs = append(inputs, input) }
	})
	j := job("kit.echo")
	for i := range 5 {
		o := run(t, h, j)
		if o.Kind != abi.OutcomeDone {
			t.Fatalf("echo: %s %s", o.Kind, o.ExcMessage)
		}
		if want := int64(len(inputs[i])) + 2; o.Usage.Fuel != want {
			t.Fatalf("run %d: fuel %d, want %d (input of %d bytes)", i, o.Usage.Fuel, want, len(inputs[i]))
		}
		if o.Usage.PeakMemory != wasmPage {
			t.Errorf("run %d: peak memory %d, want one page", i, o.Usage.PeakMemory)
		}
		if o.Usage.HostCalls != 0 || o.Usage.HTTPRequests != 0 {
			t.Errorf("run %d: echo calls only kernel primitives, got %+v", i, o.Usage)
		}
		if o.Usage.WallMS != o.Duration.Milliseconds() {
			t.Errorf("run %d: wall %d ms, duration %s", i, o.Usage.WallMS, o.Duration)
		}
	}
}

// Host calls count what the plugin asked of the host, not the kernel's
// per-byte primitives; HTTP counts the request and its bytes.
func TestHostCallsAndHTTPAreCountedAsThePluginMadeThem(t *testing.T) {
	body := `{"ok":true,"padding":"` + strings.Repeat("x", 1000) + `"}`
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(body)) }))
	defer target.Close()
	sidecar := "[config]\nreq = '{\"url\":\"" + target.URL + "/\"}'\n[functions.http]\nallowed_hosts = [\"" + strings.TrimPrefix(target.URL, "http://") + "\"]\n"
	h, _ := kitHost(t, sidecar, WithAllowLoopback())

	o := run(t, h, job("kit.http"))
	if o.Kind != abi.OutcomeDone {
		t.Fatalf("http: %s %s", o.Kind, o.ExcMessage)
	}
	// config_get, http_request, http_status_code.
	want := abi.Usage{HostCalls: 3, HTTPRequests: 1, HTTPBytesIn: int64(len(body))}
	if got := o.Usage; got.HostCalls != want.HostCalls || got.HTTPRequests != want.HTTPRequests || got.HTTPBytesIn != want.HTTPBytesIn || got.HTTPBytesOut != 0 {
		t.Errorf("http usage %+v, want %+v", got, want)
	}

	o = run(t, h, job("kit.logs")) // log_info and wasmq_log_v1
	if o.Kind != abi.OutcomeDone || o.Usage.HostCalls != 2 || o.Usage.HTTPRequests != 0 {
		t.Errorf("logs: %s, usage %+v, want 2 host calls", o.Kind, o.Usage)
	}
}

// A sidecar's max_fuel is checked when the plugin loads, naming the key.
func TestMaxFuelOutOfBoundsIsRefusedNamingTheKey(t *testing.T) {
	for _, v := range []string{"-1", "1125899906842625"} {
		_, err := parseSidecar("kit.toml", []byte("[functions.loop]\nmax_fuel = "+v+"\n"))
		if err == nil || !strings.Contains(err.Error(), "functions.loop.max_fuel") {
			t.Errorf("max_fuel = %s: %v, want an error naming functions.loop.max_fuel", v, err)
		}
	}
}
