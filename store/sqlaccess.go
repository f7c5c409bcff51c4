package store

import (
	"context"
	"errors"

	"github.com/wasmq/wasmq/abi"
)

// SQLTenant is one tenant as enqueueing from SQL sees it (docs/sql.md):
// the database roles that enqueue for it and its quotas.
type SQLTenant struct {
	Name        string
	Roles       []string
	MaxPending  int
	MaxChannels int
	// Key names the tenant's entry in wasmq.toml (tenants[2]) in errors.
	Key string
}

// ErrNotOwner: the store's database role may not grant the enqueue
// functions (it does not own them). A node then keeps the mapping that
// `wasmq migrate`, run as the owner, applied.
var ErrNotOwner = errors.New("this database role may not grant EXECUTE on wasmq's SQL functions")

// SQLAccess is what a store that lets applications create jobs with SQL
// in their own transactions offers (the PostgreSQL store; SQLite does
// not). Nodes publish their plugin registry into it, so that the database
// refuses an unknown function at insert time.
type SQLAccess interface {
	// ApplySQLTenants maps roles to tenants, grants them EXECUTE on the
	// enqueue functions (and nothing else), revokes it from roles no
	// longer mapped, and records the quotas.
	ApplySQLTenants(ctx context.Context, tenants []SQLTenant) error
	// PublishPlugins replaces node's rows of the plugin registry with mods.
	PublishPlugins(ctx context.Context, node string, mods []abi.ModuleInfo) error
	// UnpublishPlugins removes node's rows (the node stops).
	UnpublishPlugins(ctx context.Context, node string) error
}
