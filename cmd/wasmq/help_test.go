package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// cli is the built wasmq binary, run as a user runs it.
type cli struct {
	t   *testing.T
	bin string
}

var (
	cliOnce sync.Once
	cliBin  string
	cliErr  error
)

// buildCLI builds the binary once for the tests of this file (in a
// folder TestMain removes).
func buildCLI(t *testing.T) cli {
	t.Helper()
	cliOnce.Do(func() {
		cliBin = filepath.Join(cliDir, "wasmq")
		if out, err := exec.Command("go", "build", "-o", cliBin, ".").CombinedOutput(); err != nil {
			cliErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if cliErr != nil {
		t.Fatal(cliErr)
	}
	return cli{t, cliBin}
}

var cliDir string

func TestMain(m *testing.M) {
	var err error
	if cliDir, err = os.MkdirTemp("", "wasmq-cli-test"); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(cliDir)
	os.Exit(code)
}

// run returns stdout, stderr and the exit status.
func (c cli) run(args ...string) (string, string, int) {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(os.Environ(), "WASMQ_URL=http://127.0.0.1:1", "WASMQ_TOKEN=a-secret-token")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		c.t.Fatalf("wasmq %v: %v", args, err)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// Every command of the table (so a new one is covered without editing
// this test), and each of its subcommands, answers -h and --help with
// its synopsis and every one of its flags, on stdout, with status 0.
func TestEveryCommandAnswersHelpWithItsFlags(t *testing.T) {
	c := buildCLI(t)
	for _, cmd := range commands {
		flagsWanted := flagsOf(cmd)
		if cmd.run != nil && cmd.name != "completion" && len(flagsWanted) == 0 {
			t.Errorf("%s: no flags found through its --help", cmd.name)
		}
		invocations := [][]string{{cmd.name, "-h"}, {cmd.name, "--help"}, {"help", cmd.name}}
		for _, sub := range cmd.subs {
			invocations = append(invocations, []string{cmd.name, sub, "--help"})
		}
		for _, args := range invocations {
			out, errOut, status := c.run(args...)
			if status != 0 || errOut != "" {
				t.Errorf("wasmq %s: status %d, stderr %q", strings.Join(args, " "), status, errOut)
				continue
			}
			if cmd.name == "help" {
				continue // help help is the command list
			}
			if !strings.Contains(out, "usage: wasmq "+cmd.name) {
				t.Errorf("wasmq %s: no synopsis in %q", strings.Join(args, " "), out)
			}
			for _, f := range flagsWanted {
				if !strings.Contains(out, "--"+f.name) {
					t.Errorf("wasmq %s: flag --%s is not listed:\n%s", strings.Join(args, " "), f.name, out)
				}
			}
			if strings.Contains(out, "a-secret-token") {
				t.Errorf("wasmq %s: help prints the token of WASMQ_TOKEN", strings.Join(args, " "))
			}
		}
	}
	// The command list names every command.
	out, _, status := c.run("help")
	for _, cmd := range commands {
		if status != 0 || !strings.Contains(out, "  "+cmd.name+" ") {
			t.Errorf("wasmq help (status %d) does not list %s:\n%s", status, cmd.name, out)
		}
	}
}

// Errors go to stderr, with a non-zero status and nothing on stdout.
func TestErrorsGoToStderrWithANonZeroStatus(t *testing.T) {
	c := buildCLI(t)
	for _, tc := range []struct {
		args   []string
		status int
		says   string
	}{
		{nil, 2, "usage: wasmq COMMAND"},
		{[]string{"bogus"}, 1, `unknown command "bogus"`},
		{[]string{"enqueue"}, 1, "usage: wasmq enqueue FUNC"},
		{[]string{"jobs", "list", "--colour", "red"}, 1, "flag provided but not defined: -colour"},
		{[]string{"jobs", "show", "not-a-uuid"}, 1, "not a job uuid"},
		{[]string{"enqueue", "testkit.echo", "--args", "[1"}, 1, "--args: not valid JSON"},
		{[]string{"jobs", "list"}, 1, "connection refused"}, // no server at WASMQ_URL
		{[]string{"completion", "tcsh"}, 1, `unknown shell "tcsh"`},
		{[]string{"config", "check", "/nonexistent.toml"}, 1, ""},
	} {
		out, errOut, status := c.run(tc.args...)
		if status != tc.status || !strings.Contains(errOut, tc.says) {
			t.Errorf("wasmq %v: status %d (want %d), stderr %q (want %q)", tc.args, status, tc.status, errOut, tc.says)
		}
		if out != "" && tc.args != nil && tc.args[0] != "config" {
			t.Errorf("wasmq %v: stdout %q, want nothing", tc.args, out)
		}
	}
}

// The completion scripts know every command, subcommand and flag; the
// bash one is sourced by a real bash and completes.
func TestShellCompletions(t *testing.T) {
	c := buildCLI(t)
	for _, shell := range []string{"bash", "zsh", "fish"} {
		script, errOut, status := c.run("completion", shell)
		if status != 0 || errOut != "" || len(script) < 200 {
			t.Fatalf("completion %s: status %d, stderr %q, %d bytes", shell, status, errOut, len(script))
		}
		for _, cmd := range commands {
			if !strings.Contains(script, cmd.name) {
				t.Errorf("completion %s: no %s", shell, cmd.name)
			}
			for _, f := range flagsOf(cmd) {
				if !strings.Contains(script, f.name) {
					t.Errorf("completion %s: no flag %s of %s", shell, f.name, cmd.name)
				}
			}
		}
		path := filepath.Join(t.TempDir(), "wasmq."+shell)
		os.WriteFile(path, []byte(script), 0o644)
		if sh, err := exec.LookPath(shell); err == nil {
			// -n: parsed, not run (zsh and fish have no completion
			// system outside an interactive shell to run it in).
			if out, err := exec.Command(sh, "-n", path).CombinedOutput(); err != nil {
				t.Errorf("%s -n: %v\n%s", shell, err, out)
			}
		} else {
			t.Logf("%s is not installed: its script is checked for content only", shell)
		}
	}

	// zsh: the script's own dispatch, run by a real zsh with the
	// completion system's functions replaced by ones printing what they
	// are given (the system itself needs an interactive shell).
	if zsh, err := exec.LookPath("zsh"); err == nil {
		script, _, _ := c.run("completion", "zsh")
		path := filepath.Join(t.TempDir(), "_wasmq")
		os.WriteFile(path, []byte(script), 0o644)
		prog := `_describe() { print -l -- "$@" }; _arguments() { print -l -- "$@" }; compdef() {}
source "$1"; shift; words=("$@"); CURRENT=$#; _wasmq`
		for _, tc := range []struct {
			words []string
			want  string
		}{
			{[]string{"wasmq", ""}, "cmds"},
			{[]string{"wasmq", "jobs", ""}, "1:subcommand:(list show requeue cancel done)"},
			{[]string{"wasmq", "enqueue", "--pri"}, "--priority[priority (lower runs first)]:value:"},
			{[]string{"wasmq", "schedules", "add", "--pa"}, "--paused[create it paused]"},
		} {
			out, err := exec.Command(zsh, append([]string{"-c", prog, "zsh", path}, tc.words...)...).CombinedOutput()
			if err != nil || !strings.Contains(string(out), tc.want+"\n") {
				t.Errorf("zsh completing %q: %v, want %q in:\n%s", tc.words, err, tc.want, out)
			}
		}
	}
	// fish: its own completion engine (complete -C) over the script.
	if fish, err := exec.LookPath("fish"); err == nil {
		script, _, _ := c.run("completion", "fish")
		path := filepath.Join(t.TempDir(), "wasmq.fish")
		os.WriteFile(path, []byte(script), 0o644)
		for _, tc := range []struct{ line, want string }{
			{"wasmq jo", "jobs\tlist jobs, show one, act on one or on every match"},
			{"wasmq jobs ", "requeue"},
			{"wasmq enqueue --pri", "--priority\tpriority (lower runs first)"},
		} {
			out, err := exec.Command(fish, "-c", "source $argv[1]; complete -C$argv[2]", path, tc.line).CombinedOutput()
			if err != nil || !strings.Contains(string(out), tc.want) {
				t.Errorf("fish completing %q: %v, want %q in:\n%s", tc.line, err, tc.want, out)
			}
		}
	}

	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	script, _, _ := c.run("completion", "bash")
	path := filepath.Join(t.TempDir(), "wasmq.bash")
	os.WriteFile(path, []byte(script), 0o644)
	complete := func(words ...string) []string {
		t.Helper()
		prog := `source "$1" || exit 9; shift; COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _wasmq; printf '%s\n' "${COMPREPLY[@]}"`
		out, err := exec.Command(bash, append([]string{"-c", prog, "bash", path}, words...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("bash completing %v: %v\n%s", words, err, out)
		}
		return strings.Fields(string(out))
	}
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"wasmq", "jo"}, "jobs"},
		{[]string{"wasmq", "compl"}, "completion"},
		{[]string{"wasmq", "jobs", "li"}, "list"},
		{[]string{"wasmq", "enqueue", "--pri"}, "--priority"},
		{[]string{"wasmq", "jobs", "requeue", "--al"}, "--all"},
		{[]string{"wasmq", "completion", "fi"}, "fish"},
	} {
		got := complete(tc.words...)
		if len(got) != 1 || got[0] != tc.want {
			t.Errorf("bash completes %v as %v, want [%s]", tc.words, got, tc.want)
		}
	}
}

// docs/cli.md has a section per command of the table naming each of its
// own flags (the client flags --url, --token, --json are described once).
func TestTheCLIDocumentListsEveryCommandAndFlag(t *testing.T) {
	b, err := os.ReadFile("../../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, cmd := range commands {
		head := "### wasmq " + cmd.name + "\n"
		i := strings.Index(doc, head)
		if i < 0 {
			t.Errorf("docs/cli.md has no section %q", strings.TrimSpace(head))
			continue
		}
		section := doc[i+len(head):]
		if j := strings.Index(section, "\n### "); j >= 0 {
			section = section[:j]
		}
		for _, f := range flagsOf(cmd) {
			if f.name == "url" || f.name == "token" || f.name == "json" {
				continue
			}
			if !strings.Contains(section, "--"+f.name) {
				t.Errorf("docs/cli.md, wasmq %s: flag --%s is not described", cmd.name, f.name)
			}
		}
	}
}

// A long command shows a spinner on a terminal, and nothing of it when
// its output is a pipe: migrate under a pseudo-terminal (script(1)),
// then piped.
func TestProgressShowsOnATerminalOnly(t *testing.T) {
	scriptBin, err := exec.LookPath("script")
	if err != nil {
		t.Skip("no script(1) to make a terminal")
	}
	c := buildCLI(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "wasmq.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("[store]\npath = %q\n", filepath.Join(dir, "wasmq.db"))), 0o644)
	tty, err := exec.Command(scriptBin, "-qec", c.bin+" migrate --config "+cfg, "/dev/null").CombinedOutput()
	if err != nil {
		t.Fatalf("migrate on a terminal: %v\n%q", err, tty)
	}
	if !strings.Contains(string(tty), "migrating the sqlite store") || !strings.Contains(string(tty), "\r\033[K") {
		t.Errorf("on a terminal, no spinner (or not erased): %q", tty)
	}
	if !strings.Contains(string(tty), "migration(s) applied") {
		t.Errorf("on a terminal, no result: %q", tty)
	}
	out, errOut, status := c.run("migrate", "--config", cfg)
	if status != 0 || strings.Contains(out+errOut, "migrating") || strings.Contains(out+errOut, "\r") {
		t.Errorf("piped: status %d, stdout %q, stderr %q: want the result only", status, out, errOut)
	}
}

// `config check` names the file once on each line of its findings, and a
// value wasmq cannot read by its key, with its position after it.
func TestConfigCheckNamesTheFileOnceAndTheKey(t *testing.T) {
	c := buildCLI(t)
	path := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(path, []byte("[runner]\nsafety_poll = \"1099511627776h\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, status := c.run("config", "check", path)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if status != 1 || !strings.HasPrefix(lines[0], path+`: runner.safety_poll: "1099511627776h" is not a duration`) ||
		!strings.Contains(out, "line 2") {
		t.Fatalf("status %d, findings:\n%s", status, out)
	}
	for _, l := range lines {
		if strings.Count(l, path) != 1 {
			t.Errorf("the line %q names the file %d times", l, strings.Count(l, path))
		}
	}
}
