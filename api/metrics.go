package api

import (
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/wasmq/wasmq/abi"
)

// metrics serves the Prometheus text format: jobs by channel, state and
// tenant, and this node's runner counters. A tenant's token sees its own
// jobs only. The admin (and the single-tenant server without auth) sees
// every configured tenant's, and the runner counters, which sum the work
// of every tenant.
func (s *server) metrics(w http.ResponseWriter, r *http.Request) {
	c, err := s.auth(r)
	if err != nil {
		s.writeErr(w, r, c, err)
		return
	}
	tenants := []string{c.tenant}
	if c.admin {
		tenants = s.tenantNames()
	}
	var b strings.Builder
	fmt.Fprintln(&b, "# HELP wasmq_jobs Jobs in the store by channel, state and tenant.")
	fmt.Fprintln(&b, "# TYPE wasmq_jobs gauge")
	for _, t := range tenants {
		counts, err := s.Store.Counts(r.Context(), t)
		if err != nil {
			s.writeErr(w, r, c, err)
			return
		}
		sort.Slice(counts, func(i, j int) bool { return counts[i].Channel < counts[j].Channel })
		for _, cc := range counts {
			for _, st := range abi.States {
				if n, ok := cc.Counts[st]; ok {
					fmt.Fprintf(&b, "wasmq_jobs{channel=\"%s\",state=\"%s\",tenant=\"%s\"} %d\n", labelValue(cc.Channel), st, labelValue(t), n)
				}
			}
		}
	}
	if c.admin && s.Runner != nil {
		st := s.Runner.Stats()
		for _, m := range []struct {
			name string
			v    int64
		}{{"enqueued", st.Enqueued}, {"started", st.Started}, {"done", st.Done}, {"failed", st.Failed},
			{"retried", st.Retried}, {"interrupted", st.Interrupted}, {"late", st.Late}} {
			fmt.Fprintf(&b, "# TYPE wasmq_runner_%s_total counter\nwasmq_runner_%s_total %d\n", m.name, m.name, m.v)
		}
		leader := 0
		if st.Leader {
			leader = 1
		}
		fmt.Fprintf(&b, "# TYPE wasmq_runner_leader gauge\nwasmq_runner_leader %d\n", leader)
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	w.Write([]byte(b.String()))
}

// tenantNames lists the configured tenants in order; without any, the
// single default one.
func (s *server) tenantNames() []string {
	if len(s.Tenants) == 0 {
		return []string{DefaultTenant}
	}
	out := make([]string, len(s.Tenants))
	for i, t := range s.Tenants {
		out[i] = t.Name
	}
	sort.Strings(out)
	return out
}

// labelValue escapes a Prometheus label value.
var labelValue = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace
