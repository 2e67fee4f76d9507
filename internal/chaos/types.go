package chaos

// Summary is the machine-readable result of a run (summary.json).
type Summary struct {
	OK            bool      `json:"ok"`
	Seed          int64     `json:"seed"`
	Ops           int       `json:"ops"`
	Anomalies     []Anomaly `json:"anomalies"`
	Faults        []Fault   `json:"faults"`
	P50RecoveryMS float64   `json:"p50_recovery_ms"`
	P99RecoveryMS float64   `json:"p99_recovery_ms"`
	MaxRecoveryMS float64   `json:"max_recovery_ms"`
	LostWrites    int       `json:"lost_writes"`
	DurationMS    int64     `json:"duration_ms"`
	Nodes         int       `json:"nodes"`
	Partitions    int       `json:"partitions"`
	Nemeses       []string  `json:"nemeses"`
	Workloads     []string  `json:"workloads"`
	PlantBug      string    `json:"plant_bug,omitempty"`
}

// Anomaly is one violated guarantee, with the operations that show it.
type Anomaly struct {
	Workload    string   `json:"workload"`
	Kind        string   `json:"kind"` // e.g. "not-linearizable", "lost-write", "duplicate", "invented"
	Key         string   `json:"key,omitempty"`
	Description string   `json:"description"`
	Ops         []string `json:"ops,omitempty"` // human-readable operations, in time order
}

// Fault is one injected fault. Times are milliseconds since the run
// started; RecoveryMS is from the fault's start (or, for faults that need
// healing, its end) to the first successful write on every partition
// after it, -1 if that never happened.
type Fault struct {
	Kind       string  `json:"kind"`
	Node       uint64  `json:"node"`             // 0 when the fault hits every node
	Detail     string  `json:"detail,omitempty"` // e.g. a partition's shape
	StartMS    int64   `json:"start_ms"`
	EndMS      int64   `json:"end_ms"`
	RecoveryMS float64 `json:"recovery_ms"`
}

// Sample is the workload's activity in one time bucket.
type Sample struct {
	StartMS  int64   `json:"start_ms"`
	OK       int     `json:"ok"`
	Failed   int     `json:"failed"` // definite failures and unknown outcomes
	P50LatMS float64 `json:"p50_ms"` // of completed operations in the bucket
	P99LatMS float64 `json:"p99_ms"`
}

// Unavailability is how long one partition accepted no writes in total.
type Unavailability struct {
	Partition     int   `json:"partition"`
	UnavailableMS int64 `json:"unavailable_ms"`
}

// Report is everything the HTML report shows.
type Report struct {
	Summary        Summary          `json:"summary"`
	BucketMS       int64            `json:"bucket_ms"`
	Series         []Sample         `json:"series"`
	Unavailability []Unavailability `json:"unavailability"`
}
