package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// Enqueueing from SQL, in the application's own transaction
// (docs/sql.md). The SQL functions are rendered from sqlenqueue.sql with
// this binary's limits and installed whenever the schema is migrated, and
// at Open when the installed ones are not this binary's: the SQL rules
// are derived from the Go constants, never copied by hand.

//go:embed sqlenqueue.sql
var sqlEnqueueTemplate string

var sqlEnqueueTmpl = template.Must(template.New("sqlenqueue").Parse(sqlEnqueueTemplate))

// sqlFunctions are the signatures the mapped roles get EXECUTE on.
var sqlFunctions = []string{"enqueue(text, jsonb, jsonb, jsonb)", "enqueue_batch(jsonb)", "functions()"}

// renderSQLEnqueue is the SQL of the functions for schema.
func renderSQLEnqueue(schema string) (string, error) {
	var b bytes.Buffer
	err := sqlEnqueueTmpl.Execute(&b, map[string]any{
		"Schema":            pgx.Identifier{schema}.Sanitize(),
		"Root":              abi.RootChannel,
		"DefaultPriority":   abi.DefaultPriority,
		"DefaultMaxRetries": abi.DefaultMaxRetries,
		"MaxDescription":    abi.MaxDescription,
		"MaxIdentityKey":    abi.MaxIdentityKey,
		"MaxBatch":          abi.MaxBatch,
		"MaxSecondsFromNow": abi.MaxSecondsFromNow,
		"MaxChannelLen":     abi.MaxChannelLen,
		"MaxChannelDepth":   abi.MaxChannelDepth,
		"MaxPriority":       store.MaxPriority,
		"MaxMaxRetries":     store.MaxMaxRetries,
		"MinDate":           store.MinDate.Format(time.RFC3339),
		"MaxDate":           store.MaxDate.Format(time.RFC3339),
		"MinYear":           store.MinDate.Year(),
		"MaxYear":           store.MaxDate.Year(),
		"IdentityLockClass": identityLockClass,
		"QuotaLockClass":    quotaLockClass,
		"UUIDsPerNotify":    uuidsPerNotify,
	})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b.Bytes())
	// The digest marks what is installed, so that Open can tell.
	fmt.Fprintf(&b, "\nCOMMENT ON FUNCTION _sql_jobs(text, jsonb, boolean) IS 'wasmq %s';\n", hex.EncodeToString(sum[:8]))
	return b.String(), nil
}

// installSQLEnqueue (re)installs the functions in the schema of q, when
// what is installed is not this binary's. Call it under the migration
// lock.
func installSQLEnqueue(ctx context.Context, q querier) error {
	var schema string
	if err := q.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("postgres store: install SQL enqueue: %w", err)
	}
	src, err := renderSQLEnqueue(schema)
	if err != nil {
		return fmt.Errorf("postgres store: install SQL enqueue: %w", err)
	}
	if current, err := sqlEnqueueInstalled(ctx, q); err != nil || current == sqlEnqueueMark(src) {
		return err
	}
	if _, err := q.Exec(ctx, src); err != nil {
		return fmt.Errorf("postgres store: install SQL enqueue: %w", err)
	}
	return nil
}

// sqlEnqueueMark is the comment renderSQLEnqueue puts on _sql_jobs.
func sqlEnqueueMark(src string) string {
	i := strings.LastIndex(src, "IS '")
	return strings.TrimSuffix(strings.TrimSpace(src[i+4:]), "';")
}

func sqlEnqueueInstalled(ctx context.Context, q querier) (string, error) {
	var mark *string
	err := q.QueryRow(ctx, `SELECT obj_description(to_regprocedure('_sql_jobs(text, jsonb, boolean)'), 'pg_proc')`).Scan(&mark)
	if err != nil {
		return "", fmt.Errorf("postgres store: read installed SQL enqueue: %w", err)
	}
	if mark == nil {
		return "", nil
	}
	return *mark, nil
}

