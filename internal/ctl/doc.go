// Package ctl is `kintsu ctl`, the operator's command line: it asks one
// node's admin API (GET /v1/status) and prints what it says as tables.
// Fetching is the only I/O; rendering and key location are pure functions
// of a status, so they are tested without a cluster.
//
// Invariants:
//   - Every request has a deadline; an unreachable node is a clear error
//     naming the address, never a hang.
//   - What is printed is one node's view at one moment: leaders may have
//     moved since, and the output says which node answered.
package ctl
