// Package api holds the shapes of Kintsu that other processes see: the
// JSON bodies of the admin HTTP API, the metadata records nodes exchange
// and keep on disk (the node registry, the partition table, a data dir's
// identity, the cluster map), the names of the crash failpoints the fault
// API arms, and the version. Tools such as kintsu ctl and kintsu chaos
// import this package rather than the node's, so they link no storage
// engine, raft or gRPC, and a node's internals can change without them.
//
// Invariants:
//   - api is a leaf: it imports nothing but the standard library (the
//     import rules in internal/lint check this).
//   - Every shape here is a compatibility contract with other processes,
//     other versions and files already written (data dirs, saved cluster
//     maps, backups). A field may be added; a JSON name, its type or its
//     meaning is never changed or removed without a new version of the
//     format that carries it.
package api
