package server

import (
	"cmp"
	"slices"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/control"
)

// nodeRecord is one node's registry entry, as nodeRecords reads it.
func (n *Node) nodeRecord(id uint64) (api.NodeRecord, bool) {
	for _, rec := range n.nodeRecords() {
		if rec.ID == id {
			return rec, true
		}
	}
	return api.NodeRecord{}, false
}

// nodeRecords reads the node registry from the local metadata replica
// when there is one, falling back to the bootstrap view.
func (n *Node) nodeRecords() []api.NodeRecord {
	out := slices.Clone(n.view().Nodes)
	now := n.clock.Now().UnixMilli()
	for i := range out {
		if out[i].ID == n.cfg.NodeID {
			out[i].RESPAddr, out[i].HTTPAddr = n.cfg.RESPAddr, n.cfg.HTTPAddr
		}
		out[i].State = control.LivenessOf(out[i], now, n.cfg.HeartbeatInterval, n.cfg.DeadTimeout)
		if hb := out[i].HeartbeatMS; hb != 0 {
			out[i].LastHeartbeat = time.UnixMilli(hb).UTC().Format(time.RFC3339Nano)
		}
	}
	slices.SortFunc(out, func(a, b api.NodeRecord) int { return cmp.Compare(a.ID, b.ID) })
	return out
}
