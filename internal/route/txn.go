package route

import (
	"bytes"
	"context"

	"github.com/kintsu/kintsu/internal/txn"
)

// txnCluster is how the transaction coordinator reaches partitions: the
// router, with its retries, leader hints and deduplication.
type txnCluster struct{ r *Router }

// TxnCluster is the router as the transaction coordinator and resolver
// reach partitions through it (txn.Cluster).
func (r *Router) TxnCluster() txn.Cluster { return txnCluster{r} }

// routerErr turns a router reply into the txn package's terms: the
// router's own errors say whether the operation may have applied.
func routerErr(reply []byte) error {
	switch {
	case bytes.HasPrefix(reply, []byte("-UNCERTAIN")), bytes.HasPrefix(reply, []byte("-ERR ")):
		return txn.ErrUnknown
	case bytes.HasPrefix(reply, []byte("-CLUSTERDOWN")), bytes.HasPrefix(reply, []byte("-TRYAGAIN")):
		return txn.ErrNotApplied
	}
	return nil
}

// pushLocks asks the holders a command met to get out of the way; false
// means at least one is alive and the caller should back off.
func (r *Router) pushLocks(ctx context.Context, group uint64, holders []txn.Ref) bool {
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

// errLocked answers a command whose keys stayed locked by a transaction
// until the request's deadline; it was not applied.
const errLocked = "TRYAGAIN the key is locked by a transaction still in progress, nothing was applied"

func (c txnCluster) Write(ctx context.Context, group uint64, args [][]byte) ([]byte, error) {
	reply := c.r.Write(ctx, group, args)
	return reply, routerErr(reply)
}

func (c txnCluster) Read(ctx context.Context, group uint64, args [][]byte) ([]byte, error) {
	reply := c.r.Read(ctx, group, args)
	if err := routerErr(reply); err != nil {
		return reply, txn.ErrNotApplied // a read has no effect either way
	}
	return reply, nil
}
