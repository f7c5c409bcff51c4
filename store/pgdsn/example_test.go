package pgdsn_test

import (
	"fmt"

	"github.com/wasmq/wasmq/store/pgdsn"
)

// WithParam sets one connection parameter in either form of a dsn,
// replacing the one already there and keeping the rest as written.
func ExampleWithParam() {
	fmt.Println(pgdsn.WithParam("postgres://wasmq@db:5432/jobs?sslmode=require&search_path=old", "search_path", "wasmq"))
	fmt.Println(pgdsn.WithParam("host=db dbname=jobs", "application_name", "wasmq node 1"))
	// Output:
	// postgres://wasmq@db:5432/jobs?sslmode=require&search_path=wasmq
	// host=db dbname=jobs application_name='wasmq node 1'
}

// OptionSettings reads the server settings a dsn's options parameter sets,
// as the server will: wasmq leaves a session bound given there as it is.
func ExampleOptionSettings() {
	s := pgdsn.OptionSettings(`-c idle_in_transaction_session_timeout=5s --TCP-User-Timeout=2000 -csearch_path=a\ b`)
	fmt.Println(s["idle_in_transaction_session_timeout"], s["tcp_user_timeout"], s["search_path"])
	// Output:
	// 5s 2000 a b
}
