// Command wasmq is the job queue's server and command-line client.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/bench"
	"github.com/wasmq/wasmq/client"
	"github.com/wasmq/wasmq/config"
	"github.com/wasmq/wasmq/enqueue"
	"github.com/wasmq/wasmq/host"
	"github.com/wasmq/wasmq/runner"
	"github.com/wasmq/wasmq/server"
	"github.com/wasmq/wasmq/store/backends"
)

const version = "0.1.0"

// usage lists the commands of the table.
func usageText() string {
	var b strings.Builder
	b.WriteString("wasmq — a job queue whose job functions are WebAssembly plugins\n\nusage: wasmq COMMAND [arguments] [flags]\n\n")
	tw := tabwriter.NewWriter(&b, 0, 2, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	tw.Flush()
	b.WriteString("\nClient commands take --url/WASMQ_URL, --token/WASMQ_TOKEN and --json.\n" +
		"wasmq COMMAND --help lists a command's arguments and flags; docs/cli.md has them all.\n")
	return b.String()
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == compileChildCommand {
		// A node's compile of a module, in a process of its own
		// (host.CompileChild): not a command a user runs.
		if err := compileChild(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, oneLine(err))
			os.Exit(1)
		}
		return
	}
	err := run(os.Args[1:], os.Stdout)
	var ex exitError
	var ue usageError
	switch {
	case errors.As(err, &ex):
		os.Exit(int(ex))
	case errors.As(err, &ue):
		fmt.Fprint(os.Stderr, usageText())
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "wasmq:", oneLine(err))
		os.Exit(1)
	}
}

// exitError ends the program with a status after its own output.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit %d", int(e)) }

// usageError is wasmq run without a command: the usage, on stderr, and
// status 2.
type usageError struct{}

func (usageError) Error() string { return "no command (wasmq help lists them)" }

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// command is a line of the command table: what `wasmq help`, each
// command's -h and the shell completions are made from.
type command struct {
	name    string
	args    string   // what follows the name in a synopsis
	summary string   // one line
	subs    []string // its subcommands, for completion
	run     func(args []string, out io.Writer) error
}

// commands is the command table, in the order help lists it.
var commands []command

func init() {
	commands = []command{
		{"serve", "[--config FILE]", "run the API, the runner and the web UI", nil, func(a []string, _ io.Writer) error { return serve(a) }},
		{"migrate", "[--config FILE] [--json]", "apply database migrations", nil, migrate},
		{"config", "check FILE [--json]", "validate a config file", []string{"check"}, configCmd},
		{"run", "FUNC [--args JSON] [--kwargs JSON] [--context JSON] [--config FILE] [--json]", "run a function now, in-process, storing nothing", nil, runSync},
		{"enqueue", "FUNC [flags]", "create a job; prints its uuid", nil, enqueueCmd},
		{"jobs", "list [filters] | show|requeue|cancel|done UUID | requeue|cancel|done --all [filters]", "list jobs, show one, act on one or on every match", []string{"list", "show", "requeue", "cancel", "done"}, jobsCmd},
		{"usage", "[--from T] [--to T] [--tenant NAME]", "what attempts used per tenant and function (default the last 24h)", nil, usageCmd},
		{"channels", "[pause|resume NAME | set NAME [--capacity N|config] [--throttle SECONDS|config] [--paused true|false|config]]", "list channels, or change one on every node", []string{"pause", "resume", "set"}, channelsCmd},
		{"plugins", "list | check FILE... | upload NAME FILE [CONFIG.toml] | config NAME CONFIG.toml", "list, check and upload plugins", []string{"list", "check", "upload", "config"}, pluginsCmd},
		{"schedules", "list | add NAME CRON FUNC [flags] | rm|pause|resume|run NAME", "periodic jobs", []string{"list", "add", "rm", "pause", "resume", "run"}, schedulesCmd},
		{"replay", "UUID [--attempt N] [--plugin FILE.wasm]", "run a recorded attempt again, here, from its tape; exit 1 if it ends otherwise", nil, replayCmd},
		{"bench", "[flags]", "measure throughput and idle latency of a fresh node", nil, benchCmd},
		{"completion", "bash|zsh|fish", "print a shell completion script (docs/cli.md)", []string{"bash", "zsh", "fish"}, completionCmd},
		{"version", "[--json]", "print the version", nil, versionCmd},
		{"help", "[COMMAND]", "list the commands, or a command's flags", nil, nil},
	}
}

