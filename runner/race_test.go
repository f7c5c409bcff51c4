//go:build race

package runner_test

import "time"

// cancelBound: the race detector slows the interruption's path tenfold.
const cancelBound = 500 * time.Millisecond

// raceOn: the race detector slows SQLite inserts tenfold; tests that
// store big backlogs store smaller ones under it.
const raceOn = true
