// Package edge is Kintsu's RESP front end: it accepts Redis clients,
// reads pipelined commands, decodes each once (command.Decode), passes it
// through one gate sequence, and writes the replies in order. It is the
// only place that turns Kintsu's answers into Redis's error replies
// (errors.go), and it holds no replication, storage or network-peer code:
// it hands decoded commands to a Router (single partition) or to
// Transactions (several), both interfaces.
//
// The gate sequence, for every command of every connection:
//  1. decode: unknown command or wrong arity is refused (inside MULTI it
//     also makes EXEC refuse the transaction, as Redis does);
//  2. authenticate and authorize (auth.go): before AUTH, when the default
//     user needs a password, every command but AUTH, HELLO and QUIT gets
//     NOAUTH; a command the connection's user may not run, or whose keys
//     it may not touch, gets NOPERM (inside MULTI it makes EXEC refuse the
//     transaction; at EXEC the queued commands are checked again);
//  3. MULTI: inside a transaction the command is queued, not run;
//  4. redirect: a cluster-aware connection gets -MOVED for a
//     single-partition command this node does not lead (after queueing:
//     a Kintsu transaction may span partitions, so it is never redirected);
//  5. run: connection commands here; data commands in per-partition lanes
//     or, when their keys span partitions, as one transaction.
//
// Invariants:
//   - Replies leave in the order the commands came, whatever lanes ran
//     them concurrently; a lane of one partition runs in order.
//   - Every command's arity is checked before any argument is indexed.
//   - Memory per connection is bounded: a pipeline batch (maxPipeline,
//     maxPipelineBytes), replies held at once (execChunk commands, and
//     about replyChunkBytes: reads past it run after the replies before
//     them are written), a transaction's queue and watches (maxQueued,
//     maxQueuedBytes, maxWatched), and a client that does not read its
//     replies is cut off (writeTimeout, the output buffer limits).
//   - Memory per node is bounded too (limits.go): connections
//     (maxclients), unwritten replies of all clients (maxmemory-clients),
//     buffers of half-received commands (the query buffer budget), idle
//     and half-sent commands (timeouts), and writes over maxmemory are
//     refused with Redis's -OOM. A limit closes a client, never the node.
//   - Every request has a deadline (Config.RequestTimeout): a failure is
//     a fast, clear error saying whether anything may have been applied.
//   - Users and permissions are the cluster's (the metadata group's): a
//     change committed at time t is enforced on every node, and a deleted
//     user's connections are closed, by t + the refresh interval + one
//     request timeout; AUTH sees every change committed before it began
//     (auth.go). A node that has not read the users yet lets no
//     connection in as the default user.
//   - The topology answered to cluster-aware clients is a hint: following
//     a stale one costs a forward or a redirect, never a wrong reply.
package edge