func lookup(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

func run(args []string, out io.Writer) error {
	if len(args) == 0 {
		return usageError{}
	}
	name, rest := args[0], args[1:]
	switch name {
	case "--version":
		name = "version"
	case "-h", "--help":
		name = "help"
	}
	if name == "help" {
		if len(rest) > 0 && lookup(rest[0]) != nil && rest[0] != "help" {
			return run([]string{rest[0], "--help"}, out)
		}
		fmt.Fprint(out, usageText())
		return nil
	}
	c := lookup(name)
	if c == nil {
		return fmt.Errorf("unknown command %q (wasmq help lists them)", name)
	}
	err := c.run(rest, out)
	var h *helpRequest
	if errors.As(err, &h) {
		h.print(out, c)
		return nil
	}
	return err
}

// helpRequest is a command's -h or --help: its flags, printed on stdout
// with status 0.
type helpRequest struct{ fs *flag.FlagSet }

func (*helpRequest) Error() string { return "help requested" }

func (h *helpRequest) print(out io.Writer, c *command) {
	fmt.Fprintf(out, "usage: wasmq %s %s\n\n%s\n", c.name, c.args, c.summary)
	n := 0
	h.fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	fmt.Fprintln(out, "\nflags:")
	h.fs.VisitAll(func(f *flag.Flag) {
		kind, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if kind != "" {
			line += " " + kind
		}
		line += "\n        " + usage
		// A default read from the environment may be a secret.
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "-1" && !secretFlags[f.Name] {
			if kind == "string" {
				line += fmt.Sprintf(" (default %q)", f.DefValue)
			} else {
				line += " (default " + f.DefValue + ")"
			}
		}
		fmt.Fprintln(out, line)
	})
}

// secretFlags are flags whose default (from the environment) help does
// not print.
var secretFlags = map[string]bool{"token": true, "dsn": true}

// flags parses a command's flags, allowing them before or after its
// positional arguments; -h or --help is a helpRequest.
func flags(name string, args []string, define func(fs *flag.FlagSet)) ([]string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	define(fs)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, &helpRequest{fs}
			}
			return nil, fmt.Errorf("%s: %w (wasmq %s --help lists its flags)", name, err, name)
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func logger(level string) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	return zerolog.New(os.Stderr).Level(lvl).With().Timestamp().Logger()
}

func serve(args []string) error {
	var cfgPath string
	if _, err := flags("serve", args, func(fs *flag.FlagSet) { fs.StringVar(&cfgPath, "config", "", "config file") }); err != nil {
		return err
	}
	f, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	// Uploaded and loaded modules compile in a child, bounded by
	// host.compile_timeout and host.compile_memory. On Linux the child is
	// /proc/self/exe: this very binary, even after an upgrade replaced
	// its file.
	exe := "/proc/self/exe"
	if _, err := os.Stat(exe); err != nil {
		if exe, err = os.Executable(); err != nil {
			return fmt.Errorf("find this program to compile modules in a child: %w", err)
		}
	}
	f.Host.CompileCommand = []string{exe, compileChildCommand}
	// A node's cache_dir is its own: at start it drops what the cache
	// keeps of modules no longer loaded.
	f.Host.SweepCache = true
	log := logger(f.Server.LogLevel)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := server.New(ctx, f, log)
	if err != nil {
		return err
	}
	if err := n.Start(ctx); err != nil {
		return err
	}
	serr := n.Serve(ctx)
	stop()
	cerr := n.Close(context.Background())
	if serr != nil {
		return serr
	}
	return cerr
}

