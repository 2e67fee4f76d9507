// Package server is a Kintsu node's assembly: it opens the node's storage,
// checks its identity against the flags, bootstraps or recovers its
// replicas, wires the packages that do the work, and serves three
// listeners — RESP for clients (edge), gRPC for peers (transport, with
// the peer-call mux in peer.go), HTTP for operators (admin). What a
// request goes through is described in edge, route, statemachine and txn;
// what keeps the cluster in shape, in control.
//
// Invariants:
//   - The identity is written last at bootstrap: a crash before it leaves a
//     data dir that bootstraps again, identically.
//   - A data dir that contradicts the flags, or an empty one of a node that
//     ran before (lostdisk.go), is refused at start, never served.
//   - The router is given the transaction resolver before the node serves;
//     every background loop runs on the node's context and stops with it.
//   - Health (health.go) is judged on demand from what the node holds,
//     with no network call, so /healthz and /readyz answer at once even
//     when every peer is silent. A node told it was removed closes its
//     client port and connections, and stays not ready.
//   - A corrupt data file takes out only the replicas whose keys it holds
//     when it can (quarantine.go: at most a few, each with peers that keep
//     a quorum), and the node asks their leaders to replace them; any
//     other corruption, or a quarantine that cannot finish, fences the
//     whole node and refuses later starts (disk.go).
//   - Stop stops accepting clients, hands leaderships to up-to-date
//     followers, finishes in-flight requests within a deadline, then
//     stops the loops and the engine, and closes storage last.
package server
