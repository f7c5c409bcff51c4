package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/google/uuid"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/host"
)

// replayCmd is `wasmq replay UUID [--attempt N] [--plugin FILE.wasm]`:
// it fetches an attempt's record and its module through the API, runs it
// again here in a sandbox of its own fed from the tape (no network, no
// job stored) and shows both outcomes side by side. Exit 0: the same; 1:
// different (with the first diverging host call); 2: usage or error.
func replayCmd(args []string, out io.Writer) error {
	err := replay(args, out)
	var ex exitError
	var h *helpRequest
	if err == nil || errors.As(err, &ex) || errors.As(err, &h) {
		return err
	}
	fmt.Fprintln(os.Stderr, "wasmq replay:", oneLine(err))
	return exitError(2)
}

func replay(args []string, out io.Writer) error {
	var r remote
	var attempt int
	var plugin string
	pos, err := flags("replay", args, func(fs *flag.FlagSet) {
		r.define(fs)
		fs.IntVar(&attempt, "attempt", 0, "the attempt to replay (default the job's last)")
		fs.StringVar(&plugin, "plugin", "", "a new build (.wasm) to run on the recorded input instead of the recorded module")
	})
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: wasmq replay UUID [--attempt N] [--plugin FILE.wasm]")
	}
	if _, err := uuid.Parse(pos[0]); err != nil {
		return fmt.Errorf("%q is not a job uuid", pos[0])
	}
	if attempt < 0 {
		return errors.New("--attempt: must be >= 1")
	}
	cl := r.client()
	cx, cancel := ctx()
	defer cancel()
	if attempt == 0 {
		j, err := cl.Get(cx, pos[0])
		if err != nil {
			return err
		}
		if attempt = j.Attempt; attempt == 0 {
			return fmt.Errorf("job %s has not run yet", pos[0])
		}
	}
	rec, err := cl.Record(cx, pos[0], attempt)
	if err != nil {
		return fmt.Errorf("record of attempt %d: %w", attempt, err)
	}
	var wasm []byte
	if plugin != "" {
		if wasm, err = os.ReadFile(plugin); err != nil {
			return fmt.Errorf("--plugin: %w", err)
		}
	} else if wasm, err = cl.RecordModule(cx, pos[0], attempt); err != nil {
		return fmt.Errorf("module of attempt %d: %w", attempt, err)
	}
	cancel()

	dir, err := os.MkdirTemp("", "wasmq-replay-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	h, err := host.New(host.Config{PluginsDir: filepath.Join(dir, "plugins"), CacheDir: filepath.Join(dir, "cache"), Record: abi.RecordOff}, logger("error"))
	if err != nil {
		return err
	}
	defer h.Close(context.Background())
	strict := plugin == ""
	res, err := h.Replay(context.Background(), &rec, wasm, strict)
	if err != nil {
		return err
	}
	same := res.Same(rec.Outcome, strict)
	if r.json {
		if err := json.NewEncoder(out).Encode(map[string]any{
			"job_uuid": rec.JobUUID, "attempt": rec.Attempt, "func": rec.Func, "plugin": plugin,
			"recorded": rec.Outcome, "replayed": host.RecordedOutcome(res.Outcome, res.Outcome.PluginSHA256),
			"same": same, "divergence": res.Divergence, "tape_used": res.Used, "tape_unused": res.Unused, "complete": rec.Complete,
		}); err != nil {
			return err
		}
	} else {
		printReplay(out, rec, res, plugin, same)
	}
	if !same {
		return exitError(1)
	}
	return nil
}

func printReplay(out io.Writer, rec abi.Record, res host.Replayed, plugin string, same bool) {
	fmt.Fprintf(out, "job %s attempt %d  %s\n", rec.JobUUID, rec.Attempt, rec.Func)
	ran := "the recorded module"
	if plugin != "" {
		ran = plugin
	}
	fmt.Fprintf(out, "recorded on sha256 %s; replayed %s (sha256 %s)\n", rec.PluginSHA256, ran, res.Outcome.PluginSHA256)
	if !rec.Complete {
		fmt.Fprintln(out, "the record is incomplete: its tape holds the first calls only (host.record_max_bytes)")
	}
	if rec.ConfigWithheld {
		fmt.Fprintln(out, "the module is shared: its config was withheld, the replay ran without it")
	}
	tw := tabwriter.NewWriter(out, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "\tRECORDED\tREPLAYED")
	a, b := rec.Outcome, res.Outcome
	for _, row := range [][3]string{
		{"kind", string(a.Kind), string(b.Kind)},
		{"exc_name", a.ExcName, b.ExcName},
		{"exc_message", a.ExcMessage, b.ExcMessage},
		{"reason", a.Reason, b.Reason},
		{"result", string(a.Result), string(b.Result)},
	} {
		if row[1] == "" && row[2] == "" {
			continue
		}
		mark := ""
		if row[1] != row[2] {
			mark = "  ≠"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s%s\n", row[0], clip(row[1]), clip(row[2]), mark)
	}
	fmt.Fprintf(tw, "tape\t%d calls\t%d served, %d not reached\n", host.TapeCalls(rec.Tape), res.Used, res.Unused)
	tw.Flush()
	if res.Divergence != nil {
		fmt.Fprintf(out, "first divergence: %s\n", res.Divergence)
	}
	if same {
		fmt.Fprintln(out, "same outcome")
	} else {
		fmt.Fprintln(out, "different outcome")
	}
}

// clip keeps a cell on one line of a readable width.
func clip(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if r := []rune(s); len(r) > 100 {
		return string(r[:99]) + "…"
	}
	return s
}
