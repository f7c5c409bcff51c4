package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/api"
	"github.com/wasmq/wasmq/config"
	"github.com/wasmq/wasmq/store/pgdsn"
	"github.com/wasmq/wasmq/store/pgtest"
)

// A tenant runs at most its max_reads reads at once, the node
// server.max_reads: a read past them waits its turn without taking one of
// the store's connections, a tenant's read past its waiting room is
// answered 429 with Retry-After at once, and another tenant's read is not
// behind the first tenant's. The reads are held in PostgreSQL by a lock on
// the jobs table (as an operator's VACUUM FULL holds them), and the test
// counts those that reached it.
func TestATenantsReadsAtOnceAreBoundedAndWaitTheirTurn(t *testing.T) {
	base := pgtest.DSN(t)
	app := fmt.Sprintf("wasmq-reads-%d", time.Now().UnixNano())
	backend = "postgres"
	s := start(t, func(f *config.File) {
		f.Store.DSN = pgdsn.WithParam(base, "application_name", app)
		f.Server.MaxReads = 2
		f.Tenants[0].MaxReads = 1 // acme; globex keeps the default, 2
	})
	backend = "sqlite"
	inDatabase := listsHeld(t, base, app)
	settled := func(want int, what string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); inDatabase() != want; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d lists in the database, want %d", what, inDatabase(), want)
			}
		}
		time.Sleep(200 * time.Millisecond) // and no more come
		if n := inDatabase(); n != want {
			t.Fatalf("%s: %d lists in the database, want %d", what, n, want)
		}
	}

	release := pgtest.LockTable(t, base, "jobs", "ACCESS EXCLUSIVE")
	answers := make(chan resp, 12)
	list := func(token string) { answers <- s.do("GET", "/v1/jobs?limit=5", token, nil) }
	// acme's ten at once: one runs, eight wait (its waiting room), and
	// one, whichever came last, is refused at once.
	for range 10 {
		go list(tokA)
	}
	select {
	case r := <-answers:
		if r.status != 429 || r.header.Get("Retry-After") != "1" {
			t.Fatalf("acme's read past its waiting room: %d (Retry-After %q) %s, want 429 with Retry-After 1", r.status, r.header.Get("Retry-After"), r.body)
		}
		if code, msg, _ := r.errOf(t); code != "quota_exceeded" || !strings.Contains(msg, "max_reads 1") {
			t.Fatalf("acme's read past its waiting room: %s %q, want quota_exceeded naming max_reads", code, msg)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("none of acme's ten reads was refused: with max_reads 1, one runs and eight wait")
	}
	settled(1, "acme's ten reads with max_reads 1")
	select {
	case r := <-answers:
		t.Fatalf("another of acme's reads answered %d %s while the lock holds", r.status, r.body)
	default:
	}
	// A scrape reads the job counts: one more of acme's reads.
	if r := s.do("GET", "/metrics", tokA, nil); r.status != 429 {
		t.Fatalf("acme's scrape with its waiting room full: %d %s, want 429", r.status, r.body)
	}
	go list(tokB)
	settled(2, "globex's read beside acme's")
	go list(tokAdmin) // the node's two reads are taken: it waits in the node
	settled(2, "the admin's read with the node's reads all taken")
	release()
	for i := range 11 {
		select {
		case r := <-answers:
			if r.status != 200 {
				t.Fatalf("read %d once the lock went: %d %s", i, r.status, r.body)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%d reads of 11 answered once the lock went", i)
		}
	}
	// The refusals are counted, for the operator and for acme alone.
	for _, tok := range []string{tokAdmin, tokA} {
		m := series(scrape(t, s, tok), "wasmq_api_reads_refused_total", map[string]string{"tenant": "acme", "reason": "waiting_room"})
		if m == nil || m.GetCounter().GetValue() != 2 {
			t.Fatalf("wasmq_api_reads_refused_total{tenant=acme,reason=waiting_room}: %v, want 2 (a list and a scrape)", m)
		}
	}
	if m := series(scrape(t, s, tokB), "wasmq_api_reads_refused_total", nil); m != nil {
		t.Fatalf("globex's scrape shows acme's refusals: %v", m)
	}
}

// listsHeld counts the lists of the node whose connections are named app
// (application_name) that wait for a lock in PostgreSQL.
func listsHeld(t *testing.T, dsn, app string) func() int {
	t.Helper()
	ctx := context.Background()
	watch, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { watch.Close(ctx) })
	return func() int {
		var n int
		if err := watch.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1
			AND wait_event_type = 'Lock' AND query LIKE '%ORDER BY date_created DESC, seq DESC LIMIT%'`, app).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
}

// A read's turn is for the store's work, not the network's: a client
// that takes its answer slowly (an operator's UI on a slow link, or one
// that reads nothing) holds no turn of its tenant's nor of the node's
// while its answer is sent. Its answer still counts in its tenant's
// waiting room until sent, which bounds how many such answers a tenant
// keeps in the node's memory, and the node holds at most
// MaxHeldAnswerBytes of them: past it an answer is sent holding its
// turns, as before. acme's pages here are of 8 MiB, read by connections
// that read nothing.
func TestASlowClientsAnswerHoldsNoReadTurn(t *testing.T) {
	s := start(t, func(f *config.File) {
		f.Server.MaxReads = 1     // the node: one read at once, which acme's slow clients would hold
		f.Tenants[0].MaxReads = 1 // acme: one read at once, eight waiting
		f.Store.Timeout = abi.Duration(5 * time.Second)
	})
	big := strings.Repeat("x", 900<<10)
	for range 10 {
		if r := s.do("POST", "/v1/jobs", tokA, map[string]any{"func": "testkit.noop", "args": []string{big}, "eta": 86400}); r.status != 201 {
			t.Fatalf("enqueue a large job: %d %s", r.status, r.body)
		}
	}
	// stall sends acme's list on a connection with a small receive window
	// that reads only the answer's first bytes: the rest, about 8 MiB,
	// cannot be sent.
	type stalled struct {
		conn net.Conn
		r    *bufio.Reader
	}
	var slow []stalled
	stall := func() {
		t.Helper()
		d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		}}
		conn, err := d.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		fmt.Fprintf(conn, "GET /v1/jobs?limit=100 HTTP/1.1\r\nHost: wasmq\r\nAuthorization: Bearer %s\r\n\r\n", tokA)
		r := bufio.NewReader(conn)
		conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := r.Peek(len("HTTP/1.1 200")); err != nil {
			t.Fatalf("slow client %d: its answer did not begin: %v", len(slow), err)
		}
		slow = append(slow, stalled{conn, r})
	}
	for range 2 {
		stall()
	}
	// globex's read, and acme's own, find their turns free.
	for _, who := range []struct{ name, token string }{{"globex", tokB}, {"acme", tokA}, {"the admin", tokAdmin}} {
		begin := time.Now()
		if r := s.do("GET", "/v1/jobs?limit=1", who.token, nil); r.status != 200 {
			t.Fatalf("%s's read beside acme's two slow clients: %d %s after %v, want 200", who.name, r.status, r.body, time.Since(begin))
		}
	}
	// The node holds answers without a turn up to MaxHeldAnswerBytes, all
	// tenants together; one more is sent holding its turns, as before.
	page := len(s.do("GET", "/v1/jobs?limit=100", tokA, nil).body)
	fit := api.MaxHeldAnswerBytes / page
	if fit != 8 {
		t.Fatalf("pages of %d bytes: %d fit in the node's held answers; the test is laid out for 8 (and one more, the ninth, filling acme's waiting room)", page, fit)
	}
	for len(slow) < fit {
		stall()
	}
	if r := s.do("GET", "/v1/jobs?limit=1", tokB, nil); r.status != 200 {
		t.Fatalf("globex's read beside acme's %d slow clients: %d %s, want 200", len(slow), r.status, r.body)
	}
	stall()
	begin := time.Now()
	if r := s.do("GET", "/v1/jobs?limit=1", tokB, nil); r.status != 503 {
		t.Fatalf("globex's read with the node's held answers full and its one turn held by acme's slow client: %d %s, want 503 after the store timeout",
			r.status, r.body)
	}
	t.Logf("the node's turn held by a slow answer past its held bytes: globex's read 503 after %v", time.Since(begin))
	// Each answer being sent counts in acme's waiting room: with
	// max_reads 1, nine (one running, eight waiting). Past it, a read is
	// refused at once.
	if r := s.do("GET", "/v1/jobs?limit=1", tokA, nil); r.status != 429 || !strings.Contains(string(r.body), "being sent") {
		t.Fatalf("acme's read with nine answers of its own being sent: %d %s, want 429 at once", r.status, r.body)
	}
	// Read at last, each answer is whole.
	for i, c := range slow {
		c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		res, err := http.ReadResponse(c.r, nil)
		if err != nil {
			t.Fatalf("slow client %d: %v", i, err)
		}
		var page struct{ Jobs []abi.Job }
		err = json.NewDecoder(res.Body).Decode(&page)
		res.Body.Close()
		if err != nil || res.StatusCode != 200 || len(page.Jobs) < 8 || string(page.Jobs[0].Args) != `["`+big+`"]` {
			t.Fatalf("slow client %d: %d, %d jobs, %v; want 200 and a page of the large jobs", i, res.StatusCode, len(page.Jobs), err)
		}
	}
	if r := s.do("GET", "/v1/jobs?limit=1", tokA, nil); r.status != 200 {
		t.Fatalf("acme's read once its answers were taken: %d %s, want 200", r.status, r.body)
	}
}
