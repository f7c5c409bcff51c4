package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/config"
	"github.com/wasmq/wasmq/store"
)

// The tenant-isolation matrix: acme (A) fills the node with everything a
// tenant can own; globex (B) then aims every route of the API at it.
// Nothing of A's may reach B: no job uuid, graph, channel, private
// plugin, identity key or description, none of A's counts in B's
// aggregates, and no path of the server's disk; A's jobs answer B 404,
// never 403, exactly as a job that does not exist. The admin sees
// everything and acts only for a configured tenant.
//
// The routes are read from api.go's mux registration: a route added
// without its case here fails the test.
func TestTenantIsolationMatrix(t *testing.T) {
	var pluginsDir string
	s := start(t, func(f *config.File) {
		f.Runner.Channels = "root:4,shared:2,lane:1:sequential"
		pluginsDir = f.Host.PluginsDir
		// A shared module the host refuses: its load error names its sidecar.
		os.WriteFile(filepath.Join(pluginsDir, "broken.wasm"), testkitWasm(t), 0o644)
		os.WriteFile(filepath.Join(pluginsDir, "broken.toml"), []byte("[functions.nope]\n"), 0o644)
	})
	a := seedAcme(t, s)
	seedGlobex(t, s)
	// A's schedule, paused so that it creates nothing while B probes.
	if r := s.do("POST", "/v1/schedules", tokA, map[string]any{"name": "acme-nightly", "cron": "0 3 * * *", "paused": true,
		"func": "acmeprivate.echo", "identity_key": a.identityKey, "description": a.description}); r.status != 201 {
		t.Fatalf("A creating its schedule: %d %s", r.status, r.body)
	}
	w := &world{acme: a, pluginsDir: pluginsDir}

	// What B may see: its own three pending jobs, in the configured
	// channels and in one of its own.
	bStats := map[string]float64{"pending": 3}
	bChannels := map[string]abi.ChannelStatus{
		"root":            {Name: "root", Configured: true, Capacity: 4, Pending: 3},
		"root.shared":     {Name: "root.shared", Configured: true, Capacity: 2, Pending: 1},
		"root.lane":       {Name: "root.lane", Configured: true, Capacity: 1, Sequential: true, Pending: 1, Blocked: true},
		"root.globex-own": {Name: "root.globex-own", Pending: 1},
	}
	bSeries := map[string]int{"root.shared pending": 1, "root.lane pending": 1, "root.globex-own pending": 1}

	cases := map[string]func(t *testing.T, b *asB){
		"POST /v1/jobs": func(t *testing.T, b *asB) {
			// A's private plugin is a module B does not have, word for word.
			mine := b.do("POST", "/v1/jobs", map[string]any{"func": "acmeprivate.echo"})
			none := b.do("POST", "/v1/jobs", map[string]any{"func": "nosuchmodule.echo"})
			sameRefusal(t, mine, none, 404, "acmeprivate", "nosuchmodule")
			// A depends_on on A's job is a job that does not exist.
			dep := b.do("POST", "/v1/jobs", map[string]any{"func": "testkit.echo", "depends_on": []string{a.uuids[0]}})
			ghost := b.do("POST", "/v1/jobs", map[string]any{"func": "testkit.echo", "depends_on": []string{noSuchJob}})
			sameRefusal(t, dep, ghost, 422, a.uuids[0], noSuchJob)
			// A shared module that failed to load says why, without a path.
			if r := b.do("POST", "/v1/jobs", map[string]any{"func": "broken.echo"}); r.status != 404 {
				t.Errorf("a job of a module that failed to load: %d %s", r.status, r.body)
			}
		},
		"POST /v1/jobs:batch": func(t *testing.T, b *asB) {
			batch := func(id string) resp {
				return b.do("POST", "/v1/jobs:batch", map[string]any{"jobs": []any{
					map[string]any{"func": "testkit.echo", "ref": "x"},
					map[string]any{"func": "testkit.echo", "depends_on": []string{"x", id}},
				}})
			}
			sameRefusal(t, batch(a.graph[0]), batch(noSuchJob), 422, a.graph[0], noSuchJob)
			sameRefusal(t, b.do("POST", "/v1/jobs:batch", map[string]any{"jobs": []any{map[string]any{"func": "acmeprivate.echo"}}}),
				b.do("POST", "/v1/jobs:batch", map[string]any{"jobs": []any{map[string]any{"func": "nosuchmodule.echo"}}}),
				404, "acmeprivate", "nosuchmodule")
		},
		"GET /v1/jobs": func(t *testing.T, b *asB) {
			for _, q := range []string{"", "?limit=1000", "?state=failed", "?state=done", "?state=wait_dependencies",
				"?tenant=acme", "?channel=acme-ledger.*", "?channel=root.acme-ledger.eu", "?func=acmeprivate.echo",
				"?graph_uuid=" + a.graphUUID, "?identity_key=" + a.identityKey, "?q=acme", "?q=" + url.QueryEscape(a.description)} {
				for _, j := range jobsOf(t, b.do("GET", "/v1/jobs"+q, nil)) {
					if j["tenant"] != "globex" {
						t.Errorf("GET /v1/jobs%s lists a job of %v: %v", q, j["tenant"], j["uuid"])
					}
				}
			}
		},
		"GET /v1/jobs/{uuid}":          perJob("GET", "", nil),
		"PATCH /v1/jobs/{uuid}":        perJob("PATCH", "", map[string]any{"priority": 1, "channel": "globex-own"}),
		"GET /v1/jobs/{uuid}/attempts": perJob("GET", "/attempts", nil),
		"GET /v1/jobs/{uuid}/attempts/{n}/record": func(t *testing.T, b *asB) {
			// A's failed jobs kept a record (the default policy): A reads
			// it, B is told it does not exist.
			if r := b.s.do("GET", "/v1/jobs/"+a.uuids[1]+"/attempts/1/record", tokA, nil); r.status != 200 {
				t.Fatalf("A reading its own record: %d %s", r.status, r.body)
			}
			perJob("GET", "/attempts/1/record", nil)(t, b)
		},
		"GET /v1/jobs/{uuid}/attempts/{n}/record/module": func(t *testing.T, b *asB) {
			if r := b.s.do("GET", "/v1/jobs/"+a.uuids[1]+"/attempts/1/record/module", tokA, nil); r.status != 200 || len(r.body) < 8 {
				t.Fatalf("A reading its record's module: %d, %d bytes", r.status, len(r.body))
			}
			perJob("GET", "/attempts/1/record/module", nil)(t, b)
		},
		"POST /v1/jobs/{uuid}/requeue": perJob("POST", "/requeue", nil),
		"POST /v1/jobs/{uuid}/cancel":  perJob("POST", "/cancel", nil),
		"POST /v1/jobs/{uuid}/done":    perJob("POST", "/done", nil),
		"GET /v1/usage": func(t *testing.T, b *asB) {
			m := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
			if err := s.n.Store.AddUsage(context.Background(), []store.UsageBucket{
				{Tenant: "acme", Func: "acmeprivate.echo", Minute: m, Attempts: 1, Usage: abi.Usage{Fuel: 7}},
				{Tenant: "globex", Func: "testkit.echo", Minute: m, Attempts: 1, Usage: abi.Usage{Fuel: 9}},
			}); err != nil {
				t.Fatal(err)
			}
			for _, q := range []string{"", "&tenant=acme"} {
				r := b.do("GET", "/v1/usage?from=2026-01-02T00:00:00Z&to=2026-01-03T00:00:00Z"+q, nil)
				rows, _ := r.json(t)["usage"].([]any)
				if r.status != 200 || len(rows) != 1 || rows[0].(map[string]any)["tenant"] != "globex" || strings.Contains(string(r.body), "acme") {
					t.Errorf("GET /v1/usage%s: %d %s, want B's own row only", q, r.status, r.body)
				}
			}
		},
		"GET /v1/stats": func(t *testing.T, b *asB) {
			for _, q := range []string{"", "?tenant=acme"} {
				states := b.do("GET", "/v1/stats"+q, nil).json(t)["states"].(map[string]any)
				for st, n := range states {
					if n != bStats[st] {
						t.Errorf("GET /v1/stats%s: %s = %v, want B's own %v", q, st, n, bStats[st])
					}
				}
			}
		},
		"GET /v1/channels": func(t *testing.T, b *asB) {
			for _, q := range []string{"", "?tenant=acme"} {
				got := channelsOf(t, b.do("GET", "/v1/channels"+q, nil))
				if !sameKeys(got, bChannels) {
					t.Errorf("GET /v1/channels%s lists %v, want the configured ones and B's own: %v", q, keys(got), keys(bChannels))
				}
				for name, want := range bChannels {
					if g := got[name]; g != want {
						t.Errorf("GET /v1/channels%s: %s is %+v, want %+v", q, name, g, want)
					}
				}
			}
		},
		// Channels are the operator's: a tenant changes none, whichever.
		"POST /v1/channels/{action}": func(t *testing.T, b *asB) {
			for _, p := range []string{"/v1/channels/shared:pause", "/v1/channels/acme-ledger:pause", "/v1/channels/globex-own:resume"} {
				if r := b.do("POST", p, nil); r.status != 403 {
					t.Errorf("B: POST %s: %d %s, want 403", p, r.status, r.body)
				}
			}
		},
		"PATCH /v1/channels/{name}": func(t *testing.T, b *asB) {
			if r := b.do("PATCH", "/v1/channels/shared", map[string]any{"capacity": 100}); r.status != 403 {
				t.Errorf("B: PATCH a channel: %d %s, want 403", r.status, r.body)
			}
		},
		// Bulk actions whose filters match A's jobs, none of B's: each
		// matches nothing ("B's writes changed nothing of A's" checks A's).
		"POST /v1/jobs:requeue": bulkOfB("requeue", a),
		"POST /v1/jobs:cancel":  bulkOfB("cancel", a),
		"POST /v1/jobs:done":    bulkOfB("done", a),
		"GET /v1/plugins": func(t *testing.T, b *asB) {
			// The shared modules and B's own, each with what it runs and
			// why it failed to load, never where the server keeps it.
			shown := map[string]bool{"name": true, "tenant": true, "sha256": true, "size": true, "exports": true,
				"functions": true, "load_error": true}
			for _, q := range []string{"", "?tenant=acme"} {
				var got struct{ Plugins []map[string]any }
				json.Unmarshal(b.do("GET", "/v1/plugins"+q, nil).body, &got)
				var names []string
				for _, p := range got.Plugins {
					owner, _ := p["tenant"].(string)
					names = append(names, fmt.Sprintf("%v(%s)", p["name"], owner))
					for k, v := range p {
						if !shown[k] {
							t.Errorf("GET /v1/plugins%s shows B the %s of %v: %v", q, k, p["name"], v)
						}
					}
					if p["name"] == "broken" && p["load_error"] == nil {
						t.Errorf("GET /v1/plugins%s: the refused module has no load_error: %v", q, p)
					}
				}
				if want := "[broken() globexown(globex) testkit()]"; fmt.Sprint(names) != want {
					t.Errorf("GET /v1/plugins%s lists %v, want %s", q, names, want)
				}
			}
		},
		"PUT /v1/plugins/{name}": func(t *testing.T, b *asB) {
			if r := b.do("PUT", "/v1/plugins/globexown", testkitWasm(t)); r.status != 201 || strings.Contains(string(r.body), `"path"`) {
				t.Errorf("B replacing its own plugin: %d %s", r.status, r.body)
			}
			if r := b.do("PUT", "/v1/plugins/acmeprivate", []byte("not wasm")); r.status != 422 {
				t.Errorf("B uploading garbage under A's plugin name: %d %s", r.status, r.body)
			}
		},
		"PUT /v1/plugins/{name}/config": func(t *testing.T, b *asB) {
			// Only a tenant's own modules take a config: A's and a shared
			// one's are answered as a module that does not exist.
			sameRefusal(t, b.do("PUT", "/v1/plugins/acmeprivate/config", "[config]\nk = \"v\"\n"),
				b.do("PUT", "/v1/plugins/nosuchmodule/config", "[config]\nk = \"v\"\n"), 404, "acmeprivate", "nosuchmodule")
			if r := b.do("PUT", "/v1/plugins/testkit/config", "[config]\nk = \"v\"\n"); r.status != 404 {
				t.Errorf("B configuring a shared plugin: %d %s", r.status, r.body)
			}
			if r := b.do("PUT", "/v1/plugins/globexown/config", "[config]\nk = \"v\"\n"); r.status != 200 || strings.Contains(string(r.body), `"path"`) {
				t.Errorf("B configuring its own plugin: %d %s", r.status, r.body)
			}
		},
		"DELETE /v1/plugins/{name}": func(t *testing.T, b *asB) {
			sameRefusal(t, b.do("DELETE", "/v1/plugins/acmeprivate", nil), b.do("DELETE", "/v1/plugins/nosuchmodule", nil),
				404, "acmeprivate", "nosuchmodule")
			if r := b.do("DELETE", "/v1/plugins/testkit", nil); r.status != 404 {
				t.Errorf("B deleting a shared plugin: %d %s", r.status, r.body)
			}
		},
		"GET /v1/schedules": func(t *testing.T, b *asB) {
			for _, q := range []string{"", "?tenant=acme"} {
				r := b.do("GET", "/v1/schedules"+q, nil)
				if r.status != 200 || strings.Contains(string(r.body), "acme") || strings.Contains(string(r.body), a.identityKey) {
					t.Errorf("GET /v1/schedules%s shows B something of A's: %d %s", q, r.status, r.body)
				}
			}
		},
		"POST /v1/schedules": func(t *testing.T, b *asB) {
			body := func(fn string) map[string]any { return map[string]any{"name": "probe", "cron": "@daily", "func": fn} }
			sameRefusal(t, b.do("POST", "/v1/schedules", body("acmeprivate.echo")), b.do("POST", "/v1/schedules", body("nosuchmodule.echo")),
				422, "acmeprivate", "nosuchmodule")
			// A's name is free in B's namespace, and ?tenant=acme does not
			// make B's schedule A's.
			r := b.do("POST", "/v1/schedules?tenant=acme", map[string]any{"name": "acme-nightly", "cron": "@daily", "func": "testkit.echo", "paused": true})
			if r.status != 201 || r.json(t)["tenant"] != "globex" {
				t.Errorf("B creating a schedule under A's name: %d %s", r.status, r.body)
			}
			if r := b.do("DELETE", "/v1/schedules/acme-nightly", nil); r.status != 204 {
				t.Errorf("B deleting its own schedule: %d %s", r.status, r.body)
			}
		},
		"GET /v1/schedules/{name}":    perSchedule("GET", "", nil),
		"PATCH /v1/schedules/{name}":  perSchedule("PATCH", "", map[string]any{"paused": false}),
		"DELETE /v1/schedules/{name}": perSchedule("DELETE", "", nil),
		"POST /v1/schedules/{name}": func(t *testing.T, b *asB) {
			for _, action := range []string{":pause", ":resume", ":run"} {
				perSchedule("POST", action, nil)(t, b)
			}
		},
		"GET /v1/openapi.json": func(t *testing.T, b *asB) { b.ok("GET", "/v1/openapi.json") },
		"GET /healthz":         func(t *testing.T, b *asB) { b.ok("GET", "/healthz") },
		"GET /readyz":          func(t *testing.T, b *asB) { b.ok("GET", "/readyz") },
		"GET /metrics": func(t *testing.T, b *asB) {
			got := map[string]int{}
			for _, line := range strings.Split(string(b.do("GET", "/metrics", nil).body), "\n") {
				if line == "" || strings.HasPrefix(line, "#") {
					continue
				}
				m := metricLine(t, line)
				if m.labels["tenant"] != "globex" {
					t.Errorf("B's /metrics has a series that is not B's: %s", line)
					continue
				}
				if m.name != "wasmq_jobs" {
					continue // B's attempts and their histograms
				}
				got[m.labels["channel"]+" "+m.labels["state"]] += m.value
			}
			if fmt.Sprint(got) != fmt.Sprint(bSeries) {
				t.Errorf("B's /metrics counts %v, want B's own %v", got, bSeries)
			}
		},
		"/v1/": func(t *testing.T, b *asB) {
			sameRefusal(t, b.do("GET", "/v1/jobs/"+a.uuids[0]+"/logs", nil), b.do("GET", "/v1/jobs/"+noSuchJob+"/logs", nil),
				404, a.uuids[0], noSuchJob)
		},
		"/": func(t *testing.T, b *asB) { b.ok("GET", "/") },
	}

	for _, route := range routes(t) {
		c, ok := cases[route]
		if !ok {
			t.Errorf("route %q has no case in the isolation matrix", route)
			continue
		}
		delete(cases, route)
		t.Run(route, func(t *testing.T) { c(t, &asB{world: w, s: &srv{t: t, url: s.url, n: s.n}, t: t}) })
	}
	for route := range cases {
		t.Errorf("the isolation matrix has a case for %q, which api.go does not register", route)
	}

	t.Run("B's writes changed nothing of A's", func(t *testing.T) {
		for id, before := range a.snapshot {
			after := s.do("GET", "/v1/jobs/"+id, tokA, nil).json(t)
			for _, k := range []string{"state", "priority", "channel", "eta", "date_done", "exc_info"} {
				if fmt.Sprint(after[k]) != fmt.Sprint(before[k]) {
					t.Errorf("A's job %s: %s went from %v to %v", id, k, before[k], after[k])
				}
			}
		}
		if r := s.do("POST", "/v1/jobs", tokA, map[string]any{"func": "acmeprivate.echo", "eta": 3600}); r.status != 201 {
			t.Errorf("A can no longer use its plugin: %d %s", r.status, r.body)
		}
		sc := s.do("GET", "/v1/schedules/acme-nightly", tokA, nil).json(t)
		if sc["paused"] != true || sc["version"] != 1.0 || sc["last_job"] != nil {
			t.Errorf("A's schedule was changed or run by B: %v", sc)
		}
	})

	t.Run("B guessing A's identity key or naming A's tenant gets a job of its own", func(t *testing.T) {
		b := &asB{world: w, s: &srv{t: t, url: s.url, n: s.n}, t: t}
		r := b.do("POST", "/v1/jobs?tenant=acme", map[string]any{"func": "testkit.echo", "identity_key": a.identityKey, "eta": 3600})
		j := r.json(t)
		if id, _ := j["uuid"].(string); r.status != 201 || j["deduplicated"] == true || j["tenant"] != "globex" || a.snapshot[id] != nil {
			t.Errorf("B posting A's identity key: %d %s", r.status, r.body)
		}
		again := s.do("POST", "/v1/jobs", tokA, map[string]any{"func": "testkit.echo", "identity_key": a.identityKey, "eta": 3600}).json(t)
		if again["uuid"] != a.identityJob || again["deduplicated"] != true {
			t.Errorf("A's identity key no longer finds A's job: %v", again)
		}
	})

	t.Run("B's plugin under A's plugin name is B's alone", func(t *testing.T) {
		invoice, err := os.ReadFile("../plugins/examples/rust/invoice.wasm")
		if err != nil {
			t.Fatalf("invoice.wasm must be built: %v", err)
		}
		if r := s.do("PUT", "/v1/plugins/acmeprivate", tokB, invoice); r.status != 201 {
			t.Fatalf("B uploading under A's plugin name: %d %s", r.status, r.body)
		}
		if r := s.do("POST", "/v1/jobs", tokA, map[string]any{"func": "acmeprivate.echo", "eta": 3600}); r.status != 201 {
			t.Errorf("A's plugin was replaced by B's: %d %s", r.status, r.body)
		}
		if r := s.do("POST", "/v1/jobs", tokB, map[string]any{"func": "acmeprivate.echo", "eta": 3600}); r.status != 404 {
			t.Errorf("B runs A's function through its own module of the same name: %d %s", r.status, r.body)
		}
	})

	t.Run("A sees its own channels, not B's", func(t *testing.T) {
		chs := channelsOf(t, s.do("GET", "/v1/channels", tokA, nil))
		if _, ok := chs["root.globex-own"]; ok {
			t.Errorf("A sees B's channel: %v", keys(chs))
		}
		if c := chs["root.acme-ledger.eu"]; c.Pending != 1 || chs["root.shared"].Failed != 1 || chs["root.shared"].Pending != 0 {
			t.Errorf("A's channels: %+v", chs)
		}
	})

	t.Run("the admin sees everything", func(t *testing.T) {
		chs := channelsOf(t, s.do("GET", "/v1/channels", tokAdmin, nil))
		if c := chs["root.shared"]; c.Pending != 1 || c.Failed != 1 {
			t.Errorf("the admin's root.shared %+v, want A's failed job and B's pending one", c)
		}
		if _, ok := chs["root.acme-ledger.eu"]; !ok {
			t.Errorf("the admin does not see A's channel: %v", keys(chs))
		}
		acme := channelsOf(t, s.do("GET", "/v1/channels?tenant=acme", tokAdmin, nil))
		if _, ok := acme["root.globex-own"]; ok || acme["root.shared"].Pending != 0 || acme["root.shared"].Failed != 1 {
			t.Errorf("the admin's view of acme's channels: %+v", acme)
		}
		m := string(s.do("GET", "/metrics", tokAdmin, nil).body)
		for _, want := range []string{`tenant="acme"`, `tenant="globex"`, `channel="root.acme-ledger.eu"`, "\nwasmq_runner_leader "} {
			if !strings.Contains(m, want) {
				t.Errorf("the admin's /metrics lacks %s:\n%s", want, m)
			}
		}
		var ps struct{ Plugins []map[string]any }
		json.Unmarshal(s.do("GET", "/v1/plugins", tokAdmin, nil).body, &ps)
		for _, p := range ps.Plugins {
			if p["path"] == nil {
				t.Errorf("the admin does not see where %v/%v is kept", p["tenant"], p["name"])
			}
		}
	})

	t.Run("the admin acts only for a configured tenant", func(t *testing.T) {
		for _, c := range []struct {
			method, path string
			body         any
		}{
			{"POST", "/v1/jobs?tenant=ghost", map[string]any{"func": "testkit.echo"}},
			{"POST", "/v1/jobs:batch?tenant=ghost", map[string]any{"jobs": []any{map[string]any{"func": "testkit.echo"}}}},
			{"PUT", "/v1/plugins/haunt?tenant=ghost", testkitWasm(t)},
			{"DELETE", "/v1/plugins/haunt?tenant=ghost", nil},
			{"POST", "/v1/schedules?tenant=ghost", map[string]any{"name": "haunt", "cron": "@daily", "func": "testkit.echo"}},
			{"POST", "/v1/schedules/acme-nightly:run?tenant=ghost", nil},
			{"GET", "/v1/schedules/acme-nightly?tenant=ghost", nil},
		} {
			r := s.do(c.method, c.path, tokAdmin, c.body)
			if r.status != 422 {
				t.Errorf("%s %s: %d %s, want 422 on tenant", c.method, c.path, r.status, r.body)
				continue
			}
			if code, msg, field := r.errOf(t); code != "invalid_argument" || field != "tenant" || !strings.Contains(msg, "ghost") {
				t.Errorf("%s %s: %d %s, want 422 on tenant", c.method, c.path, r.status, r.body)
			}
		}
		if n := len(jobsOf(t, s.do("GET", "/v1/jobs?tenant=ghost", tokAdmin, nil))); n != 0 {
			t.Errorf("the admin created %d jobs for a tenant that does not exist", n)
		}
		if _, err := os.Stat(filepath.Join(pluginsDir, "ghost")); err == nil {
			t.Errorf("the admin created a plugin folder for a tenant that does not exist")
		}
	})
}

