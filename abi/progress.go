package abi

import (
	"context"
	"time"
)

// Progress is what a running job last said of its advance, through
// wasmq_progress_v1: stored at most once a second per job.
type Progress struct {
	Percent int       `json:"percent"`
	Message string    `json:"message,omitempty"`
	Updated time.Time `json:"updated"`
}

// MaxProgressMessage bounds a progress message, in characters: a status
// line, not a log (a longer one is cut).
const MaxProgressMessage = 200

// ProgressFunc receives a running attempt's progress reports. It must
// not block: the guest waits for it.
type ProgressFunc func(Progress)

type progressKey struct{}

// WithProgress returns ctx carrying f, for the host to call when the
// attempt run under ctx reports progress.
func WithProgress(ctx context.Context, f ProgressFunc) context.Context {
	return context.WithValue(ctx, progressKey{}, f)
}

// ProgressOf returns the ProgressFunc ctx carries, or nil.
func ProgressOf(ctx context.Context) ProgressFunc {
	f, _ := ctx.Value(progressKey{}).(ProgressFunc)
	return f
}
