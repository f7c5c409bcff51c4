package store

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/wasmq/wasmq/abi"
)

// Dialect says how a driver writes a bound parameter and a date, so that
// what each Filter field means is written once, in JobConditions.
type Dialect struct {
	Param func(n int) string // the n-th parameter (1-based): "$1", "?"
	Time  func(t time.Time) any
	// JSONMatch is the condition that the JSON list in col holds an
	// element m (key "") or the JSON object in col holds m under key;
	// arg binds a parameter and returns its placeholder.
	JSONMatch func(col, key string, m Scalar, arg func(any) string) string
	// StateIn, if set, writes the condition that a job is in one of
	// states, given the default one ("state IN ($2, $3)"): a store may
	// add what lets it read those jobs through an index (PostgreSQL, which
	// keeps no index on the state), or keep its index out of a list that
	// would sort every job of a common state (SQLite).
	StateIn func(states []abi.State, in string) string
}

// Scalar is a JSON scalar a filter looks for, checked and typed once so
// that every store compares the same way: numbers by value (1 = 1.0),
// strings exactly, true, false and null as themselves.
type Scalar struct {
	Raw  json.RawMessage // as given, compact
	Kind string          // "string", "number", "true", "false", "null"
	Str  string
	Num  float64
}

// ParseScalar reads a filter's JSON scalar; field names the parameter.
func ParseScalar(field string, raw json.RawMessage) (Scalar, error) {
	if err := checkJSON(field, raw, 0); err != nil {
		return Scalar{}, err
	}
	var v any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return Scalar{}, invalid(field, "is not valid JSON")
	}
	compact := new(bytes.Buffer)
	json.Compact(compact, raw)
	s := Scalar{Raw: compact.Bytes()}
	switch x := v.(type) {
	case string:
		s.Kind, s.Str = "string", x
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return Scalar{}, invalid(field, "%s is out of range", x)
		}
		s.Kind, s.Num = "number", f
	case bool:
		s.Kind = map[bool]string{true: "true", false: "false"}[x]
	case nil:
		s.Kind = "null"
	default:
		return Scalar{}, invalid(field, "must hold JSON scalars (a string, number, true, false or null), not lists or objects")
	}
	return s, nil
}

// JobConditions is the WHERE clause (without the keyword) that selects
// the jobs of q, and its parameters. Strings are matched exactly; a
// channel ending in ".*" selects the channel and its subtree; Query is a
// substring of uuid, func, description or func_string.
func JobConditions(q ListQuery, d Dialect) (string, []any) {
	where, args := []string{"1 = 1"}, []any{}
	arg := func(v any) string {
		args = append(args, v)
		return d.Param(len(args))
	}
	f := q.Filter
	if f.Tenant != "" {
		where = append(where, "tenant = "+arg(f.Tenant))
	}
	if len(f.States) > 0 {
		ph := make([]string, len(f.States))
		for i, st := range f.States {
			ph[i] = arg(string(st))
		}
		in := "state IN (" + strings.Join(ph, ", ") + ")"
		if d.StateIn != nil {
			in = d.StateIn(f.States, in)
		}
		where = append(where, in)
	}
	if f.Channel != "" {
		if p, ok := strings.CutSuffix(f.Channel, ".*"); ok {
			where = append(where, "(channel = "+arg(p)+" OR channel LIKE "+arg(likeEscape(p)+".%")+` ESCAPE '\')`)
		} else {
			where = append(where, "channel = "+arg(f.Channel))
		}
	}
	for _, eq := range []struct{ col, v string }{{"func", f.Func}, {"graph_uuid", f.GraphUUID}, {"identity_key", f.IdentityKey}} {
		if eq.v != "" {
			where = append(where, eq.col+" = "+arg(eq.v))
		}
	}
	if f.Query != "" {
		pat := "%" + likeEscape(f.Query) + "%"
		var ors []string
		for _, col := range []string{"uuid", "func", "description", "func_string"} {
			ors = append(ors, col+" LIKE "+arg(pat)+` ESCAPE '\'`)
		}
		where = append(where, "("+strings.Join(ors, " OR ")+")")
	}
	for _, eq := range []struct{ col, v string }{{"user_id", f.UserID}, {"model_name", f.ModelName}} {
		if eq.v != "" {
			// The redundant "<> ''" is what lets the planner use the
			// partial index on the column (WHERE col <> ''): from "col =
			// $1" alone it cannot prove the parameter is not empty, and a
			// user's or a model's page walked the whole tenant's jobs.
			where = append(where, eq.col+" = "+arg(eq.v), eq.col+" <> ''")
		}
	}
	for _, r := range []struct {
		cond string
		t    *time.Time
	}{{"date_created >= ", f.CreatedAfter}, {"date_created < ", f.CreatedBefore},
		{"COALESCE(date_done, date_cancelled) >= ", f.EndedAfter}, {"COALESCE(date_done, date_cancelled) < ", f.EndedBefore}} {
		if r.t != nil {
			where = append(where, r.cond+arg(d.Time(*r.t)))
		}
	}
	if len(f.ArgsHas) > 0 {
		m, _ := ParseScalar("args", f.ArgsHas) // checked by Validate
		where = append(where, d.JSONMatch("args", "", m, arg))
	}
	for _, k := range sortedKeys(f.KwargsHas) {
		m, _ := ParseScalar("kwargs", f.KwargsHas[k])
		where = append(where, d.JSONMatch("kwargs", k, m, arg))
	}
	if q.After != nil {
		// A row comparison, not "date_created < t OR (date_created = t
		// AND seq < s)": both databases bound the index scan with it, so
		// a page deep in a million jobs reads its own rows only; the OR
		// was a filter, and the page 200,000 rows down read them all.
		where = append(where, "(date_created, seq) < ("+arg(d.Time(q.After.Created))+", "+arg(q.After.Seq)+")")
	}
	return strings.Join(where, " AND "), args
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// AsStored is a new row as InsertJobs stored it, without reading it back:
// the row given, its seq, its creation date, and its dates at the
// microsecond in UTC, as both stores keep them.
func AsStored(j abi.Job, seq int64, created time.Time) abi.Job {
	j.Seq, j.DateCreated = seq, created
	for _, t := range []**time.Time{&j.ETA, &j.ExpectedAt, &j.DateCancelled} {
		if *t != nil {
			v := (*t).UTC().Truncate(time.Microsecond)
			*t = &v
		}
	}
	if j.DependsOn == nil {
		j.DependsOn = []string{}
	}
	return j
}
