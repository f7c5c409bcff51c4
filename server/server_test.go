package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/config"
)

// testNode serves a real node (SQLite in a temp dir, no plugin) on a
// loopback port with the HTTP limits mod sets. With tenant, requests
// without its token are unauthenticated.
func testNode(t *testing.T, tenant bool, mod func(*config.Server)) (*Node, string) {
	t.Helper()
	t.Setenv("WASMQ_LISTEN", "")
	dir := t.TempDir()
	var f config.File
	f.Server.Listen = "127.0.0.1:0"
	f.Store.Driver, f.Store.Path = "sqlite", filepath.Join(dir, "wasmq.db")
	f.Host.PluginsDir, f.Host.CacheDir = filepath.Join(dir, "plugins"), filepath.Join(dir, "cache")
	if tenant {
		f.Tenants = []config.Tenant{{Name: "acme", Token: "acme-token-0123456789"}}
	}
	mod(&f.Server)
	f = f.WithDefaults()
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n, err := New(ctx, f, zerolog.Nop())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.ServeListener(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		cctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
		defer stop()
		if err := n.Close(cctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return n, ln.Addr().String()
}

// halfSent is one way of never finishing: start sends what the client
// sends, and the server must close the connection within limit of it.
type halfSent struct {
	name  string
	limit time.Duration
	start func(c net.Conn, br *bufio.Reader) error
}

func write(s string) func(net.Conn, *bufio.Reader) error {
	return func(c net.Conn, _ *bufio.Reader) error { _, err := io.WriteString(c, s); return err }
}

// trickle starts a request's headers and then sends one byte of them
// every 20ms, never ending them, until the connection is closed.
func trickle(c net.Conn, _ *bufio.Reader) error {
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: wasmq\r\nX-Slow: "); err != nil {
		return err
	}
	go func() {
		for {
			time.Sleep(20 * time.Millisecond)
			if _, err := io.WriteString(c, "a"); err != nil {
				return
			}
		}
	}()
	return nil
}

// idleAfterOneRequest sends a whole request, reads the answer, and keeps
// the connection open.
func idleAfterOneRequest(c net.Conn, br *bufio.Reader) error {
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: wasmq\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// connResult is how one half-sent connection ended.
type connResult struct {
	kind     int
	started  bool          // start went through before the server closed it
	closedIn time.Duration // from the end of start to the server's close
	open     bool          // still open after limit plus the margin
}

// flood opens perKind connections of every kind at once and reports how
// each ended; each is given limit+margin to be closed.
func flood(t *testing.T, addr string, kinds []halfSent, perKind int, margin time.Duration) []connResult {
	t.Helper()
	results := make([]connResult, 0, len(kinds)*perKind)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for k, kind := range kinds {
		for range perKind {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := connResult{kind: k}
				defer func() { mu.Lock(); results = append(results, r); mu.Unlock() }()
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					t.Errorf("%s: dial: %v", kind.name, err)
					return
				}
				defer c.Close()
				br := bufio.NewReader(c)
				start := time.Now()
				c.SetDeadline(start.Add(kind.limit + margin))
				if err := kind.start(c, br); err == nil {
					r.started, start = true, time.Now()
				}
				_, err = io.Copy(io.Discard, br) // until the server closes
				r.closedIn = time.Since(start)
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					r.open = true
				}
			}()
		}
	}
	wg.Wait()
	return results
}

// probeHealthz asks GET /healthz on a new connection every 20ms until stop
// is closed, and returns every latency; a failure is an error.
func probeHealthz(t *testing.T, addr string, stop <-chan struct{}) <-chan []time.Duration {
	out := make(chan []time.Duration, 1)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	go func() {
		var lat []time.Duration
		defer func() { out <- lat }()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			start := time.Now()
			resp, err := client.Get("http://" + addr + "/healthz")
			if err != nil {
				t.Errorf("/healthz: %v", err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			lat = append(lat, time.Since(start))
			if resp.StatusCode != 200 {
				t.Errorf("/healthz: status %d", resp.StatusCode)
				return
			}
		}
	}()
	return out
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(p*float64(len(s)-1))]
}

