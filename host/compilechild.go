package host

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Why a child process: wazero compiles a module ahead of time, and for
// some shapes of code its time and memory grow as a square or worse of
// what the module holds (docs/reliability.md, "Compile bombs"). instrument
// refuses the shapes found, but cannot prove there are no others, and a
// compile cannot be interrupted in-process. A child can: it compiles into
// the compilation cache under a deadline and a memory cap, and the node
// then loads the result from the cache.

// compileInChild compiles wasm (as uploaded: the child instruments it as
// this host would) in a child process bounded by host.compile_timeout and
// host.compile_memory. A module the child refuses is refused with the
// child's message. A module a child compiled before, within bounds no
// larger than this host's, is marked so in the cache folder and not
// compiled in a child again: a node's restart loads its modules at the
// cache's speed, and lowering a bound checks them again.
func (h *Host) compileInChild(ctx context.Context, wasm []byte, digest string) error {
	var mark string
	bounds := fmt.Sprintf("compile_timeout=%s compile_memory=%d\n", h.cfg.CompileTimeout.D(), int64(h.cfg.CompileMemory))
	if h.cfg.CacheDir != "" {
		mark = filepath.Join(h.cfg.CacheDir, "bounded", digest)
		if b, err := os.ReadFile(mark); err == nil && h.withinBounds(string(b)) {
			return nil
		}
	}
	if err := h.runCompileChild(ctx, wasm); err != nil {
		return err
	}
	if mark != "" {
		// Best effort: without the mark the next load compiles in a
		// child again, which costs time, not safety.
		if os.MkdirAll(filepath.Dir(mark), 0o755) == nil {
			os.WriteFile(mark, []byte(bounds), 0o644)
		}
	}
	return nil
}

// withinBounds: the bounds a mark records are no larger than this
// host's. A mark that records none (written before the bounds were
// recorded) or cannot be read is not.
func (h *Host) withinBounds(mark string) bool {
	var timeout string
	var memory int64
	if _, err := fmt.Sscanf(mark, "compile_timeout=%s compile_memory=%d", &timeout, &memory); err != nil {
		return false
	}
	d, err := time.ParseDuration(timeout)
	return err == nil && d <= h.cfg.CompileTimeout.D() && memory <= int64(h.cfg.CompileMemory)
}

func (h *Host) runCompileChild(ctx context.Context, wasm []byte) error {
	timeout, limit := h.cfg.CompileTimeout.D(), int64(h.cfg.CompileMemory)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	args := append(append([]string(nil), h.cfg.CompileCommand[1:]...), "--cache-dir", h.cfg.CacheDir,
		"--memory-limit", strconv.FormatInt(int64(h.cfg.MemoryLimit), 10), "--table-limit", strconv.FormatInt(h.cfg.TableLimit, 10),
		"--timeout", timeout.String())
	cmd := exec.CommandContext(ctx, h.cfg.CompileCommand[0], args...)
	// A node killed while its child compiles takes the child with it
	// (Linux); elsewhere the child's own deadline ends it.
	cmd.SysProcAttr = childAttr()
	cmd.Stdin = bytes.NewReader(wasm)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("compile in a child process: %w", err)
	}
	// The memory cap: the child's resident set, read every 20 ms. An
	// rlimit on address space would also count what the Go runtime and
	// wazero reserve and never touch.
	over := make(chan int64, 1)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if rss := residentBytes(cmd.Process.Pid); rss > limit {
					over <- rss
					cmd.Process.Kill()
					return
				}
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	select {
	case rss := <-over:
		return fmt.Errorf("compiling it took more than host.compile_memory (%s; %d MiB when stopped)", h.cfg.CompileMemory, rss>>20)
	default:
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("compiling it took longer than host.compile_timeout (%s)", timeout)
	case ctx.Err() != nil:
		return fmt.Errorf("compile in a child process: %w", ctx.Err())
	case err == nil:
		return nil
	}
	// Status 1 is the child's refusal, one line (CompileChild's error);
	// anything else is a crash, whose output is for the log, not for
	// the tenant who uploaded the module.
	msg, _, _ := strings.Cut(strings.TrimSpace(stderr.String()), "\n")
	if cmd.ProcessState.ExitCode() == 1 && msg != "" {
		if len(msg) > 2000 {
			msg = msg[:2000] + "…"
		}
		return errors.New(msg)
	}
	h.log.Error().Err(err).Str("output", stderr.String()).Msg("a compile child ended abnormally")
	return fmt.Errorf("compile in a child process: it ended abnormally (%s)", cmd.ProcessState)
}

// residentBytes is a process's resident set (Linux), or 0 when unknown.
func residentBytes(pid int) int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// CompileChild is the child's side: it compiles the module read from in
// as a host with cfg would, through cfg.CacheDir, and returns why the
// host would refuse it. `wasmq` runs it as a hidden command.
func CompileChild(cfg Config, in io.Reader) error {
	if d := cfg.CompileTimeout.D(); d > 0 {
		// The parent kills the child at d; this ends a child whose
		// parent is gone, a little later so that the parent's word
		// comes first. A compile runs as Go code, so the timer fires.
		time.AfterFunc(d+5*time.Second, func() {
			fmt.Fprintf(os.Stderr, "compiling it took longer than host.compile_timeout (%s)\n", d)
			os.Exit(3)
		})
	}
	wasm, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	cfg.CompileCommand = nil // the child compiles itself
	noCache := cfg.CacheDir == ""
	h := &Host{cfg: cfg.WithDefaults(), codes: map[string]*compiled{}, log: zerolog.Nop()}
	if noCache {
		h.cfg.CacheDir = "" // not the default folder, relative to wherever the child runs
	}
	if err := h.startRuntime(context.Background()); err != nil {
		return err
	}
	defer h.rt.Close(context.Background())
	_, err = h.compile(context.Background(), wasm)
	return err
}
