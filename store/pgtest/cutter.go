package pgtest

import (
	"bytes"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"
)

// Cutter is a TCP proxy between the store and PostgreSQL that breaks one
// connection at a chosen moment of one exchange: the way a crash, a
// restart or a cut network breaks it, but at the moment a test needs.
type Cutter struct {
	t      *testing.T
	ln     net.Listener
	target string

	mu        sync.Mutex
	marker    []byte // the exchange to break: the nth client write holding it
	nth       int
	how       Cut
	downOnCut bool          // DownOnCut
	down      bool          // new connections are refused
	open      []net.Conn    // every connection's two sides
	cutNow    chan struct{} // closed when the marked exchange has been broken
}

// Cut is how the armed exchange is broken.
type Cut int

const (
	// AfterAnswer: the request reaches the server, which commits and
	// answers; the answer is dropped and both sides are closed.
	AfterAnswer Cut = iota
	// BeforeServer: the request never reaches the server.
	BeforeServer
	// AnswerLostSessionKept: as AfterAnswer, but the server's side stays
	// open, its session alive (a network cut the server has not seen).
	AnswerLostSessionKept
	// WithoutSync: the statement reaches the server but not the Sync
	// that would commit it; the server's side stays open, its
	// transaction with it.
	WithoutSync
)

// NewCutter starts a cutter in front of dsn's server and returns it with
// the DSN that goes through it. It stops when the test ends.
func NewCutter(t *testing.T, dsn string) (*Cutter, string) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cutter{t: t, ln: ln, target: u.Host}
	t.Cleanup(func() {
		ln.Close()
		c.mu.Lock()
		for _, h := range c.open {
			h.Close()
		}
		c.mu.Unlock()
	})
	go c.serve()
	u.Host = ln.Addr().String()
	return c, u.String()
}

// Arm breaks the nth exchange from now whose request holds marker, as
// how says; wait for it with Done.
func (c *Cutter) Arm(marker string, nth int, how Cut) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.marker, c.nth, c.how, c.cutNow = []byte(marker), nth, how, make(chan struct{})
}

// Done fails the test if the armed exchange was never broken (a test
// that never broke anything proves nothing).
func (c *Cutter) Done() {
	c.t.Helper()
	c.mu.Lock()
	done := c.cutNow
	c.mu.Unlock()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		c.t.Fatal("pgtest: cutter: the armed exchange never happened")
	}
}

func (c *Cutter) serve() {
	for {
		client, err := c.ln.Accept()
		if err != nil {
			return
		}
		c.mu.Lock()
		down := c.down
		c.mu.Unlock()
		if down {
			client.Close()
			continue
		}
		server, err := net.Dial("tcp", c.target)
		if err != nil {
			client.Close()
			continue
		}
		c.mu.Lock()
		c.open = append(c.open, client, server)
		c.mu.Unlock()
		go c.pipe(client, server)
	}
}

// lostAnswer tells pipe's server side to drop the next answer.
type lostAnswer struct {
	how  Cut
	done chan struct{}
}

func (c *Cutter) pipe(client, server net.Conn) {
	answerLost := make(chan lostAnswer, 1)
	go func() { // server → client
		buf := make([]byte, 64<<10)
		for {
			n, err := server.Read(buf)
			if n > 0 {
				select {
				case lost := <-answerLost: // this is the marked request's answer
					c.broken(lost.done)
					client.Close()
					if lost.how == AfterAnswer {
						server.Close()
					}
					return
				default:
				}
				if _, werr := client.Write(buf[:n]); werr != nil {
					server.Close()
					return
				}
			}
			if err != nil {
				client.Close()
				return
			}
		}
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			c.mu.Lock()
			hit := false
			if c.marker != nil && bytes.Contains(chunk, c.marker) {
				if c.nth--; c.nth == 0 {
					hit, c.marker = true, nil
				}
			}
			how, done := c.how, c.cutNow
			c.mu.Unlock()
			if hit {
				switch how {
				case BeforeServer:
					client.Close()
					server.Close()
					c.broken(done)
				case AfterAnswer, AnswerLostSessionKept:
					answerLost <- lostAnswer{how, done} // before the request: its answer cannot come first
					server.Write(chunk)
				case WithoutSync:
					sync := []byte{'S', 0, 0, 0, 4}
					if !bytes.HasSuffix(chunk, sync) {
						c.t.Errorf("pgtest: cutter: the marked request does not end with a Sync")
					}
					server.Write(bytes.TrimSuffix(chunk, sync))
					client.Close()
					c.broken(done)
				}
				io.Copy(io.Discard, client)
				return
			}
			if _, werr := server.Write(chunk); werr != nil {
				client.Close()
				return
			}
		}
		if err != nil {
			server.Close()
			return
		}
	}
}

// broken marks the armed exchange broken; with DownOnCut the database
// goes away first, before the client can learn of the cut and ask again.
func (c *Cutter) broken(done chan struct{}) {
	c.mu.Lock()
	if c.downOnCut {
		c.down = true
		for _, o := range c.open {
			o.Close()
		}
	}
	c.mu.Unlock()
	close(done)
}

// DownOnCut makes the database unreachable once the armed exchange is
// broken: every connection through the cutter is closed and new ones are
// refused.
func (c *Cutter) DownOnCut() {
	c.mu.Lock()
	c.downOnCut = true
	c.mu.Unlock()
}
