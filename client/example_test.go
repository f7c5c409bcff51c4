package client_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"
	"github.com/wasmq/wasmq/client"
	"github.com/wasmq/wasmq/config"
	"github.com/wasmq/wasmq/server"
)

// A throwaway wasmq node for the example: embedded store, the testkit.
func exampleServer() (url string, stop func()) {
	dir, _ := os.MkdirTemp("", "wasmq-example-")
	wasm, _ := os.ReadFile("../plugins/examples/testkit/testkit.wasm")
	os.MkdirAll(filepath.Join(dir, "plugins"), 0o755)
	os.WriteFile(filepath.Join(dir, "plugins", "testkit.wasm"), wasm, 0o644)
	var f config.File
	f.Store.Path = filepath.Join(dir, "wasmq.db")
	f.Host.PluginsDir, f.Host.CacheDir = filepath.Join(dir, "plugins"), ""
	f = f.WithDefaults()
	n, err := server.New(context.Background(), f, zerolog.Nop())
	if err != nil {
		panic(err)
	}
	n.Start(context.Background())
	hs := httptest.NewServer(n.Handler)
	return hs.URL, func() { hs.Close(); n.Close(context.Background()); os.RemoveAll(dir) }
}

func Example() {
	url, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c := client.New(url, "") // a server without tenants needs no token

	job, err := c.Enqueue(ctx, client.JobRequest{
		Func:   "testkit.echo",
		Args:   []any{42, "welcome"},
		Kwargs: map[string]any{"lang": "fr"},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(job.State, job.FuncString)

	for job.State != "done" {
		time.Sleep(10 * time.Millisecond)
		job.Job, _ = c.Get(ctx, job.UUID)
	}
	fmt.Println(job.State)

	_, err = c.Enqueue(ctx, client.JobRequest{Func: "testkit.nope"})
	fmt.Println(err.(*client.Error).Status, err.(*client.Error).Field)
	// Output:
	// pending testkit.echo(42, "welcome", lang="fr")
	// done
	// 404 func
}
