package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmq/wasmq/store"
	"github.com/wasmq/wasmq/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "wasmq.db"), true)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestMigrationsAreIdempotentAndANewerSchemaIsRefused(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	if n, err := MigrateFile(ctx, path); err != nil || n != SchemaVersion {
		t.Fatalf("first migrate applied %d (%v), want %d", n, err, SchemaVersion)
	}
	if n, err := MigrateFile(ctx, path); err != nil || n != 0 {
		t.Fatalf("second migrate applied %d (%v), want 0", n, err)
	}
	s, err := Open(ctx, path, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, `INSERT INTO wasmq_schema_version (version) VALUES (?)`, SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = Open(ctx, path, true)
	if err == nil || !strings.Contains(err.Error(), "newer than this wasmq binary") {
		t.Fatalf("opening a newer schema: %v", err)
	}
}

func TestASecondProcessIsRefused(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "one.db")
	s, err := Open(ctx, path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Open(ctx, path, true); err == nil || !strings.Contains(err.Error(), "in use by another wasmq process") {
		t.Fatalf("second open: %v", err)
	}
}

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) store.Store {
		s, err := Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), true)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	})
}
