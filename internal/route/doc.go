// Package route sends a decoded command to the leader of its partition and
// brings back its reply: to the local engine when this node leads, else
// forwarded to the node believed to lead (a hint, refreshed from answers),
// with retries that keep each write's identity, so a retry is applied at
// most once. It also serves the forwarded calls of other nodes, and it is
// how the transaction coordinator reaches partitions (TxnCluster).
//
// Invariants:
//   - A write keeps its (origin, seq) across every retry and every node it
//     is sent to: replicas deduplicate by it, so a write is applied at
//     most once however often it is sent. The watermark sent with it tells
//     replicas which older seqs are finished.
//   - A reply says what happened: the command's own reply, or an error
//     saying whether it may have been applied (UNCERTAIN) or certainly was
//     not (CLUSTERDOWN, TRYAGAIN). A write whose attempt may have reached
//     raft is never reported as not applied.
//   - Commands proposed together form one batch: when one meets a
//     transaction's lock, it and the rest of the batch are refused in the
//     same entry, the lock is resolved, and they are retried in order, so
//     a pipeline's writes apply in the order they were sent.
//   - A read is served after a ReadIndex on the leader (linearizable), or,
//     for a READONLY connection, from the local replica; a read that meets
//     a write lock is served again once the lock is resolved, so reads
//     never see the store go backwards.
//   - Reads build bounded replies (replies.go): a forwarded answer fits a
//     transport frame or the read is refused as too large, never dropped
//     as if the leader were unreachable; reads for the edge stop when the
//     connection's reply budget is spent.
//   - Every attempt has its own deadline (attemptTimeout) within the
//     request's: a paused or partitioned node costs a retry, not a hang.
package route
