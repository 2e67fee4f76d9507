package server

import (
	"context"

	"github.com/kintsu/kintsu/internal/api"
)

// edgeRouter gives the edge the router's lanes.
type edgeRouter struct{ r *router }

func (e edgeRouter) WriteMany(ctx context.Context, group uint64, cmds [][][]byte) [][]byte {
	return e.r.writeMany(ctx, group, cmds)
}

func (e edgeRouter) ReadMany(ctx context.Context, group uint64, cmds [][][]byte) [][]byte {
	return e.r.readMany(ctx, group, cmds)
}

func (e edgeRouter) StaleReads(ctx context.Context, group uint64, cmds [][][]byte) [][]byte {
	return e.r.staleReads(ctx, group, cmds)
}

func (e edgeRouter) Read(ctx context.Context, group uint64, args [][]byte) []byte {
	return e.r.read(ctx, group, args)
}

// nodeView is the node's view of the cluster, for the edge.
type nodeView struct{ n *Node }

func (v nodeView) Partitions() []api.PartitionRecord { return v.n.view().parts }
func (v nodeView) NodeRecords() []api.NodeRecord     { return v.n.nodeRecords() }
func (v nodeView) LeaderOf(group uint64) uint64      { return v.n.leaderOf(group) }
func (v nodeView) GroupNodes(group uint64) []uint64  { return v.n.groupNodes(group) }
func (v nodeView) HasReplica(group uint64) bool      { return v.n.eng.HasGroup(group) }

func (v nodeView) Replicas() (local, leading int) {
	for _, g := range v.n.eng.Status() {
		local++
		if g.LeaderNode == v.n.cfg.NodeID {
			leading++
		}
	}
	return local, leading
}
