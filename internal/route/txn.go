package route

import (
	"bytes"
	"context"
	"fmt"

	"github.com/kintsu/kintsu/internal/failure"
	"github.com/kintsu/kintsu/internal/txn"
)

// txnCluster is how the transaction coordinator reaches partitions: the
// router, with its retries, leader hints and deduplication.
type txnCluster struct{ r *Router }

// TxnCluster is the router as the transaction coordinator and resolver
// reach partitions through it (txn.Cluster).
func (r *Router) TxnCluster() txn.Cluster { return txnCluster{r} }

// pushLocks asks the holders a command met to get out of the way; false
// means at least one is alive and the caller should back off.
func (r *Router) pushLocks(ctx context.Context, group uint64, holders []txn.Ref) bool {
	if r.resolver == nil { // not wired yet: back off rather than panic
		return false
	}
	all := true
	seen := map[txn.ID]bool{}
	for _, h := range holders {
		if seen[h.ID] {
			continue
		}
		seen[h.ID] = true
		all = r.resolver.Push(ctx, group, h, false) && all
	}
	return all
}

// Write: an error is the transaction protocol's ErrNotApplied or
// ErrUnknown, wrapping the router's typed error; an error reply of the
// engine ("-ERR ...") may have applied.
func (c txnCluster) Write(ctx context.Context, group uint64, args [][]byte) ([]byte, error) {
	reply, err := c.r.Write(ctx, group, args)
	switch {
	case err == nil && bytes.HasPrefix(reply, []byte("-ERR ")):
		return reply, fmt.Errorf("%w: %w", txn.ErrUnknown, engineError(reply))
	case err == nil:
		return reply, nil
	case failure.NotApplied(err):
		return nil, fmt.Errorf("%w: %w", txn.ErrNotApplied, err)
	}
	return nil, fmt.Errorf("%w: %w", txn.ErrUnknown, err)
}

// Read: a read has no effect either way, so every failure is
// ErrNotApplied.
func (c txnCluster) Read(ctx context.Context, group uint64, args [][]byte) ([]byte, error) {
	reply, err := c.r.Read(ctx, group, args)
	switch {
	case err == nil && bytes.HasPrefix(reply, []byte("-ERR ")):
		return reply, fmt.Errorf("%w: %w", txn.ErrNotApplied, engineError(reply))
	case err != nil:
		return nil, fmt.Errorf("%w: %w", txn.ErrNotApplied, err)
	}
	return reply, nil
}

// engineError is an engine's "-ERR ..." reply as a typed error.
func engineError(reply []byte) error {
	return &failure.EngineError{Msg: string(bytes.TrimSpace(bytes.TrimPrefix(reply, []byte("-ERR "))))}
}
