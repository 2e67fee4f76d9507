// Package faultfs is the chaos suite's disk: a vfs.FS wrapper that makes
// Pebble's storage stall, fail, or (on purpose) lie about fsync, on command.
//
// # Invariants
//
//   - The zero Fault with zero Options is transparent: every call goes to
//     the inner FS unchanged, only through one more method call.
//   - Set takes effect at once, for files opened before it too: every call
//     reads the fault in force, and a Set wakes syncs sleeping on the old
//     SyncDelay (they then wait out whatever delay is now set, counted from
//     when they started). Nothing holds a lock while sleeping.
//   - Reads never fail. FailWrites fails every call that would change the
//     disk (see Fault.FailWrites); Lock, Open, OpenDir and Close pass.
//   - Options.LazyWAL exists only to plant the "ack-before-fsync" bug the
//     chaos suite must catch. It must never be on in production.
//
// # LazyWAL
//
// Pebble v2.1.7 names a WAL file "NNNNNN.log", and a WAL failover segment
// "NNNNNN-III.log" (pebble wal/wal.go:54-60); faultfs recognises both with
// wal.ParseLogFilename, and the raft log's segments ("%08x.log", package
// raftlog, which also writes only with Write and Sync) with
// raftlog.IsSegmentName. WAL files are opened with Create, or with
// ReuseForWrite when Pebble recycles an old WAL
// (wal/standalone_manager.go:150,153); both, and OpenReadWrite, give lazy
// files. Pebble writes a WAL through vfs.NewSyncingFile and
// record.LogWriter, which call only Write, Sync/SyncData, SyncTo and
// Preallocate (record/log_writer.go:787,808,814; vfs/syncing_file.go), never
// WriteAt. Lazy files rely on that:
//
//   - Write appends to an in-memory buffer; the buffer is written to the
//     inner file with one sequential Write, then synced, every LazyWAL, when
//     more than 64 MiB is held, on the file's Close and on FS.Close. Bytes
//     thus land in order at the offsets they would have had. A write-through
//     under FailWrites fails and keeps the bytes (lost if it was a Close).
//   - Sync and SyncData succeed without persisting; SyncTo reports
//     fullSync=false. Preallocate passes through: it reserves space without
//     changing the size (FALLOC_FL_KEEP_SIZE), so it cannot move held bytes.
//   - Stat and reads see only what reached the inner file. Pebble stats a
//     WAL only right after ReuseForWrite, before writing it
//     (wal/standalone_manager.go:183), and for size metrics and obsolete-file
//     accounting (wal/reader.go:64,104); it reads WALs only to replay them at
//     Open. DB.Checkpoint also copies WALs and would miss held bytes; kintsu
//     does not use it.
//
// So a SIGKILL loses up to one LazyWAL interval of acknowledged writes,
// like a disk that acknowledges fsync from a volatile cache.
//
// # What Pebble v2.1.7 does on injected errors
//
// Established by the tests in this package against storage.Open, whose
// Logger.Fatalf panics; references are to pebble v2.1.7.
//
//  1. A Sync commit whose WAL write or fsync fails does not return an error.
//     The error reaches the commit (record/log_writer.go:798) after the batch
//     was applied to the memtable and published (commit.go:327-343), and
//     DB.Apply calls Logger.Fatalf("pebble: fatal commit error: %v")
//     (db.go:882-886). Under storage.Open that is a panic with a string in
//     the committing goroutine (Pebble's default logger would os.Exit(1)).
//     The failed write is visible to reads on this handle, yet not durable.
//  2. The failure is permanent for the handle: the WAL writer keeps its first
//     error (record/log_writer.go:710-719,732), so after the disk is healed
//     every Sync commit still panics the same way.
//  3. NoSync commits after the failure return nil while their bytes are
//     dropped, until the current 32 KiB WAL block fills; then the commit
//     panics with the raw error (db.go:995-998, via
//     record/log_writer.go:843,950) while holding the commit pipeline mutex
//     (commit.go:455-470, no defer), and every later commit, and Close,
//     blocks forever.
//  4. Any memtable rotation after the failure, DB.Flush or a memtable
//     filling up, panics while closing the failed WAL (db.go:2818-2822)
//     with DB.mu released under a deferred Unlock (db.go:980, 2058): the Go
//     runtime reports "fatal error: sync: unlock of unlocked mutex", which
//     no recover catches, and the process dies.
//  5. Close on a handle that is not wedged returns the error but releases
//     the LOCK file (db.go:1730-1737); reopening on the healed disk recovers
//     exactly the acknowledged writes. Open under FailWrites returns an
//     error.
//  6. From the source, not tested: a failed MANIFEST write in a flush or
//     compaction also goes to Logger.Fatalf (version_set.go:671), a panic in
//     a background goroutine, which kills the process.
//
// A node must therefore fence itself on the first panic or error from a
// commit: stop serving from the handle (it may show an unacknowledged
// write), never retry on it, and exit so that a restart reopens the store.
//
// FreeBytes only changes what GetDiskUsage reports (the free space the
// node's disk guard sees), so tests and the chaos suite can fill a disk
// without writing it.
//
// SyncDelay only blocks: storage.Open does not wrap the FS with Pebble's
// disk-health checker (Options.WithFSDefaults), so a stalled sync holds its
// commit, and the commits queued behind it, for as long as the stall lasts.
package faultfs
