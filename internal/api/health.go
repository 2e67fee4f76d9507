package api

// Health is a node's verdict on itself: what GET /healthz and GET /readyz
// answer and GET /v1/status reports. Its words name only partition and
// node ids, never data, addresses or file names, so the endpoints may
// stay open.
type Health struct {
	// NotLive says why the process should be restarted: its engine
	// stopped on an error, or its loop stopped coming round.
	NotLive []string `json:"not_live,omitempty"`
	// NotReady says why the node cannot serve clients now: everything in
	// NotLive, and a removal from the cluster, partitions with no leader
	// that has a quorum.
	NotReady []string `json:"not_ready,omitempty"`
	// Removed: the cluster removed this node for good.
	Removed bool `json:"removed,omitempty"`
	// Lost lists the partitions with no leader that has a quorum.
	Lost []int `json:"lost,omitempty"`
	// Rebuilding lists the partitions whose replica on this node was
	// taken out of service (a corrupt file held its data) and is being
	// rebuilt from its peers. It does not make the node unready.
	Rebuilding []int `json:"rebuilding,omitempty"`
}

// Live reports whether the process is worth keeping.
func (h Health) Live() bool { return len(h.NotLive) == 0 }

// Ready reports whether the node can serve clients.
func (h Health) Ready() bool { return len(h.NotReady) == 0 }
