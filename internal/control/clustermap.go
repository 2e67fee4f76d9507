package control

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/ring"
	"github.com/kintsu/kintsu/internal/statemachine"
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
// the map (route.Router.GroupNodes).

// ClusterMap is one consistent reading of the metadata. A published map
// is shared by every reader and never modified.
type ClusterMap struct {
	Nodes []api.NodeRecord      // by id, stored states (liveness is derived on read)
	Parts []api.PartitionRecord // by partition id
	Meta  []uint64              // nodes of the metadata group
	// Splits are the splits reserved and not yet recorded, by partition.
	Splits []api.SplitIntent
	// Merges are the merges reserved and not yet recorded, by left
	// partition.
	Merges []api.MergeIntent
	// Level is the cluster's feature level (api.Level, levels.go).
	Level int
	// slots is the table built from Parts' ranges when the map was made
	// (index); nil for a map built by hand, whose Slots builds it anew.
	slots *ring.SlotTable
}

// Slots is the map's slot table: which partition owns each slot, from
// the records' ranges. It is nil when the ranges do not cover every slot
// exactly once: such a map (incomplete, or torn between the records of a
// split) is never used.
func (m *ClusterMap) Slots() *ring.SlotTable {
	if m.slots != nil {
		return m.slots
	}
	return slotTableOf(m.Parts)
}

// index builds the map's slot table once, before it is published.
func (m *ClusterMap) index() *ClusterMap {
	m.slots = slotTableOf(m.Parts)
	return m
}

func slotTableOf(parts []api.PartitionRecord) *ring.SlotTable {
	if len(parts) == 0 {
		return nil
	}
	rs := make([]ring.SlotRangeOwner, len(parts))
	for i, p := range parts {
		rs[i] = ring.SlotRangeOwner{Start: p.SlotStart, End: p.SlotEnd, Group: uint64(p.ID)}
	}
	t, err := ring.NewSlotTable(0, rs)
	if err != nil {
		return nil
	}
	return t
}

// usable reports whether a map read or received may replace the current
// one: it names nodes and its partitions own every slot once.
func (m *ClusterMap) usable() bool { return len(m.Nodes) > 0 && m.Slots() != nil }

// InitialMap is the map before the metadata is readable: the bootstrap
// placement, from the initial cluster (id -> peer address), the initial
// partitions and the metadata group's nodes.
func InitialMap(initial map[uint64]string, parts []api.PartitionRecord, meta []uint64) *ClusterMap {
	m := &ClusterMap{Meta: slices.Clone(meta)}
	for id, addr := range initial {
		m.Nodes = append(m.Nodes, api.NodeRecord{ID: id, PeerAddr: addr, State: api.NodeUp})
	}
	slices.SortFunc(m.Nodes, func(a, b api.NodeRecord) int { return cmp.Compare(a.ID, b.ID) })
	for _, p := range parts {
		p.Replicas = slices.Clone(p.Replicas)
		m.Parts = append(m.Parts, p)
	}
	m.sortParts()
	return m.index()
}

// JSON is the map as nodes send and save it.
func (m *ClusterMap) JSON() api.ClusterMapJSON {
	return api.ClusterMapJSON{Nodes: m.Nodes, Parts: m.Parts, Meta: m.Meta, Splits: m.Splits, Merges: m.Merges, Level: m.Level}
}

// Marshal encodes the map for a peer or for saving.
func (m *ClusterMap) Marshal() []byte {
	b, _ := json.Marshal(m.JSON())
	return b
}

// UnmarshalMap decodes a map; a map that names no node is no map.
func UnmarshalMap(b []byte) (*ClusterMap, bool) {
	var j api.ClusterMapJSON
	if json.Unmarshal(b, &j) != nil || len(j.Nodes) == 0 {
		return nil, false
	}
	return mapFromJSON(j), true
}

// mapFromJSON is the map a peer or a saved copy described, ready to use.
func mapFromJSON(j api.ClusterMapJSON) *ClusterMap {
	c := &ClusterMap{Nodes: j.Nodes, Parts: j.Parts, Meta: j.Meta, Splits: j.Splits, Merges: j.Merges, Level: j.Level}
	c.sortParts()
	return c.index()
}

// sortParts orders the records by id, as Part's lookup needs; the
// metadata's keys hold the id in six digits, in id order only below a
// million.
func (m *ClusterMap) sortParts() {
	slices.SortFunc(m.Parts, func(a, b api.PartitionRecord) int { return cmp.Compare(a.ID, b.ID) })
}