// bulkOfB aims a bulk action at A's jobs through every filter that names
// them: it must match none.
func bulkOfB(action string, a *acmeWorld) func(t *testing.T, b *asB) {
	return func(t *testing.T, b *asB) {
		for _, q := range []string{"?state=failed", "?state=done,failed,cancelled,wait_dependencies", "?tenant=acme&state=failed",
			"?channel=acme-ledger.*", "?func=acmeprivate.echo", "?graph_uuid=" + a.graphUUID, "?identity_key=" + a.identityKey,
			"?q=" + url.QueryEscape(a.description), "?q=" + a.uuids[0]} {
			r := b.do("POST", "/v1/jobs:"+action+q, nil)
			if got := r.json(t); r.status != 200 || got["matched"] != 0.0 || got["changed"] != 0.0 {
				t.Errorf("B: POST /v1/jobs:%s%s: %d %s, want 200 and nothing matched", action, q, r.status, r.body)
			}
		}
	}
}

// noSuchJob is a uuid no job has.
const noSuchJob = "6f1c1a3e-8c43-4c0e-9d53-000000000000"

// acmeWorld is what A owns, and the strings B must never be shown.
type acmeWorld struct {
	uuids       []string
	graph       []string // the uuids of A's batch graph
	graphUUID   string
	identityKey string
	identityJob string
	description string
	snapshot    map[string]map[string]any // A's jobs as A saw them before B acted
}

