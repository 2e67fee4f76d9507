package api

// Node states. A NodeRecord is stored (and sent in a cluster map) as up,
// draining or removed. In GET /v1/status and a join answer it carries the
// liveness the answering node derived instead, which may also be suspect
// or dead: up then means a recent heartbeat on that node's clock.
const (
	NodeUp       = "up"       // a member; read: it heartbeated lately
	NodeDraining = "draining" // being decommissioned: its replicas move away
	NodeRemoved  = "removed"  // gone for good; the id never rejoins
	NodeSuspect  = "suspect"  // missed a few heartbeats (derived)
	NodeDead     = "dead"     // no heartbeat for the dead timeout (derived)
)

// Serves reports whether a node in liveness state s is expected to answer
// clients (up, suspect or draining).
func Serves(s string) bool {
	return s == NodeUp || s == NodeSuspect || s == NodeDraining
}

// Identity is what a data directory belongs to. It is written once, at
// bootstrap, and checked against the flags on every restart; a member
// sends it to a node that joins.
type Identity struct {
	ClusterID      string `json:"cluster_id"`
	NodeID         uint64 `json:"node_id"`
	InitialCluster string `json:"initial_cluster"`
	Partitions     int    `json:"partitions"`
	Replicas       int    `json:"replicas"`
	VNodes         int    `json:"vnodes"`
	// Joined: the node joined a running cluster (--join) rather than
	// bootstrapping with it; its replicas all came by placement.
	Joined bool `json:"joined,omitempty"`
}

// NodeRecord is a node's entry in the registry. It is also the body of a
// join request.
type NodeRecord struct {
	ID       uint64 `json:"id"`
	PeerAddr string `json:"peer_addr"`
	RESPAddr string `json:"resp_addr"`
	HTTPAddr string `json:"http_addr"`
	// State is one of the node states above.
	State string `json:"state"`
	// HeartbeatMS is when the node last heartbeat (Unix ms, 0 = never).
	HeartbeatMS int64 `json:"heartbeat_ms,omitempty"`
	// LastHeartbeat renders HeartbeatMS for people; it is not stored.
	LastHeartbeat string `json:"last_heartbeat,omitempty"`
}

// PartitionRecord is a partition's entry in the partition table.
type PartitionRecord struct {
	ID        int      `json:"id"`
	SlotStart uint16   `json:"slot_start"`
	SlotEnd   uint16   `json:"slot_end"`
	Replicas  []uint64 `json:"replicas"` // voters' node ids, preferred leader first
	Learners  []uint64 `json:"learners,omitempty"`
	// Pinned: the partition was made by a split asked by hand; automatic
	// merges leave it alone (as CockroachDB's manual splits).
	Pinned bool `json:"pinned,omitempty"`
}

// SplitIntent is a reserved split of partition Left at slot At into the
// new partition Right; Lo..Hi was Left's range when it was reserved. It
// stays in the partition table until the split is recorded.
type SplitIntent struct {
	Left  int    `json:"left"`
	Right int    `json:"right"`
	At    uint16 `json:"at"`
	Lo    uint16 `json:"lo"`
	Hi    uint16 `json:"hi"`
	// Manual: asked by hand; both halves are pinned.
	Manual bool `json:"manual,omitempty"`
}

// MergeIntent is a merge of partition Left (slots Lo..Mid-1) with its
// neighbour Right (slots Mid..Hi). Once Chosen, Survivor is the partition
// that absorbs the other (the one whose log is ahead) and is frozen for
// it; the choice never changes. It stays in the partition table until
// the merge is recorded.
type MergeIntent struct {
	Left     int    `json:"left"`
	Right    int    `json:"right"`
	Lo       uint16 `json:"lo"`
	Mid      uint16 `json:"mid"`
	Hi       uint16 `json:"hi"`
	Chosen   bool   `json:"chosen,omitempty"`
	Survivor int    `json:"survivor,omitempty"`
}

// Other is the partition a chosen merge absorbs.
func (in MergeIntent) Other() int {
	if in.Survivor == in.Left {
		return in.Right
	}
	return in.Left
}

// MergeJSON answers POST /v1/partitions/{id}/merge: Survivor holds the
// merged range, Absorbed is gone; Pending: the merge is reserved and
// the placement driver finishes it (its replicas are being co-located).
type MergeJSON struct {
	Survivor int  `json:"survivor"`
	Absorbed int  `json:"absorbed"`
	Pending  bool `json:"pending,omitempty"`
}

// SplitJSON answers POST /v1/partitions/{id}/split: partition Left kept
// the lower slots, the new partition Right took the others.
type SplitJSON struct {
	Left  int `json:"left"`
	Right int `json:"right"`
}

// ClusterMapJSON is a node's view of the membership as nodes send it to
// each other and save it for their next start.
type ClusterMapJSON struct {
	Nodes []NodeRecord      `json:"nodes"`
	Parts []PartitionRecord `json:"partitions"`
	Meta  []uint64          `json:"meta"` // nodes of the metadata group
	// Splits are the partition splits reserved and not yet recorded.
	Splits []SplitIntent `json:"splits,omitempty"`
	// Merges are the partition merges reserved and not yet recorded.
	Merges []MergeIntent `json:"merges,omitempty"`
	// Level is the cluster's feature level (api.Level): 0 for a cluster
	// created before levels, until every member runs a build of level 1.
	Level int `json:"level,omitempty"`
}

// JoinRequest is what a node that joins sends: its record and its
// build's level (api.Level; absent from builds before levels, so 0).
type JoinRequest struct {
	NodeRecord
	Level int `json:"level,omitempty"`
}

// JoinJSON is what a member tells a node that joins the cluster.
type JoinJSON struct {
	Identity Identity       `json:"identity"`
	Nodes    []NodeRecord   `json:"nodes"`
	Map      ClusterMapJSON `json:"map"` // the member's view: the initial members may be long gone
}
