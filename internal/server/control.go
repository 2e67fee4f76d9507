package server

import (
	"context"

	"github.com/cockroachdb/pebble/v2"

	"github.com/kintsu/kintsu/internal/control"
	"github.com/kintsu/kintsu/internal/storage"
)

// The control plane's loops (internal/control) are built here from the
// node's parts and run on the node's WaitGroup until it stops.

// run starts loop in the background; it ends when the node stops.
func (n *Node) run(loop func(context.Context)) {
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		loop(n.ctx)
	}()
}

// newMap builds the node's cluster map, starting from the one saved in its
// data dir, else from the bootstrap placement.
func (n *Node) newMap() *control.Map {
	return control.NewMap(control.MapConfig{
		NodeID:     n.cfg.NodeID,
		Partitions: n.cfg.Partitions,
		Every:      n.cfg.HeartbeatInterval,
		Engine:     n.eng,
		Peers:      n.tr,
		MetaNodes:  n.layout.metaNodes,
		Saved:      n.savedMap,
		Save:       n.saveMap,
	}, control.InitialMap(n.cfg.InitialCluster, n.layout.partitions, n.layout.metaNodes))
}

// write sends args to group through the router. The loops are handed this
// func, not the router, so the router's signatures may change here alone.
func (n *Node) write(ctx context.Context, group uint64, args [][]byte) []byte {
	return n.router.Write(ctx, group, args)
}

func (n *Node) newHeartbeat() *control.Heartbeat {
	return control.NewHeartbeat(control.HeartbeatConfig{
		NodeID: n.cfg.NodeID, RESPAddr: n.cfg.RESPAddr, HTTPAddr: n.cfg.HTTPAddr,
		Every: n.cfg.HeartbeatInterval, RequestTimeout: n.cfg.RequestTimeout,
		Write: n.write, Logger: n.log,
	})
}

func (n *Node) newMembers() *control.Members {
	return control.NewMembers(control.MembersConfig{
		Identity: n.layout.ident, Write: n.write, Peers: n.tr, Map: n.cmap, Nodes: n.nodeRecords,
	})
}

func (n *Node) newPlacement() *control.Placement {
	return control.NewPlacement(control.PlacementConfig{
		NodeID: n.cfg.NodeID, Ring: n.cfg.ringConfig(), Every: n.cfg.HeartbeatInterval, RequestTimeout: n.cfg.RequestTimeout,
		Engine: n.eng, Caller: n.tr, LeaderOf: n.router.LeaderOf, Write: n.write,
		Map: n.cmap, Nodes: n.nodeRecords, SetNodeState: n.members.SetNodeState, Logger: n.log,
	})
}

func (n *Node) newHints() *control.Hints {
	return control.NewHints(control.HintsConfig{
		NodeID: n.cfg.NodeID, Engine: n.eng, Caller: n.tr,
		GroupNodes: n.router.GroupNodes, SetHint: n.router.SetHint, Map: n.cmap,
	})
}

func (n *Node) newBalancer() *control.Balancer {
	return control.NewBalancer(control.BalanceConfig{
		NodeID: n.cfg.NodeID, Every: n.cfg.LeaderBalanceInterval, Engine: n.eng,
		LeaderOf: n.router.LeaderOf, Map: n.cmap, Nodes: n.nodeRecords, Logger: n.log,
	})
}

func (n *Node) newExpiry() *control.Expiry {
	return control.NewExpiry(control.ExpiryConfig{
		NodeID: n.cfg.NodeID, Engine: n.eng, Write: n.write, Now: n.clock.Now,
		RequestTimeout: n.cfg.RequestTimeout, Logger: n.log,
	})
}

func (n *Node) newSweeper() *control.Sweeper {
	return control.NewSweeper(control.SweepConfig{
		NodeID: n.cfg.NodeID, Engine: n.eng, Resolver: n.txns.Resolver(),
		CutMarks: func(group uint64) (map[string]int64, error) { return n.eng.Reader(group).CutMarks() },
		Write:    n.write, Now: n.clock.Now, RequestTimeout: n.cfg.RequestTimeout, Logger: n.log,
	})
}

func (n *Node) view() *control.ClusterMap { return n.cmap.Current() }

// savedMap is the cluster map the node saved last, if it can be read.
func (n *Node) savedMap() ([]byte, bool) {
	b, ok, err := storage.Get(n.db, storage.ClusterMapKey)
	return b, err == nil && ok
}

// saveMap keeps a cluster map for the next start, unsynced (see
// control.MapConfig.Save).
func (n *Node) saveMap(b []byte) {
	_ = n.db.Set(storage.ClusterMapKey, b, pebble.NoSync)
}
