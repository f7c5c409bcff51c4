//go:build race

package runner_test

// raceOn: the race detector slows SQLite inserts tenfold; tests that
// store big backlogs store smaller ones under it.
const raceOn = true
