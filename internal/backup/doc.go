// Package backup owns the on-disk form of a Kintsu backup: one file per
// partition holding that partition's replicated state at its cut, and a
// manifest (manifest.json) naming every file with its size and SHA-256.
// It is pure encoding and checking; taking a backup (the cut, see
// raftstore/cut.go) and restoring one go through the admin API (package
// server) driven by `kintsu ctl` (package ctl). CheckRecord judges a
// record's content (a value as kv stores it, a transaction entry as txn
// does); kintsu ctl's verify and the node's restore both use it, so a
// backup the tool accepts is one the cluster loads.
//
// A partition file is
//
//	header  "KINTSUBK" | format version (2) | partition (4) | cut index (8)
//	records table (1) | uvarint key length | key | uvarint value length | value
//	trailer 'E' | records (8) | user keys (8)
//
// (integers big endian). Table 'd' is user data (the stored value: type,
// expiry, payload); 'l', 'p' and 'r' are the transaction tables, carried so
// that a transaction caught between its decision and the resolution of
// its parts finishes on the restored cluster exactly as it would have on
// the old one. Table 's' holds collections' sub-keys.
//
// Partition ids need not be dense (merges leave gaps), and a restore may
// go into a cluster laid out otherwise: 'd' and 's' records carry their
// user key, so they can go to whichever partition owns its slot. The
// transaction tables name partitions by id, so a backup holding any entry
// of them restores only into its own layout.
//
// Invariants:
//   - A backup is complete only when its manifest exists; the manifest is
//     written last, by rename, after every file is synced.
//   - Verify reads every byte of every file before it says yes: sizes,
//     checksums, headers (partition and index as the manifest says), every
//     record well formed and within the limits, the trailer's counts equal
//     to the records read and to the manifest, nothing after the trailer.
//     An error names the file. Restore verifies first and applies nothing
//     from a backup that fails.
//   - Reading and writing stream: memory does not grow with the data.
package backup
