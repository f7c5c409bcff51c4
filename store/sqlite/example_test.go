package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
	"github.com/wasmq/wasmq/store/sqlite"
)

// The embedded store: the job rules of store.Core over one SQLite file.
// Bad input is refused before any SQL, naming the field.
func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "wasmq-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(dir, "wasmq.db"), true)
	if err != nil {
		panic(err)
	}
	defer s.Close()

	parent := store.NewJob{UUID: "a", Tenant: "acme", Func: "mailer.send", Channel: "root.mail", Priority: 10, MaxRetries: 5}
	child := parent
	child.UUID, child.DependsOn = "b", []string{"a"}
	ins, err := s.Insert(ctx, []store.NewJob{parent, child})
	if err != nil {
		panic(err)
	}
	fmt.Println(ins[0].Job.State, ins[1].Job.State)

	bad := parent
	bad.UUID, bad.Priority = "c", 1<<40
	_, err = s.Insert(ctx, []store.NewJob{bad})
	fmt.Println(errors.Is(err, abi.ErrInvalid), err)

	j, _ := s.Cancel(ctx, "acme", "a")
	waiting, _ := s.Get(ctx, "acme", "b")
	fmt.Println(j.State, waiting.State)
	// Output:
	// pending wait_dependencies
	// true priority: must be an integer from 0 to 2147483647
	// cancelled cancelled
}
