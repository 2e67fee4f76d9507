package server

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/control"
	"github.com/kintsu/kintsu/internal/ring"
	"github.com/kintsu/kintsu/internal/statemachine"
	"github.com/kintsu/kintsu/internal/storage"
)

// MetaGroup is the raft group of the cluster metadata. Data partitions use
// groups 0..P-1.
const MetaGroup = statemachine.MetaGroup

// identityFor is the identity the flags give a data directory; the
// cluster id is a digest of the cluster's shape, so every initial node
// computes the same.
func identityFor(cfg *Config) api.Identity {
	ic := FormatInitialCluster(cfg.InitialCluster)
	sum := sha256.Sum256(fmt.Appendf(nil, "%s|%d|%d|%d", ic, cfg.Partitions, cfg.Replicas, cfg.VNodes))
	return api.Identity{
		ClusterID:      hex.EncodeToString(sum[:8]),
		NodeID:         cfg.NodeID,
		InitialCluster: ic,
		Partitions:     cfg.Partitions,
		Replicas:       cfg.Replicas,
		VNodes:         cfg.VNodes,
	}
}

// contradictions lists how the flags disagree with the stored identity.
func contradictions(id, flags api.Identity) []string {
	var out []string
	if id.NodeID != flags.NodeID {
		out = append(out, fmt.Sprintf("it belongs to node %d, not --id %d", id.NodeID, flags.NodeID))
	}
	if id.InitialCluster != flags.InitialCluster {
		out = append(out, fmt.Sprintf("its cluster was created with --initial-cluster %s, not %s", id.InitialCluster, flags.InitialCluster))
	}
	if id.Partitions != flags.Partitions {
		out = append(out, fmt.Sprintf("its cluster has %d partitions, not --partitions %d", id.Partitions, flags.Partitions))
	}
	if id.Replicas != flags.Replicas {
		out = append(out, fmt.Sprintf("its cluster has %d replicas per partition, not --replicas %d", id.Replicas, flags.Replicas))
	}
	if id.VNodes != flags.VNodes {
		out = append(out, fmt.Sprintf("its cluster uses %d virtual nodes, not %d", id.VNodes, flags.VNodes))
	}
	return out
}

// layout is the cluster's static shape as computed at bootstrap.
type layout struct {
	ident      api.Identity
	partitions []api.PartitionRecord
	metaNodes  []uint64
}

// computeLayout derives placement from the initial cluster. It is a pure
// function of the flags, so every initial node computes the same.
func computeLayout(cfg *Config) (*layout, error) {
	nodes := make([]ring.Node, 0, len(cfg.InitialCluster))
	for id := range cfg.InitialCluster {
		nodes = append(nodes, ring.Node{ID: id})
	}
	slices.SortFunc(nodes, func(a, b ring.Node) int { return cmp.Compare(a.ID, b.ID) })
	rc := cfg.ringConfig()
	pl, err := ring.Place(rc, nodes)
	if err != nil {
		return nil, err
	}
	l := &layout{ident: identityFor(cfg), metaNodes: ring.MetaReplicas(rc, nodes, control.MetaReplicas)}
	for p, reps := range pl.Replicas {
		s, e := ring.SlotRange(p, cfg.Partitions)
		l.partitions = append(l.partitions, api.PartitionRecord{ID: p, SlotStart: s, SlotEnd: e, Replicas: slices.Clone(reps)})
	}
	return l, nil
}

func descriptorFor(group uint64, nodes []uint64) *storage.Descriptor {
	d := &storage.Descriptor{Group: group, NextID: uint64(len(nodes)) + 1}
	for i, n := range nodes {
		d.Replicas = append(d.Replicas, storage.Replica{ID: uint64(i) + 1, Node: n})
	}
	return d
}

// metaBootstrap is the metadata group's initial content.
func (l *layout) metaBootstrap(cfg *Config) [][2][]byte {
	var data [][2][]byte
	put := func(k []byte, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			panic(err)
		}
		data = append(data, [2][]byte{k, b})
	}
	put(statemachine.ClusterKey, l.ident)
	for id, addr := range cfg.InitialCluster {
		put(statemachine.NodeKey(id), api.NodeRecord{ID: id, PeerAddr: addr, State: api.NodeUp})
	}
	for _, p := range l.partitions {
		put(statemachine.PartKey(p.ID), p)
	}
	slices.SortFunc(data, func(a, b [2][]byte) int { return slices.Compare(a[0], b[0]) })
	return data
}

// resolveJoin gives a node started with --join the cluster's shape: from
// its data dir if it joined before, else by joining through the seed.
func (n *Node) resolveJoin() error {
	var id api.Identity
	b, ok, err := storage.Get(n.db, storage.IdentKey)
	switch {
	case err != nil:
		return err
	case ok:
		if err := json.Unmarshal(b, &id); err != nil {
			return fmt.Errorf("data dir %s: unreadable identity: %w", n.cfg.DataDir, err)
		}
	default:
		id, err = control.Join(n.ctx, control.JoinConfig{
			NodeID: n.cfg.NodeID, PeerAddr: n.cfg.PeerAddr, Seed: n.cfg.Join,
			Timeout: n.cfg.JoinTimeout, RequestTimeout: n.cfg.RequestTimeout,
			Peers: n.tr, Save: n.saveMap, Logger: n.log,
		})
		if err != nil {
			return err
		}
	}
	ic, err := ParseInitialCluster(id.InitialCluster)
	if err != nil {
		return fmt.Errorf("the cluster's initial membership: %w", err)
	}
	n.cfg.InitialCluster, n.cfg.Partitions, n.cfg.Replicas, n.cfg.VNodes = ic, id.Partitions, id.Replicas, id.VNodes
	n.joined = true
	return nil
}
