package abi_test

import (
	"errors"
	"fmt"

	"github.com/wasmq/wasmq/abi"
)

// Channel names are normalised at every edge (enqueue, the channel config,
// list filters) and checked the same way: every channel lives under root,
// which a name may leave out.
func ExampleParseChannel() {
	for _, name := range []string{"", "mail", "root.mail.bulk", "a..b", "mail\x00"} {
		c, err := abi.ParseChannel(name)
		fmt.Printf("%q %q %v\n", name, c, err)
	}
	// Output:
	// "" "root" <nil>
	// "mail" "root.mail" <nil>
	// "root.mail.bulk" "root.mail.bulk" <nil>
	// "a..b" "" channel: "root.a..b" is not a channel name (dot-separated words)
	// "mail\x00" "" channel: "root.mail\x00": channel names use letters, digits, _ and -
}

// A job's func is module.function: the plugin file and its export.
func ExampleSplitFunc() {
	for _, f := range []string{"mailer.send", "report.word_count", "send"} {
		m, fn, err := abi.SplitFunc(f)
		fmt.Printf("%q %q %v\n", m, fn, err)
	}
	// Output:
	// "mailer" "send" <nil>
	// "report" "word_count" <nil>
	// "" "" func "send" must be of the form module.function
}

// The state machine: a cause moves a job from one state to another, and
// only along the edges of docs/semantics.md; a move against them wraps
// ErrIllegalTransition.
func ExampleCheckTransition() {
	fmt.Println(abi.CheckTransition(abi.StateStarted, abi.StatePending, abi.CauseRetry))
	err := abi.CheckTransition(abi.StateDone, abi.StateStarted, abi.CauseStart)
	fmt.Println(errors.Is(err, abi.ErrIllegalTransition), err)
	fmt.Println(abi.AllowedFrom(abi.CauseCancel))
	// Output:
	// <nil>
	// true illegal state transition: start cannot move a job from done to started
	// [wait_dependencies pending enqueued started failed]
}
