// Package ring decides where data lives: key -> slot -> partition ->
// replica nodes. It is pure: no I/O, no goroutines, no clock, no global
// state, so every node that knows the membership computes the same answer
// alone, and tests can check it exhaustively.
//
// Keys hash to one of SlotCount slots exactly as in Redis Cluster (CRC16,
// with hash tags), so cluster-aware Redis clients route correctly. The slots
// form a ring cut into P partitions of equal contiguous ranges; P is fixed
// when the cluster is bootstrapped. Nodes find a slot's partition in a
// SlotTable (a lookup, not arithmetic), so that ranges can later split
// and merge. Each node owns V tokens on a 64-bit ring,
// hashed from its ID alone. A partition's preference list starts at its
// arc's first slot (or at its family's position, FamilyPos, so that the
// halves of a split prefer the same nodes) and walks clockwise over the
// tokens, taking the first node of each zone and then the other nodes in
// order (Dynamo-style); its replicas are the first R of that list,
// corrected by bounded loads
// (Mirrokni, Thorup and Zadimoghaddam) so that no node is overloaded.
//
// Invariants, for Place(cfg, nodes) with N nodes and R' = min(R, N):
//
//   - Determinism: the placement depends only on cfg and the set of nodes,
//     not on their order or on anything else.
//   - Shape: every partition has R' distinct replicas, all members; the
//     first is its preferred leader.
//   - Balance: no node holds more than ceil((1+ε)·P·R'/N) replicas or leads
//     more than ceil((1+ε)·P/N) partitions.
//   - Fewest corrections: the placement differs from the preference lists
//     in exactly the replicas by which the lists exceed the cap, save for a
//     rare swap when every node outside a partition is full. Call that
//     number D.
//   - Movement, counting a move for each replica created on a node that did
//     not hold it (Moves): when a node leaves, each partition it held gains
//     one replacement and there are at most D(before)+D(after) other moves;
//     when no node exceeds the cap before or after, there are none. When a
//     node joins, it takes at most the cap, and there are at most
//     D(before)+D(after) other moves. Leadership changes are not moves.
//
// Strict movement (only the leaving node's replicas ever move) and a load
// cap cannot both hold for every membership: strictness forces each
// partition to choose by a fixed ranking of all possible nodes, and fixed
// rankings pile partitions onto the same node for some memberships, which
// the cap forbids. So the cap is met with the fewest possible departures
// from the strict preference lists, and only those departures can move
// beyond the strict minimum. In random memberships most changes move no
// replica beyond the strict minimum, and the rest move a few.
package ring
