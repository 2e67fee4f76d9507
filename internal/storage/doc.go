// Package storage owns the on-disk layout of a Kintsu node: one Pebble
// database holding, for every partition (raft group) the node hosts, its raft
// log, hard state, truncation point, applied state, user data and dedupe
// table, each under its own key prefix so that a whole replica can be
// snapshotted or removed with range operations.
//
// Layout (group = 8-byte big-endian raft group id):
//
//	0x00 "ident"                 node identity (cluster id, node id, bootstrap config)
//	0x01 group 'l' index(8)      raft log entry
//	0x01 group 'h'               raft HardState
//	0x01 group 't'               truncated state: index and term of the last entry removed from the log
//	0x01 group 'a'               applied state: applied index/term, ConfState, key count
//	0x01 group 'd'               replica descriptor (replica id -> node id)
//	0x02 group userkey           user data
//	0x03 group origin(8) seq(8)  dedupe table: the reply of an applied write
//	0x03 group origin(8) 0xff..  (seq = max) the origin's watermark
//
// Invariants:
//   - Nothing is acknowledged to a client before the log entry that carries it
//     is in a batch committed with Sync; Pebble's single WAL orders all writes,
//     so a synced commit also makes every earlier unsynced commit durable.
//   - Applying an entry writes its effects and the new applied index in one
//     batch, so after a crash an entry is either fully applied or re-applied
//     from the log, never half applied or applied twice.
//   - A LogStore's in-memory view (first, last, terms, cached tail) always
//     equals what its last committed batch put on disk: the engine updates it
//     only for batches it then commits, and a failed commit is fatal.
//   - Nothing damaged is served or trusted silently: Pebble's errors reach
//     the node's log (events.go); a corrupt file that holds only some
//     replicas' replicated state is quarantined: those replicas are
//     recorded in QUARANTINE, tombstoned and excised, and no restart loads
//     them again (quarantine.go); any other corrupt file is recorded in
//     CORRUPT and refuses every later start (corrupt.go); a damaged WAL record that had
//     been synced refuses the start, a torn unsynced tail is dropped with a
//     WARN (wal.go); RAFTMARK witnesses, outside Pebble, the hard states
//     that synced writes made durable (mark.go).
package storage
