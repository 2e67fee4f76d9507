// Package transport carries traffic between Kintsu nodes over gRPC: one
// long-lived client stream per peer for batched raft messages, a streaming
// RPC per raft snapshot (on a connection of its own per peer), one long-lived stream per peer carrying the
// requests forwarded to partition leaders many to a frame (calls.go), and
// a unary call for the rest (cluster map, membership, placement).
//
// Frames are plain bytes (a pass-through gRPC codec); this package encodes
// raft envelopes, the server package encodes forwarded requests.
//
// Invariants:
//   - Send never blocks the engine loop: each peer has a bounded queue and
//     messages beyond it are dropped (raft retransmits what matters).
//   - A broken peer stream is reported to the engine (ReportUnreachable)
//     and re-dialed with capped backoff; nothing waits on it without a
//     deadline. A connection that was up and broke is reported at once
//     (PeerDown), so followers of a crashed leader need not wait out the
//     election timeout.
//   - Every size read off the wire is bounded before allocation, and so
//     is what a stranger can hold open: connections on the peer port,
//     the time to finish a handshake, streams per connection
//     (connlimit.go).
//   - With TLS, a peer is the node its verified certificate names, never
//     the node its frames claim; every stream and call carries the cluster
//     id and one of another cluster is refused (auth.go).
//   - A snapshot's reading and sending, and its decoding and staging on
//     the receiver, run on OS threads of their own at a lower CPU
//     priority that serve no other goroutine, ever (lowprio_linux.go): a
//     move yields the CPU to the foreground, never the reverse.
package transport
