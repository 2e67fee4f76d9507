// Package dst is Kintsu's deterministic simulator: several real
// replication engines (internal/raftstore over Pebble) run in one process,
// stepped by one goroutine from one seed, over a simulated network, disk
// and clock. A run draws its own cluster shape and fault mix from its seed
// (swarm testing), injects faults for a while, then heals everything and
// demands that the cluster converge. Any run replays exactly from its seed.
//
// What is simulated:
//   - time: one event heap ordered by (simulated time, insertion order);
//     time jumps to the next event. Each node reads its own manual clock
//     (clock.NewManual), which the simulator may skew.
//   - the network: per-message delay (so messages reorder), loss,
//     duplication, clogged links, symmetric and one-way partitions,
//     isolated nodes and FoundationDB's swizzle-clog; snapshots are
//     streamed as one delayed event.
//   - the disk (simfs): a crash is a power loss — every byte not fsync'd is
//     gone — often with a torn, sometimes corrupted, tail of the WAL's
//     unsynced bytes; failing fsyncs, a full disk and the disk guard's
//     NOSPACE are armed only between engine cycles.
//   - nodes: power cuts of one node or of all at once (also right after a
//     node voted or took in a snapshot), restarts, leadership transfers,
//     replica moves (learner, promotion, removal), and the control plane's
//     leader hints that drop replicas removed behind their back.
//
// What is checked (check.go, workload.go): at every step, at most one
// leader per group and term, the same commands at the same log index on
// every replica, commit and applied indexes that never go back within an
// incarnation, and no published term lost across a restart; during the
// run, reads that see every write acknowledged before them, and registers
// linearizable (porcupine); at the end, every acknowledged write present
// and nothing invented, counters within their acknowledged and unknown
// increments, a leader for every group that every member follows, every
// member caught up, removed replicas gone, and identical replicas. A run
// is bounded (steps, pending events, and steps per simulated time: a
// storm of messages is a failure, never a hang).
//
// Invariants of the simulator itself:
//   - One goroutine decides everything. Randomness comes only from the
//     seed: the simulator's own PCG, and crypto/rand (raft's election
//     jitter, the engine's nonces) replaced for the run by a stream seeded
//     from it — so one simulation runs in a process at a time (Run holds a
//     lock).
//   - Pebble's own goroutines never decide anything the trace sees: a
//     commit returns with its effects in the memtable, faults are armed
//     between engine cycles, and the memtable is large enough that flushes
//     happen only when the simulator asks.
//   - The trace hash mixes every event and every replica's (term, commit,
//     leader, applied) after every step: two runs of a seed agree on it
//     step by step, or the run is not deterministic (a failure of its own).
package dst
