package server

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/kintsu/kintsu/internal/ring"
	"github.com/kintsu/kintsu/internal/txn"
)

// partitionOf maps a key to its partition.
func (n *Node) partitionOf(key []byte) uint64 {
	return uint64(ring.PartitionOf(ring.Slot(key), n.cfg.Partitions))
}

func (n *Node) newCoordinator() *txn.Coordinator {
	return txn.NewCoordinator(txn.Config{
		Origin:    n.router.Origin(),
		Partition: n.partitionOf,
		Rand:      rand.Float64,
		Failpoint: n.failpoint,
	}, n.router.TxnCluster())
}

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
