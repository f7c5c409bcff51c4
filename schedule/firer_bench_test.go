package schedule

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
	"github.com/wasmq/wasmq/enqueue"
	"github.com/wasmq/wasmq/store"
	"github.com/wasmq/wasmq/store/pgtest"
	"github.com/wasmq/wasmq/store/postgres"
	"github.com/wasmq/wasmq/store/sqlite"
)

// BenchmarkAPassWithNothingDue is the leader's pass over schedules none of
// which is due: what the firer costs the store and the node between
// firings. "big" is one tenant at its default max_schedules (100) with
// templates near their bound (256 KiB); "many" is 10,000 small ones (a
// hundred tenants at the default). Each timed pass follows one that
// learnt when every schedule is next due.
func BenchmarkAPassWithNothingDue(b *testing.B) {
	stores := map[string]func(b *testing.B) store.Store{
		"sqlite": func(b *testing.B) store.Store {
			st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "q.db"), true)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			return st
		},
		"postgres": func(b *testing.B) store.Store {
			st, err := postgres.Open(context.Background(), pgtest.DSN(b), true)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			return st
		},
	}
	shapes := []struct {
		name      string
		tenants   int
		each      int
		argsBytes int
	}{
		{"big", 1, 100, 250 << 10},
		{"many", 100, 100, 100},
	}
	for _, backend := range []string{"sqlite", "postgres"} {
		for _, shape := range shapes {
			b.Run(backend+"/"+shape.name, func(b *testing.B) {
				st := stores[backend](b)
				f := &funcs{known: map[string]bool{}}
				limits := map[string]enqueue.Limits{}
				for t := range shape.tenants {
					f.known[fmt.Sprintf("t%d/report.count", t)] = true
					limits[fmt.Sprintf("t%d", t)] = enqueue.Limits{MaxSchedules: shape.each}
				}
				s := New(st, &enqueue.Service{Store: st, Funcs: f, Limits: limits})
				ctx := context.Background()
				args, _ := json.Marshal([]string{strings.Repeat("x", shape.argsBytes)})
				for t := range shape.tenants {
					for i := range shape.each {
						d := Definition{Name: fmt.Sprintf("s%03d", i), Cron: "0 3 1 1 *",
							Template: Template{Func: "report.count", Args: args}}
						if _, err := s.Create(ctx, fmt.Sprintf("t%d", t), d); err != nil {
							b.Fatal(err)
						}
					}
				}
				specs, held := map[[2]string]Spec{}, map[[2]string]bool{}
				// The first pass reads the new schedules and writes when
				// each is next due; the timed ones read what is due.
				s.pass(ctx, time.Now(), specs, held, zerolog.Nop())
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					s.pass(ctx, time.Now(), specs, held, zerolog.Nop())
				}
			})
		}
	}
}

// BenchmarkAFiringOfABigTemplate fires one schedule whose template holds
// 250 KiB of arguments that do not compress (base64 of random bytes), a
// due time after another: what each firing writes. On PostgreSQL it also
// reports the WAL a firing writes (wal-B/op), jobs included.
func BenchmarkAFiringOfABigTemplate(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			ctx := context.Background()
			var st store.Store
			var err error
			var conn *pgx.Conn
			if backend == "sqlite" {
				st, err = sqlite.Open(ctx, filepath.Join(b.TempDir(), "q.db"), true)
			} else {
				dsn := pgtest.DSN(b)
				if st, err = postgres.Open(ctx, dsn, true); err == nil {
					conn, err = pgx.Connect(ctx, dsn)
				}
			}
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			if conn != nil {
				b.Cleanup(func() { conn.Close(ctx) })
			}
			f := &funcs{known: map[string]bool{"t1/report.count": true}}
			s := New(st, &enqueue.Service{Store: st, Funcs: f})
			noise := make([]byte, 190<<10)
			rand.Read(noise)
			args, _ := json.Marshal([]string{base64.StdEncoding.EncodeToString(noise)})
			if _, err := s.Create(ctx, "t1", Definition{Name: "big", Cron: "@every 1s", Template: Template{Func: "report.count", Args: args}}); err != nil {
				b.Fatal(err)
			}
			sc, err := st.GetSchedule(ctx, "t1", "big")
			if err != nil {
				b.Fatal(err)
			}
			spec, _ := ParseSpec(sc.Cron, sc.Timezone)
			due := sc.Anchor.Truncate(time.Second)
			wal := func() (lsn int64) {
				if conn != nil {
					if err := conn.QueryRow(ctx, `SELECT pg_current_wal_lsn() - '0/0'`).Scan(&lsn); err != nil {
						b.Fatal(err)
					}
				}
				return lsn
			}
			b.ReportAllocs()
			before := wal()
			b.ResetTimer()
			for b.Loop() {
				due = due.Add(time.Second)
				if fired := s.fireOne(ctx, sc, due, spec, map[[2]string]bool{}, zerolog.Nop()); !fired {
					b.Fatalf("the firing at %v fired nothing", due)
				}
			}
			b.StopTimer()
			if conn != nil {
				b.ReportMetric(float64(wal()-before)/float64(b.N), "wal-B/op")
			}
		})
	}
}

// BenchmarkAPassWithEveryScheduleDue is the leader's pass when 2,000
// schedules (twenty tenants at the default quota) are due at once, as a
// store's daily schedules are at midnight: how late the last one fires.
func BenchmarkAPassWithEveryScheduleDue(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			ctx := context.Background()
			var st store.Store
			var err error
			if backend == "sqlite" {
				st, err = sqlite.Open(ctx, filepath.Join(b.TempDir(), "q.db"), true)
			} else {
				st, err = postgres.Open(ctx, pgtest.DSN(b), true)
			}
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			const tenants, each = 20, 100
			f := &funcs{known: map[string]bool{}}
			for t := range tenants {
				f.known[fmt.Sprintf("t%d/report.count", t)] = true
			}
			s := New(st, &enqueue.Service{Store: st, Funcs: f})
			for t := range tenants {
				for i := range each {
					d := Definition{Name: fmt.Sprintf("s%03d", i), Cron: "@every 1s", Template: Template{Func: "report.count", Args: json.RawMessage(`["x"]`)}}
					if _, err := s.Create(ctx, fmt.Sprintf("t%d", t), d); err != nil {
						b.Fatal(err)
					}
				}
			}
			specs, held := map[[2]string]Spec{}, map[[2]string]bool{}
			now := time.Now()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				now = now.Add(time.Second)
				s.pass(ctx, now, specs, held, zerolog.Nop())
			}
			b.StopTimer()
			n, err := st.List(ctx, store.Filter{Tenant: "t0", Limit: 1000})
			if err != nil || len(n.Jobs) < b.N {
				b.Fatalf("t0 has %d jobs after %d passes (%v)", len(n.Jobs), b.N, err)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*tenants*each), "µs/firing")
		})
	}
}
