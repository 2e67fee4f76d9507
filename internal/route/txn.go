package route

import (
	"context"
	"fmt"

	"github.com/kintsu/kintsu/internal/failure"
	"github.com/kintsu/kintsu/internal/resp"
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
// engine that is not a signal may have applied.
func (c txnCluster) Write(ctx context.Context, group uint64, args [][]byte) ([]byte, error) {
	reply, err := c.r.Write(ctx, group, args)
	if err == nil {
		if eerr := engineError(reply); eerr != nil {
			return reply, fmt.Errorf("%w: %w", txn.ErrUnknown, eerr)
		}
		return reply, nil
	}
	if failure.NotApplied(err) {
		return nil, fmt.Errorf("%w: %w", txn.ErrNotApplied, err)
	}
	return nil, fmt.Errorf("%w: %w", txn.ErrUnknown, err)
}

// Read: a read has no effect either way, so every failure is
// ErrNotApplied.
func (c txnCluster) Read(ctx context.Context, group uint64, args [][]byte) ([]byte, error) {
	reply, err := c.r.Read(ctx, group, args)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", txn.ErrNotApplied, err)
	}
	if eerr := engineError(reply); eerr != nil {
		return reply, fmt.Errorf("%w: %w", txn.ErrNotApplied, eerr)
	}
	return reply, nil
}

// engineError is an error reply to a transaction operation that is not
// one of the protocol's signals (which the coordinator reads itself), as
// a typed error; nil for any other reply.
func engineError(reply []byte) error {
	if _, _, sig := failure.SignalOf(reply); sig {
		return nil
	}
	if _, msg, ok := resp.ErrorReply(reply); ok {
		return &failure.EngineError{Msg: msg}
	}
	return nil
}
