// Package script runs Redis's Lua scripts (EVAL, EVALSHA, EVAL_RO) on a
// maintained pure-Go Lua VM (gopher-lua), with Redis's redis.call,
// redis.pcall and error semantics.
//
// A script runs once, on the leader of the partition its keys live in,
// against a frozen view of that partition (txn.Speculation): its writes are
// kept aside, and what it did is replicated as effects (txn's EFFECTS
// entry), applied only if no key it touched changed meanwhile; otherwise
// it runs again. Replicas never run scripts.
//
// Invariants:
//   - A script's effects are applied whole or not at all, at one point of
//     the log, so a script is atomic and serializable with every other
//     command, as in Redis. A script that raises an error after writing
//     keeps its writes, as in Redis; one stopped by its limits (time,
//     memory, SCRIPT KILL) changes nothing.
//   - A script touches only keys of its own partition: redis.call with a
//     key elsewhere raises an error, as Redis Cluster's does. A script
//     whose declared keys span partitions runs instead on the node that
//     received it, against copies of those keys, and what it wrote is
//     committed as one transaction (cross.go, RunOver); it may touch only
//     its declared keys.
//   - A script cannot reach the host: no os, io, package, debug or load
//     functions; globals are read-only, so nothing carries from one run to
//     the next (each run has its own VM).
//   - Every run is bounded: by its deadline (the request's, at most
//     MaxRunTime), by the heap it may grow (MaxHeapGrowth), by the size of
//     its reply, and by the number that run at once on a node.
package script