func migrate(args []string, out io.Writer) error {
	var cfgPath string
	var asJSON bool
	if _, err := flags("migrate", args, func(fs *flag.FlagSet) {
		fs.StringVar(&cfgPath, "config", "", "config file")
		fs.BoolVar(&asJSON, "json", false, "JSON output")
	}); err != nil {
		return err
	}
	f, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	stop := startProgress(out, "migrating the "+f.Store.Driver+" store")
	n, err := backends.Migrate(context.Background(), f.Store)
	tenants := f.SQLTenants()
	if err == nil {
		err = backends.ApplySQLTenants(context.Background(), f.Store, tenants)
	}
	stop()
	if err != nil {
		return err
	}
	roles := 0
	for _, t := range tenants {
		roles += len(t.Roles)
	}
	if asJSON {
		return json.NewEncoder(out).Encode(map[string]any{"driver": f.Store.Driver, "applied": n, "sql_roles": roles})
	}
	fmt.Fprintf(out, "%s store: %d migration(s) applied; schema is current\n", f.Store.Driver, n)
	if roles > 0 {
		fmt.Fprintf(out, "%d role(s) may enqueue with SQL (docs/sql.md)\n", roles)
	}
	return nil
}

// configCmd is `wasmq config check FILE`: the findings are its output
// (stdout), and a bad file is status 1.
func configCmd(args []string, out io.Writer) error {
	var asJSON bool
	pos, err := flags("config", args, func(fs *flag.FlagSet) { fs.BoolVar(&asJSON, "json", false, "JSON output") })
	if err != nil {
		return err
	}
	if len(pos) != 2 || pos[0] != "check" {
		return errors.New("usage: wasmq config check FILE")
	}
	path := pos[1]
	_, lerr := config.Load(path)
	if asJSON {
		errs := []string{}
		if lerr != nil {
			errs = strings.Split(lerr.Error(), "\n")
		}
		if err := json.NewEncoder(out).Encode(map[string]any{"file": path, "ok": lerr == nil, "errors": errs}); err != nil {
			return err
		}
	} else if lerr != nil {
		// Load's errors start with the path: each line gets it once.
		msg := strings.TrimPrefix(lerr.Error(), path+": ")
		fmt.Fprintln(out, path+": "+strings.ReplaceAll(msg, "\n", "\n"+path+": "))
	} else {
		fmt.Fprintf(out, "%s: OK\n", path)
	}
	if lerr != nil {
		return exitError(1)
	}
	return nil
}

func versionCmd(args []string, out io.Writer) error {
	var asJSON bool
	if _, err := flags("version", args, func(fs *flag.FlagSet) { fs.BoolVar(&asJSON, "json", false, "JSON output") }); err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(out).Encode(map[string]string{"version": version})
	}
	fmt.Fprintln(out, "wasmq", version)
	return nil
}

func runSync(args []string, out io.Writer) error {
	var cfgPath, a, kw, c string
	var asJSON bool
	pos, err := flags("run", args, func(fs *flag.FlagSet) {
		fs.StringVar(&cfgPath, "config", "", "config file")
		fs.StringVar(&a, "args", "[]", "JSON list")
		fs.StringVar(&kw, "kwargs", "{}", "JSON object")
		fs.StringVar(&c, "context", "{}", "JSON object")
		fs.BoolVar(&asJSON, "json", false, "JSON output")
	})
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: wasmq run FUNC [--args JSON] [--kwargs JSON]")
	}
	f, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	h, err := host.New(f.Host, logger("warn"))
	if err != nil {
		return err
	}
	defer h.Close(context.Background())
	svc := &enqueue.Service{Funcs: h, Sync: runner.Sync{Exec: h, DefaultRetryInterval: f.Runner.DefaultRetryInterval.D()}.Run}
	body, _ := json.Marshal(map[string]any{"func": pos[0], "args": json.RawMessage(a), "kwargs": json.RawMessage(kw), "context": json.RawMessage(c)})
	var req enqueue.Request
	if err := enqueue.Decode(body, &req); err != nil {
		return err
	}
	ins, err := svc.Create(context.Background(), "default", req)
	if err != nil {
		return err
	}
	j := ins[0].Job
	if asJSON {
		return json.NewEncoder(out).Encode(j)
	}
	printJob(out, j)
	if j.State != abi.StateDone {
		return exitError(1)
	}
	return nil
}

