package api

import (
	"net/http"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/wasmq/wasmq/abi"
)

// tenantLabel is the label of series a tenant may see (its own).
const tenantLabel = "tenant"

// metrics serves the Prometheus text format: the jobs in the store by
// channel, state and tenant, read at each scrape, and the node's series
// (Options.Metrics; docs/observability.md lists them all). A tenant's
// token sees only the series labelled with its own tenant: its jobs, its
// attempts and their histograms. The admin (and the single-tenant server
// without auth) sees every configured tenant's, and the node-wide series
// (host instances, runner counters, leadership), which sum the work of
// every tenant and so carry no tenant label.
func (s *server) metrics(w http.ResponseWriter, r *http.Request) {
	c, err := s.auth(r)
	if err != nil {
		s.writeErr(w, r, c, err)
		return
	}
	// The job counts are read from the store at each scrape: a read as
	// a list is, bounded as one (reads.go).
	ctx, turn, err := s.admitRead(r, c)
	if err != nil {
		s.writeErr(w, r, c, err)
		return
	}
	defer turn.leave()
	tenants := []string{c.tenant}
	if c.admin {
		tenants = s.tenantNames()
	}
	jobs := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "wasmq_jobs", Help: "Jobs in the store by channel, state and tenant."},
		[]string{"channel", "state", tenantLabel})
	for _, t := range tenants {
		counts, err := s.Store.Counts(ctx, t)
		if err != nil {
			s.writeErr(w, r, c, err)
			return
		}
		for _, cc := range counts {
			for _, st := range abi.States {
				if n, ok := cc.Counts[st]; ok {
					jobs.WithLabelValues(cc.Channel, string(st), t).Set(float64(n))
				}
			}
		}
	}
	turn.end() // the store's part is read: the answer's sending holds no turn
	reg := prometheus.NewRegistry()
	reg.MustRegister(jobs)
	gatherers := prometheus.Gatherers{reg}
	if s.Metrics != nil {
		gatherers = append(gatherers, s.Metrics)
	}
	fams, err := gatherers.Gather()
	if err != nil {
		s.Log.Warn().Err(err).Msg("metrics: gathering")
	}
	if !c.admin {
		fams = onlyTenant(fams, c.tenant)
	}
	format := expfmt.NewFormat(expfmt.TypeTextPlain)
	w.Header().Set("Content-Type", string(format))
	enc := expfmt.NewEncoder(w, format)
	for _, f := range fams {
		if err := enc.Encode(f); err != nil {
			return
		}
	}
}

// onlyTenant keeps the series whose tenant label is tenant; families
// left empty go too, so a tenant learns no series name of another's.
func onlyTenant(fams []*dto.MetricFamily, tenant string) []*dto.MetricFamily {
	out := fams[:0]
	for _, f := range fams {
		kept := f.Metric[:0]
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == tenantLabel && l.GetValue() == tenant {
					kept = append(kept, m)
					break
				}
			}
		}
		if len(kept) > 0 {
			f.Metric = kept
			out = append(out, f)
		}
	}
	return out
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
