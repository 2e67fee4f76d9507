package server

import (
	"math/rand/v2"

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