// Unauthenticated clients that never finish a request are closed within
// the timeouts, the server never holds more than max_connections, and
// /healthz answers at once all along, with 1,200 of them opened at once
// (4 times max_connections; 300 under the race detector).
func TestHalfSentRequestsAreClosedWhileHealthzAnswers(t *testing.T) {
	const (
		headerTimeout = time.Second
		readTimeout   = 1500 * time.Millisecond
		idleTimeout   = time.Second
	)
	maxConns, perKind, margin := 300, 400, 500*time.Millisecond
	if raceEnabled {
		maxConns, perKind, margin = 75, 100, 1500*time.Millisecond
	}
	n, addr := testNode(t, true, func(s *config.Server) {
		s.ReadHeaderTimeout = abi.Duration(headerTimeout)
		s.ReadTimeout = abi.Duration(readTimeout)
		s.WriteTimeout = abi.Duration(2 * time.Second)
		s.IdleTimeout = abi.Duration(idleTimeout)
		s.MaxConnections = maxConns
	})
	kinds := []halfSent{
		{"headers never finished", headerTimeout, write("GET /healthz HTTP/1.1\r\nHost: wasmq\r\nX-Slow: ")},
		{"body cut short", readTimeout, write("POST /v1/jobs HTTP/1.1\r\nHost: wasmq\r\nContent-Type: application/json\r\n" +
			"Content-Length: 65536\r\n\r\n{\"func\": ")},
		{"idle keep-alive", idleTimeout, idleAfterOneRequest},
		{"headers trickled", headerTimeout, trickle},
	}
	stop := make(chan struct{})
	probes := probeHealthz(t, addr, stop)
	start := time.Now()
	results := flood(t, addr, kinds, perKind, margin)
	took := time.Since(start)
	close(stop)
	lat := <-probes

	for k, kind := range kinds {
		var started, open int
		var closed []time.Duration
		for _, r := range results {
			if r.kind != k {
				continue
			}
			if r.started {
				started++
			}
			if r.open {
				open++
			}
			closed = append(closed, r.closedIn)
		}
		t.Logf("%s: %d of %d sent before being closed; closed after p50 %s, max %s (limit %s)",
			kind.name, started, perKind, percentile(closed, 0.5).Round(time.Millisecond), percentile(closed, 1).Round(time.Millisecond), kind.limit)
		if open > 0 {
			t.Errorf("%s: %d connections still open %s after the %s limit", kind.name, open, margin, kind.limit)
		}
		if started == 0 {
			t.Errorf("%s: no connection got its request through; the test tests nothing", kind.name)
		}
	}
	n.conns.mu.Lock()
	peak, evicted, waited := n.conns.peak, n.conns.evicted, n.conns.waited
	n.conns.mu.Unlock()
	t.Logf("%d connections in %s: server held at most %d (cap %d), closed %d to make room, waited %d times",
		len(results), took.Round(time.Millisecond), peak, maxConns, evicted, waited)
	if peak > maxConns {
		t.Errorf("the server held %d connections, over max_connections %d", peak, maxConns)
	}
	t.Logf("/healthz: %d answers, p50 %s, p99 %s, max %s", len(lat),
		percentile(lat, 0.5).Round(time.Microsecond), percentile(lat, 0.99).Round(time.Microsecond), percentile(lat, 1).Round(time.Microsecond))
	if len(lat) < 10 {
		t.Errorf("/healthz answered %d times, want it asked every 20ms all along", len(lat))
	}
	// Had it waited for a slot, it would have waited for silent clients
	// to reach read_header_timeout: 1.5 s when measured.
	if m := percentile(lat, 1); m > headerTimeout && !raceEnabled {
		t.Errorf("/healthz took up to %s, want under read_header_timeout (%s): it waited for a slot", m, headerTimeout)
	}
}

// A request whose body stops coming is cut at read_timeout even when the
// handler reads it (no tenants: no authentication to refuse it first).
func TestASlowBodyIsCutAtTheReadTimeout(t *testing.T) {
	const readTimeout = 800 * time.Millisecond
	_, addr := testNode(t, false, func(s *config.Server) {
		s.ReadHeaderTimeout = abi.Duration(200 * time.Millisecond)
		s.ReadTimeout = abi.Duration(readTimeout)
	})
	kinds := []halfSent{{"body cut short", readTimeout, write("POST /v1/jobs HTTP/1.1\r\nHost: wasmq\r\nContent-Type: application/json\r\n" +
		"Content-Length: 65536\r\n\r\n{\"func\": ")}}
	results := flood(t, addr, kinds, 50, 500*time.Millisecond)
	var closed []time.Duration
	for _, r := range results {
		if r.open || !r.started {
			t.Errorf("connection open %v, request sent %v", r.open, r.started)
		}
		closed = append(closed, r.closedIn)
	}
	t.Logf("50 slow bodies closed after p50 %s, max %s (read_timeout %s)",
		percentile(closed, 0.5).Round(time.Millisecond), percentile(closed, 1).Round(time.Millisecond), readTimeout)
	if m := percentile(closed, 0); m < readTimeout/2 {
		t.Errorf("a slow body was cut after %s, before read_timeout %s: was the handler reading it?", m, readTimeout)
	}
}

// chunks is a net.Conn whose reads return the given pieces in turn.
type chunks struct {
	net.Conn
	pieces []string
}

func (c *chunks) Read(p []byte) (int, error) {
	if len(c.pieces) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.pieces[0])
	c.pieces = c.pieces[1:]
	return n, nil
}

// A connection's headers count as whole once their blank line has been
// read, wherever the reads split it, and not before: a whole request
// waiting to be parsed is never closed to make room, a stalled one is.
func TestHeadersAreWholeOnceTheirBlankLineIsRead(t *testing.T) {
	req := "GET /healthz HTTP/1.1\r\nHost: wasmq\r\n\r\n"
	for cut := 1; cut < len(req); cut++ {
		for _, pieces := range [][]string{{req[:cut], req[cut:]}, {req[:cut], req[cut : cut+1], req[cut+1:]}} {
			if pieces[len(pieces)-1] == "" {
				continue
			}
			c := &limitedConn{Conn: &chunks{pieces: pieces}}
			buf := make([]byte, 64)
			for i := range pieces {
				if c.heard.Load() == heardWhole {
					t.Fatalf("pieces %q: whole before piece %d", pieces, i)
				}
				if _, err := c.Read(buf); err != nil {
					t.Fatal(err)
				}
			}
			if c.heard.Load() != heardWhole {
				t.Fatalf("pieces %q: heard %d, want whole", pieces, c.heard.Load())
			}
		}
	}
	c := &limitedConn{Conn: &chunks{pieces: []string{"GET / HTTP/1.1\r\n", "X-Slow: a\r\n", "\r"}}}
	for range 3 {
		c.Read(make([]byte, 64))
	}
	if c.heard.Load() != heardPart {
		t.Fatalf("headers without their blank line: heard %d, want part", c.heard.Load())
	}
}
