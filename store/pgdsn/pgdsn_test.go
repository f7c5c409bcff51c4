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
