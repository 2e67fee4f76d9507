// Package raftstore is a node's replication engine: it hosts many raft
// groups (one per partition, plus the cluster metadata group) on
// go.etcd.io/raft/v3 RawNodes and drives all of them from one event loop.
//
// Each cycle of the loop, in this order:
//
//  1. takes everything queued since the last cycle: ticks, raft messages
//     from peers, incoming snapshots, client proposals and read requests;
//     proposals are batched into one raft entry per group (cut at
//     MaxEntryBytes), reads into one ReadIndex request per group;
//  2. gathers Ready from every group that has one, and applies at once —
//     answering their proposers — the committed entries that are already
//     on disk exactly as committed (fsync'd in an earlier cycle and not
//     overwritten by this Ready's entries);
//  3. sends the messages of groups it leads (coalesced per destination
//     node), then writes every group's new entries, hard state and snapshot
//     into ONE Pebble batch and commits it with ONE fsync (group commit
//     across partitions);
//  4. sends the other groups' messages;
//  5. applies committed entries of every group in one more batch — effects,
//     dedupe records and applied index together — then answers the waiting
//     proposers and releases reads whose read index is now applied;
//  6. calls Advance on every group, and truncates logs that grew long.
//
// Invariants:
//   - A proposer is answered only after its entry was applied, and an entry
//     is applied only once it is committed by a majority and fsync'd
//     locally (in an earlier cycle, or in step 3 before step 5). An applied
//     index may thus become durable before the hard state that records the
//     commit; on restart the commit index is raised to the applied index.
//   - A follower's or candidate's messages leave only after the state they
//     announce is durable (step 3 precedes step 4), so a vote or an append
//     acknowledgement is never forgotten by a crash. A leader's messages may
//     leave before its fsync (its term and vote are fixed while it leads):
//     raft counts the leader's own entries toward commit only after
//     Advance, i.e. after its fsync, so its proposers are answered (step 2
//     or 5) only after its own fsync and a quorum's acknowledgements.
//   - A write is applied at most once per (origin, seq): the dedupe table
//     stores its reply, and a command whose seq is below its origin's
//     watermark is refused, so a retry through another leader returns the
//     original reply instead of applying again.
//   - A linearizable read is served only after the local replica, while
//     leader, obtained a read index from a quorum (ReadIndex) and applied up
//     to it — or, with Config.ReadLeases, while it holds a lease earned
//     from a round every voter answered, at its commit index of its own
//     term (lease.go states why no other leader can exist meanwhile).
//     Config.UnsafeStaleReads and UnsafeLongLeases (tests only) break this
//     on purpose.
//   - Every wait has a deadline: callers pass a context, and a group that
//     loses its leader fails its waiting proposers and readers at once with
//     a retryable error rather than leaving them to time out.
//   - Only the loop goroutine touches RawNodes and LogStores; other
//     goroutines talk to it through the inbox and read published status
//     and the published set of hosted groups.
//   - Replicas move between nodes by raft conf changes that carry the new
//     descriptor; ids are never reused, removed replicas are destroyed and
//     tombstoned, and a replica is created only for a leader adding it
//     (membership.go states these invariants in full).
//   - A disk that fills or hangs fences the node instead of leaving a
//     zombie: below its reserve the node refuses proposals and hands its
//     leaderships away; a cycle stuck past StallTimeout fences it
//     (disk.go). A start whose raft state is behind what the node had
//     synced is refused (mark.go).
//   - A replica whose data storage found damaged is condemned and leaves
//     service at once, while the node's other replicas go on; its id is
//     never hosted again, and no replica of its group is created here
//     until its damaged state is gone (quarantine.go).
//
// What a peer's message may do. Every peer, authenticated or not, may be
// buggy or misconfigured, so nothing a frame says is trusted beyond what
// raft needs (validate.go enforces it, before raft sees the message):
//   - No message panics the node or stops its loop: only the kinds peers
//     exchange (appends, heartbeats, votes and their answers, a leader's
//     MsgTimeoutNow) reach raft, well-formed (entries numbered after the
//     message's index, well-formed conf changes, a commit index the local
//     log holds, acknowledgements of entries the leader has, read
//     confirmations it asked for, snapshots only through the snapshot
//     stream, with metadata). A committed conf change raft cannot apply is
//     skipped alike on every replica.
//   - A leader's message counts only from the leader of its term: in a
//     term that has a leader, and in a later term while this replica's
//     leader was heard within an election timeout (as CheckQuorum's lease
//     for votes), another replica's claim to lead is refused.
//   - No term is taken that raft cannot live with: a term above MaxTerm
//     (far below overflow) or more than MaxTermJump above the replica's own
//     is refused, so it is never persisted; a saved term above MaxTerm (left
//     by older versions) refuses the start with an error naming the group.
//   - A message counts only if its sender replica is in the replica's
//     descriptor and lives on the node that sent it (the transport names
//     the node). The one exception is a member added after the replica's
//     last applied change: a leader's or candidate's message from a replica
//     id at or above the descriptor's NextID, at or above the local term,
//     from a node that holds no replica in the descriptor. It adds a
//     mapping, never replaces one.
//   - No peer's word destroys a replica. A removal notice, or a leader
//     writing to a newer replica id on this node, only makes the replica
//     ask the nodes it knows, with a fresh nonce, about once a second for
//     a minute. It is destroyed when its own applied conf change removes
//     it, when the nodes of a majority of the voters it knows answer its
//     question (with its nonce, which nobody else has seen) that they
//     applied its removal — an empty replica, which holds nothing, needs
//     the nodes of its descriptor — or when the control plane's check of
//     the group's leader says so (DestroyIfRemoved). A replica so judged
//     is destroyed at the end of the next cycle, whether or not any
//     replica had work in it: an idle node may never have a Ready again.
//   - Creating a replica for a leader is bounded: at most
//     maxEmptyReplicas empty replicas wait for their first snapshot.
//   - Refusals are logged at WARN, at most once a second per kind.
//
// Raft is not Byzantine-tolerant, and neither is this: a member that lies
// in its own name with well-formed messages (an append in a new term when
// no leader is alive, an acknowledgement of entries it lacks) can still
// disturb its group. Validation keeps such a member from panicking nodes,
// destroying replicas, or speaking for other replicas; keeping strangers
// from using a member's name is the transport's certificates.
package raftstore
