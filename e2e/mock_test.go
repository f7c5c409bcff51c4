package e2e

// A static in-memory stand-in for the API, used only to develop the UI
// while the real server is not built (WASMQ_UI_MOCK=1). Acceptance tests
// run against the real server.

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/ui"
)

type mockAPI struct {
	mu       sync.Mutex
	jobs     map[string]*abi.Job
	attempts map[string][]abi.Attempt
	tokens   map[string]string // token -> tenant ("" = admin)
	channels []abi.ChannelStatus
	plugins  []map[string]any
}

func (m *mockAPI) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", ui.Handler())
	mux.HandleFunc("/v1/", m.serve)
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func apiErr(w http.ResponseWriter, code int, c, msg string) {
	writeJSON(w, code, map[string]any{"error": map[string]string{"code": c, "message": msg}})
}

func (m *mockAPI) serve(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	tenant := ""
	if len(m.tokens) > 0 {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		tn, ok := m.tokens[tok]
		if !ok {
			apiErr(w, 401, "unauthenticated", "missing or unknown token")
			return
		}
		tenant = tn
	}
	p := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	visible := func(j *abi.Job) bool { return tenant == "" || j.Tenant == tenant }
	switch {
	case r.Method == http.MethodPost && len(p) == 2 && (p[1] == "jobs" || p[1] == "jobs:batch"):
		var bodies []map[string]any
		if p[1] == "jobs" {
			var b map[string]any
			_ = json.NewDecoder(r.Body).Decode(&b)
			bodies = append(bodies, b)
		} else {
			var b struct{ Jobs []map[string]any }
			_ = json.NewDecoder(r.Body).Decode(&b)
			bodies = b.Jobs
		}
		refs := map[string]string{}
		graph := ""
		if len(bodies) > 1 {
			graph = "g-" + strconv.Itoa(len(m.jobs))
		}
		var out []*abi.Job
		for _, b := range bodies {
			seq := int64(len(m.jobs) + 1000)
			j := &abi.Job{UUID: "00000000-0000-4000-8000-" + strconv.FormatInt(100000000000+seq, 10), Tenant: tenant, Func: b["func"].(string),
				Channel: "root", State: abi.StatePending, Seq: seq, DateCreated: time.Now(), GraphUUID: graph, MaxRetries: 5}
			if tenant == "" {
				j.Tenant = "default"
			}
			if d, ok := b["description"].(string); ok {
				j.Description = d
			}
			if deps, ok := b["depends_on"].([]any); ok {
				for _, d := range deps {
					j.DependsOn = append(j.DependsOn, refs[d.(string)])
				}
			}
			if ref, ok := b["ref"].(string); ok {
				refs[ref] = j.UUID
			}
			m.jobs[j.UUID] = j
			out = append(out, j)
			_, hasETA := b["eta"]
			if !hasETA {
				fail := strings.Contains(j.Description, "nightly")
				time.AfterFunc(300*time.Millisecond, func() {
					m.mu.Lock()
					defer m.mu.Unlock()
					if fail {
						j.State, j.ExcName, j.ExcMessage = abi.StateFailed, "Error", "boom"
					} else {
						j.State = abi.StateDone
					}
					m.attempts[j.UUID] = append(m.attempts[j.UUID], abi.Attempt{Attempt: 1, Outcome: string(j.State)})
				})
			}
		}
		if len(out) == 1 && p[1] == "jobs" {
			writeJSON(w, 201, out[0])
		} else {
			writeJSON(w, 201, map[string]any{"jobs": out})
		}
	case len(p) == 2 && p[1] == "jobs":
		q := r.URL.Query()
		var out []abi.Job
		for _, j := range m.jobs {
			if !visible(j) || (q.Get("state") != "" && string(j.State) != q.Get("state")) ||
				(q.Get("channel") != "" && j.Channel != q.Get("channel")) || (q.Get("func") != "" && j.Func != q.Get("func")) ||
				(q.Get("graph_uuid") != "" && j.GraphUUID != q.Get("graph_uuid")) || (q.Get("tenant") != "" && j.Tenant != q.Get("tenant")) ||
				(q.Get("q") != "" && !strings.Contains(j.UUID+j.Func+j.Description, q.Get("q"))) {
				continue
			}
			out = append(out, *j)
		}
		sort.Slice(out, func(a, b int) bool { return out[a].Seq > out[b].Seq })
		off, _ := strconv.Atoi(q.Get("cursor"))
		lim, _ := strconv.Atoi(q.Get("limit"))
		if lim <= 0 {
			lim = 50
		}
		next := ""
		out = out[min(off, len(out)):]
		if len(out) > lim {
			out = out[:lim]
			next = strconv.Itoa(off + lim)
		}
		writeJSON(w, 200, map[string]any{"jobs": out, "next_cursor": next})
	case len(p) >= 3 && p[1] == "jobs":
		j, ok := m.jobs[p[2]]
		if !ok || !visible(j) {
			apiErr(w, 404, "not_found", "job not found")
			return
		}
		if len(p) == 3 {
			writeJSON(w, 200, j)
			return
		}
		act := p[3]
		if act == "attempts" {
			writeJSON(w, 200, map[string]any{"attempts": m.attempts[j.UUID]})
			return
		}
		cause := map[string]abi.Cause{"requeue": abi.CauseRequeue, "cancel": abi.CauseCancel, "done": abi.CauseSetDone}[act]
		if !abi.CanApply(cause, j.State) {
			apiErr(w, 409, "conflict", "not allowed in state "+string(j.State))
			return
		}
		switch act {
		case "requeue":
			j.State = abi.StatePending
			j.Retry = 0
			uuid := j.UUID
			time.AfterFunc(time.Second, func() {
				m.mu.Lock()
				defer m.mu.Unlock()
				m.jobs[uuid].State = abi.StateDone
				m.attempts[uuid] = append(m.attempts[uuid], abi.Attempt{Attempt: 2, Outcome: "done"})
			})
		case "cancel":
			j.State = abi.StateCancelled
		case "done":
			j.State = abi.StateDone
		}
		writeJSON(w, 200, j)
	case len(p) == 2 && p[1] == "stats":
		c := map[abi.State]int{}
		for _, j := range m.jobs {
			if visible(j) {
				c[j.State]++
			}
		}
		writeJSON(w, 200, map[string]any{"states": c})
	case len(p) == 2 && p[1] == "channels":
		writeJSON(w, 200, m.channels)
	case len(p) == 2 && p[1] == "plugins":
		writeJSON(w, 200, m.plugins)
	default:
		apiErr(w, 404, "not_found", "no such endpoint")
	}
}