// seedAcme gives A a private plugin, a done job on it in a channel of its
// own (with attempts), failed jobs in the shared and the sequential
// channels, a pending job with an identity key and a waiting graph.
func seedAcme(t *testing.T, s *srv) *acmeWorld {
	t.Helper()
	a := &acmeWorld{identityKey: "acme-invoice-7f3", description: "acme quarterly close", snapshot: map[string]map[string]any{}}
	if r := s.do("PUT", "/v1/plugins/acmeprivate", tokA, testkitWasm(t)); r.status != 201 {
		t.Fatalf("A uploading its plugin: %d %s", r.status, r.body)
	}
	create := func(body map[string]any, want abi.State) string {
		t.Helper()
		r := s.do("POST", "/v1/jobs", tokA, body)
		if r.status != 201 {
			t.Fatalf("A creating %v: %d %s", body, r.status, r.body)
		}
		id := r.json(t)["uuid"].(string)
		s.waitState(tokA, id, want)
		a.uuids = append(a.uuids, id)
		return id
	}
	create(map[string]any{"func": "acmeprivate.echo", "channel": "acme-ledger.eu", "description": a.description}, abi.StateDone)
	create(map[string]any{"func": "testkit.fail", "channel": "shared", "max_retries": 0}, abi.StateFailed)
	create(map[string]any{"func": "testkit.fail", "channel": "lane", "max_retries": 0}, abi.StateFailed)
	a.identityJob = create(map[string]any{"func": "testkit.echo", "channel": "acme-ledger.eu", "identity_key": a.identityKey, "eta": 3600}, abi.StatePending)
	r := s.do("POST", "/v1/jobs:batch", tokA, map[string]any{"jobs": []any{
		map[string]any{"ref": "extract", "func": "acmeprivate.echo", "channel": "acme-ledger", "eta": 3600},
		map[string]any{"ref": "load", "func": "testkit.echo", "channel": "acme-ledger", "depends_on": []string{"extract"}},
	}})
	if r.status != 201 {
		t.Fatalf("A's graph: %d %s", r.status, r.body)
	}
	for _, j := range jobsOf(t, r) {
		a.graph = append(a.graph, j["uuid"].(string))
		a.graphUUID = j["graph_uuid"].(string)
	}
	a.uuids = append(a.uuids, a.graph...)
	for _, id := range a.uuids {
		a.snapshot[id] = s.do("GET", "/v1/jobs/"+id, tokA, nil).json(t)
	}
	return a
}

