// Package server wires one wasmq node: store, host, runner and the HTTP
// API with the web UI. `wasmq serve` and the end-to-end tests use it.
package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"
	"github.com/wasmq/wasmq/api"
	"github.com/wasmq/wasmq/config"
	"github.com/wasmq/wasmq/enqueue"
	"github.com/wasmq/wasmq/host"
	"github.com/wasmq/wasmq/runner"
	"github.com/wasmq/wasmq/store"
	"github.com/wasmq/wasmq/store/backends"
	"github.com/wasmq/wasmq/ui"
)

// Node is a running wasmq node.
type Node struct {
	Config  config.File
	Store   store.Store
	Host    *host.Host
	Runner  *runner.Runner
	Enqueue *enqueue.Service
	Handler http.Handler
	log     zerolog.Logger
}

// New opens the store, loads the plugins and builds the runner and the
// HTTP handler; Start sets the runner going.
func New(ctx context.Context, f config.File, log zerolog.Logger) (*Node, error) {
	st, err := backends.Open(ctx, f.Store, log)
	if err != nil {
		return nil, err
	}
	n := &Node{Config: f, Store: st, log: log}
	limits := map[string]enqueue.Limits{}
	var tenants []api.Tenant
	for i, t := range f.Tenants {
		sum, err := t.SHA256(fmt.Sprintf("tenants[%d]", i))
		if err != nil {
			st.Close()
			return nil, err
		}
		tenants = append(tenants, api.Tenant{Name: t.Name, TokenSHA256: sum})
		limits[t.Name] = enqueue.Limits{MaxPending: t.MaxPending, Rate: t.Rate, Burst: t.Burst}
		if t.MaxRunning > 0 {
			if f.Runner.TenantMaxRunning == nil {
				f.Runner.TenantMaxRunning = map[string]int{}
			}
			f.Runner.TenantMaxRunning[t.Name] = t.MaxRunning
		}
	}
	admin, err := f.AdminSHA256()
	if err != nil {
		st.Close()
		return nil, err
	}
	n.Enqueue = &enqueue.Service{Store: st, Limits: limits}
	h, err := host.New(f.Host, log, host.WithEnqueuer(n.Enqueue.Child))
	if err != nil {
		st.Close()
		return nil, err
	}
	n.Host = h
	n.Enqueue.Funcs = h
	if f.Server.NoDelay {
		n.Enqueue.Sync = runner.Sync{Exec: h, DefaultRetryInterval: f.Runner.DefaultRetryInterval.D()}.Run
	}
	n.Runner, err = runner.New(f.Runner, st, h, log)
	if err != nil {
		h.Close(ctx)
		st.Close()
		return nil, err
	}
	h.SetPoolSize(n.Runner.Config().Workers)
	n.Handler = api.New(api.Options{Store: st, Enqueue: n.Enqueue, Plugins: h, Runner: n.Runner, Tenants: tenants,
		Admin: admin, BodyLimit: f.Server.BodyLimit, UI: ui.Handler(), Log: log.With().Str("component", "api").Logger()})
	return n, nil
}

// Start starts the runner.
func (n *Node) Start(ctx context.Context) error { return n.Runner.Start(ctx) }

// Close stops the runner (letting running jobs finish within the
// shutdown timeout), the host and the store.
func (n *Node) Close(ctx context.Context) error {
	err := n.Runner.Stop(ctx)
	err = errors.Join(err, n.Host.Close(ctx), n.Store.Close())
	return err
}

// Serve runs the HTTP server on f.Server.Listen until ctx ends (or the
// runner finds the database migrated past this binary, which Serve then
// returns), then stops gracefully: HTTP first, then the runner.
func (n *Node) Serve(ctx context.Context) error {
	ln, err := net.Listen("tcp", n.Config.Server.Listen)
	if err != nil {
		return fmt.Errorf("server.listen: %w", err)
	}
	srv := &http.Server{Handler: n.Handler, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	n.log.Info().Str("listen", ln.Addr().String()).Str("store", n.Config.Store.Driver).
		Str("plugins_dir", n.Config.Host.PluginsDir).Msg("wasmq serving")
	var fatal error
	select {
	case err := <-errc:
		return err
	case fatal = <-n.Runner.Fatal():
	case <-ctx.Done():
	}
	n.log.Info().Msg("stopping: HTTP first, then running jobs")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(fatal, srv.Shutdown(sctx))
}
