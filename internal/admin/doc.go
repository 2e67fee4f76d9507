// Package admin is a node's admin HTTP API: health and readiness, the
// status page, leadership hand-off, metrics and profiles, membership
// decisions (decommission, remove), backup and restore orchestration, and
// the fault hooks kintsu chaos drives. Kintsu ctl, kintsu chaos and the
// end-to-end tests speak to it; the JSON bodies they share live in
// internal/api.
//
// It holds no node. The node passes what it needs at construction
// (Config): its engine through a small interface, the router as a Write
// func, its view of the cluster as funcs, and the parts the fault hooks
// act on. So admin links neither the RESP edge nor the node's assembly,
// and its handlers are tested against fakes.
//
// A backup is a consistent cut (raftstore/cut.go): the node asked for one
// proposes a cut entry to every partition, in parallel, and releases them
// all once every one applied. Each partition is then streamed, as a
// backup file, from any node that applied its cut (GET
// /v1/backup/ID/partitions/P). A restore loads a partition through its
// log, in chunks, between a begin and an end entry; the entries
// themselves, and what they refuse, are the state machine's
// (internal/statemachine). The client (kintsu ctl restore) verifies the
// whole backup before it begins.
//
// Invariants:
//   - A cut round is kept only if every partition applied its cut within
//     half the lease, measured from before the first was proposed: then
//     no replica's hold ran out before the release, which the cut's
//     consistency needs. Otherwise the round is released, its snapshots
//     are dropped on every node, and a new round gets a new id.
//   - A cut is released whether or not its round is kept; should the
//     release be lost, the cut's lease ends the hold.
//   - A backup stream that fails is aborted, never ended cleanly: the
//     client sees a file without its trailer and cannot take it as whole.
//   - A restore chunk is checked before it is proposed: every record must
//     be readable by this version and every key must belong to the
//     partition, or nothing of the chunk reaches the log.
//   - Every handler's wait has a deadline: the cut request 30 s (within
//     it, a round's cuts half the lease, their release the lease, asking a
//     node to drop a cut 2 s), a restore step 30 s, each write of a backup
//     stream 30 s, a leadership hand-off 10 s, a membership change the
//     node's request timeout. A backup stream also ends when the node
//     stops (Config.Context).
//   - The fault routes exist only on a node started with
//     --fault-injection (Config.Faults set); elsewhere they answer 404.
//     Each takes effect at once, and the same call with {} heals it.
//   - Every route but /healthz, /readyz and /metrics needs an ACL user
//     allowed @admin (a verified client certificate naming it, or its
//     password as Bearer or Basic credentials), checked against the
//     node's copy of the cluster's users (kept fresh by the node, read at
//     once if it never was), so the API answers a node cut off from the
//     metadata group; none of the open routes answers data (auth.go).
//     pprof exists only with --enable-pprof.
//   - Every path, method, status code and JSON body is a contract with
//     other processes: change them only with the tools that call them.
package admin
