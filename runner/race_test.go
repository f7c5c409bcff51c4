//go:build race

package runner_test

import "time"

// cancelBound: the race detector slows the interruption's path tenfold.
const cancelBound = 500 * time.Millisecond
