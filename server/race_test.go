//go:build race

package server

// raceEnabled: the race detector slows every goroutine several times, so
// the flood tests open fewer connections and allow a larger margin.
const raceEnabled = true
