package store

import (
	"strings"
	"time"

	"github.com/wasmq/wasmq/abi"
)

// Dialect says how a driver writes a bound parameter and a date, so that
// what each Filter field means is written once, in JobConditions.
type Dialect struct {
	Param func(n int) string // the n-th parameter (1-based): "$1", "?"
	Time  func(t time.Time) any
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
		where = append(where, "state IN ("+strings.Join(ph, ", ")+")")
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
	if q.After != nil {
		t := d.Time(q.After.Created)
		where = append(where, "(date_created < "+arg(t)+" OR (date_created = "+arg(t)+" AND seq < "+arg(q.After.Seq)+"))")
	}
	return strings.Join(where, " AND "), args
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
