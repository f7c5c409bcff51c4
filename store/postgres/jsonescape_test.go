package postgres

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/wasmq/wasmq/store"
)

// The store's rules refuse a JSON document's escapes exactly where
// PostgreSQL's jsonb does (a NUL, a surrogate not in a high-low pair):
// what the rules pass, a jsonb index or filter takes, and nothing they
// refuse would have been kept. Random strings of escapes, each sent to
// the server as it is.
func TestJSONEscapeRulesAgreeWithJSONB(t *testing.T) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	pieces := []string{`\ud83d`, `\ude00`, `\udbff`, `\udc00`, `\ud800`, `\udfff`, `\u0041`, `\u00e9`, `\u0000`,
		`\\`, `\"`, `u`, `d800`, `a`, `\n`, `é`}
	r := rand.New(rand.NewPCG(1, 2))
	refused := 0
	for i := range 3000 {
		var b strings.Builder
		for range 1 + r.IntN(6) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		doc := `["` + b.String() + `"]`
		if i%2 == 1 {
			doc = `{"` + b.String() + `": 1}`
		}
		rules := store.NewJob{UUID: "u", Func: "m.f", Channel: "root", Args: json.RawMessage(`[]`), Kwargs: json.RawMessage(`{}`),
			Context: json.RawMessage(`{"x": ` + doc + `}`)}.Validate()
		var got string
		server := conn.QueryRow(ctx, `SELECT $1::text::jsonb::text`, doc).Scan(&got)
		if (rules == nil) != (server == nil) {
			t.Fatalf("%s: the rules say %v, jsonb says %v", doc, rules, server)
		}
		if rules != nil {
			refused++
		}
	}
	if refused < 300 || refused > 2700 {
		t.Fatalf("%d of 3000 refused: the sample tells little", refused)
	}
}
