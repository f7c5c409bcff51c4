package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmq/wasmq/host/wasmgen"
)

// A node compiles every module in a child process bounded in time and
// memory, so a compile bomb no shape check knows is refused at either
// bound, naming it, and the node goes on: the next upload compiles (once:
// the node loads the child's result from the compilation cache) and runs.
func TestACompileBombIsStoppedByTheChildsBounds(t *testing.T) {
	c := buildCLI(t)
	bomb := wasmgen.Module(wasmgen.BlocksOverLocals(5000))
	for _, tc := range []struct{ name, key, says string }{
		{"time", `compile_timeout = "5s"`, "compiling it took longer than host.compile_timeout (5s)"},
		{"memory", `compile_memory = "128MiB"`, "compiling it took more than host.compile_memory (128MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := launchNode(t, c.bin, "bomb-"+tc.name, func(addr, dir string) string {
				return fmt.Sprintf("[server]\nlisten = %q\n[store]\npath = %q\n[host]\nplugins_dir = %q\ncache_dir = %q\n%s\n",
					addr, filepath.Join(dir, "wasmq.db"), filepath.Join(dir, "plugins"), filepath.Join(dir, "cache"), tc.key)
			})
			url := n.url
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
			var job struct{ UUID, State string }
			json.NewDecoder(res.Body).Decode(&job)
			res.Body.Close()
			for deadline := time.Now().Add(30 * time.Second); job.State != "done"; time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("kit.echo still %s after 30 s", job.State)
				}
				if res, err := http.Get(url + "/v1/jobs/" + job.UUID); err == nil {
					json.NewDecoder(res.Body).Decode(&job)
					res.Body.Close()
				}
			}
		})
	}
}

// A node killed while a child compiles for it takes the child along: no
// compile bomb goes on burning a core for a node that is gone.
func TestACompileChildDiesWithItsNode(t *testing.T) {
	c := buildCLI(t)
	var cache string
	n := launchNode(t, c.bin, "orphan", func(addr, dir string) string {
		cache = filepath.Join(dir, "cache")
		return fmt.Sprintf("[server]\nlisten = %q\n[store]\npath = %q\n[host]\nplugins_dir = %q\ncache_dir = %q\n",
			addr, filepath.Join(dir, "wasmq.db"), filepath.Join(dir, "plugins"), cache)
	})
	go func() {
		req, _ := http.NewRequest("PUT", n.url+"/v1/plugins/bomb", bytes.NewReader(wasmgen.Module(wasmgen.BlocksOverLocals(5000))))
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
		}
	}()
	children := func() string {
		out, _ := exec.Command("pgrep", "-f", compileChildCommand+".*"+cache).Output()
		return strings.TrimSpace(string(out))
	}
	deadline := time.Now().Add(20 * time.Second)
	for children() == "" {
		if time.Now().After(deadline) {
			t.Fatal("no compile child started for the upload")
		}
		time.Sleep(20 * time.Millisecond)
	}
	n.cmd.Process.Kill()
	n.cmd.Wait()
	for deadline := time.Now().Add(5 * time.Second); children() != ""; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the compile child %s outlived its node by 5 s", children())
		}
	}
}
