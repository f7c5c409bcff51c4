package store

import (
	"fmt"
	"time"

	"github.com/wasmq/wasmq/abi"
)

// Config is the [store] section of wasmq.toml.
type Config struct {
	// Driver is "sqlite" (embedded, zero set-up, one machine) or
	// "postgres" (several nodes). Defaults to "sqlite".
	Driver string `toml:"driver"`
	// Path is the SQLite database file. Defaults to "data/wasmq.db".
	Path string `toml:"path"`
	// DSN is the PostgreSQL connection string; the WASMQ_DATABASE_URL
	// environment variable overrides it (read by package config). No
	// default.
	DSN string `toml:"dsn"`
	// Migrate applies pending schema migrations when the server starts.
	// Defaults to true for sqlite and false for postgres, where
	// `wasmq migrate` is the deliberate step.
	Migrate *bool `toml:"migrate"`
	// SQLRoles are the PostgreSQL roles that create jobs of the single
	// "default" tenant with SQL in their own transactions, when no
	// [[tenants]] are configured (those have their own sql_roles); see
	// docs/sql.md. Defaults to none.
	SQLRoles []string `toml:"sql_roles"`
	// InDoubtWait is how long an enqueue whose commit is in doubt (the
	// connection lost after the commit was sent) waits for the database
	// to tell whether its jobs were stored, before answering in_doubt.
	// Defaults to 10s (DefaultInDoubtWait).
	InDoubtWait abi.Duration `toml:"in_doubt_wait"`
	// Timeout is the longest an enqueue's write, an action's, or a read
	// the API serves waits for the database (a lock another session
	// holds, a database that takes connections but does not answer);
	// then it is answered 503, nothing stored. Defaults to 30s
	// (DefaultTimeout), or to half of [server] write_timeout when that is
	// shorter (package config).
	Timeout abi.Duration `toml:"timeout"`
}

// DefaultTimeout is [store] timeout's default: far above any write or
// read the API makes on a healthy database (milliseconds), and with
// in_doubt_wait well within [server] write_timeout's 120s, so that the
// answer still reaches the client.
const DefaultTimeout = 30 * time.Second

// MinTimeout and maxTimeout bound [store] timeout: below a tenth of a
// second a busy database's commit is cut; above ten minutes no client
// is still waiting.
const (
	MinTimeout = 100 * time.Millisecond
	maxTimeout = 10 * time.Minute
)

// DefaultInDoubtWait is [store] in_doubt_wait's default: a PostgreSQL
// restart takes one to a few seconds.
const DefaultInDoubtWait = 10 * time.Second

// maxInDoubtWait bounds in_doubt_wait: a request held longer is one its
// client has long given up on.
const maxInDoubtWait = 10 * time.Minute

// WithDefaults returns c with every unset field at its documented default.
func (c Config) WithDefaults() Config {
	if c.Driver == "" {
		c.Driver = "sqlite"
	}
	if c.Path == "" {
		c.Path = "data/wasmq.db"
	}
	if c.Migrate == nil {
		m := c.Driver == "sqlite"
		c.Migrate = &m
	}
	if c.InDoubtWait == 0 {
		c.InDoubtWait = abi.Duration(DefaultInDoubtWait)
	}
	if c.Timeout == 0 {
		c.Timeout = abi.Duration(DefaultTimeout)
	}
	return c
}

// Validate names the TOML key of the first problem.
func (c Config) Validate() error {
	if d := c.InDoubtWait.D(); d < 0 || d > maxInDoubtWait {
		return fmt.Errorf("store.in_doubt_wait: %v must be between 0 (the default, %v) and %v", d, DefaultInDoubtWait, maxInDoubtWait)
	}
	if d := c.Timeout.D(); d != 0 && (d < MinTimeout || d > maxTimeout) {
		return fmt.Errorf("store.timeout: %v must be between %v and %v (the default, 0, is %v)", d, MinTimeout, maxTimeout, DefaultTimeout)
	}
	switch c.Driver {
	case "sqlite":
		if c.Path == "" {
			return fmt.Errorf("store.path: must name a file for driver \"sqlite\"")
		}
	case "postgres":
		if c.DSN == "" {
			return fmt.Errorf("store.dsn: must be set (or WASMQ_DATABASE_URL) for driver \"postgres\"")
		}
	default:
		return fmt.Errorf("store.driver: %q is not a driver; use \"sqlite\" or \"postgres\"", c.Driver)
	}
	return nil
}
