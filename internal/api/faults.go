package api

// Bodies of the fault hooks (PUT /v1/fault/KIND), served only by a node
// started with --fault-injection. Zero fields are left out, so each zero
// value encodes as {}: the body that heals the fault.

// FaultCut is the body of PUT /v1/fault/cut: from now on the node sends
// nothing to these nodes.
type FaultCut struct {
	Nodes []uint64 `json:"nodes,omitempty"`
}

// FaultClock is the body of PUT /v1/fault/clock: the node's clock reads
// OffsetMS off and its timers run Rate times as fast (0 means 1).
type FaultClock struct {
	OffsetMS int64   `json:"offset_ms,omitempty"`
	Rate     float64 `json:"rate,omitempty"`
}

// FaultDisk is the body of PUT /v1/fault/disk: every fsync first stalls
// SyncDelayMS, or every write and fsync fails.
type FaultDisk struct {
	SyncDelayMS int64 `json:"sync_delay_ms,omitempty"`
	FailWrites  bool  `json:"fail_writes,omitempty"`
	// FreeBytes > 0: the node's disk guard sees at most this much free
	// space (a disk filling up; writes still succeed).
	FreeBytes uint64 `json:"free_bytes,omitempty"`
}

// FaultCrash is the body of PUT /v1/fault/crash: the process kills itself
// the next time it reaches the failpoint At (one of CrashPoints).
type FaultCrash struct {
	At string `json:"at,omitempty"`
}

// Crash failpoints, in the order a cross-partition transaction meets them.
const (
	// FailParticipantPrepared: a partition leader whose PREPARE applied,
	// before the coordinator is answered.
	FailParticipantPrepared = "participant-prepared"
	// FailAfterPrepare: a coordinator whose participants all prepared,
	// before it takes the decision.
	FailAfterPrepare = "after-prepare"
	// FailAfterDecision: a coordinator whose record says COMMITTED,
	// before any intent is resolved.
	FailAfterDecision = "after-decision"
)

// CrashPoints lists the failpoints PUT /v1/fault/crash can arm.
func CrashPoints() []string {
	return []string{FailAfterPrepare, FailAfterDecision, FailParticipantPrepared}
}