// seedGlobex gives B a plugin of its own and three pending jobs: in the
// shared channel, in the sequential one and in a channel of its own (that
// one created naming A's tenant, which a tenant's token ignores).
func seedGlobex(t *testing.T, s *srv) {
	t.Helper()
	if r := s.do("PUT", "/v1/plugins/globexown", tokB, testkitWasm(t)); r.status != 201 {
		t.Fatalf("B uploading its plugin: %d %s", r.status, r.body)
	}
	for _, c := range []struct{ path, channel string }{{"/v1/jobs", "shared"}, {"/v1/jobs", "lane"}, {"/v1/jobs?tenant=acme", "globex-own"}} {
		r := s.do("POST", c.path, tokB, map[string]any{"func": "globexown.echo", "channel": c.channel, "eta": 3600})
		if r.status != 201 || r.json(t)["tenant"] != "globex" {
			t.Fatalf("B creating a job in %s: %d %s", c.channel, r.status, r.body)
		}
	}
}

// world is what the matrix knows while B acts.
type world struct {
	acme       *acmeWorld
	pluginsDir string
}

// secrets are the strings no answer to B may hold unless B's own request
// carried them.
func (w *world) secrets() []string {
	a := w.acme
	out := append([]string{a.graphUUID, a.identityKey, a.description, "acme-ledger", "acmeprivate", `"acme"`, w.pluginsDir}, a.uuids...)
	return out
}

