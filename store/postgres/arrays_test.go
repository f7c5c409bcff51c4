package postgres

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/wasmq/wasmq/abi"
)

var textArrays = map[string][]string{
	"nil":       nil,
	"empty":     {},
	"one empty": {""},
	"words":     {"a", "", "tenant-7", "école", "日本語", strings.Repeat("x", 70000)},
	"quotes":    {`"`, `\`, `{}`, `,`, `NULL`, " ", "a b"},
}

func at(s string) *time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return &t
}

var intArrays = map[string][]int32{
	"nil": nil, "empty": {}, "bounds": {0, 1, -1, math.MaxInt32, math.MinInt32, 10},
}

var bigintArrays = map[string][]int64{
	"nil": nil, "empty": {}, "bounds": {0, 1, -1, math.MaxInt64, math.MinInt64, 1 << 40},
}

var nullableTextArrays = map[string][]*string{
	"nil": nil, "empty": {}, "nulls": {nil}, "mixed": {ptr(`{"a":1}`), nil, ptr(""), ptr("日本")},
}

var boolArrays = map[string][]bool{"nil": nil, "empty": {}, "both": {true, false, false, true}}

var timeValueArrays = map[string][]time.Time{
	"nil": nil, "empty": {}, "dates": {*at("2000-01-01T00:00:00Z"), *at("1999-12-31T23:59:59.999999Z"),
		*at("2026-12-01T07:08:09.000001+02:00"), {}},
}

var timeArrays = map[string][]*time.Time{
	"nil": nil, "empty": {}, "nulls": {nil, nil}, "one null": {at("2026-12-01T06:00:00.123456Z"), nil},
	"dates": {at("2000-01-01T00:00:00Z"), at("1999-12-31T23:59:59.999999Z"), at("1970-01-01T00:00:00Z"),
		at("2026-12-01T07:08:09.000001+02:00"), at("9999-12-31T23:59:59.999999Z"), at("0001-01-01T00:00:00Z")},
}

// The direct encoder writes the bytes pgx's own codec writes, for every
// shape of array: it changes the cost, never the value sent.
func TestArraysAreEncodedAsPgxEncodesThem(t *testing.T) {
	plain, direct := pgtype.NewMap(), pgtype.NewMap()
	registerArrays(direct)
	same := func(name string, oid uint32, v any) {
		t.Helper()
		want, err := plain.Encode(oid, pgtype.BinaryFormatCode, v, []byte("prefix"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := direct.Encode(oid, pgtype.BinaryFormatCode, v, []byte("prefix"))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: encoded %x, pgx encodes %x", name, got, want)
		}
	}
	for _, c := range everyArray() {
		same(c.name, c.oid, c.v)
	}
}

type arrayCase struct {
	name string
	oid  uint32
	v    any
}

// everyArray is every array above with its type.
func everyArray() []arrayCase {
	var cs []arrayCase
	add := func(kind string, oid uint32, name string, v any) {
		cs = append(cs, arrayCase{kind + " " + name, oid, v})
	}
	for name, v := range textArrays {
		add("text", pgtype.TextArrayOID, name, v)
	}
	for name, v := range nullableTextArrays {
		add("nullable text", pgtype.TextArrayOID, name, v)
	}
	for name, v := range intArrays {
		add("int", pgtype.Int4ArrayOID, name, v)
	}
	for name, v := range bigintArrays {
		add("bigint", pgtype.Int8ArrayOID, name, v)
	}
	for name, v := range boolArrays {
		add("bool", pgtype.BoolArrayOID, name, v)
	}
	for name, v := range timeValueArrays {
		add("timestamptz values", pgtype.TimestamptzArrayOID, name, v)
	}
	for name, v := range timeArrays {
		add("timestamptz", pgtype.TimestamptzArrayOID, name, v)
	}
	return cs
}

// PostgreSQL reads back, element by element, the arrays a store
// connection sends; other values of a text[] parameter still go through
// pgx's codec.
func TestPostgreSQLReadsTheArraysSent(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	for _, pool := range []*pgxpool.Pool{s.d.pool, s.d.fast} {
		c, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		typ, _ := c.Conn().TypeMap().TypeForOID(pgtype.TextArrayOID)
		c.Release()
		if _, ok := typ.Codec.(arrayCodec); !ok {
			t.Fatalf("a store connection encodes text[] with %T", typ.Codec)
		}
	}
	for name, v := range textArrays {
		readsBack(t, s, "text "+name, "text[]", v, func(a, b string) bool { return a == b })
	}
	for name, v := range nullableTextArrays {
		readsBack(t, s, "nullable text "+name, "text[]", v, func(a, b *string) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) })
	}
	for name, v := range intArrays {
		readsBack(t, s, "int "+name, "int[]", v, func(a, b int32) bool { return a == b })
	}
	for name, v := range bigintArrays {
		readsBack(t, s, "bigint "+name, "bigint[]", v, func(a, b int64) bool { return a == b })
	}
	for name, v := range boolArrays {
		readsBack(t, s, "bool "+name, "bool[]", v, func(a, b bool) bool { return a == b })
	}
	for name, v := range timeValueArrays {
		readsBack(t, s, "timestamptz values "+name, "timestamptz[]", v, time.Time.Equal)
	}
	for name, v := range timeArrays {
		readsBack(t, s, "timestamptz "+name, "timestamptz[]", v, func(a, b *time.Time) bool { return (a == nil) == (b == nil) && (a == nil || a.Equal(*b)) })
	}
	var n int
	if err := s.d.pool.QueryRow(ctx, `SELECT cardinality($1::text[])`, []any{"a", "b"}).Scan(&n); err != nil || n != 2 {
		t.Errorf("a []any of strings: %d elements (%v), want 2", n, err)
	}
}

// readsBack sends an array through a store connection and checks that
// PostgreSQL reads it element by element as sent, NULL for a nil slice.
func readsBack[T any](t *testing.T, s *Store, name, cast string, sent []T, equal func(a, b T) bool) {
	t.Helper()
	var back []T
	var isNull bool
	if err := s.d.pool.QueryRow(context.Background(), `SELECT $1::`+cast+`, $1::`+cast+` IS NULL`, sent).Scan(&back, &isNull); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if isNull != (sent == nil) || !slices.EqualFunc(back, sent, equal) {
		t.Errorf("%s: sent %v, PostgreSQL read %v (NULL %v)", name, sent, back, isNull)
	}
}

// The arrays of a batch insert of 1,000 jobs, encoded by pgx's codec and
// by the direct encoder (docs/benchmarks.md has the figures).
func BenchmarkEncodeJobArrays(b *testing.B) {
	jobs := make([]abi.Job, 1000)
	for i := range jobs {
		jobs[i] = abi.Job{UUID: fmt.Sprintf("0190c2a4-0000-7000-8000-%012d", i), Tenant: "default", Func: "testkit.echo",
			Args: []byte(`[1]`), FuncString: "testkit.echo(1)", Channel: "root", Priority: 10, MaxRetries: 5, State: abi.StatePending}
	}
	params := jobArrays(jobs, time.Now())
	for _, c := range []struct {
		name string
		m    func() *pgtype.Map
	}{
		{"pgx", pgtype.NewMap},
		{"direct", func() *pgtype.Map { m := pgtype.NewMap(); registerArrays(m); return m }},
	} {
		b.Run(c.name, func(b *testing.B) {
			m := c.m()
			oids := []uint32{pgtype.TextArrayOID, pgtype.TextArrayOID, pgtype.TextArrayOID, pgtype.TextArrayOID,
				pgtype.TextArrayOID, pgtype.TextArrayOID, pgtype.TextArrayOID, pgtype.TextArrayOID, pgtype.TextArrayOID,
				pgtype.TextArrayOID, pgtype.TextArrayOID, pgtype.Int4ArrayOID, pgtype.TimestamptzArrayOID,
				pgtype.TimestamptzArrayOID, pgtype.Int4ArrayOID, pgtype.TextArrayOID, pgtype.TextArrayOID,
				pgtype.TextArrayOID, pgtype.TimestamptzArrayOID, pgtype.TimestamptzOID}
			var buf []byte
			b.ReportAllocs()
			for b.Loop() {
				buf = buf[:0]
				for i, p := range params {
					var err error
					if buf, err = m.Encode(oids[i], pgtype.BinaryFormatCode, p, buf); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
