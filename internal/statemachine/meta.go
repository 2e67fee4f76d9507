package statemachine

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/resp"
)

// Metadata commands, applied by the metadata group's state machine.
// Exported for the control loops that propose them.
const (
	CmdHeartbeat = "kintsu.node.heartbeat" // id resp-addr http-addr
	CmdNodeAddrs = "kintsu.node.addrs"     // id resp-addr http-addr
	CmdPartition = "kintsu.part.set"       // api.PartitionRecord JSON: the replicas raft applied
	CmdMetaGroup = "kintsu.meta.group"     // JSON list: the metadata group's voters
	CmdNodeState = "kintsu.node.state"     // id state: draining, removed or up (undrain)
	CmdNodeJoin  = "kintsu.node.join"      // id peer-addr [level]: a new node, and its build's level (from cluster level 1)
	// CmdClusterLevel raises the cluster's feature level (api.Level) to
	// its argument, if the ids that follow are every member not removed
	// (those the proposer found running that level); it never lowers it.
	// Proposed only once every member runs a build of that level, so no
	// replica meets it unknown.
	CmdClusterLevel = "kintsu.cluster.level" // level id...
)

// ReservedNodeID is never a node's id: the transport names with it the
// node a joining node was told to contact, whose id it does not know yet.
const ReservedNodeID uint64 = math.MaxUint64

// Keys inside the metadata group's data.
var (
	ClusterKey = []byte("cluster")   // api.Identity JSON
	GroupKey   = []byte("metagroup") // JSON list of the metadata group's nodes
	LevelKey   = []byte("level")     // the cluster's feature level, a JSON number
)

// NodeKey is node id's registry entry (api.NodeRecord JSON).
func NodeKey(id uint64) []byte { return fmt.Appendf(nil, "node/%020d", id) }

// PartKey is partition p's record (api.PartitionRecord JSON).
func PartKey(p int) []byte { return fmt.Appendf(nil, "partition/%06d", p) }

