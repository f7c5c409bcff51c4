//go:build !race

package runner_test

import "time"

// cancelBound is how soon a cancelled job's sandbox stops (the issue's
// 100 ms).
const cancelBound = 100 * time.Millisecond

const raceOn = false
