package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mattn/go-isatty"
)

// startProgress shows, on a terminal, that a long command is working:
// a spinner with the time spent, on stderr (stdout stays the data), and
// only when stdout is a terminal, so a pipe or a script sees nothing of
// it. The commands it serves (a bulk action, migrate) are one call that
// reports its counts at the end, so it shows time, not a fraction.
// stop erases it.
func startProgress(out io.Writer, what string) (stop func()) {
	f, ok := out.(*os.File)
	if !ok || !isatty.IsTerminal(f.Fd()) || !isatty.IsTerminal(os.Stderr.Fd()) {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		frames := []rune("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")
		start := time.Now()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			fmt.Fprintf(os.Stderr, "\r%c %s… %.1fs ", frames[i%len(frames)], what, time.Since(start).Seconds())
			select {
			case <-done:
				fmt.Fprint(os.Stderr, "\r\033[K")
				return
			case <-tick.C:
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
