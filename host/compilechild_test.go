package host

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/host/wasmgen"
)

// The test binary is its own compile child when asked (as `wasmq serve`
// runs itself): the child's side is CompileChild, unchanged.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == "compile-child" || os.Args[1] == "slow-compile-child") {
		if os.Args[1] == "slow-compile-child" {
			time.Sleep(300 * time.Millisecond) // a compile that takes its time
		}
		cfg := Config{}
		for i := 2; i+1 < len(os.Args); i += 2 {
			switch os.Args[i] {
			case "--cache-dir":
				cfg.CacheDir = os.Args[i+1]
			case "--timeout":
				d, _ := time.ParseDuration(os.Args[i+1])
				cfg.CompileTimeout = abi.Duration(d)
			}
		}
		if err := CompileChild(cfg, os.Stdin); err != nil {
			os.Stderr.WriteString(err.Error())
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// With a compile child, a module that compiles past host.compile_timeout
// or host.compile_memory is refused naming the key, whatever its shape;
// a module within both compiles once in a child, is marked, and loads
// from the cache after.
func TestTheCompileChildBoundsEveryShape(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bomb := wasmgen.Module(wasmgen.BlocksOverLocals(5000))
	for _, tc := range []struct {
		name string
		set  func(*Config)
		says string
	}{
		{"time", func(c *Config) { c.CompileTimeout = abi.Duration(5e9) }, "compiling it took longer than host.compile_timeout (5s)"},
		{"memory", func(c *Config) { c.CompileMemory = 96 << 20 }, "compiling it took more than host.compile_memory (96MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t.TempDir())
			cfg.CacheDir = t.TempDir()
			cfg.CompileCommand = []string{self, "compile-child"}
			tc.set(&cfg)
			h := newTestHost(t, cfg)
			if _, err := h.Install("acme", "bomb", bomb); err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("install the bomb: %v, want %q", err, tc.says)
			}
			kit, err := os.ReadFile(filepath.Join(examplesDir, "testkit", "testkit.wasm"))
			if err != nil {
				t.Fatal(err)
			}
			info, err := h.Install("acme", "kit", kit)
			if err != nil {
				t.Fatalf("install testkit after the bomb: %v", err)
			}
			if _, err := os.Stat(filepath.Join(cfg.CacheDir, "bounded", info.SHA256)); err != nil {
				t.Errorf("testkit compiled in a child is not marked: %v", err)
			}
			if o := run(t, h, job("kit.echo")); o.Kind != abi.OutcomeDone {
				t.Errorf("kit.echo: %s %s %q", o.Kind, o.ExcName, o.ExcMessage)
			}
		})
	}
	// An invalid module is refused with the child's reason.
	cfg := testConfig(t.TempDir())
	cfg.CompileCommand = []string{self, "compile-child"}
	h := newTestHost(t, cfg)
	if _, err := h.Install("", "bad", []byte("\x00asm\x01\x00\x00\x00\x01\x04\x01\x60\x00")); err == nil || !strings.Contains(err.Error(), "section 1") {
		t.Errorf("install an invalid module: %v", err)
	}
}

// A child whose node is gone without killing it (off Linux, or a
// parent-death signal lost) ends itself a little after its deadline.
func TestACompileChildEndsItselfPastItsDeadline(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "compile-child", "--cache-dir", t.TempDir(), "--timeout", "1s")
	cmd.Stdin = bytes.NewReader(wasmgen.Module(wasmgen.BlocksOverLocals(5000)))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err = cmd.Run()
	if cmd.ProcessState.ExitCode() != 3 || !strings.Contains(stderr.String(), "host.compile_timeout (1s)") {
		t.Fatalf("the child ended with %v after %s: %s", err, time.Since(start), stderr.String())
	}
	t.Logf("ended itself after %s", time.Since(start))
}

// A module's mark records the bounds its child compiled it under: a node
// with bounds as large or larger trusts it (here its compile child is a
// command that fails, so running one would show), a node with a lower
// bound compiles it in a child again, and a mark that records no bounds
// is not trusted.
func TestAModuleIsCompiledAgainWhenABoundIsLowered(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	kit, err := os.ReadFile("testdata/kit.wasm")
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	install := func(command string, set func(*Config)) error {
		cfg := testConfig(t.TempDir())
		cfg.CacheDir = cache
		cfg.CompileCommand = []string{command}
		if command == self {
			cfg.CompileCommand = append(cfg.CompileCommand, "compile-child")
		}
		cfg.CompileTimeout, cfg.CompileMemory = abi.Duration(60e9), 1<<30
		set(&cfg)
		_, err := newTestHost(t, cfg).Install("acme", "kit", kit)
		return err
	}
	if err := install(self, func(*Config) {}); err != nil {
		t.Fatalf("the first compile, in a child: %v", err)
	}
	if err := install("/bin/false", func(c *Config) { c.CompileTimeout, c.CompileMemory = abi.Duration(120e9), 2<<30 }); err != nil {
		t.Errorf("larger bounds do not trust the mark: %v", err)
	}
	for _, tc := range []struct {
		name string
		set  func(*Config)
	}{
		{"a shorter compile_timeout", func(c *Config) { c.CompileTimeout = abi.Duration(30e9) }},
		{"a smaller compile_memory", func(c *Config) { c.CompileMemory = 512 << 20 }},
	} {
		if err := install("/bin/false", tc.set); err == nil || !strings.Contains(err.Error(), "compile in a child process") {
			t.Errorf("with %s the mark was trusted: %v", tc.name, err)
		}
	}
	sum := sha256.Sum256(kit)
	if err := os.WriteFile(filepath.Join(cache, "bounded", hex.EncodeToString(sum[:])), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := install("/bin/false", func(*Config) {}); err == nil || !strings.Contains(err.Error(), "compile in a child process") {
		t.Errorf("a mark without bounds was trusted: %v", err)
	}
}

// A tenant sending many uploads at once is compiled one upload at a
// time, so another tenant's upload waits for at most one of them (the
// compiler's lock then goes to whoever waited longest), not for the
// whole flood: here each compile takes 300 ms in its child.
func TestATenantsFloodOfUploadsDoesNotQueueAnother(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t.TempDir())
	cfg.CacheDir = t.TempDir()
	cfg.CompileCommand = []string{self, "slow-compile-child"}
	h := newTestHost(t, cfg)
	const flood = 6
	var mu sync.Mutex
	floodDone := 0
	var wg sync.WaitGroup
	for i := range flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := h.Install("acme", fmt.Sprintf("m%d", i), wasmgen.Module(wasmgen.Flat(300+3*i))); err != nil {
				t.Errorf("acme's upload %d: %v", i, err)
			}
			mu.Lock()
			floodDone++
			mu.Unlock()
		}()
	}
	time.Sleep(100 * time.Millisecond) // the flood is waiting
	if _, err := h.Install("globex", "one", wasmgen.Module(wasmgen.Flat(600))); err != nil {
		t.Fatalf("globex's upload: %v", err)
	}
	mu.Lock()
	before := floodDone
	mu.Unlock()
	wg.Wait()
	if before > 2 {
		t.Errorf("globex's one upload waited for %d of acme's %d", before, flood)
	}
}