// asB sends requests with B's token and checks every answer for A's
// secrets.
type asB struct {
	*world
	s *srv
	t *testing.T
}

func (b *asB) do(method, path string, body any) resp {
	b.t.Helper()
	r := b.s.do(method, path, tokB, body)
	sent := method + " " + path
	if j, err := json.Marshal(body); err == nil {
		sent += string(j)
	}
	got := string(r.body)
	for k, v := range r.header {
		got += k + ": " + strings.Join(v, ", ") + "\n"
	}
	for _, secret := range b.secrets() {
		if strings.Contains(got, secret) && !strings.Contains(sent, secret) {
			b.t.Errorf("%s %s shows B %q: %d %s", method, path, secret, r.status, r.body)
		}
	}
	return r
}

// ok asks for a route that answers the same to everyone: 200, and
// nothing of A's.
func (b *asB) ok(method, path string) {
	b.t.Helper()
	if r := b.do(method, path, nil); r.status != 200 {
		b.t.Errorf("%s %s: %d %s", method, path, r.status, r.body)
	}
}

// perJob aims a per-job route at each of A's jobs: each answers B 404,
// as a job that does not exist does, never 403.
// perSchedule aims a route at A's schedule and at one that does not
// exist: B must get the same 404.
func perSchedule(method, suffix string, body any) func(t *testing.T, b *asB) {
	return func(t *testing.T, b *asB) {
		sameRefusal(t, b.do(method, "/v1/schedules/acme-nightly"+suffix, body), b.do(method, "/v1/schedules/no-such-schedule"+suffix, body),
			404, "acme-nightly", "no-such-schedule")
	}
}

