package bench

import (
	"context"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"

	"github.com/wasmq/wasmq/store/pgdsn"
)

// scratchMark is the comment a scratch schema carries: ScratchSchema
// drops a schema only when it finds this mark on it, so a name that
// happens to be taken by real data is refused, never emptied.
const scratchMark = "wasmq bench scratch schema: dropped by the next wasmq bench --schema run"

// schemaName is what --schema accepts: a plain lower-case identifier,
// which needs no quoting in SQL or in a search_path.
var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// ScratchSchema makes the schema name afresh in the database of dsn, and
// returns dsn with the schema as its search_path, and a drop that
// removes the schema again. A schema of that name left by an earlier
// run (a run cut short, say) is dropped first; one that bench did not
// make is refused. Every figure of a run then comes from an empty store,
// as the runs in docs/benchmarks.md are measured.
func ScratchSchema(ctx context.Context, dsn, name string) (string, func() error, error) {
	if !schemaName.MatchString(name) {
		return "", nil, fmt.Errorf("bench: --schema %q: a lower-case name of letters, digits and _ (at most 63), not starting with a digit", name)
	}
	if dsn == "" {
		return "", nil, fmt.Errorf("bench: --schema needs --dsn (or WASMQ_DATABASE_URL)")
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", nil, fmt.Errorf("bench: --schema %s: connect: %w", name, err)
	}
	defer conn.Close(ctx)
	var mark *string
	err = conn.QueryRow(ctx, `SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = $1`, name).Scan(&mark)
	switch {
	case err == pgx.ErrNoRows:
	case err != nil:
		return "", nil, fmt.Errorf("bench: --schema %s: read the schemas: %w", name, err)
	case mark == nil || *mark != scratchMark:
		return "", nil, fmt.Errorf("bench: --schema %s: the schema exists and an earlier wasmq bench did not make it; name another (bench drops only its own)", name)
	default:
		if _, err := conn.Exec(ctx, `DROP SCHEMA `+name+` CASCADE`); err != nil {
			return "", nil, fmt.Errorf("bench: --schema %s: drop the earlier run's schema: %w", name, err)
		}
	}
	if _, err := conn.Exec(ctx, `CREATE SCHEMA `+name); err != nil {
		return "", nil, fmt.Errorf("bench: --schema %s: create: %w", name, err)
	}
	if _, err := conn.Exec(ctx, `COMMENT ON SCHEMA `+name+` IS '`+scratchMark+`'`); err != nil {
		return "", nil, fmt.Errorf("bench: --schema %s: mark: %w", name, err)
	}
	drop := func() error {
		c, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			return fmt.Errorf("bench: drop schema %s: %w", name, err)
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), `DROP SCHEMA `+name+` CASCADE`); err != nil {
			return fmt.Errorf("bench: drop schema %s: %w", name, err)
		}
		return nil
	}
	return withSearchPath(dsn, name), drop, nil
}

// withSearchPath sets search_path in a URL or keyword/value connection
// string, replacing one already there.
func withSearchPath(dsn, schema string) string { return pgdsn.WithParam(dsn, "search_path", schema) }
