//go:build race

package runner_test

import "time"

// cancelBound: the race detector slows the interruption's path tenfold,
// and `make test` runs the race packages side by side on two cores (a
// fresh-clone CI saw 688 ms). A second is still a fifth of the hanging
// job's timeout: the sandbox was interrupted, not left to end.
const cancelBound = time.Second

// raceOn: the race detector slows SQLite inserts tenfold; tests that
// store big backlogs store smaller ones under it.
const raceOn = true