func perJob(method, suffix string, body any) func(t *testing.T, b *asB) {
	return func(t *testing.T, b *asB) {
		none := b.do(method, "/v1/jobs/"+noSuchJob+suffix, body)
		for _, id := range b.acme.uuids {
			sameRefusal(t, b.do(method, "/v1/jobs/"+id+suffix, body), none, 404, id, noSuchJob)
		}
	}
}

// sameRefusal checks that the answer about A's object (named mine in it)
// is the status wanted and says word for word what the answer about an
// object that does not exist (named none) says.
func sameRefusal(t *testing.T, about, absent resp, status int, mine, none string) {
	t.Helper()
	if about.status != status || absent.status != status {
		t.Errorf("status %d for A's %s and %d for nothing, want %d both: %s", about.status, mine, absent.status, status, about.body)
		return
	}
	if a, n := strings.ReplaceAll(string(about.body), mine, "X"), strings.ReplaceAll(string(absent.body), none, "X"); a != n {
		t.Errorf("A's %s is told apart from nothing:\n%s\n%s", mine, about.body, absent.body)
	}
}

func jobsOf(t *testing.T, r resp) []map[string]any {
	t.Helper()
	var out struct{ Jobs []map[string]any }
	if err := json.Unmarshal(r.body, &out); err != nil || r.status >= 300 {
		t.Fatalf("%d %s: %v", r.status, r.body, err)
	}
	return out.Jobs
}

