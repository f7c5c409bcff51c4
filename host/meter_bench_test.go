package host

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/wasmq/wasmq/abi"
)

// BenchmarkMetering measures what counting usage costs: Host.Run of the
// example modules, pooled and fresh, with the meter ("on") and without
// ("off", the unexported withoutMetering option: no fuel global access,
// no check accounting, host functions not wrapped).
func BenchmarkMetering(b *testing.B) {
	for name, path := range benchModules(b) {
		for _, iso := range []string{IsolationPooled, IsolationFresh} {
			for _, meter := range []string{"on", "off"} {
				b.Run(name+"/"+iso+"/"+meter, func(b *testing.B) {
					dir := b.TempDir()
					copyFile(b, path, filepath.Join(dir, "m.wasm"))
					cfg := testConfig(dir)
					cfg.Isolation = iso
					var opts []Option
					if meter == "off" {
						opts = append(opts, withoutMetering())
					}
					h := newTestHost(b, cfg, opts...)
					j := job("m." + benchFunc(name))
					j.Args, j.Kwargs, j.Context = jsonRaw(`["x"]`), jsonRaw(`{}`), jsonRaw(`{}`)
					o := h.Run(context.Background(), j)
					if o.Kind != abi.OutcomeDone {
						b.Fatalf("%+v", o)
					}
					if (o.Usage.Fuel > 0) != (meter == "on") {
						b.Fatalf("meter %s: fuel %d", meter, o.Usage.Fuel)
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
		}
	}
}
