// Package server is a Kintsu node: it opens the node's storage, bootstraps
// or recovers its replicas, and serves three listeners — RESP for clients,
// gRPC for peers, HTTP for operators.
//
// A client command is routed by key: slot = CRC16(key) mod 16384, the slot's
// partition is a raft group, and the command runs on that group's leader —
// locally when this node leads, otherwise forwarded over gRPC to the
// leader's node.
//
// Invariants:
//   - A write is answered +OK (or its value) only after the leader applied
//     it, i.e. after a majority committed it and this leader fsync'd it.
//   - Every write carries (origin, seq): origin is this process's random
//     incarnation id, seq is unique within it. Retries after a leader
//     change or a lost reply reuse them, so the raft state machine applies
//     the write at most once and a retry returns the original reply.
//   - When a write may or may not have applied and the deadline has passed,
//     the reply says so ("-UNCERTAIN ..."); clean failures (nothing was
//     proposed) say "-CLUSTERDOWN" or "-TRYAGAIN".
//   - Every request has a deadline (Config.RequestTimeout); no client waits
//     longer, whatever fails.
//   - Reads are linearizable (served by the leader after ReadIndex) unless
//     the test-only UnsafeStaleReads switch is on.
//   - Pipelined commands on one connection are answered in order; commands
//     on the same partition also take effect in order, commands on
//     different partitions run concurrently (as with Redis Cluster clients,
//     which split pipelines by node).
package server
