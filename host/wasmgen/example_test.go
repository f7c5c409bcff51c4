package wasmgen_test

import (
	"fmt"

	"github.com/wasmq/wasmq/host/wasmgen"
)

// A module whose one function nests 100,000 blocks: 300 KB that took
// wazero 86 s to compile before the host refused the shape.
func ExampleNested() {
	m := wasmgen.Module(wasmgen.Nested(100000))
	fmt.Printf("%d bytes, magic %q\n", len(m), m[:4])
	// Output: 300054 bytes, magic "\x00asm"
}
