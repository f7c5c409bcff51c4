package server

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/wasmq/wasmq/store"
)

// publishInterval is how often a node compares its plugin registry with
// what it last published for SQL enqueues: the host rescans plugins_dir
// every second, so a new module is enqueueable from SQL within about two.
const publishInterval = time.Second

// republishEvery renews an unchanged registry, so that the rows of a node
// killed without unpublishing are recognised as stale (the store drops
// rows not renewed for ten minutes).
const republishEvery = time.Minute

// startSQL applies the role mapping and quotas of the config and keeps
// this node's plugin registry published, on a store that lets
// applications enqueue with SQL (PostgreSQL); on others it does nothing.
// The registry is published once before startSQL returns, so a node that
// has started accepts SQL enqueues of its functions.
func (n *Node) startSQL(ctx context.Context) error {
	sa, ok := n.Store.(store.SQLAccess)
	if !ok {
		return nil
	}
	if err := sa.ApplySQLTenants(ctx, n.Config.SQLTenants()); err != nil {
		if !errors.Is(err, store.ErrNotOwner) {
			return err
		}
		// A node running as a role with fewer rights than `wasmq
		// migrate`'s: what migrate applied stands.
		n.log.Warn().Err(err).Msg("sql_roles and quotas not applied by this node; run `wasmq migrate` after changing them")
	}
	node := n.Runner.Config().NodeID
	last, err := n.publish(ctx, sa, node, "")
	if err != nil {
		return err
	}
	renewed := time.Now()
	pctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	n.stopSQL = func() {
		cancel()
		<-done
		uctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
		defer stop()
		if err := sa.UnpublishPlugins(uctx, node); err != nil {
			n.log.Warn().Err(err).Msg("plugin registry: unpublish")
		}
	}
	go func() {
		defer close(done)
		t := time.NewTicker(publishInterval)
		defer t.Stop()
		for {
			select {
			case <-pctx.Done():
				return
			case <-t.C:
			}
			if time.Since(renewed) >= republishEvery {
				last, renewed = "", time.Now()
			}
			next, err := n.publish(pctx, sa, node, last)
			if err != nil {
				if pctx.Err() == nil {
					n.log.Warn().Err(err).Msg("plugin registry: publish for SQL enqueues")
				}
				continue
			}
			last = next
		}
	}()
	return nil
}

// publish writes the registry when it differs from last (its JSON), and
// returns what it is now.
func (n *Node) publish(ctx context.Context, sa store.SQLAccess, node, last string) (string, error) {
	mods := n.Host.Modules("")
	for i := range mods {
		mods[i].Path, mods[i].LoadError = "", "" // neither is the database's business
	}
	b, _ := json.Marshal(mods)
	if string(b) == last {
		return last, nil
	}
	if err := sa.PublishPlugins(ctx, node, mods); err != nil {
		return last, err
	}
	return string(b), nil
}
