package api

import (
	"fmt"
	"sync"
)

// Why uploads pass a gate before their body is read: an upload's body
// (up to body_limit, 8 MiB) is read whole, then compiled, one module at a
// time. A hundred uploads sent at once by one tenant were all read into
// memory while they waited for the compiler: the node's RSS reached 1.9
// GB, and max_connections of them would hold 4 GiB. So a tenant has one
// upload in flight at a time (another is answered 429 with Retry-After
// before its body is read), and the node max_uploads (a 503 with
// Retry-After past them): at most max_uploads bodies are held at once.

// DefaultMaxUploads is [server] max_uploads when unset.
const DefaultMaxUploads = 4

type uploadGate struct {
	slots chan struct{} // the node's
	mu    sync.Mutex
	busy  map[string]bool // tenants with an upload in flight
}

func newUploadGate(n int) *uploadGate {
	if n <= 0 {
		n = DefaultMaxUploads
	}
	return &uploadGate{slots: make(chan struct{}, n), busy: map[string]bool{}}
}

// enter admits an upload of tenant's, or says why not; leave ends it.
func (g *uploadGate) enter(tenant string) (leave func(), err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.busy[tenant] {
		whose := "tenant " + tenant
		if tenant == "" {
			whose = "the shared modules" // the admin's uploads
		}
		return nil, &retryLater{&httpError{429, "quota_exceeded", fmt.Sprintf("an upload of %s is in progress: send one at a time", whose), ""}, 1}
	}
	select {
	case g.slots <- struct{}{}:
	default:
		return nil, &retryLater{&httpError{503, "unavailable", fmt.Sprintf("the node is taking %d uploads already (server.max_uploads): retry later", cap(g.slots)), ""}, 1}
	}
	g.busy[tenant] = true
	return func() {
		g.mu.Lock()
		delete(g.busy, tenant)
		g.mu.Unlock()
		<-g.slots
	}, nil
}
