// Package control holds the loops that keep a Kintsu cluster in shape,
// and the peer calls they serve. Every node runs all of them; each acts
// only where it should (on the metadata leader, on a partition's leader,
// on this node's own leaderships):
//
//   - Map (clustermap.go) keeps the node's cluster map: the node registry
//     and partition table of the metadata group, read from the local
//     metadata replica or asked of a metadata node, published atomically
//     and saved for the next start. Registry reads the registry from it
//     with each node's liveness derived.
//   - Heartbeat (liveness.go) writes this node's heartbeat into the
//     metadata every interval; LivenessOf derives up, suspect and dead
//     from a heartbeat's age on the reader's clock.
//   - Members (members.go) records joins, decommissions and removals;
//     Join is the joining node's side.
//   - Placement (placement.go) turns membership and liveness into replica
//     moves, one raft membership change at a time.
//   - Balancer (balance.go) hands this node's leaderships to replica
//     nodes that lead fewer partitions.
//   - Hints (hints.go) asks peers who leads the groups this node knows no
//     leader of, for the router.
//   - Judge (health.go) decides from facts alone whether the node is live
//     (engine running, loop coming round) and ready (also: not removed,
//     every partition has a leader that had a quorum lately), and says why
//     not.
//   - Expiry (expire.go) deletes expired keys on the partitions this node
//     leads; Sweeper (sweep.go) resolves what dead transaction and backup
//     coordinators left there.
//   - Layout (layout.go) is the cluster's first shape: its identity and
//     the initial placement, a pure function of the flags, so every
//     initial node computes the same without talking to the others.
//
// It holds no node. Each loop is built from a Config of small interfaces
// (the engine's methods it calls, *raftstore.Engine satisfying them) and
// funcs (the router's Write and leader lookups, the registry), and runs
// in Run(ctx) until ctx ends. So the node's assembly, the RESP edge and
// the admin API stay out of it, and every loop runs against fakes in
// tests.
//
// Invariants:
//   - Liveness is advice for placement, clients and operators. It never
//     decides what is committed or who leads (raft does), so a wrong
//     reading (a skewed clock, a slow metadata group) costs at most a
//     needless or a late repair, never an acknowledged write.
//   - The map is a hint for routing and reporting. Who holds a partition
//     is what its raft group's descriptor says; the placement driver
//     records each change in the partition table only after raft applied
//     it, and a node hosting a replica trusts its replica over the map.
//   - At most one membership step per group per round, each one raft
//     conf change applied whole, and a replica is added before one is
//     removed: a group never has fewer than R voters because of a move,
//     and at most a few groups gain a replica at once. The plan is
//     recomputed each round from what raft says, so a crash of the
//     driver, the source or the target leaves nothing to resume.
//   - A node id names one life of one machine: a record that ever
//     heartbeated cannot be joined again. Removed is final: a removed id
//     never rejoins, heartbeats nothing, and placement never puts a
//     replica on it. Decommission only marks a node draining; it is
//     removed once it holds no replica, so redundancy never drops below R
//     while a node leaves.
//   - A node only gives its own leaderships away, one per round, and only
//     to a caught-up replica.
//   - What a loop deletes or resolves goes through the log and the
//     resolver, never around them: an expired key is deleted only if it
//     has still expired when the entry applies, and a left-behind
//     transaction is settled by txn.Resolver, which only finishes decided
//     transactions and aborts those whose heartbeat stood still, so a
//     leader's stale view costs a wasted entry, not data.
//   - Peer method names and bodies (Method*) are a wire format between
//     nodes: never reuse or change one in place.
package control