// applyMeta is the metadata group's state machine.
func applyMeta(w Store, args [][]byte, out []byte) ([]byte, error) {
	switch {
	case len(args) >= 2 && (string(args[0]) == CmdACLSetUser || string(args[0]) == CmdACLDelUser):
		return ApplyACL(w, args, out)
	case string(args[0]) == CmdFunctionLoad || string(args[0]) == CmdFunctionDelete || string(args[0]) == CmdFunctionFlush:
		return ApplyFunctions(w, args, out)
	case string(args[0]) == CmdConfigSet:
		return ApplyConfig(w, args, out)
	case len(args) == 4 && string(args[0]) == CmdHeartbeat:
		return applyHeartbeat(w, args, out)
	case len(args) == 2 && string(args[0]) == CmdPartition:
		// The replicas raft applied: only they change. The slot range is
		// the partition table's own (a proposer's map may be old: once
		// ranges split, writing its whole record back would undo one).
		var p api.PartitionRecord
		if json.Unmarshal(args[1], &p) != nil || p.ID < 0 || len(p.Replicas) == 0 {
			return resp.AppendError(out, "ERR bad partition record"), nil
		}
		b, ok, err := w.Get(PartKey(p.ID))
		if err != nil || !ok {
			return resp.AppendError(out, "ERR unknown partition"), err
		}
		var cur api.PartitionRecord
		if json.Unmarshal(b, &cur) != nil {
			return resp.AppendError(out, "ERR corrupt partition record"), nil
		}
		cur.Replicas, cur.Learners = p.Replicas, p.Learners
		return putMeta(w, PartKey(p.ID), cur, out)
	case len(args) == 2 && string(args[0]) == CmdMetaGroup:
		var nodes []uint64
		if json.Unmarshal(args[1], &nodes) != nil || len(nodes) == 0 {
			return resp.AppendError(out, "ERR bad metadata group"), nil
		}
		return putMeta(w, GroupKey, nodes, out)
	case len(args) == 3 && string(args[0]) == CmdNodeState:
		return applyNodeState(w, args, out)
	case (len(args) == 3 || len(args) == 4) && string(args[0]) == CmdNodeJoin:
		return applyNodeJoin(w, args, out)
	case len(args) >= 2 && string(args[0]) == CmdClusterLevel:
		return applyClusterLevel(w, args, out)
	case len(args) >= 2 && (string(args[0]) == CmdPartReserve || string(args[0]) == CmdPartSplit || string(args[0]) == CmdPartUnreserve):
		return applyPartSplit(w, args, out)
	case len(args) >= 2 && (string(args[0]) == CmdPartMergeIntent || string(args[0]) == CmdPartSurvivor || string(args[0]) == CmdPartMerge || string(args[0]) == CmdPartUnchoose):
		return applyPartMerge(w, args, out)
	}
	// Addresses alone: written by nodes before heartbeats existed, and
	// still in their logs.
	if len(args) == 4 && string(args[0]) == CmdNodeAddrs {
		rec, refusal, err := existingNode(w, args[1])
		if err != nil {
			return out, err
		}
		if refusal != "" {
			return resp.AppendError(out, refusal), nil
		}
		rec.RESPAddr, rec.HTTPAddr = string(args[2]), string(args[3])
		return putMeta(w, NodeKey(rec.ID), rec, out)
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

// applyHeartbeat records a heartbeat. A removed node is told so, and its
// record is left as it is.
func applyHeartbeat(w kv.Writer, args [][]byte, out []byte) ([]byte, error) {
	rec, refusal, err := existingNode(w, args[1])
	if err != nil {
		return out, err
	}
	if refusal != "" {
		return resp.AppendError(out, refusal), nil
	}
	if rec.State == api.NodeRemoved {
		return resp.AppendError(out, ErrNodeRemoved), nil
	}
	rec.RESPAddr, rec.HTTPAddr, rec.HeartbeatMS = string(args[2]), string(args[3]), w.NowMS()
	return putMeta(w, NodeKey(rec.ID), rec, out)
}

const ErrNodeRemoved = "ERR this node was removed from the cluster"

// ErrJoinWithoutLevel ends the refusal of a join that does not say the
// joining build's level, in a cluster at level 1 or later.
const ErrJoinWithoutLevel = "this join does not say the joining build's level"

// maxLevel bounds the level a command may set: far above any build's.
const maxLevel = 1 << 20

// applyClusterLevel raises the cluster's level; a lower or equal one
// leaves it. It is refused when a member not removed is missing from the
// ids the proposer checked: one joined since, and its build was not
// asked.
func applyClusterLevel(w Store, args [][]byte, out []byte) ([]byte, error) {
	n, err := strconv.Atoi(string(args[1]))
	if err != nil || n < 0 || n > maxLevel {
		return resp.AppendError(out, "ERR bad cluster level"), nil
	}
	checked := map[uint64]bool{}
	for _, a := range args[2:] {
		id, err := strconv.ParseUint(string(a), 10, 64)
		if err != nil {
			return resp.AppendError(out, "ERR bad node id"), nil
		}
		checked[id] = true
	}
	refusal := ""
	err = w.ScanPrefix([]byte("node/"), func(v []byte) bool {
		var rec api.NodeRecord
		switch {
		case json.Unmarshal(v, &rec) != nil:
			refusal = "ERR a corrupt node record: cluster level not raised"
		case rec.State != api.NodeRemoved && !checked[rec.ID]:
			refusal = fmt.Sprintf("ERR node %d is a member whose build was not checked: cluster level not raised", rec.ID)
		}
		return refusal == ""
	})
	if err != nil {
		return out, err
	}
	if refusal != "" {
		return resp.AppendError(out, refusal), nil
	}
	cur, exists, err := readLevel(w)
	if err != nil {
		return out, err
	}
	if n > cur {
		if err := w.Put(LevelKey, strconv.AppendInt(nil, int64(n), 10), !exists); err != nil {
			return out, err
		}
	}
	return resp.AppendSimple(out, "OK"), nil
}

// ReadLevel is the cluster level the metadata holds: 0 when none was
// recorded (a cluster created before levels) or it is unreadable.
func ReadLevel(r kv.Reader) (int, error) {
	n, _, err := readLevel(r)
	return n, err
}

// readLevel is ReadLevel, and whether a level is recorded at all.
func readLevel(r kv.Reader) (n int, exists bool, err error) {
	b, exists, err := r.Get(LevelKey)
	if err != nil || !exists {
		return 0, exists, err
	}
	if json.Unmarshal(b, &n) != nil {
		return 0, true, nil
	}
	return n, true, nil
}

// OlderBuild words the refusal of a joining node whose build's level
// (as it said it) is below the cluster's.
func OlderBuild(id uint64, joinerLevel string, level int) string {
	return fmt.Sprintf("node %d runs a build of level %s, older than the cluster's level %d: start it with the cluster's build or a newer one", id, joinerLevel, level)
}

// applyNodeJoin adds a node to the registry, or accepts a repeated join of
// a node that never came up.
func applyNodeJoin(w kv.Writer, args [][]byte, out []byte) ([]byte, error) {
	id, err := strconv.ParseUint(string(args[1]), 10, 64)
	if err != nil || id == 0 || id == ReservedNodeID {
		return resp.AppendError(out, "ERR bad node id"), nil
	}
	peer := string(args[2])
	// From cluster level 1 a join carries the joining build's level, and
	// one below the cluster's is refused: the level stays true of every
	// member. A join without it, from a member whose map is older than
	// the level, is refused too; the joining node retries.
	level, err := ReadLevel(w)
	if err != nil {
		return out, err
	}
	if level > 0 {
		if len(args) < 4 {
			return resp.AppendError(out, fmt.Sprintf("ERR the cluster is at level %d and %s", level, ErrJoinWithoutLevel)), nil
		}
		if jl, err := strconv.Atoi(string(args[3])); err != nil || jl < level {
			return resp.AppendError(out, "ERR "+OlderBuild(id, string(args[3]), level)), nil
		}
	}
	rec, ok, corrupt, err := nodeRecordOf(w, id)
	switch {
	case err != nil:
		return out, err
	case corrupt:
		return resp.AppendError(out, "ERR corrupt node record"), nil
	case !ok:
	case rec.State == api.NodeRemoved:
		return resp.AppendError(out, fmt.Sprintf("ERR node id %d was removed from the cluster; join under a new --id", id)), nil
	case rec.HeartbeatMS != 0:
		return resp.AppendError(out, fmt.Sprintf("ERR node id %d is already a member that ran before; a node with a new or empty disk must join under a new --id (then remove the old one with kintsu ctl node remove %d)", id, id)), nil
	case rec.PeerAddr != peer:
		return resp.AppendError(out, fmt.Sprintf("ERR node id %d is already a member at %s", id, rec.PeerAddr)), nil
	default:
		return resp.AppendSimple(out, "OK"), nil // a retry of a join that did not finish
	}
	return putMeta(w, NodeKey(id), api.NodeRecord{ID: id, PeerAddr: peer, State: api.NodeUp}, out)
}

// applyNodeState sets a node's stored membership state.
func applyNodeState(w kv.Writer, args [][]byte, out []byte) ([]byte, error) {
	state := string(args[2])
	if state != api.NodeUp && state != api.NodeDraining && state != api.NodeRemoved {
		return resp.AppendError(out, "ERR bad node state"), nil
	}
	rec, refusal, err := existingNode(w, args[1])
	if err != nil {
		return out, err
	}
	if refusal != "" {
		return resp.AppendError(out, refusal), nil
	}
	if rec.State == api.NodeRemoved && state != api.NodeRemoved {
		return resp.AppendError(out, fmt.Sprintf("ERR node %d was removed; that is final", rec.ID)), nil
	}
	rec.State = state
	return putMeta(w, NodeKey(rec.ID), rec, out)
}

// nodeRecordOf reads node id's registry entry. A record that cannot be
// decoded is reported as corrupt, not as an error: refusing the command
// alike on every replica beats stopping them all.
func nodeRecordOf(w kv.Reader, id uint64) (rec api.NodeRecord, ok, corrupt bool, err error) {
	b, ok, err := w.Get(NodeKey(id))
	if err != nil || !ok {
		return api.NodeRecord{}, false, false, err
	}
	if json.Unmarshal(b, &rec) != nil {
		return api.NodeRecord{}, false, true, nil
	}
	return rec, true, false, nil
}

// existingNode parses a node id argument and reads its entry; refusal is
// the error to answer when there is no such (readable) node.
func existingNode(w kv.Reader, arg []byte) (api.NodeRecord, string, error) {
	id, err := strconv.ParseUint(string(arg), 10, 64)
	if err != nil {
		return api.NodeRecord{}, "ERR bad node id", nil
	}
	rec, ok, corrupt, err := nodeRecordOf(w, id)
	switch {
	case err != nil:
		return rec, "", err
	case corrupt:
		return rec, "ERR corrupt node record", nil
	case !ok:
		return rec, fmt.Sprintf("ERR no node %d in the cluster", id), nil
	}
	return rec, "", nil
}
