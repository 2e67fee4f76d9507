package server

import (
	"github.com/kintsu/kintsu/internal/api"
)

// nodeView is the node's view of the cluster, for the edge.
type nodeView struct{ n *Node }

func (v nodeView) Partitions() []api.PartitionRecord { return v.n.view().Parts }
func (v nodeView) NodeRecords() []api.NodeRecord     { return v.n.nodeRecords() }
func (v nodeView) LeaderOf(group uint64) uint64      { return v.n.router.LeaderOf(group) }
func (v nodeView) GroupNodes(group uint64) []uint64  { return v.n.router.GroupNodes(group) }
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

// holders lists the nodes holding group by the cluster map.
func (n *Node) holders(group uint64) []uint64 { return n.view().Holders(group) }
