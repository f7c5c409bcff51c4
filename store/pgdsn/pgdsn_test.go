package pgdsn_test

import (
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/wasmq/wasmq/store/pgdsn"
)

// What pgx reads from the edited string is what counts: each case is
// parsed back as a connection would be.
func TestWithParamSetsOneParameterAndKeepsTheRest(t *testing.T) {
	cases := []struct {
		name, dsn  string
		key, value string
		want       map[string]string // runtime parameters after the edit
	}{
		{"a URL keeps an option with a space in it",
			"postgres://u@h:5432/db?options=-c%20statement_timeout%3D5s", "search_path", "s1",
			map[string]string{"options": "-c statement_timeout=5s", "search_path": "s1"}},
		{"a URL's earlier value is replaced",
			"postgres://u@h/db?search_path=elsewhere&application_name=app", "search_path", "s1",
			map[string]string{"search_path": "s1", "application_name": "app"}},
		{"a URL without a query gets one",
			"postgresql://u@h/db", "search_path", "s1", map[string]string{"search_path": "s1"}},
		{"a URL value with a space and an ampersand",
			"postgres://u@h/db", "application_name", "a b&c=d", map[string]string{"application_name": "a b&c=d"}},
		{"keyword/value keeps a quoted option",
			"host=h user=u dbname=db options='-c statement_timeout=5s'", "search_path", "s1",
			map[string]string{"options": "-c statement_timeout=5s", "search_path": "s1"}},
		{"keyword/value: the later key overrides",
			"host=h user=u dbname=db search_path=elsewhere", "search_path", "s1", map[string]string{"search_path": "s1"}},
		{"keyword/value quotes a value that needs it",
			"host=h user=u dbname=db", "application_name", `it's a \ test`, map[string]string{"application_name": `it's a \ test`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := pgdsn.WithParam(c.dsn, c.key, c.value)
			cfg, err := pgconn.ParseConfig(got)
			if err != nil {
				t.Fatalf("%q does not parse: %v", got, err)
			}
			for k, v := range c.want {
				if cfg.RuntimeParams[k] != v {
					t.Errorf("%q: parameter %s = %q, want %q", got, k, cfg.RuntimeParams[k], v)
				}
			}
			if cfg.Host != "h" || cfg.User != "u" || cfg.Database != "db" {
				t.Errorf("%q: host %q user %q database %q, want h, u, db", got, cfg.Host, cfg.User, cfg.Database)
			}
		})
	}
}

// The three ways a setting is written in `options`, as the server reads
// them (postgres(1): -c name=value, --name=value; libpq: a backslash
// escapes a space).
func TestOptionSettingsReadsEachFormTheServerReads(t *testing.T) {
	cases := []struct {
		name, options string
		want          map[string]string
	}{
		{"none", "", map[string]string{}},
		{"-c and a pair", "-c tcp_user_timeout=2500", map[string]string{"tcp_user_timeout": "2500"}},
		{"-c joined to its pair", "-ctcp_keepalives_idle=60", map[string]string{"tcp_keepalives_idle": "60"}},
		{"-c with dashes and capitals", "-c TCP-User-Timeout=1", map[string]string{"tcp_user_timeout": "1"}},
		{"the long form, dashes for underscores", "--idle-in-transaction-session-timeout=4s",
			map[string]string{"idle_in_transaction_session_timeout": "4s"}},
		{"several, with runs of spaces", "  -c a=1   --B=2 -cc=3 ",
			map[string]string{"a": "1", "b": "2", "c": "3"}},
		{"an escaped space stays in the value", `-c application_name=a\ b -c x=1`,
			map[string]string{"application_name": "a b", "x": "1"}},
		{"an escaped backslash", `-c search_path=a\\b`, map[string]string{"search_path": `a\b`}},
		{"other switches and a -c without a pair are skipped", "-d 1 -c -c novalue -c",
			map[string]string{}},
		{"the later of two wins", "-c a=1 -c a=2", map[string]string{"a": "2"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := pgdsn.OptionSettings(c.options)
			if len(got) != len(c.want) {
				t.Fatalf("OptionSettings(%q) = %v, want %v", c.options, got, c.want)
			}
			for k, v := range c.want {
				if got[k] != v {
					t.Fatalf("OptionSettings(%q)[%s] = %q, want %q (all: %v)", c.options, k, got[k], v, got)
				}
			}
		})
	}
}
