package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
	"github.com/wasmq/wasmq/store/pgtest"
	"github.com/wasmq/wasmq/store/postgres"
	"github.com/wasmq/wasmq/store/sqlite"
)

// Sixteen clients send one job per request to a real `wasmq serve`,
// which writes them in groups; a few requests are bad (a parent that
// does not exist) and get their own 422 while their neighbours get 201.
// The node is killed with SIGKILL while they send. Every job a client
// got 201 for is in the store afterwards; and the jobs did share
// transactions (one creation date for several), so the groups were real.
func TestCoalescedEnqueuesSurviveKill9(t *testing.T) {
	bin := buildWasmq(t)
	t.Run("postgres", func(t *testing.T) {
		dsn := pgtest.DSN(t)
		killWhileEnqueueing(t, startNodeWith(t, bin, dsn, "coalescing", ""), func() store.Store {
			s, err := postgres.Open(context.Background(), dsn, false)
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})
	t.Run("sqlite", func(t *testing.T) {
		db := filepath.Join(t.TempDir(), "wasmq.db")
		killWhileEnqueueing(t, startNodeWith(t, bin, db, "embedded", ""), func() store.Store {
			s, err := sqlite.Open(context.Background(), db, false)
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})
}

func killWhileEnqueueing(t *testing.T, n *node, open func() store.Store) {
	const clients, killAfter = 16, 1500
	var mu sync.Mutex
	acked := map[string]bool{}
	var okCount, badCount atomic.Int64
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	stop := sendUntilStopped(clients, func(c, i int) bool {
		body := `{"func":"testkit.echo","args":[1]}`
		bad := c == 0 && i%5 == 4
		if bad {
			body = `{"func":"testkit.echo","depends_on":["00000000-0000-4000-8000-000000000000"]}`
		}
		res, err := hc.Post(n.url+"/v1/jobs", "application/json", bytes.NewReader([]byte(body)))
		if err != nil {
			return false // the node is gone
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			return false
		}
		var out struct {
			UUID  string `json:"uuid"`
			Error struct {
				Field string `json:"field"`
			} `json:"error"`
		}
		json.Unmarshal(b, &out)
		switch {
		case bad && res.StatusCode == 422 && out.Error.Field == "depends_on":
			badCount.Add(1)
		case bad:
			t.Errorf("a job with an unknown parent: %d %s, want its own 422 naming depends_on", res.StatusCode, b)
			return false
		case res.StatusCode == 201 && out.UUID != "":
			mu.Lock()
			acked[out.UUID] = true
			mu.Unlock()
			okCount.Add(1)
		default:
			t.Errorf("a good job: %d %s, want 201", res.StatusCode, b)
			return false
		}
		return true
	})
	deadline := time.Now().Add(60 * time.Second)
	for okCount.Load() < killAfter && !t.Failed() {
		if time.Now().After(deadline) {
			t.Fatalf("only %d jobs acknowledged after 60s", okCount.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	n.cmd.Process.Signal(syscall.SIGKILL)
	n.cmd.Wait()
	stop()
	if t.Failed() {
		return
	}
	if badCount.Load() == 0 {
		t.Fatal("no bad request was sent before the kill")
	}

	s := open()
	defer s.Close()
	ctx := context.Background()
	byCreated := map[time.Time]int{}
	lost := 0
	for id := range acked {
		j, err := s.Get(ctx, "", id)
		if err != nil {
			lost++
			t.Errorf("job %s was acknowledged (201) and is not in the store: %v", id, err)
			continue
		}
		if j.State == abi.StateWaitDependencies {
			t.Errorf("job %s waits for dependencies it was not given", id)
		}
		byCreated[j.DateCreated]++
	}
	shared := 0
	for _, k := range byCreated {
		if k > 1 {
			shared += k
		}
	}
	t.Logf("%d acknowledged, %d refused alone, %d lost; %d jobs in %d transactions (%d jobs shared one)",
		len(acked), badCount.Load(), lost, len(acked), len(byCreated), shared)
	if shared == 0 {
		t.Fatal("every job had a transaction of its own: the requests were not coalesced")
	}
}

// sendUntilStopped runs clients goroutines, each calling send(client, i)
// for i = 0, 1, … until send returns false or stop is called; stop
// returns once every one has returned.
func sendUntilStopped(clients int, send func(client, i int) bool) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				if !send(c, i) {
					return
				}
			}
		}()
	}
	return func() { close(done); wg.Wait() }
}
