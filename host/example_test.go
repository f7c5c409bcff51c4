package host_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/rs/zerolog"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/host"
)

// A host runs job functions from the modules in plugins_dir, each call in
// a sandbox under the limits of the config: a well-behaved plugin returns
// its result, a hostile one is stopped at its limit and reported, and the
// host goes on serving.
func ExampleHost_Run() {
	dir, _ := os.MkdirTemp("", "wasmq-host-example")
	defer os.RemoveAll(dir)
	for _, src := range []string{
		"../plugins/examples/testkit/testkit.wasm",       // Rust, Extism's ABI
		"../plugins/examples/hostile/infinite_loop.wasm", // loops forever
		"../plugins/examples/hostile/memory_bomb.wasm",   // grows its memory until refused
		"../plugins/examples/hostile/trap.wasm",          // unreachable
	} {
		b, err := os.ReadFile(src)
		if err != nil {
			panic(err)
		}
		os.WriteFile(filepath.Join(dir, filepath.Base(src)), b, 0o644)
	}
	h, err := host.New(host.Config{
		PluginsDir:  dir,
		Timeout:     abi.Duration(200 * time.Millisecond),
		MemoryLimit: 16 << 20,
	}, zerolog.Nop())
	if err != nil {
		panic(err)
	}
	defer h.Close(context.Background())

	job := &abi.Job{UUID: "j1", Tenant: "acme", Func: "testkit.echo", Args: json.RawMessage(`[42,"welcome"]`)}
	out := h.Run(context.Background(), job)
	var echoed abi.Input // echo returns its input document: args, kwargs, context
	json.Unmarshal(out.Result, &echoed)
	fmt.Println(out.Kind, string(echoed.Args))

	for _, fn := range []string{"infinite_loop.run", "memory_bomb.run", "trap.unreachable", "testkit.missing"} {
		out := h.Run(context.Background(), &abi.Job{UUID: "j2", Tenant: "acme", Func: fn})
		fmt.Println(fn, out.Kind, out.ExcName)
	}
	// Output:
	// done [42,"welcome"]
	// infinite_loop.run sandbox wasmq.Timeout
	// memory_bomb.run sandbox wasmq.MemoryLimit
	// trap.unreachable sandbox wasmq.Trap
	// testkit.missing failed wasmq.PluginNotFound
}

// CheckFile lists every reason a module would be refused before it is
// installed (what `wasmq plugins check` prints), and what a good one
// exports.
func ExampleCheckFile() {
	_, errs := host.CheckFile("../plugins/examples/hostile/oversized_table.wasm")
	for _, err := range errs {
		fmt.Println(err)
	}
	info, errs := host.CheckFile("../plugins/examples/testkit/testkit.wasm")
	fmt.Println(len(errs), slices.Contains(info.Exports, "echo"))
	// Output:
	// table 0 starts with 130000000 entries, over host.table_limit of 1048576: it could never run
	// 0 true
}
