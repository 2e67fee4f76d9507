package server

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/statemachine"
	"github.com/kintsu/kintsu/internal/storage"
)

// The cluster map is a node's view of the membership: the node registry
// and the partition table of the metadata group. Nodes hosting a metadata
// replica read it from their replica; the others ask a metadata node. It
// is refreshed every heartbeat interval and published atomically, so
// routing never waits for it.
//
// The map is a hint for routing and reporting. Who actually holds a
// partition is what its raft group's descriptor says; the placement
// driver writes each change into the partition table after raft applied
// it, and a node that hosts a replica trusts its own replica's view over
// the map (groupNodes).

// clusterMap is one consistent reading of the metadata.
type clusterMap struct {
	nodes []api.NodeRecord      // by id, stored states (liveness is derived on read)
	parts []api.PartitionRecord // by partition id
	meta  []uint64              // nodes of the metadata group
}

// initialMap is the map before the metadata is readable: the bootstrap
// placement of the flags.
func (n *Node) initialMap() *clusterMap {
	m := &clusterMap{meta: slices.Clone(n.layout.metaNodes)}
	for id, addr := range n.cfg.InitialCluster {
		m.nodes = append(m.nodes, api.NodeRecord{ID: id, PeerAddr: addr, State: api.NodeUp})
	}
	slices.SortFunc(m.nodes, func(a, b api.NodeRecord) int { return cmp.Compare(a.ID, b.ID) })
	for _, p := range n.layout.partitions {
		p.Replicas = slices.Clone(p.Replicas)
		m.parts = append(m.parts, p)
	}
	return m
}

func (n *Node) view() *clusterMap { return n.cmap.Load() }

// startingMap is the map a node starts with: the last one it saved (or
// the one its join answer brought), else the bootstrap placement.
func (n *Node) startingMap() *clusterMap {
	if b, ok, err := storage.Get(n.db, storage.ClusterMapKey); err == nil && ok {
		if m, ok := unmarshalMap(b); ok && len(m.parts) == n.cfg.Partitions {
			return m
		}
	}
	return n.initialMap()
}

// saveMap keeps m for the next start (unsynced: a lost update only means
// starting from an older map, which refreshMap then replaces).
func (n *Node) saveMap(m *clusterMap) {
	_ = n.db.Set(storage.ClusterMapKey, m.marshal(), pebble.NoSync)
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// readLocalMap reads the map from this node's metadata replica; nil if it
// has none or the data is incomplete.
func (n *Node) readLocalMap() *clusterMap {
	if !n.eng.HasGroup(MetaGroup) {
		return nil
	}
	m := &clusterMap{}
	bad := false
	err := n.eng.ScanData(MetaGroup, nil, func(k, v []byte) bool {
		switch {
		case bytes.HasPrefix(k, []byte("node/")):
			var rec api.NodeRecord
			if json.Unmarshal(v, &rec) != nil {
				bad = true
				return false
			}
			m.nodes = append(m.nodes, rec)
		case bytes.HasPrefix(k, []byte("partition/")):
			var p api.PartitionRecord
			if json.Unmarshal(v, &p) != nil {
				bad = true
				return false
			}
			m.parts = append(m.parts, p)
		case bytes.Equal(k, statemachine.GroupKey):
			if json.Unmarshal(v, &m.meta) != nil {
				bad = true
				return false
			}
		}
		return true
	})
	if err != nil || bad || len(m.nodes) == 0 || len(m.parts) != n.cfg.Partitions {
		return nil
	}
	if m.meta == nil {
		m.meta = slices.Clone(n.layout.metaNodes)
	}
	return m
}

// asJSON is the map as nodes send and save it.
func (m *clusterMap) asJSON() api.ClusterMapJSON {
	return api.ClusterMapJSON{Nodes: m.nodes, Parts: m.parts, Meta: m.meta}
}

func (m *clusterMap) marshal() []byte {
	b, _ := json.Marshal(m.asJSON())
	return b
}

func unmarshalMap(b []byte) (*clusterMap, bool) {
	var j api.ClusterMapJSON
	if json.Unmarshal(b, &j) != nil || len(j.Nodes) == 0 {
		return nil, false
	}
	return &clusterMap{nodes: j.Nodes, parts: j.Parts, meta: j.Meta}, true
}

// refreshMap keeps the cluster map current until the node stops.
func (n *Node) refreshMap() {
	defer n.bg.Done()
	t := time.NewTicker(n.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		if m := n.fetchMap(); m != nil && len(m.parts) == n.cfg.Partitions {
			if !bytes.Equal(m.marshal(), n.view().marshal()) {
				n.saveMap(m)
			}
			n.cmap.Store(m)
			for _, rec := range m.nodes {
				if rec.ID != n.cfg.NodeID && rec.PeerAddr != "" && rec.State != api.NodeRemoved {
					n.tr.SetPeer(rec.ID, rec.PeerAddr)
				}
			}
		}
		select {
		case <-n.bgStop:
			return
		case <-t.C:
		}
	}
}

// fetchMap reads the map locally, or asks the metadata nodes, then the
// other members, in turn.
func (n *Node) fetchMap() *clusterMap {
	if m := n.readLocalMap(); m != nil {
		return m
	}
	v := n.view()
	ask := slices.Clone(v.meta)
	for _, id := range v.memberIDs() {
		if !slices.Contains(ask, id) {
			ask = append(ask, id)
		}
	}
	for _, node := range ask {
		if node == n.cfg.NodeID {
			continue
		}
		ctx, cancel := context.WithTimeout(n.ctx, 500*time.Millisecond)
		b, err := n.tr.Call(ctx, node, methodClusterMap, nil)
		cancel()
		if err != nil {
			continue
		}
		if m, ok := unmarshalMap(b); ok {
			return m
		}
	}
	return nil
}

// serveMap answers methodClusterMap from the local metadata replica, or,
// without one, with this node's own view (a hint, like the map itself).
func (n *Node) serveMap() ([]byte, error) {
	if m := n.readLocalMap(); m != nil {
		return m.marshal(), nil
	}
	return n.view().marshal(), nil
}

// memberIDs lists the nodes that are members (not removed), by id.
func (m *clusterMap) memberIDs() []uint64 {
	var out []uint64
	for _, rec := range m.nodes {
		if rec.State != api.NodeRemoved {
			out = append(out, rec.ID)
		}
	}
	return out
}
