package store

import (
	"sort"

	"github.com/wasmq/wasmq/abi"
)

// SortByRunOrder sorts jobs in the order they run (docs/semantics.md §6, with
// wasmq's expected_at): priority, then expected_at (a job without one
// after those with one), then date_created, then seq.
func SortByRunOrder(jobs []abi.Job) {
	sort.Slice(jobs, func(i, k int) bool { return runsBefore(jobs[i], jobs[k]) })
}

func runsBefore(a, b abi.Job) bool {
	if a.Priority != b.Priority {
		return a.Priority < b.Priority
	}
	if (a.ExpectedAt == nil) != (b.ExpectedAt == nil) {
		return a.ExpectedAt != nil
	}
	if a.ExpectedAt != nil && !a.ExpectedAt.Equal(*b.ExpectedAt) {
		return a.ExpectedAt.Before(*b.ExpectedAt)
	}
	if !a.DateCreated.Equal(b.DateCreated) {
		return a.DateCreated.Before(b.DateCreated)
	}
	return a.Seq < b.Seq
}
