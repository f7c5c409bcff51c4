package host

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	extism "github.com/extism/go-sdk"
	"github.com/tetratelabs/wazero"
	"github.com/wasmq/wasmq/abi"
)

// BenchmarkVersusGoSDK runs one job's call side by side under this host
// and under the Extism Go SDK, with the same module and the same input
// document (docs/abi.md, "Why not the Extism Go SDK at run time"):
//
//	wasmq/pooled   Host.Run, instances pooled per tenant (the default)
//	wasmq/fresh    Host.Run, a new instance per job
//	sdk/fresh      CompiledPlugin.Instance + Call + Close: the SDK's way
//	               to give each job clean memory
//	sdk/reused     one SDK instance called again and again: no pool, no
//	               limits per job, memory never recycled
//
// Host.Run counts more than the SDK's call: the input document is built
// from the job, the outcome read and classified, log lines kept.
func BenchmarkVersusGoSDK(b *testing.B) {
	for name, path := range benchModules(b) {
		if name == "small-kit" {
			continue // not an Extism PDK module
		}
		wasm, err := os.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		fn := benchFunc(name)
		j := job("m." + fn)
		j.Args, j.Kwargs, j.Context = jsonRaw(`["x"]`), jsonRaw(`{}`), jsonRaw(`{}`)
		for _, iso := range []string{IsolationPooled, IsolationFresh} {
			b.Run(name+"/wasmq/"+iso, func(b *testing.B) {
				dir := b.TempDir()
				copyFile(b, path, filepath.Join(dir, "m.wasm"))
				cfg := testConfig(dir)
				cfg.Isolation = iso
				cfg.MemoryLimit = 256 << 20
				h := newTestHost(b, cfg)
				if o := h.Run(context.Background(), j); o.Kind != abi.OutcomeDone {
					b.Fatalf("%+v", o)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if o := h.Run(context.Background(), j); o.Kind != abi.OutcomeDone {
						b.Fatalf("%+v", o)
					}
				}
			})
		}
		input, err := appendInputDocument(nil, j, j.DateCreated)
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		cache := wazero.NewCompilationCache()
		cp, err := extism.NewCompiledPlugin(ctx, extism.Manifest{Wasm: []extism.Wasm{extism.WasmData{Data: wasm}}},
			extism.PluginConfig{EnableWasi: true, RuntimeConfig: wazero.NewRuntimeConfig().WithCompilationCache(cache).WithCloseOnContextDone(true)},
			goSDKUserFunctions())
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name+"/sdk/fresh", func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				p, err := cp.Instance(ctx, extism.PluginInstanceConfig{})
				if err != nil {
					b.Fatal(err)
				}
				if rc, _, err := p.Call(fn, input); rc != 0 || err != nil {
					b.Fatal(rc, err)
				}
				p.Close(ctx)
			}
		})
		b.Run(name+"/sdk/reused", func(b *testing.B) {
			p, err := cp.Instance(ctx, extism.PluginInstanceConfig{})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close(ctx)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if rc, _, err := p.Call(fn, input); rc != 0 || err != nil {
					b.Fatal(rc, err)
				}
			}
		})
		cp.Close(ctx)
		cache.Close(ctx)
	}
}
