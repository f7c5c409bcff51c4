package host

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	extism "github.com/extism/go-sdk"
	"github.com/tetratelabs/wazero"
	"github.com/wasmq/wasmq/abi"
)

// goSDKUserFunctions registers wasmq's extism:host/user functions in the
// Extism go-sdk with the same observable behaviour as this host, so the
// go-sdk can serve as the reference implementation of extism:host/env.
func goSDKUserFunctions() []extism.HostFunction {
	i32, i64 := extism.ValueTypeI32, extism.ValueTypeI64
	noop := func(ctx context.Context, p *extism.CurrentPlugin, s []uint64) {}
	fns := []extism.HostFunction{
		extism.NewHostFunctionWithStack(abi.HostRetry, noop, []extism.ValueType{i64, i32, i64}, nil),
		extism.NewHostFunctionWithStack(abi.HostFail, noop, []extism.ValueType{i64}, nil),
		extism.NewHostFunctionWithStack(abi.HostNothingToDo, noop, []extism.ValueType{i64}, nil),
		extism.NewHostFunctionWithStack(abi.HostLog, noop, []extism.ValueType{i32, i64}, nil),
		extism.NewHostFunctionWithStack(abi.HostEnqueue, func(ctx context.Context, p *extism.CurrentPlugin, s []uint64) {
			s[0], _ = p.WriteBytes([]byte(`{"error":"this host cannot enqueue child jobs"}`))
		}, []extism.ValueType{i64}, []extism.ValueType{i64}),
		extism.NewHostFunctionWithStack(abi.HostSleep, func(ctx context.Context, p *extism.CurrentPlugin, s []uint64) {
			time.Sleep(time.Duration(int64(s[0])) * time.Millisecond)
			s[0] = 0
		}, []extism.ValueType{i64}, []extism.ValueType{i32}),
		extism.NewHostFunctionWithStack(abi.HostNow, func(ctx context.Context, p *extism.CurrentPlugin, s []uint64) {
			s[0] = uint64(time.Now().UnixNano())
		}, nil, []extism.ValueType{i64}),
		extism.NewHostFunctionWithStack(abi.HostProgress, func(ctx context.Context, p *extism.CurrentPlugin, s []uint64) {
			if int32(uint32(s[0])) < 0 || int32(uint32(s[0])) > 100 {
				s[0] = 1
				return
			}
			s[0] = 0
		}, []extism.ValueType{i32, i64}, []extism.ValueType{i32}),
	}
	for i := range fns {
		fns[i].SetNamespace(abi.HostUserModule)
	}
	return fns
}

type rawCall struct {
	input, output []byte
	rc            int32
	errMsg        string
}

// diffAgainstGoSDK runs each function of the module at path under this
// host and under the go-sdk with the same input, and asserts byte-identical
// outputs, return codes and error messages. Functions that end in a
// sandbox failure under this host are not compared.
func diffAgainstGoSDK(t *testing.T, path string, funcs []string, mkJob func(fn string) *abi.Job) {
	t.Helper()
	wasm, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var last *rawCall
	observe := func(o *options) {
		o.observe = func(in, out []byte, rc int32, msg string) {
			mu.Lock()
			last = &rawCall{in, out, rc, msg}
			mu.Unlock()
		}
	}
	dir := t.TempDir()
	copyFile(t, path, filepath.Join(dir, "m.wasm"))
	cfg := testConfig(dir)
	cfg.Isolation = IsolationFresh
	h := newTestHost(t, cfg, observe)
	if len(funcs) == 0 {
		funcs = h.Modules("")[0].Exports
	}
	ctx := context.Background()
	// wasmq keeps a plugin's log lines at every level (get_log_level
	// answers 0, trace): the SDK does the same once told so (without a
	// level it answers "off", and PDKs then skip their log calls).
	extism.SetLogLevel(extism.LogLevelTrace)
	sdkCache := wazero.NewCompilationCache()
	defer sdkCache.Close(ctx)
	for _, fn := range funcs {
		t.Run(fn, func(t *testing.T) {
			mu.Lock()
			last = nil
			mu.Unlock()
			o := h.Run(ctx, mkJob("m."+fn))
			mu.Lock()
			mine := last
			mu.Unlock()
			if mine == nil {
				t.Skipf("ends in %s %s under this host; not compared", o.Kind, o.ExcName)
			}
			plugin, err := extism.NewPlugin(ctx, extism.Manifest{Wasm: []extism.Wasm{extism.WasmData{Data: wasm}}},
				extism.PluginConfig{EnableWasi: true, RuntimeConfig: wazero.NewRuntimeConfig().WithCompilationCache(sdkCache)},
				goSDKUserFunctions())
			if err != nil {
				t.Fatalf("go-sdk: %v", err)
			}
			defer plugin.Close(ctx)
			plugin.SetLogger(func(extism.LogLevel, string) {})
			rc, out, err := plugin.Call(fn, mine.input)
			if int32(rc) != mine.rc {
				t.Fatalf("rc: go-sdk %d, wasmq %d (go-sdk error %v)", int32(rc), mine.rc, err)
			}
			if !bytes.Equal(maskClock(out), maskClock(mine.output)) {
				t.Fatalf("output differs:\ngo-sdk %q\nwasmq  %q", out, mine.output)
			}
			sdkMsg := ""
			if err != nil {
				sdkMsg = err.Error()
			}
			if rc != 0 && sdkMsg != mine.errMsg {
				t.Fatalf("error: go-sdk %q, wasmq %q", sdkMsg, mine.errMsg)
			}
		})
	}
}

func TestKitMatchesTheGoSDK(t *testing.T) {
	diffAgainstGoSDK(t, "testdata/kit.wasm",
		[]string{"echo", "version", "text", "error", "control", "logs", "now", "enqueue", "retry", "fail", "nothing"}, job)
}

// maskClock zeroes the values of top-level "*_ns" keys of a JSON object
// output: wall-clock readings (wasmq_now_v1) differ between two runs by
// nature. Everything else must match byte for byte.
func maskClock(out []byte) []byte {
	var top map[string]json.RawMessage
	if json.Unmarshal(out, &top) != nil {
		return out
	}
	masked := false
	for k := range top {
		if strings.HasSuffix(k, "_ns") {
			top[k] = json.RawMessage("0")
			masked = true
		}
	}
	if !masked {
		return out
	}
	b, _ := json.Marshal(top)
	return b
}

// TestKernelMatchesTheGoSDK calls every function of Extism's kernel
// (testdata/kernel.wat, whose exports report what they observed) under
// this host and under the Go SDK, and asserts the same outputs, return
// codes and error messages: what keeps the re-implemented kernel
// compatible with the reference (docs/abi.md).
func TestKernelMatchesTheGoSDK(t *testing.T) {
	diffAgainstGoSDK(t, "testdata/kernel.wasm",
		[]string{"blocks", "input", "output", "error", "vars", "reset", "http", "logs"}, job)
}
