//go:build race

package host

// raceEnabled: the race detector checks every byte a copy moves, so work
// that takes a few hundred milliseconds can take seconds.
const raceEnabled = true
