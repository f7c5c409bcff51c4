package config

import (
	"encoding/json"
	"fmt"

	"github.com/wasmq/wasmq/api"
	"github.com/wasmq/wasmq/schedule"
)

// Schedule is one [[schedules]] entry: a periodic job the file owns
// (docs/schedules.md). Each start of a node makes the store's schedules
// from the file those of the file.
type Schedule struct {
	// Tenant owns the schedule and its jobs: one of [[tenants]], or
	// "default" (the tenant of a server without tenants). Defaults to
	// "default".
	Tenant string `toml:"tenant"`
	// Name, unique per tenant: letters, digits, '_', '-', '.'. Required.
	Name string `toml:"name"`
	// Cron is five fields or @hourly, @daily, @every 30s... Required.
	Cron string `toml:"cron"`
	// Timezone is an IANA zone the cron is read in. Defaults to "UTC".
	Timezone string `toml:"timezone"`
	// MissedRuns is "skip" (fire once for the latest missed due time) or
	// "catch_up" (each, at most catch_up_max). Defaults to "skip".
	MissedRuns string `toml:"missed_runs"`
	CatchUpMax int    `toml:"catch_up_max"`
	// Paused applies when the schedule is first created; later, pausing
	// is the operators' (API, CLI, UI) and survives restarts.
	Paused bool `toml:"paused"`

	// The job template, as in POST /v1/jobs.
	Func        string         `toml:"func"`
	Args        []any          `toml:"args"`
	Kwargs      map[string]any `toml:"kwargs"`
	Context     map[string]any `toml:"context"`
	Channel     *string        `toml:"channel"`
	Priority    *int           `toml:"priority"`
	MaxRetries  *int           `toml:"max_retries"`
	IdentityKey string         `toml:"identity_key"`
	Description *string        `toml:"description"`
}

// ScheduleDefinitions turns the [[schedules]] entries into definitions,
// checking what can be checked without the plugins (the tenant, and
// what schedule.Definition.Settle checks); the rest is checked when a
// node applies them, with the same key names.
func (f File) ScheduleDefinitions() ([]schedule.Owned, error) {
	tenants := map[string]bool{api.DefaultTenant: true}
	for _, t := range f.Tenants {
		tenants[t.Name] = true
	}
	out := make([]schedule.Owned, 0, len(f.Schedules))
	for i, s := range f.Schedules {
		key := fmt.Sprintf("schedules[%d]", i)
		if s.Tenant == "" {
			s.Tenant = api.DefaultTenant
		}
		if !tenants[s.Tenant] {
			return nil, fmt.Errorf("%s.tenant: %q is not one of [[tenants]] (nor %q)", key, s.Tenant, api.DefaultTenant)
		}
		d := schedule.Definition{Name: s.Name, Cron: s.Cron, Timezone: s.Timezone, MissedRuns: s.MissedRuns,
			CatchUpMax: s.CatchUpMax, Paused: s.Paused, Template: schedule.Template{Func: s.Func, Channel: s.Channel,
				Priority: s.Priority, MaxRetries: s.MaxRetries, IdentityKey: s.IdentityKey, Description: s.Description}}
		for _, j := range []struct {
			field  string
			v      any
			nonNil bool
			to     *json.RawMessage
		}{{"args", s.Args, s.Args != nil, &d.Args}, {"kwargs", s.Kwargs, s.Kwargs != nil, &d.Kwargs}, {"context", s.Context, s.Context != nil, &d.Context}} {
			if !j.nonNil {
				continue
			}
			b, err := json.Marshal(j.v)
			if err != nil {
				return nil, fmt.Errorf("%s.%s: %v", key, j.field, err)
			}
			*j.to = b
		}
		if _, err := d.Settle(); err != nil {
			return nil, fmt.Errorf("%s.%w", key, err)
		}
		out = append(out, schedule.Owned{Tenant: s.Tenant, Definition: d})
	}
	return out, nil
}