// remote holds the client flags every remote command takes.
type remote struct {
	url, token string
	json       bool
}

func (r *remote) define(fs *flag.FlagSet) {
	fs.StringVar(&r.url, "url", envOr("WASMQ_URL", "http://127.0.0.1:8765"), "server URL")
	fs.StringVar(&r.token, "token", os.Getenv("WASMQ_TOKEN"), "bearer token (default $WASMQ_TOKEN)")
	fs.BoolVar(&r.json, "json", false, "JSON output")
}

func (r *remote) client() *client.Client { return client.New(r.url, r.token) }

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// jobFlags are the job's fields as flags, shared by `enqueue` and
// `schedules add` (whose jobs have the same fields).
type jobFlags struct {
	args, kwargs, context, channel, key, desc string
	priority, maxRetries                      int
}

func (j *jobFlags) define(fs *flag.FlagSet, keyHelp string) {
	fs.StringVar(&j.args, "args", "", "JSON list")
	fs.StringVar(&j.kwargs, "kwargs", "", "JSON object")
	fs.StringVar(&j.context, "context", "", "JSON object")
	fs.StringVar(&j.channel, "channel", "", "channel")
	fs.StringVar(&j.key, "identity-key", "", keyHelp)
	fs.StringVar(&j.desc, "description", "", "description")
	fs.IntVar(&j.priority, "priority", -1, "priority (lower runs first)")
	fs.IntVar(&j.maxRetries, "max-retries", -1, "max retries (0 = forever)")
}

// fill puts the flags given into a request body; the server checks them.
func (j *jobFlags) fill(body map[string]any) error {
	for k, v := range map[string]string{"args": j.args, "kwargs": j.kwargs, "context": j.context} {
		if v != "" {
			if !json.Valid([]byte(v)) {
				return fmt.Errorf("--%s: not valid JSON: %s", k, v)
			}
			body[k] = json.RawMessage(v)
		}
	}
	for k, v := range map[string]string{"channel": j.channel, "identity_key": j.key, "description": j.desc} {
		if v != "" {
			body[k] = v
		}
	}
	if j.priority >= 0 {
		body["priority"] = j.priority
	}
	if j.maxRetries >= 0 {
		body["max_retries"] = j.maxRetries
	}
	return nil
}

func ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

func enqueueCmd(args []string, out io.Writer) error {
	var r remote
	var jf jobFlags
	var eta string
	pos, err := flags("enqueue", args, func(fs *flag.FlagSet) {
		r.define(fs)
		jf.define(fs, "identity key")
		fs.StringVar(&eta, "eta", "", "RFC 3339 instant or seconds from now")
	})
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: wasmq enqueue FUNC [--args JSON] [--kwargs JSON] ...")
	}
	body := map[string]any{"func": pos[0]}
	if err := jf.fill(body); err != nil {
		return err
	}
	if eta != "" {
		if _, err := time.Parse(time.RFC3339Nano, eta); err == nil {
			body["eta"] = eta
		} else {
			body["eta"] = json.RawMessage(eta)
		}
	}
	raw, _ := json.Marshal(body)
	cx, cancel := ctx()
	defer cancel()
	j, err := r.client().EnqueueRaw(cx, raw)
	if err != nil {
		return err
	}
	if r.json {
		return json.NewEncoder(out).Encode(j)
	}
	if j.Deduplicated {
		fmt.Fprintf(out, "%s (existing job with identity key %s, %s)\n", j.UUID, j.IdentityKey, j.State)
		return nil
	}
	fmt.Fprintln(out, j.UUID)
	return nil
}

