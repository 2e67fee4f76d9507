// Package raftlog is a node's raft log: one append-only, segmented log
// shared by every raft group the node hosts, holding their entries, hard
// states and compaction points, outside the Pebble LSM that holds the
// state machines. A cycle of the engine writes one record (one write call)
// and at most one fsync, whatever the number of groups it touches.
// It works on any vfs.FS, so the simulator's disk (internal/dst/simfs) can
// crash it.
//
// # On disk
//
// A directory of segment files named by a 32-bit sequence number,
// 00000001.log, 00000002.log, ..., plus a LOCK file. A segment is a
// sequence of records, each a 16-byte header and a payload:
//
//	u32 payload length (at most MaxRecordSize)
//	u32 synced: bytes of this segment that were durable when the record was written
//	u32 crc32c of the payload
//	u32 crc32c of the segment's sequence number and the 12 bytes above
//
// A payload is a checkpoint ('C') or a batch ('B'); integers are uvarints.
// A checkpoint lists every group (id, hard state term/vote/commit,
// compacted index and term, last index and term). A batch lists
// operations in order, each a kind byte and a group id: append 'a' (first
// index, count, then per entry its term and the length-prefixed
// marshaled raftpb.Entry), hard state 'h' (term, vote, commit), compact
// 'c' (index, term), reset 'r' (index, term: the log restarts after a
// snapshot), drop 'd'.
//
// # Invariants
//
//   - A batch is one record: after a crash all of it or none of it is
//     visible. A synced commit makes every earlier commit durable: a
//     segment is fsynced before the next one is started, so only the
//     newest segment can hold unsynced bytes.
//   - A segment is created and the directory fsynced before anything is
//     written to it; a crash never loses a segment holding synced records.
//   - Every segment that holds records starts with a checkpoint of the
//     whole index as the previous segment left it, written alone and
//     fsynced when the segment is created (at rotation and at Open), so
//     every later header of the segment claims it synced. Recovery starts
//     from the first segment's checkpoint and checks every later one
//     against its replay, so a segment's deletion loses no hard state or
//     compaction point, and a replay that diverges is reported as
//     corruption. When the newest segment is the only one and not the
//     first ever (GC deleted the others, after a synced commit into it),
//     a damaged checkpoint is corruption, never a torn tail to cut.
//   - Segments are deleted oldest first, and only right after a synced
//     commit, when no group holds an entry in them (every group compacted
//     past them, reset or was dropped, durably). The surviving segments are
//     contiguous. Segments older than a gap are deletions a crash undid:
//     recovery removes them, but only after the run after the gap replayed
//     whole; it refuses (and deletes nothing) when that run holds no
//     checkpoint (a stray or damaged newest file is no run start) or a
//     group misses entries that were in a lost segment.
//   - Recovery refuses (ErrCorrupt) anything that may be synced data: a bad
//     record in any segment but the newest, a verified record that
//     contradicts the log, and a bad record in the newest segment when a
//     later whole record (header and payload checksums, plausible length)
//     claims by its synced field, which must lie between the bad record
//     and itself, that the bad bytes had been synced. Otherwise the newest segment's tail after its last
//     valid record is a torn, unsynced write: it is cut off (rewritten
//     through a synced temporary file, vfs having no truncate) with a WARN.
//   - No on-disk bytes can make recovery panic or allocate more than the
//     segment's size: lengths and counts are checked against what remains
//     before anything is allocated.
//   - The in-memory index equals the replay of the committed records:
//     Commit validates a copy of a batch against the index before writing,
//     with the same checks apply makes (so a written record is never
//     refused by apply, which would fail every later Open), and Open and
//     Commit apply records through the same code. A reset never moves a
//     group's compaction point backwards and leaves room for an entry. A
//     failed write or fsync sticks (every later Commit fails) since what
//     reached the disk is then unknown; Open finds out. A refusal that
//     wrote nothing (an invalid batch, too many groups, sequence numbers
//     exhausted, a segment that would pass 4 GiB) does not stick.
//   - A checkpoint fits in a record: Commit refuses a batch that would
//     give the log more groups than MaxRecordSize holds at 80 bytes a
//     group (about 3.3 million).
//
// # Memory
//
// The index costs 24 bytes per retained entry (term, segment, offset,
// size, crc32c), plus a small per-group header; reads of entries older
// than the tail cache go to the segment file (one read per run of adjacent
// entries) and are checked against the crc in the index. The tail cache
// holds at most Options.CacheEntries entries and about Options.CacheBytes
// of entry data per group; Open starts with empty caches. Recovery reads
// one segment at a time into memory.
//
// # A lagging group
//
// Segments are deleted oldest first, so a group that never compacts keeps
// every segment written since its oldest retained entry, even if all
// other groups compacted long ago: its cost is the whole log volume of
// the node since then, not its own. Nothing bounds it inside this
// package; PinnedBy names the group holding the oldest segment back (and
// how many segments and bytes it keeps) so that the node can act: compact
// it, catch it up with a snapshot (Reset), or drop it.
//
// # Known limits
//
//   - Damage to synced bytes at the very end of the newest segment, with
//     no later record to witness the sync, is indistinguishable from a torn
//     write and is cut off (as in Pebble's WAL). A segment's checkpoint is
//     exempt when the segment is alone (see above); with older segments
//     beside it, cutting it loses nothing they do not hold.
//   - Creating a segment costs an fsync of its checkpoint, at every
//     rotation and every Open.
//   - One mutex serialises reads and commits; a Commit holds it across its
//     fsync.
package raftlog
