package store

import "context"

type onHoldKey struct{}

// OnHold returns a context whose Store.Hold calls fn each time the hold
// takes effect: a caller that must know the worker holds (a test about
// letting go) cannot tell from Unheld, which names only workers that
// have held.
func OnHold(ctx context.Context, fn func()) context.Context {
	return context.WithValue(ctx, onHoldKey{}, fn)
}

// Holding is what a driver's Hold calls once it holds (see OnHold).
func Holding(ctx context.Context) {
	if fn, ok := ctx.Value(onHoldKey{}).(func()); ok {
		fn()
	}
}
