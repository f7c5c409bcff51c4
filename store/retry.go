package store

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// maxTxRetries bounds the runs of a transaction the database ended to
// break a deadlock: each run is a fresh chance, and one that keeps losing
// is an error the caller sees.
const maxTxRetries = 5

// write runs fn in one write transaction (Driver.Write), and runs it
// again when the database ended the transaction to break a deadlock
// (ErrRetryTx): writers that meet on the same rows in other orders — two
// bulk actions, a child's insert beside an action on its parents,
// batches naming the same uuids — are then each answered as if they had
// run one after the other. Every writer of the core goes through here,
// so fn must start from scratch on each run: whatever it hands out is
// set, not appended to.
func (c *Core) write(ctx context.Context, fn func(Tx) error) error {
	return again(ctx, func() error { return c.d.Write(ctx, fn) })
}

// retried is again for an operation with an answer.
func retried[T any](ctx context.Context, op func() (T, error)) (T, error) {
	var v T
	err := again(ctx, func() (err error) {
		v, err = op()
		return err
	})
	return v, err
}

// again runs op, and again while its error wraps ErrRetryTx, at most
// maxTxRetries times, with a short jittered pause between runs so that
// the writers that met do not meet again at once.
func again(ctx context.Context, op func() error) error {
	err := op()
	for try := 1; errors.Is(err, ErrRetryTx) && try < maxTxRetries; try++ {
		select {
		case <-time.After(time.Duration(1+rand.IntN(10*try)) * time.Millisecond):
		case <-ctx.Done():
			return err
		}
		err = op()
	}
	return err
}
