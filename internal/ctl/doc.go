// Package ctl is `kintsu ctl`, the operator's command line: it asks one
// node's admin API (GET /v1/status) and prints what it says as tables;
// `status` also asks every node's GET /readyz at once, so a paused or
// unready node shows as such whatever the answering node believes.
// Fetching and probing are the only I/O; rendering and key location are pure functions
// of a status, so they are tested without a cluster.
//
// Invariants:
//   - Every request has a deadline; an unreachable node is a clear error
//     naming the address, never a hang.
//   - What is printed is one node's view at one moment: leaders may have
//     moved since, and the output says which node answered.
//   - The cluster is never called ready while the answering node is not,
//     or while some partition has no leader with a quorum.
package ctl