// ensureSQLEnqueue installs this binary's functions at Open if another
// binary installed others (an upgrade without a schema change).
func (s *driver) ensureSQLEnqueue(ctx context.Context) error {
	var schema string
	if err := s.pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("postgres store: install SQL enqueue: %w", err)
	}
	src, err := renderSQLEnqueue(schema)
	if err != nil {
		return err
	}
	if current, err := sqlEnqueueInstalled(ctx, s.pool); err != nil || current == sqlEnqueueMark(src) {
		return err
	}
	err = s.underMigrationLock(ctx, func(tx pgx.Tx) error { return installSQLEnqueue(ctx, tx) })
	if err != nil {
		return fmt.Errorf("%w (the SQL enqueue functions installed are another wasmq binary's: run `wasmq migrate` with this one)", err)
	}
	return nil
}

func (s *driver) underMigrationLock(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres store: begin: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, leaderLockKey+1); err != nil {
		return fmt.Errorf("postgres store: migrate lock: %w", err)
	}
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres store: commit: %w", err)
	}
	return nil
}

var _ store.SQLAccess = (*Store)(nil)

func (s *Store) ApplySQLTenants(ctx context.Context, tenants []store.SQLTenant) error {
	err := s.d.underMigrationLock(ctx, func(tx pgx.Tx) error { return applySQLTenants(ctx, tx, tenants) })
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42501" {
		return fmt.Errorf("%w: %w", store.ErrNotOwner, err)
	}
	return err
}

