package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// blocksOverLocals is a module whose one function is n blocks in a row,
// each left by a br_if and each reading and writing locals of its own:
// a shape instrument's bounds let through (its counts are those of real
// functions) that took wazero 53 s and 1.3 GB at n = 5,000 (70 KB).
func blocksOverLocals(n int) []byte {
	uleb := func(b []byte, v uint64) []byte {
		for ; v >= 0x80; v >>= 7 {
			b = append(b, byte(v)|0x80)
		}
		return append(b, byte(v))
	}
	body := uleb([]byte{1}, 50000) // one group of 50,000 i32 locals
	body = append(body, 0x7f)
	for i := range n {
		body = append(body, 0x02, 0x40, 0x20)
		body = uleb(body, uint64(i*7%50000))
		body = append(body, 0x0d, 0, 0x41, 1, 0x21)
		body = uleb(body, uint64((i*13+1)%50000))
		body = append(body, 0x0b)
	}
	body = append(body, 0x41, 0, 0x0b)
	code := uleb([]byte{1}, uint64(len(body)))
	code = append(code, body...)
	m := []byte("\x00asm\x01\x00\x00\x00\x01\x05\x01\x60\x00\x01\x7f\x03\x02\x01\x00\x07\x07\x01\x03run\x00\x00\x0a")
	m = uleb(m, uint64(len(code)))
	return append(m, code...)
}

// A node compiles every module in a child process bounded in time and
// memory, so a compile bomb no shape check knows is refused at either
// bound, naming it, and the node goes on: the next upload compiles (once:
// the node loads the child's result from the compilation cache) and runs.
func TestACompileBombIsStoppedByTheChildsBounds(t *testing.T) {
	c := buildCLI(t)
	bomb := blocksOverLocals(5000)
	for _, tc := range []struct{ name, key, says string }{
		{"time", `compile_timeout = "5s"`, "compiling it took longer than host.compile_timeout (5s)"},
		{"memory", `compile_memory = "128MiB"`, "compiling it took more than host.compile_memory (128MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ln, _ := net.Listen("tcp", "127.0.0.1:0")
			addr := ln.Addr().String()
			ln.Close()
			cfg := filepath.Join(dir, "wasmq.toml")
			os.WriteFile(cfg, []byte(fmt.Sprintf("[server]\nlisten = %q\n[store]\npath = %q\n[host]\nplugins_dir = %q\ncache_dir = %q\n%s\n",
				addr, filepath.Join(dir, "wasmq.db"), filepath.Join(dir, "plugins"), filepath.Join(dir, "cache"), tc.key)), 0o644)
			srv := exec.Command(c.bin, "serve", "--config", cfg)
			var log bytes.Buffer
			srv.Stdout, srv.Stderr = &log, &log
			if err := srv.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				srv.Process.Signal(syscall.SIGTERM)
				srv.Wait()
				if t.Failed() {
					t.Logf("serve log:\n%s", log.String())
				}
			}()
			url := "http://" + addr
			waitUp(t, url)
			put := func(name string, wasm []byte) (int, string) {
				req, _ := http.NewRequest("PUT", url+"/v1/plugins/"+name, bytes.NewReader(wasm))
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				b, _ := io.ReadAll(res.Body)
				return res.StatusCode, string(b)
			}
			if code, body := put("bomb", bomb); code != 422 || !strings.Contains(body, tc.says) {
				t.Fatalf("upload of the bomb: %d %s, want 422 saying %q", code, body, tc.says)
			}
			if out, err := exec.Command("pgrep", "-f", compileChildCommand).Output(); err == nil && len(out) > 0 {
				t.Errorf("a compile child outlived its refusal: pids %s", out)
			}
			kit, err := os.ReadFile("../../plugins/examples/testkit/testkit.wasm")
			if err != nil {
				t.Fatal(err)
			}
			if code, body := put("kit", kit); code != 201 {
				t.Fatalf("upload of testkit after the bomb: %d %s", code, body)
			}
			res, err := http.Post(url+"/v1/jobs", "application/json", strings.NewReader(`{"func":"kit.echo","args":[1]}`))
			if err != nil || res.StatusCode != 201 {
				t.Fatalf("enqueue kit.echo: %v %v", res, err)
			}
			res.Body.Close()
		})
	}
}

// waitUp waits for a node's /readyz.
func waitUp(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if res, err := http.Get(url + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not become ready", url)
}