func jobsCmd(args []string, out io.Writer) error {
	var r remote
	var o client.ListOptions
	var all bool
	pos, err := flags("jobs", args, func(fs *flag.FlagSet) {
		r.define(fs)
		fs.StringVar(&o.State, "state", "", "states, comma-separated")
		fs.StringVar(&o.Channel, "channel", "", "channel")
		fs.StringVar(&o.Func, "func", "", "function")
		fs.StringVar(&o.Query, "q", "", "text")
		fs.StringVar(&o.Cursor, "cursor", "", "next page")
		fs.StringVar(&o.Tenant, "tenant", "", "tenant (admin)")
		fs.IntVar(&o.Limit, "limit", 20, "jobs per page")
		defineFilters(fs, &o)
		fs.BoolVar(&all, "all", false, "requeue, cancel or done: every job matching the filters")
	})
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return errors.New("usage: wasmq jobs list|show|requeue|cancel|done [UUID]")
	}
	cl := r.client()
	cx, cancel := ctx()
	defer cancel()
	if pos[0] == "list" {
		p, err := cl.List(cx, o)
		if err != nil {
			return err
		}
		if r.json {
			return json.NewEncoder(out).Encode(p)
		}
		tw := tabwriter.NewWriter(out, 0, 2, 2, ' ', 0)
		fmt.Fprintln(tw, "UUID\tSTATE\tFUNC\tCHANNEL\tPRI\tRETRY\tCREATED")
		for _, j := range p.Jobs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d/%d\t%s\n", j.UUID, j.State, j.Func, j.Channel, j.Priority, j.Retry, j.MaxRetries,
				j.DateCreated.Local().Format("2006-01-02 15:04:05"))
		}
		tw.Flush()
		if p.NextCursor != "" {
			fmt.Fprintf(out, "more: --cursor %s\n", p.NextCursor)
		}
		return nil
	}
	if all {
		return bulkCmd(cx, cl, pos, o, r.json, out)
	}
	if len(pos) != 2 {
		return fmt.Errorf("usage: wasmq jobs %s UUID", pos[0])
	}
	if _, err := uuid.Parse(pos[1]); err != nil {
		return fmt.Errorf("%q is not a job uuid", pos[1])
	}
	var j abi.Job
	switch pos[0] {
	case "show":
		j, err = cl.Get(cx, pos[1])
	case "requeue":
		j, err = cl.Requeue(cx, pos[1])
	case "cancel":
		j, err = cl.Cancel(cx, pos[1])
	case "done":
		j, err = cl.SetDone(cx, pos[1])
	default:
		return fmt.Errorf("unknown jobs command %q (list, show, requeue, cancel, done)", pos[0])
	}
	if err != nil {
		return err
	}
	if r.json {
		return json.NewEncoder(out).Encode(j)
	}
	printJob(out, j)
	return nil
}

func printJob(out io.Writer, j abi.Job) {
	tw := tabwriter.NewWriter(out, 0, 2, 2, ' ', 0)
	row := func(k string, v any) {
		if s := fmt.Sprint(v); s != "" && s != "<nil>" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, s)
		}
	}
	row("uuid", j.UUID)
	row("state", j.State)
	row("func", j.FuncString)
	row("channel", j.Channel)
	row("priority", j.Priority)
	row("retry", fmt.Sprintf("%d/%d (attempts %d)", j.Retry, j.MaxRetries, j.Attempt))
	row("description", j.Description)
	if len(j.Result) > 0 {
		row("result", string(j.Result))
	}
	if j.Progress != nil {
		row("progress", fmt.Sprintf("%d%% %s (reported %s)", j.Progress.Percent, j.Progress.Message, j.Progress.Updated.Format(time.RFC3339)))
	}
	row("exc_name", j.ExcName)
	row("exc_message", j.ExcMessage)
	row("created", j.DateCreated.Format(time.RFC3339Nano))
	if j.ETA != nil {
		row("eta", j.ETA.Format(time.RFC3339Nano))
	}
	if j.DateDone != nil {
		row("done", j.DateDone.Format(time.RFC3339Nano))
	}
	if j.ExecTime != nil {
		row("exec_time", fmt.Sprintf("%.3fs", *j.ExecTime))
	}
	if j.Usage != nil {
		row("usage", attemptUsage(j.Usage))
	}
	row("worker", j.WorkerID)
	tw.Flush()
}

