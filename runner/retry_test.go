package runner

import (
	"testing"
	"time"
)

// The wait before the next round after failed ones grows to a second
// and no further: the store is used within a second of its return.
func TestARoundRetryWaitsLongerAfterEachFailureUpToASecond(t *testing.T) {
	want := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second}
	for i, w := range want {
		if got := roundRetry(i + 1); got != w {
			t.Errorf("after %d failures: %v, want %v", i+1, got, w)
		}
	}
	if got := roundRetry(1000); got != time.Second {
		t.Errorf("after 1,000 failures: %v, want a second", got)
	}
}
