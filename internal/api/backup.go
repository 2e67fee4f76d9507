package api

// CutJSON answers POST /v1/backup/cut.
type CutJSON struct {
	ID         string         `json:"id"`
	ClusterID  string         `json:"cluster_id"`
	Version    string         `json:"version"`
	Started    string         `json:"started"`
	CutAt      string         `json:"cut_at"`
	Partitions []CutPartition `json:"partitions"`
}

// CutPartition is one partition's cut, and nodes that may hold it.
type CutPartition struct {
	ID        int      `json:"id"`
	SlotStart uint16   `json:"slot_start"`
	SlotEnd   uint16   `json:"slot_end"`
	Index     uint64   `json:"index"`
	Nodes     []string `json:"nodes"` // admin addresses, the likeliest first
}