// Holders lists the nodes holding group's voters by the map.
func (m *ClusterMap) Holders(group uint64) []uint64 {
	if group == statemachine.MetaGroup {
		return m.Meta
	}
	if part, ok := m.Part(group); ok {
		return part.Replicas
	}
	return nil
}

// Part is the record of partition group, looked up by id: ids are not
// positions once partitions split and merge. Parts is sorted by id.
func (m *ClusterMap) Part(group uint64) (api.PartitionRecord, bool) {
	i, ok := slices.BinarySearchFunc(m.Parts, group, func(p api.PartitionRecord, g uint64) int {
		return cmp.Compare(uint64(p.ID), g)
	})
	if !ok {
		return api.PartitionRecord{}, false
	}
	return m.Parts[i], true
}

// PendingSplit is partition left's split reserved and not yet recorded.
func (m *ClusterMap) PendingSplit(left int) (api.SplitIntent, bool) {
	for _, in := range m.Splits {
		if in.Left == left {
			return in, true
		}
	}
	return api.SplitIntent{}, false
}

// PendingMerge is the merge reserved and not yet recorded that involves
// partition id, as either side.
func (m *ClusterMap) PendingMerge(id int) (api.MergeIntent, bool) {
	for _, in := range m.Merges {
		if in.Left == id || in.Right == id {
			return in, true
		}
	}
	return api.MergeIntent{}, false
}

// IsMember reports whether node is in the map and not removed.
func (m *ClusterMap) IsMember(node uint64) bool {
	for _, rec := range m.Nodes {
		if rec.ID == node {
			return rec.State != api.NodeRemoved
		}
	}
	return false
}

// memberIDs lists the nodes that are members (not removed), by id.
func (m *ClusterMap) memberIDs() []uint64 {
	var out []uint64
	for _, rec := range m.Nodes {
		if rec.State != api.NodeRemoved {
			out = append(out, rec.ID)
		}
	}
	return out
}

// MapEngine is what the map reads of the local metadata replica
// (*raftstore.Engine).
type MapEngine interface {
	HasGroup(group uint64) bool
	ScanData(group uint64, from []byte, fn func(k, stored []byte) bool) error
}

// MapConfig is what the cluster map needs from its node.
type MapConfig struct {
	NodeID uint64
	// Every is how often the map is refreshed (the heartbeat interval).
	Every  time.Duration
	Engine MapEngine
	// Peers are asked for the map when this node holds no metadata
	// replica, and told every member's address the map names.
	Peers Peers
	// MetaNodes are the metadata group's bootstrap nodes, for metadata
	// that does not name the group's nodes yet.
	MetaNodes []uint64
	// Saved returns the map kept by Save (false: none); Save keeps one,
	// unsynced: losing it only means starting from an older map, which
	// the first refresh replaces.
	Saved func() ([]byte, bool)
	Save  func(b []byte)
}

// Map holds the node's current cluster map and keeps it fresh (Run).
type Map struct {
	cfg MapConfig
	cur atomic.Pointer[ClusterMap]
	// refreshing (a one-slot semaphore, so waiting for it heeds the
	// caller's deadline) serializes refreshes; refreshed is when the last
	// one began, so callers that arrive during one share it (Refresh).
	refreshing chan struct{}
	refreshed  time.Time
}

// NewMap starts from the last map saved (or the one a join answer
// brought), else from initial.
func NewMap(cfg MapConfig, initial *ClusterMap) *Map {
	m := &Map{cfg: cfg, refreshing: make(chan struct{}, 1)}
	start := initial
	if b, ok := cfg.Saved(); ok {
		if saved, ok := UnmarshalMap(b); ok && saved.usable() {
			start = saved
		}
	}
	m.cur.Store(start)
	// The transport learns the members' addresses from the map it starts
	// from: a node that joined knows only the initial members' otherwise,
	// and once they are all gone it could ask no one for a newer map (a
	// chaos run found a node restarted with an empty metadata replica
	// asking only removed nodes, unready for good).
	m.introduce(start)
	return m
}

// introduce gives the transport the address of every member of c but
// this node and removed ones.
func (m *Map) introduce(c *ClusterMap) {
	if m.cfg.Peers == nil {
		return
	}
	for _, rec := range c.Nodes {
		if rec.ID != m.cfg.NodeID && rec.PeerAddr != "" && rec.State != api.NodeRemoved {
			m.cfg.Peers.SetPeer(rec.ID, rec.PeerAddr)
		}
	}
}

