package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/wasmq/wasmq/store/pgtest"
)

// TestMigrateMapsTheConfiguredRolesToTheirTenants: `wasmq migrate` with
// [[tenants]] sql_roles lets each role call wasmq.enqueue, and a role it
// does not know is an error naming the key.
func TestMigrateMapsTheConfiguredRolesToTheirTenants(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	role := fmt.Sprintf("wasmq_t_cli_%d", rand.Uint64()%1e12)
	if _, err := conn.Exec(ctx, "CREATE ROLE "+role); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), pgtest.URL())
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		c.Exec(context.Background(), "DROP OWNED BY "+role)
		c.Exec(context.Background(), "DROP ROLE "+role)
	})
	write := func(roles string) string {
		p := filepath.Join(t.TempDir(), "wasmq.toml")
		os.WriteFile(p, []byte(fmt.Sprintf(`[store]
driver = "postgres"
dsn = %q
[[tenants]]
name = "acme"
token = "acme-token-0123456789"
sql_roles = [%s]
`, dsn, roles)), 0o644)
		return p
	}
	var out bytes.Buffer
	if err := run([]string{"migrate", "--config", write(fmt.Sprintf("%q", role))}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "1 role(s) may enqueue with SQL") {
		t.Errorf("migrate says %q", out.String())
	}
	u, _ := pgx.ParseConfig(dsn)
	schema := u.RuntimeParams["search_path"]
	var tenant string
	if err := conn.QueryRow(ctx, `SELECT tenant FROM `+pgx.Identifier{schema, "sql_roles"}.Sanitize()+` WHERE role = $1`, role).Scan(&tenant); err != nil || tenant != "acme" {
		t.Errorf("role mapped to %q, %v", tenant, err)
	}
	var may bool
	if err := conn.QueryRow(ctx, `SELECT has_function_privilege($1, $2, 'EXECUTE')`, role,
		pgx.Identifier{schema}.Sanitize()+".enqueue(text, jsonb, jsonb, jsonb)").Scan(&may); err != nil || !may {
		t.Errorf("role may execute enqueue: %v, %v", may, err)
	}
	err = run([]string{"migrate", "--config", write(`"wasmq_t_nobody"`)}, &out)
	if err == nil || !strings.Contains(err.Error(), `tenants[0].sql_roles: role "wasmq_t_nobody" does not exist`) {
		t.Errorf("unknown role: %v", err)
	}
}
