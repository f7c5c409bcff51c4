package enqueue_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/enqueue"
	"github.com/wasmq/wasmq/store/sqlite"
)

// mailer is the one function this example's tenant may call; a
// *host.Host resolves functions from the plugins it loaded.
type mailer struct{}

func (mailer) Function(tenant, fn string) (abi.FunctionConfig, error) {
	if fn != "mailer.send" {
		return abi.FunctionConfig{}, fmt.Errorf("%w: function %q", abi.ErrNotFound, fn)
	}
	return abi.FunctionConfig{Channel: "root.mail"}, nil
}

// A request body becomes stored jobs, or an error that names its field:
// bad input is refused before any SQL and before any sandbox, and a
// refused entry of a batch stores nothing of the batch.
func ExampleService_CreateBatch() {
	dir, _ := os.MkdirTemp("", "wasmq-enqueue-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "wasmq.db"), true)
	if err != nil {
		panic(err)
	}
	defer st.Close()
	svc := &enqueue.Service{Store: st, Funcs: mailer{}}
	defer svc.Close()

	for _, body := range []string{
		`{"jobs": [{"ref": "welcome", "func": "mailer.send", "args": ["ada@example.com"]},
		           {"func": "mailer.send", "args": ["ops@example.com"], "depends_on": ["welcome"]}]}`,
		`{"jobs": [{"func": "mailer.send"}, {"func": "mailer.send", "priority": 1099511627776}]}`,
		`{"jobs": [{"func": "mailer.send", "channel": "root.m\u0000il"}]}`,
		`{"jobs": [{"func": "mailer.send", "eta": "tomorrow"}]}`,
		`{"jobs": [{"func": "mailer.sned"}]}`,
	} {
		var b enqueue.BatchRequest
		if err := enqueue.Decode([]byte(body), &b); err != nil {
			fmt.Println("refused:", err)
			continue
		}
		ins, err := svc.CreateBatch(ctx, "acme", b)
		if err != nil {
			fmt.Println("refused:", err)
			continue
		}
		for _, j := range ins {
			fmt.Println(j.Job.Channel, j.Job.State, j.Job.FuncString)
		}
	}
	counts, _ := st.Counts(ctx, "acme")
	stored := 0
	for _, c := range counts {
		for _, n := range c.Counts {
			stored += n
		}
	}
	fmt.Println("stored:", stored)
	// Output:
	// root.mail pending mailer.send("ada@example.com")
	// root.mail wait_dependencies mailer.send("ops@example.com")
	// refused: jobs[1].priority: must be an integer from 0 to 2147483647
	// refused: jobs[0].channel: "root.m\x00il": channel names use letters, digits, _ and -
	// refused: jobs[0].eta: "tomorrow" is not an RFC 3339 instant (e.g. 2026-11-22T10:00:00Z)
	// refused: jobs[0].func: not found: function "mailer.sned"
	// stored: 2
}
