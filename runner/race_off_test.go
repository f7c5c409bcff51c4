//go:build !race

package runner_test

const raceOn = false
