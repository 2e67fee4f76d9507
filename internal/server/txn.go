package server

import (
	"bytes"
	"context"
	"math/rand/v2"
	"time"

	"github.com/kintsu/kintsu/internal/ring"
	"github.com/kintsu/kintsu/internal/txn"
)

// txnCluster is how the transaction coordinator reaches partitions: the
// router, with its retries, leader hints and deduplication.
type txnCluster struct{ r *router }

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

func (c txnCluster) Write(ctx context.Context, group uint64, args [][]byte) ([]byte, error) {
	reply := c.r.write(ctx, group, args)
	return reply, routerErr(reply)
}

func (c txnCluster) Read(ctx context.Context, group uint64, args [][]byte) ([]byte, error) {
	reply := c.r.read(ctx, group, args)
	if err := routerErr(reply); err != nil {
		return reply, txn.ErrNotApplied // a read has no effect either way
	}
	return reply, nil
}

// partitionOf maps a key to its partition.
func (n *Node) partitionOf(key []byte) uint64 {
	return uint64(ring.PartitionOf(ring.Slot(key), n.cfg.Partitions))
}

func (n *Node) newCoordinator() *txn.Coordinator {
	return txn.NewCoordinator(txn.Config{
		Origin:    n.router.origin,
		Partition: n.partitionOf,
		Rand:      rand.Float64,
		Failpoint: n.failpoint,
	}, txnCluster{n.router})
}

// pushLocks asks the holders a command met to get out of the way; false
// means at least one is alive and the caller should back off.
func (n *Node) pushLocks(ctx context.Context, group uint64, holders []txn.Ref) bool {
	all := true
	seen := map[txn.ID]bool{}
	for _, h := range holders {
		if seen[h.ID] {
			continue
		}
		seen[h.ID] = true
		all = n.txns.Resolver().Push(ctx, group, h, false) && all
	}
	return all
}

// errLocked answers a command whose keys stayed locked by a transaction
// until the request's deadline; it was not applied.
const errLocked = "TRYAGAIN the key is locked by a transaction still in progress, nothing was applied"

// sweepEvery is how often a leader looks for transactions left behind in
// its partitions; sweepAge is how old one must be before it is pushed, so
// live coordinators finish their own work first.
const (
	sweepEvery = time.Second
	sweepAge   = 2 * time.Second
)

// sweep resolves, in every partition this node leads, parts and records
// whose coordinator did not finish them.
func (n *Node) sweep() {
	defer n.bg.Done()
	sw := txn.NewSweeper(n.txns.Resolver(), sweepAge)
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-n.bgStop:
			return
		case <-t.C:
		}
		var led []uint64
		for _, g := range n.eng.Status() {
			if g.Group != MetaGroup && g.LeaderNode == n.cfg.NodeID {
				led = append(led, g.Group)
			}
		}
		for _, g := range led {
			ctx, cancel := context.WithTimeout(n.ctx, n.cfg.RequestTimeout)
			err := sw.Sweep(ctx, g, func(table byte, fn func(k, v []byte) bool) error {
				return n.eng.ScanTxn(g, table, fn)
			})
			cancel()
			if err != nil {
				n.log.Warn("transaction sweep could not read its tables", "group", g, "err", err)
			}
			n.dropAbandonedCuts(g)
		}
		sw.Forget(led)
	}
}
