package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/wasmq/wasmq/config"
)

// Load reads wasmq.toml, fills the defaults and validates every section;
// an error names the file and the key, as `wasmq config check` prints it.
func ExampleLoad() {
	dir, _ := os.MkdirTemp("", "wasmq-config-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "wasmq.toml")
	for _, text := range []string{
		"[runner]\nchannels = \"root:4,mail:2\"\n",
		"[host]\ntimout = \"30s\"\n",
		"[runner]\nchannels = \"root:4,mail:0\"\n",
		"[[tenants]]\nname = \"acme\"\ntoken = \"a-long-secret-token\"\nmax_pending = -1\n",
	} {
		os.WriteFile(path, []byte(text), 0o644)
		f, err := config.Load(path)
		if err != nil {
			fmt.Println(strings.TrimPrefix(err.Error(), dir+string(filepath.Separator)))
			continue
		}
		fmt.Println("ok:", f.Store.Driver, f.Runner.Channels, f.Runner.Workers, f.Host.Timeout.D())
	}
	// Output:
	// ok: sqlite root:4,mail:2 4 30s
	// wasmq.toml: unknown key host.timout
	// wasmq.toml: runner.channels: channel entry "mail:0": capacity must be from 1 to 100000 (got 0)
	// wasmq.toml: tenants[0].max_pending: must be 0 (unlimited) or more, got -1
}
