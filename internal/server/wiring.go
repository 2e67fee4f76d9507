package server

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/kintsu/kintsu/internal/admin"
	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/control"
	"github.com/kintsu/kintsu/internal/edge"
	"github.com/kintsu/kintsu/internal/ring"
	"github.com/kintsu/kintsu/internal/storage"
	"github.com/kintsu/kintsu/internal/txn"
)

// The wiring: the packages that do the work (internal/control, admin,
// edge, txn) are built here from the node's parts. Routing and the
// cluster map reach them as funcs and small interfaces, so they depend on
// what those answer, not on where they live.

// newMap builds the cluster map, starting from the one saved in the data
// dir, else from the bootstrap placement, and the registry read from it.
// The router and the edge read both.
//
// bootstrapped: this node just created the cluster, whose metadata then
// starts at this build's level, and so does its map.
func (n *Node) newMap(bootstrapped bool) {
	initial := control.InitialMap(n.cfg.InitialCluster, n.layout.Partitions, n.layout.MetaNodes)
	if bootstrapped {
		initial.Level = api.Level
	}
	n.cmap = control.NewMap(control.MapConfig{
		NodeID: n.cfg.NodeID, Every: n.cfg.HeartbeatInterval,
		Engine: n.eng, Peers: n.tr, MetaNodes: n.layout.MetaNodes, Saved: n.savedMap, Save: n.saveMap,
	}, initial)
	n.registry = control.NewRegistry(control.RegistryConfig{
		NodeID: n.cfg.NodeID, RESPAddr: n.cfg.AdvertisedRESP(), HTTPAddr: n.cfg.AdvertisedHTTP(),
		Every: n.cfg.HeartbeatInterval, Dead: n.cfg.DeadTimeout, Now: n.clock.Now, Map: n.cmap,
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
func (n *Node) saveMap(b []byte) { _ = n.db.Set(storage.ClusterMapKey, b, pebble.NoSync) }

// newControl builds the control plane: the services the peer mux
// (peer.go) and the admin API call, and the loops it returns, to be run
// once the node serves.
func (n *Node) newControl() []func(context.Context) {
	c, nodes := &n.cfg, n.registry.Nodes
	n.members = control.NewMembers(control.MembersConfig{
		Identity: n.layout.Ident, Write: n.write, Peers: n.tr, Map: n.cmap, Nodes: nodes,
	})
	n.place = control.NewPlacement(control.PlacementConfig{
		NodeID: c.NodeID, Ring: c.ringConfig(), Every: c.HeartbeatInterval, RequestTimeout: c.RequestTimeout,
		Engine: n.eng, Caller: n.tr, LeaderOf: n.router.LeaderOf, Write: n.write,
		Map: n.cmap, Nodes: nodes, SetNodeState: n.members.SetNodeState, Logger: n.log,
		SplitSize: c.SplitSize, SplitLoad: c.SplitLoad, GroupBytes: n.groupBytes,
		Away:       func(id uint64) bool { return n.balancer != nil && n.balancer.IsAway(id) },
		LeaderLoad: c.LeaderLoad,
	})
	n.balancer = control.NewBalancer(control.BalanceConfig{
		NodeID: c.NodeID, Every: c.LeaderBalanceInterval, Engine: n.eng,
		LeaderOf: n.router.LeaderOf, Map: n.cmap, Nodes: nodes, Logger: n.log,
	})
	heartbeat := control.NewHeartbeat(control.HeartbeatConfig{
		NodeID: c.NodeID, RESPAddr: c.AdvertisedRESP(), HTTPAddr: c.AdvertisedHTTP(),
		Every: c.HeartbeatInterval, RequestTimeout: c.RequestTimeout, Write: n.write, Logger: n.log,
		Removed: n.markRemoved,
	})
	hints := control.NewHints(control.HintsConfig{
		NodeID: c.NodeID, Engine: n.eng, Caller: n.tr,
		GroupNodes: n.router.GroupNodes, SetHint: n.router.ConfirmLeader, Learner: n.isLearner, Map: n.cmap,
	})
	sweeper := control.NewSweeper(control.SweepConfig{
		NodeID: c.NodeID, Engine: n.eng, Resolver: n.txns.Resolver(),
		CutMarks: func(group uint64) (map[string]int64, error) { return n.eng.Reader(group).CutMarks() },
		Write:    n.write, Now: n.clock.Now, RequestTimeout: c.RequestTimeout, Logger: n.log,
	})
	expiry := control.NewExpiry(control.ExpiryConfig{
		NodeID: c.NodeID, Engine: n.eng, Write: n.write, Now: n.clock.Now,
		RequestTimeout: c.RequestTimeout, Logger: n.log,
		Expired: func(keys [][]byte) { n.front.NotifyExpired(keys) },
	})
	return []func(context.Context){n.place.Run, n.cmap.Run, heartbeat.Run, hints.Run, sweeper.Run, expiry.Run, n.balancer.Run, n.probeClocks}
}

// run starts loop in the background; it ends when the node stops.
func (n *Node) run(loop func(context.Context)) {
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		loop(n.ctx)
	}()
}

// newAdmin builds the admin HTTP API.
func (n *Node) newAdmin() *admin.API {
	var faults *admin.Faults
	if n.cfg.FaultInjection {
		faults = &admin.Faults{Links: n.tr, Clock: n.clock, Disk: n.disk, ArmCrash: n.armCrash}
	}
	return admin.New(admin.Config{
		NodeID:       n.cfg.NodeID,
		ClusterID:    n.layout.Ident.ClusterID,
		Replicas:     n.cfg.ringConfig().Replicas,
		Engine:       n.eng,
		Write:        n.write,
		Partitions:   func() []api.PartitionRecord { return n.view().Parts },
		ClusterLevel: func() int { return n.view().Level },
		Nodes:        n.registry.Nodes,
		Leader:       n.router.LeaderOf,
		GroupNodes:   n.router.GroupNodes,
		PartitionOf:  n.partitionOf,
		Health:       n.Health,
		SetNodeState: n.members.SetNodeState,
		SplitPartition: func(ctx context.Context, left int, at uint16) (int, error) {
			return control.SplitPartition(ctx, n.write, n.cmap, left, at, true)
		},
		MergePartitions: func(ctx context.Context, id int) (api.MergeJSON, error) {
			return n.place.MergePartitions(ctx, id)
		},
		RefreshMap:     func(ctx context.Context) { n.cmap.Refresh(ctx, time.Now()) },
		Metrics:        n.metrics.Registry,
		RequestTimeout: n.cfg.RequestTimeout,
		Context:        n.ctx,
		Logger:         n.log,
		Faults:         faults,
		Users:          n.front.Users,
		ProtectedMode:  n.cfg.ProtectedMode,
		EnablePprof:    n.cfg.EnablePprof,
		Load:           n.clusterLoad,
		Events:         n.clusterEvents,
		DropCutOnPeers: n.dropCutOnPeers,
	})
}

// Status reports the node's view of the cluster, as GET /v1/status does.
func (n *Node) Status() api.StatusJSON { return n.admin.Status() }

// groupBytes estimates the data of this node's replica of group on disk
// (user keys and collections' sub-keys; Pebble's estimate, which leaves
// out what is still in memory).
func (n *Node) groupBytes(group uint64) uint64 {
	estimate := func(lo, hi []byte) uint64 {
		b, _ := n.db.EstimateDiskUsage(lo, hi) // an error leaves 0: no split
		return b
	}
	return estimate(storage.DataSpan(group)) + estimate(storage.SubSpan(group))
}

// partitionOf maps a key to its partition by the current map's slot
// table (the equal ranges the cluster began with only until the map is
// built). A map older than a split sends a key to the partition it left,
// which refuses it (failure.WrongGroup): never a misplaced write.
func (n *Node) partitionOf(key []byte) uint64 {
	if n.cmap != nil {
		if t := n.cmap.Current().Slots(); t != nil {
			return t.GroupOf(ring.Slot(key))
		}
	}
	return n.slots.GroupOf(ring.Slot(key))
}

func (n *Node) newCoordinator() *txn.Coordinator {
	return txn.NewCoordinator(txn.Config{
		Origin:    n.router.Origin(),
		Partition: n.partitionOf,
		Rand:      rand.Float64,
		Failpoint: n.failpoint,
	}, n.router.TxnCluster())
}

// nodeView is the node's view of the cluster, for the edge.
type nodeView struct{ n *Node }

func (v nodeView) Partitions() []api.PartitionRecord { return v.n.view().Parts }
func (v nodeView) Slots() *ring.SlotTable            { return v.n.view().Slots() }
func (v nodeView) RefreshMap(ctx context.Context, since time.Time) {
	v.n.cmap.Refresh(ctx, since)
}
func (v nodeView) NodeRecords() []api.NodeRecord    { return v.n.registry.Nodes() }
func (v nodeView) LeaderOf(group uint64) uint64     { return v.n.router.LeaderOf(group) }
func (v nodeView) GroupNodes(group uint64) []uint64 { return v.n.router.GroupNodes(group) }
func (v nodeView) HasReplica(group uint64) bool     { return v.n.eng.HasGroup(group) }
func (v nodeView) Away(node uint64) bool            { return v.n.balancer.IsAway(node) }
func (v nodeView) ClusterLevel() int                { return v.n.view().Level }

func (v nodeView) Replicas() (local, leading int) {
	for _, g := range v.n.eng.Status() {
		local++
		if g.LeaderNode == v.n.cfg.NodeID {
			leading++
		}
	}
	return local, leading
}

// holders lists the nodes holding group by the cluster map.
func (n *Node) holders(group uint64) []uint64 { return n.view().Holders(group) }

// write proposes a command through the router and answers its reply, or
// Redis's reply to its error (edge.ErrorReply): for the control plane and
// the admin API, which read replies.
func (n *Node) write(ctx context.Context, group uint64, args [][]byte) []byte {
	reply, err := n.router.Write(ctx, group, args)
	if err != nil {
		return edge.ErrorReply(err)
	}
	return reply
}
