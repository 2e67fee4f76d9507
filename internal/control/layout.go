package control

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/ring"
	"github.com/kintsu/kintsu/internal/statemachine"
	"github.com/kintsu/kintsu/internal/storage"
)

// Shape is a cluster's static shape as a node's flags give it.
type Shape struct {
	NodeID         uint64
	InitialCluster map[uint64]string // node id -> peer address
	Ring           ring.Config       // partitions, replicas, virtual nodes
	// NoLevel starts the cluster with no level recorded, as one created
	// before levels (tests of the upgrade path).
	NoLevel bool
}

// Layout is the cluster's initial layout: its identity, the initial
// placement of every partition and the metadata group's members. It is a
// pure function of the Shape, so every initial node computes the same.
type Layout struct {
	Ident      api.Identity
	Partitions []api.PartitionRecord
	MetaNodes  []uint64
	noLevel    bool
}

// NewLayout derives the initial placement from the initial cluster.
func NewLayout(s Shape) (*Layout, error) {
	nodes := make([]ring.Node, 0, len(s.InitialCluster))
	for id := range s.InitialCluster {
		nodes = append(nodes, ring.Node{ID: id})
	}
	slices.SortFunc(nodes, func(a, b ring.Node) int { return cmp.Compare(a.ID, b.ID) })
	pl, err := ring.Place(s.Ring, nodes)
	if err != nil {
		return nil, err
	}
	l := &Layout{Ident: identity(s), MetaNodes: ring.MetaReplicas(s.Ring, nodes, MetaReplicas), noLevel: s.NoLevel}
	for p, reps := range pl.Replicas {
		start, end := ring.SlotRange(p, s.Ring.Partitions)
		l.Partitions = append(l.Partitions, api.PartitionRecord{ID: p, SlotStart: start, SlotEnd: end, Replicas: slices.Clone(reps)})
	}
	return l, nil
}

// identity is the identity the flags give a data directory; the cluster
// id is a digest of the cluster's shape, so every initial node computes
// the same.
func identity(s Shape) api.Identity {
	ic := FormatInitialCluster(s.InitialCluster)
	sum := sha256.Sum256(fmt.Appendf(nil, "%s|%d|%d|%d", ic, s.Ring.Partitions, s.Ring.Replicas, s.Ring.VNodes))
	return api.Identity{
		ClusterID:      hex.EncodeToString(sum[:8]),
		NodeID:         s.NodeID,
		InitialCluster: ic,
		Partitions:     s.Ring.Partitions,
		Replicas:       s.Ring.Replicas,
		VNodes:         s.Ring.VNodes,
	}
}

// FormatInitialCluster is the canonical form of an initial cluster, sorted
// by id; identical inputs give identical strings on every node.
func FormatInitialCluster(m map[uint64]string) string {
	ids := make([]uint64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("%d=%s", id, m[id])
	}
	return strings.Join(parts, ",")
}

// Contradictions lists how the flags' identity disagrees with the one
// stored in a data directory.
func Contradictions(stored, flags api.Identity) []string {
	var out []string
	if stored.NodeID != flags.NodeID {
		out = append(out, fmt.Sprintf("it belongs to node %d, not --id %d", stored.NodeID, flags.NodeID))
	}
	if stored.InitialCluster != flags.InitialCluster {
		out = append(out, fmt.Sprintf("its cluster was created with --initial-cluster %s, not %s", stored.InitialCluster, flags.InitialCluster))
	}
	if stored.Partitions != flags.Partitions {
		out = append(out, fmt.Sprintf("its cluster has %d partitions, not --partitions %d", stored.Partitions, flags.Partitions))
	}
	if stored.Replicas != flags.Replicas {
		out = append(out, fmt.Sprintf("its cluster has %d replicas per partition, not --replicas %d", stored.Replicas, flags.Replicas))
	}
	if stored.VNodes != flags.VNodes {
		out = append(out, fmt.Sprintf("its cluster uses %d virtual nodes, not %d", stored.VNodes, flags.VNodes))
	}
	return out
}

// Bootstrap is how a replica of group on nodes starts at the cluster's
// first start: replica ids 1..n in node order, and the metadata group's
// initial content.
func (l *Layout) Bootstrap(group uint64, nodes []uint64, initialCluster map[uint64]string) *raftstore.Bootstrap {
	d := &storage.Descriptor{Group: group, NextID: uint64(len(nodes)) + 1}
	for i, n := range nodes {
		d.Replicas = append(d.Replicas, storage.Replica{ID: uint64(i) + 1, Node: n})
	}
	b := &raftstore.Bootstrap{Desc: d}
	if group == statemachine.MetaGroup {
		b.Data = l.metaContent(initialCluster)
	}
	return b
}

// metaContent is the metadata group's initial content.
func (l *Layout) metaContent(initialCluster map[uint64]string) [][2][]byte {
	var data [][2][]byte
	put := func(k []byte, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			panic(err) // plain structs: cannot fail
		}
		data = append(data, [2][]byte{k, b})
	}
	put(statemachine.ClusterKey, l.Ident)
	// A cluster is created by nodes of one build: it starts at its level.
	if !l.noLevel {
		put(statemachine.LevelKey, api.Level)
	}
	for id, addr := range initialCluster {
		put(statemachine.NodeKey(id), api.NodeRecord{ID: id, PeerAddr: addr, State: api.NodeUp})
	}
	for _, p := range l.Partitions {
		put(statemachine.PartKey(p.ID), p)
	}
	slices.SortFunc(data, func(a, b [2][]byte) int { return slices.Compare(a[0], b[0]) })
	return data
}
