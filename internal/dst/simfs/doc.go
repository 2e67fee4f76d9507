// Package simfs is the deterministic simulator's disk: an in-memory
// vfs.FS that Pebble runs on, whose crash is a power loss, and whose faults
// are armed by the simulator at points of its choosing.
//
// # Invariants
//
//   - Durable state is exactly what a power loss keeps: a file's bytes up
//     to its last Sync (or SyncData), and a directory's entries as of its
//     last Sync. This matches Pebble's own vfs.NewCrashableMem with
//     CrashClone(CrashCloneCfg{}) (the differential test holds us to it):
//     a file created and synced in a directory never synced is gone; a
//     rename or remove not followed by a sync of the directory is undone.
//     SyncTo promises nothing (as in MemFS and sync_file_range).
//   - Crash returns a new FS holding the durable state (plus, when asked,
//     a seeded torn tail), sharing no memory with the old one. The old FS
//     keeps working for the engine abandoned on it (so that it can be
//     closed without tripping Pebble's fatal paths) but can never reach
//     the clone.
//   - A torn tail never touches synced bytes: it keeps a prefix, in offset
//     order, of a file's unsynced bytes, and corruption lands only on
//     kept unsynced bytes. A synced record is never damaged, so Pebble
//     (at FormatWALSyncChunks) must tolerate every torn tail.
//   - Same operations and same seed give a byte-identical clone and the
//     same Hash: no goroutines, no clock, no map order in any result
//     (directories are walked and listed in sorted name order), all
//     randomness from the caller's *rand.Rand.
//   - Sync costs O(bytes written since the last sync), not O(file size):
//     a file remembers its synced length, and only the pre-images of the
//     4 KiB blocks written below that length since the last sync (WAL
//     recycling overwrites an old log from offset 0). The durable image
//     is assembled at Crash and Hash, not at Sync.
//   - Faults change only what the simulator armed, and only until it
//     disarms them: FailNextSyncs fails the next n syncs of WAL files
//     (*.log), SetFull fails writes and creations with an error wrapping
//     syscall.ENOSPC, LazySync makes WAL syncs lie (a planted bug), and
//     SyncAll really syncs every file and directory.
//   - One mutex guards everything: Pebble's goroutines (WAL flusher,
//     flushes, compactions) call in concurrently.
//
// # Why WAL syncs only
//
// A WAL sync happens in step with the engine: a Sync commit waits for it,
// and a memtable rotation closes (and syncs) the old WAL inside a commit.
// Flushes and compactions sync sstables and the MANIFEST on Pebble's own
// goroutines, at times that depend on the host's scheduling, so a
// "fail the next sync" aimed at them would fire at a nondeterministic
// point. FailNextSyncs and LazySync therefore look only at *.log files.
//
// # What stays nondeterministic (the simulator's part)
//
// A NoSync commit returns before Pebble's WAL flusher has written its
// bytes; they reach the FS a little later. A crash that keeps only synced
// bytes does not care, but a torn tail, SyncAll or SetFull taken while
// the flusher is still writing see a timing-dependent set of bytes.
// Before those, the simulator drains the flusher without syncing:
// fs.Drain(func() error { return db.LogData(nil, pebble.Sync) }) makes
// every committed byte reach the FS, and leaves it unsynced. A background flush
// or compaction in progress at a crash likewise makes the physical layout
// (and Hash) timing-dependent; the simulator makes flushes events
// (db.Flush) and hashes at quiescent points.
package simfs
