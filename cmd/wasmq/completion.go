package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// completionCmd prints a completion script for bash, zsh or fish, made
// from the command table and each command's flags: a new command or
// flag is completed without touching the scripts.
func completionCmd(args []string, out io.Writer) error {
	pos, err := flags("completion", args, func(*flag.FlagSet) {})
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: wasmq completion bash|zsh|fish")
	}
	switch pos[0] {
	case "bash":
		return bashCompletion(out)
	case "zsh":
		return zshCompletion(out)
	case "fish":
		return fishCompletion(out)
	}
	return fmt.Errorf("completion: unknown shell %q (bash, zsh, fish)", pos[0])
}

// flagSpec is one flag of a command, as the scripts complete it.
type flagSpec struct {
	name, usage string
	takesValue  bool
}

// flagsOf asks a command for its flags (its --help), without running it.
func flagsOf(c command) []flagSpec {
	if c.run == nil {
		return nil
	}
	var h *helpRequest
	if err := c.run([]string{"--help"}, io.Discard); !errors.As(err, &h) {
		return nil
	}
	var out []flagSpec
	h.fs.VisitAll(func(f *flag.Flag) {
		b, isBool := f.Value.(interface{ IsBoolFlag() bool })
		_, usage := flag.UnquoteUsage(f)
		out = append(out, flagSpec{f.Name, usage, !(isBool && b.IsBoolFlag())})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func names() []string {
	var out []string
	for _, c := range commands {
		out = append(out, c.name)
	}
	return out
}

func bashCompletion(out io.Writer) error {
	var b strings.Builder
	b.WriteString("# bash completion for wasmq: source <(wasmq completion bash)\n_wasmq() {\n")
	b.WriteString("  local cur=\"${COMP_WORDS[COMP_CWORD]}\" cmd=\"${COMP_WORDS[1]}\" opts=\"\" subs=\"\"\n")
	fmt.Fprintf(&b, "  if [[ $COMP_CWORD -eq 1 ]]; then\n    COMPREPLY=($(compgen -W %q -- \"$cur\"))\n    return\n  fi\n", strings.Join(names(), " "))
	b.WriteString("  case \"$cmd\" in\n")
	for _, c := range commands {
		var opts []string
		for _, f := range flagsOf(c) {
			opts = append(opts, "--"+f.name)
		}
		if c.name == "help" {
			c.subs = names()
		}
		fmt.Fprintf(&b, "    %s) opts=%q; subs=%q ;;\n", c.name, strings.Join(opts, " "), strings.Join(c.subs, " "))
	}
	b.WriteString("  esac\n")
	b.WriteString("  if [[ \"$cur\" == -* ]]; then\n    COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n    return\n  fi\n")
	b.WriteString("  if [[ $COMP_CWORD -eq 2 && -n \"$subs\" ]]; then\n    COMPREPLY=($(compgen -W \"$subs\" -- \"$cur\"))\n    return\n  fi\n")
	b.WriteString("  COMPREPLY=($(compgen -f -- \"$cur\"))\n}\ncomplete -o filenames -F _wasmq wasmq\n")
	_, err := io.WriteString(out, b.String())
	return err
}

// zshQuote escapes a description for an _arguments or _describe spec.
func zshQuote(s string) string {
	r := strings.NewReplacer("'", "'\\''", "[", "\\[", "]", "\\]", ":", "\\:")
	return r.Replace(s)
}

func zshCompletion(out io.Writer) error {
	var b strings.Builder
	b.WriteString("#compdef wasmq\n# zsh completion for wasmq: wasmq completion zsh > \"${fpath[1]}/_wasmq\"\n_wasmq() {\n  local -a cmds\n  cmds=(\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "    '%s:%s'\n", c.name, zshQuote(c.summary))
	}
	b.WriteString("  )\n  if (( CURRENT == 2 )); then\n    _describe 'command' cmds\n    return\n  fi\n")
	b.WriteString("  local cmd=$words[2]\n  shift words\n  (( CURRENT-- ))\n  case $cmd in\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "    %s)\n      _arguments", c.name)
		for _, f := range flagsOf(c) {
			if f.takesValue {
				fmt.Fprintf(&b, " \\\n        '--%s[%s]:value:'", f.name, zshQuote(f.usage))
			} else {
				fmt.Fprintf(&b, " \\\n        '--%s[%s]'", f.name, zshQuote(f.usage))
			}
		}
		subs := c.subs
		if c.name == "help" {
			subs = names()
		}
		if len(subs) > 0 {
			fmt.Fprintf(&b, " \\\n        '1:subcommand:(%s)'", strings.Join(subs, " "))
		}
		b.WriteString(" \\\n        '*:file:_files'\n      ;;\n")
	}
	b.WriteString("  esac\n}\nif [[ $zsh_eval_context[-1] == loadautofunc ]]; then\n  _wasmq \"$@\"\nelse\n  compdef _wasmq wasmq\nfi\n")
	_, err := io.WriteString(out, b.String())
	return err
}

// fishQuote makes s one single-quoted fish word.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(s) + "'"
}

func fishCompletion(out io.Writer) error {
	var b strings.Builder
	b.WriteString("# fish completion for wasmq: wasmq completion fish > ~/.config/fish/completions/wasmq.fish\ncomplete -c wasmq -f\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "complete -c wasmq -n __fish_use_subcommand -a %s -d %s\n", c.name, fishQuote(c.summary))
	}
	for _, c := range commands {
		cond := fishQuote("__fish_seen_subcommand_from " + c.name)
		subs := c.subs
		if c.name == "help" {
			subs = names()
		}
		if len(subs) > 0 {
			fmt.Fprintf(&b, "complete -c wasmq -n %s -a %s\n", cond, fishQuote(strings.Join(subs, " ")))
		}
		for _, f := range flagsOf(c) {
			r := ""
			if f.takesValue {
				r = " -r -F"
			}
			fmt.Fprintf(&b, "complete -c wasmq -n %s -l %s -d %s%s\n", cond, f.name, fishQuote(f.usage), r)
		}
	}
	_, err := io.WriteString(out, b.String())
	return err
}
