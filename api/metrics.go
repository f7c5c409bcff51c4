package api

import (
	"fmt"
	"net/http"
	"sort"

	"github.com/wasmq/wasmq/abi"
)

// metrics serves the Prometheus text format: jobs by channel and state
// (all tenants) and this node's runner counters.
func (s *server) metrics(w http.ResponseWriter, r *http.Request) {
	if _, err := s.auth(r); err != nil {
		s.writeErr(w, r, err)
		return
	}
	counts, err := s.Store.Counts(r.Context(), "")
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintln(w, "# HELP wasmq_jobs Jobs in the store by channel and state.")
	fmt.Fprintln(w, "# TYPE wasmq_jobs gauge")
	sort.Slice(counts, func(i, j int) bool { return counts[i].Channel < counts[j].Channel })
	for _, c := range counts {
		for _, st := range abi.States {
			if n, ok := c.Counts[st]; ok {
				fmt.Fprintf(w, "wasmq_jobs{channel=%q,state=%q} %d\n", c.Channel, st, n)
			}
		}
	}
	if s.Runner == nil {
		return
	}
	st := s.Runner.Stats()
	for _, m := range []struct {
		name string
		v    int64
	}{{"enqueued", st.Enqueued}, {"started", st.Started}, {"done", st.Done}, {"failed", st.Failed},
		{"retried", st.Retried}, {"interrupted", st.Interrupted}, {"late", st.Late}} {
		fmt.Fprintf(w, "# TYPE wasmq_runner_%s_total counter\nwasmq_runner_%s_total %d\n", m.name, m.name, m.v)
	}
	leader := 0
	if st.Leader {
		leader = 1
	}
	fmt.Fprintf(w, "# TYPE wasmq_runner_leader gauge\nwasmq_runner_leader %d\n", leader)
}