func channelsCmd(args []string, out io.Writer) error {
	var r remote
	var set channelSettings
	pos, err := flags("channels", args, func(fs *flag.FlagSet) {
		r.define(fs)
		set.define(fs)
	})
	if err != nil {
		return err
	}
	cx, cancel := ctx()
	defer cancel()
	if len(pos) > 0 {
		return channelCmd(cx, r, pos, set, out)
	}
	chs, err := r.client().Channels(cx)
	if err != nil {
		return err
	}
	if r.json {
		return json.NewEncoder(out).Encode(chs)
	}
	tw := tabwriter.NewWriter(out, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "CHANNEL\tCAPACITY\tRUNNING\tPENDING\tFAILED\tFLAGS")
	for _, c := range chs {
		var fl []string
		if c.Sequential {
			fl = append(fl, "sequential")
		}
		if c.Throttle > 0 {
			fl = append(fl, fmt.Sprintf("throttle=%gs", c.Throttle))
		}
		if c.Paused {
			fl = append(fl, "paused")
		}
		if c.Blocked {
			fl = append(fl, "BLOCKED")
		}
		if c.Override != nil {
			fl = append(fl, "(set at run time)")
		}
		capacity := fmt.Sprint(c.Capacity)
		if c.Capacity == 0 {
			capacity = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\n", c.Name, capacity, c.Running, c.Pending, c.Failed, strings.Join(fl, " "))
	}
	return tw.Flush()
}

func pluginsCmd(args []string, out io.Writer) error {
	var r remote
	var cfgPath string
	pos, err := flags("plugins", args, func(fs *flag.FlagSet) {
		r.define(fs)
		fs.StringVar(&cfgPath, "config", "", "check against this config's [host] limits (default: the built-in defaults)")
	})
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return errors.New("usage: wasmq plugins list | check [--config wasmq.toml] FILE... | upload NAME FILE [CONFIG.toml] | config NAME CONFIG.toml")
	}
	switch pos[0] {
	case "check":
		if len(pos) < 2 {
			return errors.New("usage: wasmq plugins check FILE...")
		}
		var hc host.Config
		if cfgPath != "" {
			f, err := config.Load(cfgPath)
			if err != nil {
				return err
			}
			hc = f.Host
		}
		bad := false
		type finding struct {
			File    string   `json:"file"`
			OK      bool     `json:"ok"`
			Exports []string `json:"exports"`
			Errors  []string `json:"errors"`
		}
		var found []finding
		for _, p := range pos[1:] {
			info, errs := host.CheckFileWith(hc, p)
			f := finding{File: p, OK: len(errs) == 0, Exports: info.Exports, Errors: []string{}}
			if f.Exports == nil {
				f.Exports = []string{}
			}
			for _, e := range errs {
				f.Errors = append(f.Errors, e.Error())
			}
			found = append(found, f)
			bad = bad || !f.OK
			if r.json {
				continue
			}
			if !f.OK {
				for _, e := range f.Errors {
					fmt.Fprintf(out, "%s: %s\n", p, e)
				}
				continue
			}
			fmt.Fprintf(out, "%s: OK, exports %s\n", p, strings.Join(info.Exports, ", "))
		}
		if r.json {
			if err := json.NewEncoder(out).Encode(found); err != nil {
				return err
			}
		}
		if bad {
			return exitError(1)
		}
		return nil
	case "list":
		cx, cancel := ctx()
		defer cancel()
		ps, err := r.client().Plugins(cx)
		if err != nil {
			return err
		}
		if r.json {
			return json.NewEncoder(out).Encode(ps)
		}
		tw := tabwriter.NewWriter(out, 0, 2, 2, ' ', 0)
		fmt.Fprintln(tw, "MODULE\tTENANT\tSHA256\tEXPORTS\tERROR")
		for _, p := range ps {
			sha, _ := p["sha256"].(string)
			if len(sha) > 12 {
				sha = sha[:12]
			}
			var ex []string
			if l, ok := p["exports"].([]any); ok {
				for _, e := range l {
					ex = append(ex, fmt.Sprint(e))
				}
			}
			fmt.Fprintf(tw, "%v\t%v\t%s\t%s\t%v\n", p["name"], orDash(p["tenant"]), sha, strings.Join(ex, ","), orDash(p["load_error"]))
		}
		return tw.Flush()
	case "upload":
		if len(pos) != 3 && len(pos) != 4 {
			return errors.New("usage: wasmq plugins upload NAME FILE [CONFIG.toml]")
		}
		wasm, err := os.ReadFile(pos[2])
		if err != nil {
			return err
		}
		cx, cancel := ctx()
		defer cancel()
		var info map[string]any
		if len(pos) == 4 {
			var config []byte
			if config, err = os.ReadFile(pos[3]); err != nil {
				return err
			}
			info, err = r.client().UploadPluginWithConfig(cx, pos[1], wasm, config)
		} else {
			info, err = r.client().UploadPlugin(cx, pos[1], wasm)
		}
		if err != nil {
			return err
		}
		if r.json {
			return json.NewEncoder(out).Encode(info)
		}
		fmt.Fprintf(out, "installed %s\n", pos[1])
		return nil
	case "config":
		if len(pos) != 3 {
			return errors.New("usage: wasmq plugins config NAME CONFIG.toml")
		}
		config, err := os.ReadFile(pos[2])
		if err != nil {
			return err
		}
		cx, cancel := ctx()
		defer cancel()
		info, err := r.client().SetPluginConfig(cx, pos[1], config)
		if err != nil {
			return err
		}
		if r.json {
			return json.NewEncoder(out).Encode(info)
		}
		fmt.Fprintf(out, "configured %s\n", pos[1])
		return nil
	}
	return fmt.Errorf("unknown plugins command %q (list, check, upload, config)", pos[0])
}

