// Package scalesim runs Kintsu's placement at a scale no test machine
// can host: thousands of simulated nodes and up to 100,000 partitions, on
// a simulated clock, with no I/O. What runs is the real decision code —
// liveness (control.LivenessOf), the ring's placement (ring.PlaceAt, as
// control.PartitionTargets calls it) and the driver's plan for a round
// (control.PlanRound with control.DefaultLimits) — and what is simulated
// is only what raft and the network would do with the driver's steps:
// a learner catches up after a fixed number of rounds, a group whose
// leader died elects its first live voter while a majority lives, a
// node heartbeats every round while it runs.
//
// A scenario starts from the converged placement of its membership,
// changes it (a node joins, dies or is decommissioned), and runs rounds
// until the driver plans nothing and every group holds its target. It
// reports the rounds that took, the replicas created against the
// optimum (the joining node's fair share R·P/N, or the replicas the
// leaving node held, each of which must be rebuilt), the balance of
// replicas and leaders at the end, and the driver's CPU per round (the
// decision code only, timed on the real clock).
//
// Invariants the simulation checks as it runs, and fails on:
//   - no group ever has fewer live voters than a majority of R because of
//     a step (a replica is added before one is removed);
//   - every step the driver plans is one the group's leader can apply
//     (no promotion of a node that is not a learner, no removal of a
//     node that holds nothing);
//   - a scenario converges within its round limit.
//
// A growth scenario (RunGrow, grow.go) runs the driver's split choice
// (control.PlanSplit) too: every partition of a cluster over equal slot
// ranges takes a bulk load of several split sizes, splits one at a time
// as the driver splits, and the right halves are placed by their first
// slot. It reports the splits, the rounds they took, and the replicas
// created to move the new halves.
//
// Runs are deterministic: the same Config gives the same report, apart
// from the CPU timings.
package scalesim
