package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wasmq/wasmq/config"
	"github.com/wasmq/wasmq/enqueue"
	"github.com/wasmq/wasmq/host"
	"github.com/wasmq/wasmq/runner"
	"github.com/wasmq/wasmq/store"
	"github.com/wasmq/wasmq/telemetry"
)

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "wasmq.toml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTheShippedConfigIsValid(t *testing.T) {
	if _, err := config.Load("../wasmq.toml"); err != nil {
		t.Fatal(err)
	}
}

func TestBadConfigIsRefusedNamingTheKey(t *testing.T) {
	cases := map[string]string{
		"[server]\nlisten = \"127.0.0.1:1\"\nlistn = 1\n":                                           "server.listn",
		"[store]\ndriver = \"mysql\"\n":                                                             "store.driver",
		"[runner]\nchannels = \"root:4,a:x\"\n":                                                     "runner.channels",
		"[runner]\nchannels = \"root:4,s:2:sequential\"\n":                                          "sequential channel must have capacity 1",
		"[runner]\nchannels = \"root:4,a:1:fast\"\n":                                                "unknown key \"fast\" (known keys",
		"[host]\ntimeout = \"soon\"\n":                                                              "timeout",
		"[[tenants]]\nname = \"acme\"\n":                                                            "tenants[0].token",
		"[[tenants]]\nname = \"a\"\ntoken = \"short\"\n":                                            "at least 16",
		"[server]\nlisten = \"0.0.0.0:8765\"\n":                                                     "not a loopback address",
		"[server]\nlisten = \"127.0.0.1:1\"\n[runner]\nlease = \"500ms\"":                           "runner.lease",
		"[runner]\nlease = \"720h\"\n":                                                              "runner.lease: must be at most 1h0m0s",
		"this is not toml":                                                                          "line 1",
		"[server]\nread_timeout = \"-1s\"\n":                                                        "server.read_timeout: must be > 0",
		"[server]\nidle_timeout = -5\n":                                                             "server.idle_timeout: must be > 0",
		"[server]\nread_header_timeout = \"2m\"\n":                                                  "server.read_header_timeout: 2m0s is longer than read_timeout",
		"[server]\nmax_uploads = -1\n":                                                              "server.max_uploads: must be between 1 and 1000",
		"[server]\nmax_uploads = 1099511627776\n":                                                   "server.max_uploads",
		"[server]\nmax_connections = -1\n":                                                          "server.max_connections",
		"[server]\nmax_reads = -1\n":                                                                "server.max_reads: must be between 1 and 1000",
		"[server]\nmax_reads = 1099511627776\n":                                                     "server.max_reads",
		"[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nmax_reads = 1001\n":               "tenants[0].max_reads: must be between 1 and 1000",
		"[telemetry]\notlp_endpoint = \"collector:4318\"\n":                                         "telemetry.otlp_endpoint",
		"[telemetry]\nsample_ratio = 2.0\n":                                                         "telemetry.sample_ratio",
		"[telemetry]\notlp_header = 1\n":                                                            "telemetry.otlp_header",
		"[enqueue]\ncoalesce_window = \"-1ms\"\n":                                                   "enqueue.coalesce_window",
		"[enqueue]\ncoalesce_window = \"5s\"\n":                                                     "enqueue.coalesce_window",
		"[enqueue]\ncoalesce_max_jobs = -3\n":                                                       "enqueue.coalesce_max_jobs",
		"[enqueue]\ncoalesce_flushers = 100\n":                                                      "enqueue.coalesce_flushers",
		"[enqueue]\ncoalesce_flusher = 2\n":                                                         "enqueue.coalesce_flusher",
		"[enqueue]\ncoalesce_hold = \"yes\"\n":                                                      "coalesce_hold",
		"[store]\nin_doubt_wait = \"-1s\"\n":                                                        "store.in_doubt_wait",
		"[store]\nin_doubt_wait = \"1h\"\n":                                                         "store.in_doubt_wait",
		"[store]\ntimeout = \"-1s\"\n":                                                              "store.timeout",
		"[store]\ntimeout = \"50ms\"\n":                                                             "store.timeout",
		"[store]\ntimeout = \"11m\"\n":                                                              "store.timeout",
		"[server]\nwrite_timeout = \"1m\"\n[store]\ntimeout = \"1m\"\n":                             "server.write_timeout: 1m0s is not longer than store.timeout (1m0s)",
		"[host]\npool_memory = \"2000GiB\"\n":                                                       "host.pool_memory: must be between 1 byte and 1024GiB",
		"[host]\npool_memory = -1\n":                                                                "host.pool_memory",
		"[host]\nrecord_rate = -1\n":                                                                "host.record_rate",
		"[host]\nrecord_burst = \"1KiB\"\n":                                                         "host.record_burst: 1KiB is under host.max_input + host.record_max_bytes (2MiB)",
		"[host]\nrecord_burst = 1125899906842625\n":                                                 "host.record_burst: must be between 1 byte and 1048576GiB",
		"[host]\nmax_memory = \"2PiB\"\n":                                                           "host.max_memory",
		"[host]\nmax_memory = \"10000TiB\"\n":                                                       "host.max_memory",
		"[host]\nmax_memory = 1125899906842625\n":                                                   "host.max_memory: must be between 1 byte and 1048576GiB",
		"[host]\nmax_memory = \"64MiB\"\n":                                                          "host.max_memory: 64MiB is under host.memory_limit of 256MiB",
		"[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nmax_memory = \"1MiB\"\n":          "tenants[0].max_memory: 1MiB is under host.memory_limit of 256MiB",
		"[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nrecord_burst = \"1MiB\"\n":        "tenants[0].record_burst: 1MiB is under host.max_input + host.record_max_bytes (2MiB)",
		"[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nrecord_rate = 1125899906842625\n": "tenants[0].record_rate: must be between 1 byte and",
		"[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nrecord_rate = -1\n":               "tenants.record_rate",
		"[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nmax_memory = 1125899906842625\n":  "tenants[0].max_memory: must be between 1 byte and 1048576GiB",
		"[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nmax_memory = -1\n":                "tenants.max_memory",
		"[host]\nrecord = \"sometimes\"\n":                                                          "host.record",
		"[[tenants]]\nname = \"acme\"\ntoken = \"0123456789abcdef\"\nrecord = \"most\"\n":           "tenants[0].record",
		"[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nfuel_rate = -1\n":                 "tenants[0].fuel_rate",
		"[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nfuel_rate = 1e13\n":               "tenants[0].fuel_rate",
		"[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nfuel_burst = 1000\n":              "tenants[0].fuel_burst: needs a fuel_rate",
		"[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nfuel_rate = 1\nfuel_burst = -1\n": "tenants[0].fuel_burst",
		"[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nmax_pending = -1\n":               "tenants[0].max_pending: must be 0 (unlimited) or more, got -1",
		"[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nmax_running = -2\n":               "tenants[0].max_running",
		"[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nmax_plugins = -1\n":               "tenants[0].max_plugins: must be between 1 and 100000",
		"[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nmax_schedules = -1\n":             "tenants[0].max_schedules: must be between 1 and 100000",
		"[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nmax_schedules = 100001\n":         "tenants[0].max_schedules: must be between 1 and 100000",
		"[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nmax_plugins = 1099511627776\n":    "tenants[0].max_plugins",
		"[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nmax_plugin_bytes = \"1025GiB\"\n": "tenants[0].max_plugin_bytes: must be between 1 byte and 1024GiB",
		"[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nmax_plugin_bytes = -5\n":          "tenants.max_plugin_bytes: \"-5\" is not a size",
		"[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nmax_plugin_bytes = \"lots\"\n":    "max_plugin_bytes",
		"[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nburst = -3\n":                     "tenants[0].burst",
		"[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nrate = -0.5\n":                    "tenants[0].rate",
		"[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nrate = nan\n":                     "tenants[0].rate",
		"[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nrate = inf\n":                     "tenants[0].rate",
		"[runner]\nusage_flush = \"-1s\"\n":                                                         "runner.usage_flush",
		"[runner]\nmax_clock_offset = \"5s\"\n":                                                     "runner.max_clock_offset: must be under half of runner.lease (10s)",
		"[runner]\nmax_clock_offset = \"-1s\"\n":                                                    "runner.max_clock_offset",
		// The lease is named, not max_clock_offset, whose default derives
		// from it (the keys were checked in a map's random order).
		"[runner]\nlease = \"-1s\"\n": "runner.lease: must be at least 1s",
		// A value TOML parses but wasmq cannot read names its key.
		"[runner]\nsafety_poll = \"1099511627776h\"\n": `runner.safety_poll: "1099511627776h" is not a duration`,
		"[host]\nmemory_limit = \"1PiB\"\n":            `host.memory_limit: "1PiB" has an unknown unit`,
		// 2^40 workers or a channel of 2^40 slots panicked at start, a
		// batch of 2^40 ran out of memory.
		"[runner]\nworkers = 1099511627776\n":                          "runner.workers: must be from 1 to 100000",
		"[runner]\nbatch_size = 1099511627776\n":                       "runner.batch_size: must be from 1 to 10000",
		"[runner]\nchannels = \"root:1099511627776\"\n":                "capacity must be from 1 to 100000",
		"[runner]\nchannels = \"root:4,a:1:throttle=1e300\"\n":         "throttle needs a number of seconds > 0 and at most 86400",
		"[runner]\nchannels = \"root:4,a:1:throttle=NaN\"\n":           "throttle needs",
		"[runner]\nchannels = \"root:4,a:1:removal_interval=1e300\"\n": "removal_interval needs a number of days > 0 and at most 36500",
		// A typo of a unit ("1ns" for "1s") made a loop of the period.
		"[runner]\nsafety_poll = \"1ns\"\n":   "runner.safety_poll: must be at least 10ms",
		"[runner]\nvacuum_every = \"1ms\"\n":  "runner.vacuum_every: must be at least 1s",
		"[runner]\nusage_flush = \"1ns\"\n":   "runner.usage_flush: must be at least 10ms",
		"[runner]\ndue_horizon = \"1ns\"\n":   "runner.due_horizon: must be at least 100ms",
		"[host]\nreload_interval = \"1ns\"\n": "host.reload_interval: must be at least 10ms",
		// The static rules of a schedule, checked before a node applies it.
		"[[schedules]]\nname = \"n\"\ncron = \"@daily\"\nfunc = \"m.f\"\ncatch_up_max = -1\n":                                        "schedules[0].catch_up_max",
		"[[schedules]]\nname = \"n\"\ncron = \"@daily\"\nfunc = \"m.f\"\nmissed_runs = \"catch_up\"\ncatch_up_max = 1099511627776\n": "schedules[0].catch_up_max: must be an integer from 1 to 1000",
		"[[schedules]]\nname = \"n\"\ncron = \"@daily\"\nfunc = \"m.f\"\nmissed_runs = \"sometimes\"\n":                              "schedules[0].missed_runs",
		"[[schedules]]\nname = \"../n\"\ncron = \"@daily\"\nfunc = \"m.f\"\n":                                                        "schedules[0].name",
	}
	for body, want := range cases {
		_, err := config.Load(write(t, body))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config %q: error %v, want it to mention %q", body, err, want)
		}
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	t.Setenv("WASMQ_CHANNELS", "root:9")
	t.Setenv("WASMQ_LISTEN", "127.0.0.1:9999")
	t.Setenv("WASMQ_DATABASE_URL", "postgres://u@db/wasmq")
	t.Setenv("WASMQ_NO_DELAY", "1")
	t.Setenv("WASMQ_OTLP_ENDPOINT", "http://127.0.0.1:4318")
	f, err := config.Load(write(t, "[store]\ndriver = \"postgres\"\ndsn = \"postgres://u@file/wasmq\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Runner.Channels != "root:9" || f.Server.Listen != "127.0.0.1:9999" || f.Runner.Workers != 9 || !f.Server.NoDelay {
		t.Fatalf("%+v %+v", f.Runner, f.Server)
	}
	if f.Telemetry.OTLPEndpoint != "http://127.0.0.1:4318" {
		t.Fatalf("telemetry.otlp_endpoint %q, want WASMQ_OTLP_ENDPOINT's", f.Telemetry.OTLPEndpoint)
	}
	if f.Store.DSN != "postgres://u@db/wasmq" {
		t.Fatalf("store.dsn %q, want the one of WASMQ_DATABASE_URL", f.Store.DSN)
	}
	t.Setenv("WASMQ_NO_DELAY", "0")
	if f, _ := config.Load(""); f.Server.NoDelay {
		t.Fatal("WASMQ_NO_DELAY=0 turned the synchronous mode on")
	}
}

// TestEveryKeyIsDocumented keeps docs/config.md in step with the structs.
// The hold after a write is on by default where a write is mostly its
// round trip (PostgreSQL) and off on SQLite; a value given is kept.
func TestTheHoldAfterAWriteDefaultsByStore(t *testing.T) {
	cases := []struct {
		body string
		want bool
	}{
		{"[store]\ndriver = \"sqlite\"\n", false},
		{"[store]\ndriver = \"postgres\"\ndsn = \"postgres://x@127.0.0.1/y\"\n", true},
		{"[store]\ndriver = \"postgres\"\ndsn = \"postgres://x@127.0.0.1/y\"\n[enqueue]\ncoalesce_hold = false\n", false},
		{"[store]\ndriver = \"sqlite\"\n[enqueue]\ncoalesce_hold = true\n", true},
	}
	for _, c := range cases {
		f, err := config.Load(write(t, c.body))
		if err != nil {
			t.Fatalf("%q: %v", c.body, err)
		}
		if f.Enqueue.Hold == nil || *f.Enqueue.Hold != c.want {
			t.Errorf("%q: coalesce_hold %v, want %v", c.body, f.Enqueue.Hold, c.want)
		}
	}
}

// The node's memory budget defaults to three quarters of what the system
// gives the process; a tenant's, to none but the node's.
func TestMemoryBudgetsReachTheHost(t *testing.T) {
	f, err := config.Load(write(t, "[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nmax_memory = \"1GiB\"\n[[tenants]]\nname = \"b\"\ntoken = \"0123456789abcdefg\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Host.TenantMemory; len(got) != 1 || got["a"] != 1<<30 {
		t.Errorf("host.TenantMemory %v, want a: 1GiB and nothing for b", got)
	}
	sys := host.SystemMemory()
	if sys == 0 {
		t.Skip("the system does not say its memory")
	}
	if want := host.ByteSize(float64(sys) * host.DefaultMaxMemoryShare); f.Host.MaxMemory != want {
		t.Errorf("host.max_memory defaults to %s, want %s (of %s)", f.Host.MaxMemory, want, host.ByteSize(sys))
	}
}

// The store's timeout defaults to 30 s, or to half the HTTP write
// timeout when that is shorter: a request the store holds is still
// answered.
func TestTheStoreTimeoutFitsWithinTheWriteTimeout(t *testing.T) {
	for _, c := range []struct {
		body string
		want time.Duration
	}{
		{"", 30 * time.Second},
		{"[server]\nwrite_timeout = \"2s\"\n", time.Second},
		{"[server]\nwrite_timeout = \"2s\"\n[store]\ntimeout = \"1500ms\"\n", 1500 * time.Millisecond},
	} {
		f, err := config.Load(write(t, c.body))
		if err != nil {
			t.Fatalf("%q: %v", c.body, err)
		}
		if got := f.Store.Timeout.D(); got != c.want {
			t.Errorf("%q: store.timeout %v, want %v", c.body, got, c.want)
		}
	}
}

func TestEveryKeyIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]any{"server": config.Server{}, "store": store.Config{}, "runner": runner.Config{}, "host": host.Config{}, "tenants": config.Tenant{}, "telemetry": telemetry.Config{}, "enqueue": enqueue.Coalesce{}}
	for sec, v := range sections {
		ty := reflect.TypeOf(v)
		for i := 0; i < ty.NumField(); i++ {
			tag := ty.Field(i).Tag.Get("toml")
			if tag == "" || tag == "-" {
				continue
			}
			if !strings.Contains(string(doc), "`"+tag+"`") {
				t.Errorf("docs/config.md does not document [%s] %s", sec, tag)
			}
		}
	}
}
