package server

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/kintsu/kintsu/internal/command"
	"slices"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/resp"
	"github.com/kintsu/kintsu/internal/ring"
	"github.com/kintsu/kintsu/internal/storage"
)

// MetaGroup is the raft group of the cluster metadata. Data partitions use
// groups 0..P-1.
const MetaGroup uint64 = 1 << 32

// metaReplicas is how many nodes hold the metadata group.
const metaReplicas = 5

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
	l := &layout{ident: identityFor(cfg), metaNodes: ring.MetaReplicas(rc, nodes, metaReplicas)}
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

// Meta keys inside the metadata group's data.
func metaNodeKey(id uint64) []byte { return fmt.Appendf(nil, "node/%020d", id) }
func metaPartKey(p int) []byte     { return fmt.Appendf(nil, "partition/%06d", p) }

var (
	metaClusterKey = []byte("cluster")
	metaGroupKey   = []byte("metagroup") // JSON list of the metadata group's nodes
)

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
	put(metaClusterKey, l.ident)
	for id, addr := range cfg.InitialCluster {
		put(metaNodeKey(id), api.NodeRecord{ID: id, PeerAddr: addr, State: api.NodeUp})
	}
	for _, p := range l.partitions {
		put(metaPartKey(p.ID), p)
	}
	slices.SortFunc(data, func(a, b [2][]byte) int { return slices.Compare(a[0], b[0]) })
	return data
}

// Metadata commands, applied by the metadata group's state machine.
const (
	cmdNodeAddrs = "kintsu.node.addrs" // id resp-addr http-addr
	cmdPartition = "kintsu.part.set"   // api.PartitionRecord JSON: the replicas raft applied
	cmdMetaGroup = "kintsu.meta.group" // JSON list: the metadata group's voters
	cmdNodeState = "kintsu.node.state" // id state: draining, removed or up (undrain)
	cmdNodeJoin  = "kintsu.node.join"  // id peer-addr: a new node
)

// applyMeta is the metadata group's state machine.
func applyMeta(w kv.Writer, args [][]byte, out []byte) ([]byte, error) {
	switch {
	case len(args) == 4 && string(args[0]) == cmdHeartbeat:
		return applyHeartbeat(w, args, out)
	case len(args) == 2 && string(args[0]) == cmdPartition:
		var p api.PartitionRecord
		if json.Unmarshal(args[1], &p) != nil || p.ID < 0 || len(p.Replicas) == 0 {
			return resp.AppendError(out, "ERR bad partition record"), nil
		}
		if _, ok, err := w.Get(metaPartKey(p.ID)); err != nil || !ok {
			return resp.AppendError(out, "ERR unknown partition"), err
		}
		return putMeta(w, metaPartKey(p.ID), p, out)
	case len(args) == 2 && string(args[0]) == cmdMetaGroup:
		var nodes []uint64
		if json.Unmarshal(args[1], &nodes) != nil || len(nodes) == 0 {
			return resp.AppendError(out, "ERR bad metadata group"), nil
		}
		return putMeta(w, metaGroupKey, nodes, out)
	case len(args) == 3 && string(args[0]) == cmdNodeState:
		return applyNodeState(w, args, out)
	case len(args) == 3 && string(args[0]) == cmdNodeJoin:
		return applyNodeJoin(w, args, out)
	}
	// Addresses alone: written by nodes before heartbeats existed, and
	// still in their logs.
	if len(args) == 4 && string(args[0]) == cmdNodeAddrs {
		rec, refusal, err := existingNode(w, args[1])
		if err != nil {
			return out, err
		}
		if refusal != "" {
			return resp.AppendError(out, refusal), nil
		}
		rec.RESPAddr, rec.HTTPAddr = string(args[2]), string(args[3])
		return putMeta(w, metaNodeKey(rec.ID), rec, out)
	}
	return resp.AppendError(out, "ERR unknown metadata command"), nil
}

func putMeta(w kv.Writer, k []byte, v any, out []byte) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return out, err
	}
	if err := w.Put(k, b, false); err != nil {
		return out, err
	}
	return resp.AppendSimple(out, "OK"), nil
}

// applyFunc dispatches committed commands to the right state machine;
// spec is the command's one lookup (classify).
func applyFunc(group uint64, w *raftstore.Writer, spec *command.Spec, args [][]byte, out []byte) ([]byte, error) {
	if group == MetaGroup {
		return applyMeta(w, args, out)
	}
	return applyData(w, spec, args, out)
}

var (
	_ raftstore.ApplyFunc    = applyFunc
	_ raftstore.ClassifyFunc = classify
)

// classify looks a committed command up, once, for its apply and its
// deduplication: replies of writes are kept; a read carried through the
// log can simply be evaluated again if retried.
func classify(group uint64, args [][]byte) (*command.Spec, bool) {
	if len(args) == 0 {
		return nil, true
	}
	s := command.Lookup(args[0])
	if group == MetaGroup {
		return s, true
	}
	return s, kv.Of(s) == nil || s.Is(command.Write)
}
