package backends

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
	"github.com/wasmq/wasmq/store"
)

func ptr[T any](v T) *T { return &v }

func TestSQLiteOpensWithMigrationsByDefault(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "wasmq.db")
	s, err := Open(ctx, store.Config{Driver: "sqlite", Path: path}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if n, err := Migrate(ctx, store.Config{Driver: "sqlite", Path: path}); err != nil || n != 0 {
		t.Fatalf("migrating an up-to-date file applied %d (%v), want 0", n, err)
	}
}

func TestAnUnknownDriverNamesTheKey(t *testing.T) {
	_, err := Open(context.Background(), store.Config{Driver: "mysql"}, zerolog.Nop())
	if err == nil || !strings.HasPrefix(err.Error(), "store.driver:") {
		t.Fatalf("unknown driver: %v", err)
	}
}

func TestPostgresNeedsMigrateThenOpens(t *testing.T) {
	ctx := context.Background()
	base := os.Getenv("WASMQ_TEST_DATABASE_URL")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, base)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL unreachable: %v", err)
		}
		t.Skipf("PostgreSQL unreachable: %v", err)
	}
	defer conn.Close(ctx)
	schema := fmt.Sprintf("wasmq_t_%d", rand.Uint64())
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE") })
	u, _ := url.Parse(base)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	t.Setenv("WASMQ_DATABASE_URL", "")
	cfg := store.Config{Driver: "postgres", DSN: u.String()}

	if _, err := Open(ctx, cfg, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "run `wasmq migrate`") {
		t.Fatalf("opening an unmigrated database (migrate defaults to false): %v", err)
	}
	if n, err := Migrate(ctx, cfg); err != nil || n == 0 {
		t.Fatalf("migrate applied %d (%v)", n, err)
	}
	s, err := Open(ctx, cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	cfg.Migrate = ptr(true)
	s2, err := Open(ctx, cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
}
