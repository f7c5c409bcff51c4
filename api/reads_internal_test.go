package api

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A read that waits for its turn past its deadline is told why: 429 when
// its own tenant's reads held the turns (the tenant may send fewer at
// once), 503 when the node's did (other tenants'; it may try again).
// The node gives its turns in the order reads came to it, and a read
// behind its own tenant's comes to it only with its tenant's turn. A
// tenant with nothing under way leaves nothing behind.
func TestAReadsWaitIsAnsweredByWhoseReadsHeldItsTurn(t *testing.T) {
	g := newReadGate(2, map[string]int{"acme": 1, "globex": 1})
	acme, globex, admin := caller{tenant: "acme"}, caller{tenant: "globex"}, caller{admin: true}
	enter := func(c caller, wait time.Duration) (func(), error) {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		turn, err := g.enter(ctx, c)
		if err != nil {
			return nil, err
		}
		return turn.leave, nil
	}
	status := func(err error) int {
		var he *httpError
		if !errors.As(err, &he) {
			t.Fatalf("%v is not an answer", err)
		}
		return he.status
	}

	leaveA, err := enter(acme, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enter(acme, 50*time.Millisecond); err == nil || status(err) != 429 {
		t.Fatalf("acme's second read behind its first: %v, want 429", err)
	}
	leaveG, err := enter(globex, time.Second)
	if err != nil {
		t.Fatalf("globex's read beside acme's: %v", err)
	}
	if _, err := enter(admin, 50*time.Millisecond); err == nil || status(err) != 503 {
		t.Fatalf("the admin's read with the node's two reads taken: %v, want 503", err)
	}

	// acme's next read waits for acme's turn, the admin's for the node's.
	// acme's first read ends: the node's turn goes to the admin, who came
	// to the node first; acme's comes to the node then, and has the turn
	// globex's read leaves.
	got := make(chan string, 2)
	go func() {
		if leave, err := enter(acme, 5*time.Second); err == nil {
			got <- "acme"
			defer leave()
			time.Sleep(100 * time.Millisecond)
		}
	}()
	time.Sleep(50 * time.Millisecond)
	adminDone := make(chan struct{})
	go func() {
		if leave, err := enter(admin, 5*time.Second); err == nil {
			got <- "admin"
			<-adminDone
			leave()
		}
	}()
	time.Sleep(50 * time.Millisecond)
	leaveA()
	if first := <-got; first != "admin" {
		t.Fatalf("%s had the freed turn first, want the admin", first)
	}
	select {
	case <-got:
		t.Fatal("acme's read ran with the node's two turns taken")
	case <-time.After(100 * time.Millisecond):
	}
	leaveG()
	if second := <-got; second != "acme" {
		t.Fatalf("%s had the next turn, want acme", second)
	}
	close(adminDone)
	time.Sleep(150 * time.Millisecond) // acme's read ends
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.tenants) != 0 {
		t.Fatalf("%d tenants kept with nothing under way", len(g.tenants))
	}
}
