package server

import (
	"context"

	"github.com/kintsu/kintsu/internal/admin"
	"github.com/kintsu/kintsu/internal/api"
)

// newAdmin builds the admin HTTP API on this node's parts. Routing and the
// cluster map are passed as closures, so the API depends on what they
// answer, not on where they live.
func (n *Node) newAdmin() *admin.API {
	var faults *admin.Faults
	if n.cfg.FaultInjection {
		faults = &admin.Faults{Links: n.tr, Clock: n.clock, Disk: n.disk, ArmCrash: n.armCrash}
	}
	return admin.New(admin.Config{
		NodeID:    n.cfg.NodeID,
		ClusterID: n.layout.ident.ClusterID,
		Engine:    n.eng,
		Write: func(ctx context.Context, group uint64, args [][]byte) []byte {
			return n.router.Write(ctx, group, args)
		},
		Partitions:     func() []api.PartitionRecord { return n.view().Parts },
		Nodes:          n.nodeRecords,
		Leader:         n.router.LeaderOf,
		GroupNodes:     n.router.GroupNodes,
		PartitionOf:    n.partitionOf,
		Ready:          n.Ready,
		SetNodeState:   n.members.SetNodeState,
		Metrics:        n.metrics.Registry,
		RequestTimeout: n.cfg.RequestTimeout,
		Context:        n.ctx,
		Logger:         n.log,
		Faults:         faults,
	})
}

// Status reports the node's view of the cluster, as GET /v1/status does.
func (n *Node) Status() api.StatusJSON { return n.admin.Status() }
