package server

import (
	"context"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/edge"
)

// nodeView is the node's view of the cluster, for the edge.
type nodeView struct{ n *Node }

func (v nodeView) Partitions() []api.PartitionRecord { return v.n.view().parts }
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

// members lists the nodes holding group by the cluster map.
func (n *Node) members(group uint64) []uint64 {
	m := n.view()
	if group == MetaGroup {
		return m.meta
	}
	if group < uint64(len(m.parts)) {
		return m.parts[group].Replicas
	}
	return nil
}

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