func channelsOf(t *testing.T, r resp) map[string]abi.ChannelStatus {
	t.Helper()
	var out struct{ Channels []abi.ChannelStatus }
	if err := json.Unmarshal(r.body, &out); err != nil || r.status != 200 {
		t.Fatalf("%d %s: %v", r.status, r.body, err)
	}
	m := map[string]abi.ChannelStatus{}
	for _, c := range out.Channels {
		m[c.Name] = c
	}
	return m
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sameKeys[V, W any](a map[string]V, b map[string]W) bool {
	return fmt.Sprint(keys(a)) == fmt.Sprint(keys(b))
}

type metric struct {
	name   string
	labels map[string]string
	value  int
}

// metricLine reads `name{k="v",...} n`.
func metricLine(t *testing.T, line string) metric {
	t.Helper()
	m := metric{labels: map[string]string{}}
	head, val, _ := strings.Cut(line, " ")
	name, labels, _ := strings.Cut(head, "{")
	m.name = name
	for _, kv := range strings.Split(strings.TrimSuffix(labels, "}"), ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m.labels[k], _ = strconv.Unquote(v)
		}
	}
	n, err := strconv.ParseFloat(val, 64)
	if err != nil {
		t.Errorf("metric line %q: %v", line, err)
	}
	m.value = int(n)
	return m
}

