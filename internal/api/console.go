package api

// NodeLoad is one node's cumulative load, as the web console polls it
// (GET /v1/load gathers every node's): rates are the differences between
// two polls.
type NodeLoad struct {
	Node     uint64 `json:"node"`
	TimeMS   int64  `json:"time_ms"`  // when it was read, Unix ms
	Commands uint64 `json:"commands"` // client commands answered
	// LatencySum is the seconds those commands took, in all; Buckets the
	// cumulative count of commands at or under each bound (seconds).
	LatencySum float64         `json:"latency_sum"`
	Buckets    []LatencyBucket `json:"buckets"`
	Clients    int             `json:"clients"`
	Leaders    int             `json:"leaders"`
	// Error: the node did not answer (the other fields are empty).
	Error string `json:"error,omitempty"`
}

// LatencyBucket is a cumulative histogram bucket.
type LatencyBucket struct {
	LE    float64 `json:"le"`
	Count uint64  `json:"count"`
}

// Event is a node's logged event at Info or above (internal/events), as
// GET /v1/events lists them, newest first.
type Event struct {
	TimeMS  int64  `json:"time_ms"`
	Node    uint64 `json:"node"`
	Level   string `json:"level"`
	Message string `json:"message"`
	Attrs   string `json:"attrs,omitempty"`
}

// WhoAmI is who the admin API takes the caller for (GET /v1/whoami):
// the console offers actions only to an admin.
type WhoAmI struct {
	User  string `json:"user"`
	Admin bool   `json:"admin"`
}
