// flaky.quote is the replay example (docs/replay.md). It reads the world
// through each nondeterministic import a plugin has — the WASI wall clock
// (time.Now), WASI random bytes (crypto/rand), wasmq's clock and an HTTP
// GET — and fails for good when the quote service does not answer 200 or
// answers "outage". The message carries all it read, so a replay that
// repeats it byte for byte was fed the same clock, bytes and response.
//
// Built twice from this folder: flaky.wasm (the bug) and, with -tags
// fixed, flaky_fixed.wasm, which falls back to a default quote instead:
// the build a plugin author checks with `wasmq replay UUID --plugin
// flaky_fixed.wasm`.
//
// args: ["http://host:port/path"], the quote service's URL.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

//go:wasmexport quote
func quote() int32 {
	var in struct {
		Args []string `json:"args"`
	}
	if err := json.Unmarshal(Input(), &in); err != nil || len(in.Args) == 0 {
		SetErrorString("args[0] must be the quote service's URL")
		return 1
	}
	wall := time.Now().UTC()
	nonce := make([]byte, 8)
	rand.Read(nonce)
	status, body := HTTPGet(in.Args[0], map[string]string{"x-nonce": hex.EncodeToString(nonce)})
	now := Now()
	answer := strings.TrimSpace(string(body))
	if status != 200 || answer == "outage" {
		if fixed {
			Output(mustJSON(map[string]any{"quote": "default", "fallback": true, "status": status, "nonce": hex.EncodeToString(nonce)}))
			return 0
		}
		Fail(fmt.Sprintf("quote service answered %d %q at wall=%s now=%d nonce=%x",
			status, answer, wall.Format(time.RFC3339Nano), now, nonce))
		return 0
	}
	Output(mustJSON(map[string]any{"quote": answer, "nonce": hex.EncodeToString(nonce)}))
	return 0
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func main() {}