// Current is the map as last read; never nil, never to be modified.
func (m *Map) Current() *ClusterMap { return m.cur.Load() }

// Run keeps the map current until ctx ends.
func (m *Map) Run(ctx context.Context) {
	t := time.NewTicker(m.cfg.Every)
	defer t.Stop()
	for {
		m.Refresh(ctx, time.Time{})
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Refresh reads the map now and publishes it, unless a refresh that
// began after since already did: a partition that refused a key it no
// longer owns makes every request that met it ask, and one read serves
// them all.
func (m *Map) Refresh(ctx context.Context, since time.Time) {
	select {
	case m.refreshing <- struct{}{}:
	case <-ctx.Done():
		return // the caller's deadline passed while another refresh ran
	}
	defer func() { <-m.refreshing }()
	if !since.IsZero() && m.refreshed.After(since) {
		return
	}
	m.refreshed = time.Now()
	c := m.fetch(ctx)
	if c == nil || !c.usable() {
		return
	}
	// The level never falls: a lower one is a lagging replica's or an
	// older peer's view.
	c.Level = max(c.Level, m.Current().Level)
	if b := c.Marshal(); !bytes.Equal(b, m.Current().Marshal()) {
		m.cfg.Save(b)
	}
	m.cur.Store(c)
	m.introduce(c)
}

// fetch reads the map locally, or asks the metadata nodes, then the
// other members, in turn.
func (m *Map) fetch(ctx context.Context) *ClusterMap {
	if c := m.readLocal(); c != nil {
		return c
	}
	v := m.Current()
	ask := slices.Clone(v.Meta)
	for _, id := range v.memberIDs() {
		if !slices.Contains(ask, id) {
			ask = append(ask, id)
		}
	}
	for _, node := range ask {
		if node == m.cfg.NodeID {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		b, err := m.cfg.Peers.Call(cctx, node, MethodClusterMap, nil)
		cancel()
		if err != nil {
			continue
		}
		if c, ok := UnmarshalMap(b); ok {
			return c
		}
	}
	return nil
}

// readLocal reads the map from this node's metadata replica; nil if it
// has none or the data is incomplete.
func (m *Map) readLocal() *ClusterMap {
	if !m.cfg.Engine.HasGroup(statemachine.MetaGroup) {
		return nil
	}
	c := &ClusterMap{}
	bad := false
	err := m.cfg.Engine.ScanData(statemachine.MetaGroup, nil, func(k, v []byte) bool {
		switch {
		case bytes.HasPrefix(k, []byte("node/")):
			var rec api.NodeRecord
			if json.Unmarshal(v, &rec) != nil {
				bad = true
				return false
			}
			c.Nodes = append(c.Nodes, rec)
		case bytes.HasPrefix(k, []byte("partition/")):
			var p api.PartitionRecord
			if json.Unmarshal(v, &p) != nil {
				bad = true
				return false
			}
			c.Parts = append(c.Parts, p)
		case bytes.HasPrefix(k, []byte(statemachine.SplitIntentPrefix)):
			var in api.SplitIntent
			if json.Unmarshal(v, &in) != nil {
				bad = true
				return false
			}
			c.Splits = append(c.Splits, in)
		case bytes.HasPrefix(k, []byte(statemachine.MergeIntentPrefix)):
			var in api.MergeIntent
			if json.Unmarshal(v, &in) != nil {
				bad = true
				return false
			}
			// Kept under both ids: listed once, by its left.
			if string(k[len(statemachine.MergeIntentPrefix):]) == fmt.Sprintf("%06d", in.Left) {
				c.Merges = append(c.Merges, in)
			}
		case bytes.Equal(k, statemachine.LevelKey):
			if json.Unmarshal(v, &c.Level) != nil {
				bad = true
				return false
			}
		case bytes.Equal(k, statemachine.GroupKey):
			if json.Unmarshal(v, &c.Meta) != nil {
				bad = true
				return false
			}
		}
		return true
	})
	if err != nil || bad {
		return nil
	}
	if c.Meta == nil {
		c.Meta = slices.Clone(m.cfg.MetaNodes)
	}
	c.sortParts()
	if !c.index().usable() {
		return nil
	}
	return c
}

// Serve answers MethodClusterMap from the local metadata replica, or,
// without one, with this node's own view (a hint, like the map itself).
func (m *Map) Serve() ([]byte, error) {
	if c := m.readLocal(); c != nil {
		return c.Marshal(), nil
	}
	return m.Current().Marshal(), nil
}
