package api

// Version is Kintsu's version: what `kintsu version`, INFO, GET /v1/status
// and a backup's manifest report.
const Version = "0.1.0-dev"

// Level is this build's feature level. It is raised when a build adds
// something every node must understand before any node uses it: a
// replicated command, a new form of a peer call. A cluster's level
// (ClusterMapJSON.Level) is the level all its members ran when the
// metadata leader last checked; features of a higher level stay off until
// then, and a node whose build is older than the cluster's level is
// refused (docs/operations.md, Upgrades).
//
//   - 1: partition splits and merges (kintsu.split, kintsu.merge*) and
//     SCAN by slot range (the seven-argument kintsu.scan).
//   - 2: placement by family (ring.FamilyPos): a split's right half is
//     placed where its parent is. Every driver must place alike, or the
//     metadata leaders of two builds would move the halves back and forth.
const Level = 2

// LevelResize is the cluster level from which partitions split and merge.
const LevelResize = 1

// LevelFamilies is the cluster level from which the placement driver
// places each partition by its family (ring.FamilyPos).
const LevelFamilies = 2

// StatusJSON is the body of GET /v1/status.
type StatusJSON struct {
	NodeID     uint64   `json:"node_id"`
	ClusterID  string   `json:"cluster_id"`
	Version    string   `json:"version"`
	Ready      bool     `json:"ready"`
	NotReady   []string `json:"not_ready,omitempty"`  // why not (api.Health)
	Removed    bool     `json:"removed,omitempty"`    // the cluster removed this node
	Rebuilding []int    `json:"rebuilding,omitempty"` // partitions whose replica here is being rebuilt (api.Health)
	// ReplicationFactor is how many replicas each partition is meant to
	// have (--replicas); a partition has one more for a moment while a
	// replica moves.
	ReplicationFactor int `json:"replication_factor,omitempty"`
	// Level is this node's build's feature level (api.Level);
	// ClusterLevel the cluster's, as this node's map has it (absent: 0).
	Level        int               `json:"level,omitempty"`
	ClusterLevel int               `json:"cluster_level,omitempty"`
	Nodes        []NodeRecord      `json:"nodes"`
	Partitions   []PartitionStatus `json:"partitions"`
}

// PartitionStatus is one partition in /v1/status.
type PartitionStatus struct {
	ID           int      `json:"id"`
	SlotStart    uint16   `json:"slot_start"`
	SlotEnd      uint16   `json:"slot_end"`
	Replicas     []uint64 `json:"replicas"`
	Learners     []uint64 `json:"learners,omitempty"`  // replicas being added
	Leader       uint64   `json:"leader"`              // node id, 0 when unknown
	NoQuorum     bool     `json:"no_quorum,omitempty"` // no leader heard from a quorum lately (api.Health.Lost)
	AppliedIndex uint64   `json:"applied_index"`
	Term         uint64   `json:"term,omitempty"`
	Local        string   `json:"local_role,omitempty"` // this node's role, if it hosts a replica
	Keys         int64    `json:"keys"`
	// KeysUpperBound: Keys counts blind writes (SET, MSET) as new keys
	// since it was last exact; DBSIZE counts exactly.
	KeysUpperBound bool `json:"keys_upper_bound,omitempty"`
}

// TransferJSON answers POST /v1/leadership/transfer (with status 503 when
// the transfer did not finish): how many partitions the node still leads.
type TransferJSON struct {
	StillLeading int `json:"still_leading"`
}
