// Package backends picks the store implementation named by [store] driver,
// so callers (serve, migrate) depend on one constructor and not on both
// drivers' packages.
package backends

import (
	"context"
	"fmt"

	"github.com/rs/zerolog"
	"github.com/wasmq/wasmq/store"
	"github.com/wasmq/wasmq/store/postgres"
	"github.com/wasmq/wasmq/store/sqlite"
)

// Open opens the configured store, applying pending migrations first when
// cfg.Migrate is true; otherwise a schema behind the binary is refused
// with a message asking to run `wasmq migrate`.
func Open(ctx context.Context, cfg store.Config, log zerolog.Logger) (store.Store, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	migrate := *cfg.Migrate
	log = log.With().Str("component", "store").Str("driver", cfg.Driver).Logger()
	switch cfg.Driver {
	case "postgres":
		s, err := postgres.Open(ctx, cfg.DSN, migrate)
		if err != nil {
			return nil, err
		}
		s.SetInDoubtWait(cfg.InDoubtWait.D())
		s.SetTimeout(cfg.Timeout.D())
		log.Debug().Bool("migrate", migrate).Msg("store opened")
		return s, nil
	case "sqlite":
		s, err := sqlite.Open(ctx, cfg.Path, migrate)
		if err != nil {
			return nil, err
		}
		s.SetInDoubtWait(cfg.InDoubtWait.D())
		s.SetTimeout(cfg.Timeout.D())
		log.Debug().Str("path", cfg.Path).Bool("migrate", migrate).Msg("store opened")
		return s, nil
	}
	return nil, fmt.Errorf("store.driver: %q is not a driver; use \"sqlite\" or \"postgres\"", cfg.Driver)
}

// Migrate applies the configured store's pending migrations (`wasmq
// migrate`) and returns how many it applied; 0 means up to date.
func Migrate(ctx context.Context, cfg store.Config) (int, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return 0, err
	}
	switch cfg.Driver {
	case "postgres":
		return postgres.Migrate(ctx, cfg.DSN)
	case "sqlite":
		return sqlite.MigrateFile(ctx, cfg.Path)
	}
	return 0, fmt.Errorf("store.driver: %q is not a driver; use \"sqlite\" or \"postgres\"", cfg.Driver)
}

// ApplySQLTenants maps the configured roles to their tenants for
// enqueueing from SQL (`wasmq migrate`; nodes do it again at start). Only
// the PostgreSQL store has it: config validation refuses sql_roles on
// another.
func ApplySQLTenants(ctx context.Context, cfg store.Config, tenants []store.SQLTenant) error {
	cfg = cfg.WithDefaults()
	if cfg.Driver != "postgres" {
		return nil
	}
	return postgres.ApplySQLTenants(ctx, cfg.DSN, tenants)
}