// ApplySQLTenants connects to dsn and applies tenants (`wasmq migrate`).
func ApplySQLTenants(ctx context.Context, dsn string, tenants []store.SQLTenant) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("postgres store: store.dsn: %w", err)
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres store: begin: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, leaderLockKey+1); err != nil {
		return fmt.Errorf("postgres store: migrate lock: %w", err)
	}
	if err := applySQLTenants(ctx, tx, tenants); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func applySQLTenants(ctx context.Context, tx pgx.Tx, tenants []store.SQLTenant) error {
	var schema string
	if err := tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("postgres store: sql roles: %w", err)
	}
	want := map[string]string{} // role → tenant
	for _, t := range tenants {
		for _, r := range t.Roles {
			if r == "" || len(r) > 63 || !utf8.ValidString(r) || strings.IndexByte(r, 0) >= 0 {
				return fmt.Errorf("%s.sql_roles: %q is not a PostgreSQL role name", t.Key, r)
			}
			if other, dup := want[r]; dup && other != t.Name {
				return fmt.Errorf("%s.sql_roles: role %q is mapped to tenant %q already", t.Key, r, other)
			}
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, r).Scan(&exists); err != nil {
				return fmt.Errorf("postgres store: sql roles: %w", err)
			}
			if !exists {
				return fmt.Errorf("%s.sql_roles: role %q does not exist in PostgreSQL (CREATE ROLE it first)", t.Key, r)
			}
			want[r] = t.Name
		}
	}
	rows, err := tx.Query(ctx, `SELECT s.role FROM sql_roles s JOIN pg_roles r ON r.rolname = s.role`)
	if err != nil {
		return fmt.Errorf("postgres store: sql roles: %w", err)
	}
	old, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("postgres store: sql roles: %w", err)
	}
	fns := make([]string, len(sqlFunctions))
	for i, f := range sqlFunctions {
		fns[i] = pgx.Identifier{schema}.Sanitize() + "." + f
	}
	for _, r := range old {
		if _, kept := want[r]; kept {
			continue
		}
		if _, err := tx.Exec(ctx, `REVOKE EXECUTE ON FUNCTION `+strings.Join(fns, ", ")+` FROM `+pgx.Identifier{r}.Sanitize()); err != nil {
			return fmt.Errorf("postgres store: revoke from role %q: %w", r, err)
		}
	}
	roles := make([]string, 0, len(want))
	for r := range want {
		roles = append(roles, r)
	}
	sort.Strings(roles)
	if _, err := tx.Exec(ctx, `DELETE FROM sql_roles`); err != nil {
		return fmt.Errorf("postgres store: sql roles: %w", err)
	}
	for _, r := range roles {
		id := pgx.Identifier{r}.Sanitize()
		if _, err := tx.Exec(ctx, `INSERT INTO sql_roles (role, tenant) VALUES ($1, $2)`, r, want[r]); err != nil {
			return fmt.Errorf("postgres store: sql roles: %w", err)
		}
		// USAGE on the schema lets the role name the functions; it reads
		// no table (no table right is granted).
		if _, err := tx.Exec(ctx, `GRANT USAGE ON SCHEMA `+pgx.Identifier{schema}.Sanitize()+` TO `+id); err != nil {
			return fmt.Errorf("postgres store: grant to role %q: %w", r, err)
		}
		if _, err := tx.Exec(ctx, `GRANT EXECUTE ON FUNCTION `+strings.Join(fns, ", ")+` TO `+id); err != nil {
			return fmt.Errorf("postgres store: grant to role %q: %w", r, err)
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM sql_tenant_limits`); err != nil {
		return fmt.Errorf("postgres store: sql quotas: %w", err)
	}
	for _, t := range tenants {
		if t.MaxPending > 0 || t.MaxChannels > 0 {
			if _, err := tx.Exec(ctx, `INSERT INTO sql_tenant_limits (tenant, max_pending, max_channels) VALUES ($1, $2, $3)
				ON CONFLICT (tenant) DO UPDATE SET max_pending = EXCLUDED.max_pending, max_channels = EXCLUDED.max_channels`,
				t.Name, t.MaxPending, t.MaxChannels); err != nil {
				return fmt.Errorf("postgres store: sql quotas: %w", err)
			}
		}
	}
	return nil
}

// registryTTL is how long a node's published registry stands without
// being renewed; nodes renew theirs every minute.
const registryTTL = 10 * time.Minute

// registryFunction is what the SQL functions read of an export: the
// defaults enqueue takes from its function config.
type registryFunction struct {
	Channel     string `json:"channel,omitempty"`
	MaxRetries  *int   `json:"max_retries,omitempty"`
	Description string `json:"description,omitempty"`
}

func (s *Store) PublishPlugins(ctx context.Context, node string, mods []abi.ModuleInfo) error {
	var tenants, names, fns []string
	var loaded []bool
	for _, m := range mods {
		f := map[string]registryFunction{}
		for _, e := range m.Exports {
			fc := m.Functions[e]
			f[e] = registryFunction{Channel: fc.Channel, MaxRetries: fc.MaxRetries, Description: fc.Description}
		}
		b, err := json.Marshal(f)
		if err != nil {
			return fmt.Errorf("postgres store: publish plugins: %w", err)
		}
		tenants, names, fns, loaded = append(tenants, m.Tenant), append(names, m.Name), append(fns, string(b)), append(loaded, m.SHA256 != "")
	}
	return s.d.Write(ctx, func(t store.Tx) error {
		w := t.(*wtx)
		// A node killed without a word leaves its rows behind: they go
		// once no node has renewed them for registryTTL.
		if _, err := w.Exec(ctx, `DELETE FROM plugin_registry WHERE node = $1 OR published < now() - $2::interval`,
			node, registryTTL.String()); err != nil {
			return fmt.Errorf("postgres store: publish plugins: %w", err)
		}
		if _, err := w.Exec(ctx, `INSERT INTO plugin_registry (node, tenant, module, loaded, functions)
			SELECT $1, t, m, l, f::jsonb FROM unnest($2::text[], $3::text[], $4::bool[], $5::text[]) AS x(t, m, l, f)`,
			node, tenants, names, loaded, fns); err != nil {
			return fmt.Errorf("postgres store: publish plugins: %w", err)
		}
		return nil
	})
}

func (s *Store) UnpublishPlugins(ctx context.Context, node string) error {
	if _, err := s.d.pool.Exec(ctx, `DELETE FROM plugin_registry WHERE node = $1`, node); err != nil {
		return fmt.Errorf("postgres store: unpublish plugins: %w", err)
	}
	return nil
}