// routes lists the patterns the package's files register on its mux, read from the
// source: a route registered without a literal pattern fails the test.
func routes(t *testing.T) []string {
	t.Helper()
	fset := token.NewFileSet()
	files, _ := filepath.Glob("*.go")
	var out []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, routesOf(t, fset, f)...)
	}
	if len(out) < 10 {
		t.Fatalf("found only %d routes in the package: %v", len(out), out)
	}
	return out
}

// routesOf lists the patterns a file registers.
func routesOf(t *testing.T, fset *token.FileSet, f *ast.File) []string {
	var out []string
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Name.Name == "route" || fn.Name.Name == "plain" { // the helpers that register
			continue
		}
		ast.Inspect(fn, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "route" && sel.Sel.Name != "plain" && sel.Sel.Name != "HandleFunc" && sel.Sel.Name != "Handle") {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				t.Errorf("%s: a route whose pattern is not a literal: the isolation matrix cannot check it", fset.Position(call.Pos()))
				return true
			}
			p, _ := strconv.Unquote(lit.Value)
			out = append(out, p)
			return true
		})
	}
	return out
}

func testkitWasm(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../plugins/examples/testkit/testkit.wasm")
	if err != nil {
		t.Fatalf("testkit.wasm must be built (make plugins): %v", err)
	}
	return b
}