func orDash(v any) string {
	if s := fmt.Sprint(v); v != nil && s != "" {
		return s
	}
	return "-"
}

func benchCmd(args []string, out io.Writer) error {
	var o bench.Options
	var eo bench.EnqueueOptions
	var asJSON bool
	var profile, memProfile, schema string
	define := func(fs *flag.FlagSet) {
		fs.StringVar(&o.Driver, "store", "sqlite", "sqlite or postgres")
		fs.StringVar(&schema, "schema", "", "postgres: run in this scratch schema of --dsn's database, made afresh and dropped afterwards (a schema of that name left by an earlier run is dropped first; any other is refused)")
		fs.StringVar(&o.DSN, "dsn", os.Getenv("WASMQ_DATABASE_URL"), "PostgreSQL DSN (an empty schema)")
		fs.IntVar(&o.Jobs, "jobs", 20000, "jobs for the throughput (or enqueue) run")
		fs.IntVar(&o.Capacity, "capacity", 100, "root channel capacity")
		fs.StringVar(&o.Isolation, "isolation", "pooled", "pooled or fresh")
		fs.IntVar(&o.Samples, "samples", 200, "latency samples")
		fs.StringVar(&o.PluginsDir, "plugins", "plugins/enabled", "folder with testkit.wasm")
		fs.StringVar(&o.Func, "func", bench.DefaultFunc, "job function of the throughput run (testkit.noop: a job that writes nothing)")
		fs.BoolVar(&asJSON, "json", false, "JSON output")
		fs.StringVar(&profile, "cpuprofile", "", "write a CPU profile of the measured phase to this file: the throughput run, or with --enqueue the clients sending")
		fs.StringVar(&memProfile, "memprofile", "", "write the process's allocation profile to this file at the end (go tool pprof -sample_index=alloc_space)")
		fs.StringVar(&eo.Mode, "enqueue", "", "measure enqueueing only: http (clients POST to the node's HTTP server) or store (in-process); nothing runs the jobs")
		fs.IntVar(&eo.Clients, "clients", 16, "with --enqueue: clients sending at once")
		fs.IntVar(&eo.Batch, "batch", 1, "with --enqueue: jobs per request (1 = POST /v1/jobs, more = POST /v1/jobs:batch)")
		fs.BoolVar(&eo.Coalesce.Off, "no-coalesce", false, "with --enqueue: store each request in its own transaction")
		fs.Func("window", "with --enqueue: the longest a request waits for others ([enqueue] coalesce_window; default 2ms)", func(v string) error {
			d, err := time.ParseDuration(v)
			eo.Coalesce.Window = abi.Duration(d)
			return err
		})
		fs.IntVar(&eo.Coalesce.Flushers, "flushers", 0, "with --enqueue: groups written at once ([enqueue] coalesce_flushers; 0 = the default)")
		fs.Func("hold", "with --enqueue: true or false, hold the next group after a write for the requests it answered ([enqueue] coalesce_hold; default true on PostgreSQL, false on SQLite)", func(v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("want true or false")
			}
			eo.Coalesce.Hold = &b
			return nil
		})
		fs.IntVar(&o.Backlog, "backlog", 0, "future jobs (eta a day ahead) stored before the runs")
		fs.IntVar(&o.History, "history", 0, "done jobs stored before the runs (postgres)")
	}
	if _, err := flags("bench", args, define); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs := flag.NewFlagSet("bench", flag.ContinueOnError)
			define(fs)
			fs.SetOutput(out)
			fmt.Fprintln(out, "Usage: wasmq bench [flags]\n\nMeasures a fresh node: throughput and idle latency, or with --enqueue how fast jobs are stored.\n\nFlags:")
			fs.PrintDefaults()
			return nil
		}
		return err
	}
	if o.Backlog < 0 || o.History < 0 {
		return fmt.Errorf("bench: --backlog and --history must be 0 or more")
	}
	if schema != "" {
		if o.Driver != "postgres" {
			return fmt.Errorf("bench: --schema is for --store postgres")
		}
		dsn, drop, err := bench.ScratchSchema(context.Background(), o.DSN, schema)
		if err != nil {
			return err
		}
		defer func() {
			if err := drop(); err != nil {
				fmt.Fprintln(out, err)
			}
		}()
		o.DSN = dsn
	}
	if memProfile != "" {
		f, err := os.Create(memProfile)
		if err != nil {
			return fmt.Errorf("bench: --memprofile: %w", err)
		}
		defer func() {
			if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
				fmt.Fprintf(out, "bench: --memprofile: %v\n", err)
			}
			f.Close()
		}()
	}
	if f, ok := out.(*os.File); ok && !asJSON && bench.IsTerminal(f) {
		o.Progress = f // progress bars for the long phases
	}
	var cpuProfile io.Writer
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return fmt.Errorf("bench: --cpuprofile: %w", err)
		}
		defer f.Close()
		cpuProfile = f
	}
	var r any
	var err error
	if eo.Mode != "" {
		eo.Driver, eo.DSN, eo.Jobs, eo.PluginsDir = o.Driver, o.DSN, o.Jobs, o.PluginsDir
		if f, ok := out.(*os.File); ok && !asJSON && bench.IsTerminal(f) {
			eo.Progress = f
		}
		eo.CPUProfile = cpuProfile
		r, err = bench.Enqueue(context.Background(), eo)
	} else {
		o.CPUProfile = cpuProfile
		r, err = bench.Run(context.Background(), o)
	}
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(out).Encode(r)
	}
	fmt.Fprintln(out, r)
	return nil
}

// compileChildCommand is the hidden first argument of a compile child.
const compileChildCommand = "__compile-module"

// compileChild compiles the module on stdin as a node with the given
// cache folder and limits would, for host.Host.compileInChild.
func compileChild(args []string) error {
	fs := flag.NewFlagSet(compileChildCommand, flag.ContinueOnError)
	var cfg host.Config
	var memory int64
	fs.StringVar(&cfg.CacheDir, "cache-dir", "", "")
	fs.Int64Var(&memory, "memory-limit", 0, "")
	fs.Int64Var(&cfg.TableLimit, "table-limit", 0, "")
	var timeout time.Duration
	fs.DurationVar(&timeout, "timeout", 0, "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.CompileTimeout = abi.Duration(timeout)
	cfg.MemoryLimit = host.ByteSize(memory)
	return host.CompileChild(cfg, os.Stdin)
}
