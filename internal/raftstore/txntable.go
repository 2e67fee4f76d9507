package raftstore

import (
	"bytes"

	"github.com/kintsu/kintsu/internal/storage"
)

// txnTable is what the loop knows of one of a group's transaction tables
// (storage.TxnLocks, TxnParts, TxnRecords) as of the cycle's apply batch:
// how many records it holds, and, while they are few, the records
// themselves.
//
// Why: every PREPARE and resolution reads the lock of each key it touches,
// often twice (conflict check, then the update, then the count), and its
// part and record, mostly to learn they are absent; in Pebble a record
// just written or deleted costs a memtable seek and a walk of every
// level's filters. A cross-partition write spent about a quarter of a
// node's CPU there. Locks and parts live from a PREPARE to its resolution,
// records until every part is resolved, so at any moment there are few of
// them: held in memory, those reads are map lookups.
//
// Invariants:
//   - n is exact: the number of records in the table, as the apply batch
//     (Writer's reads) sees it. It is kept by every write and delete, set
//     at load, from a snapshot's data, and to 0 by Clear.
//   - While recs is not nil it holds exactly the table's records, so
//     len(recs) == n, and reads are answered from it. It is nil
//     ("incomplete") when the table outgrew mirrorRecords or mirrorBytes,
//     and then every read goes to Pebble as before; it becomes complete
//     again when n comes back to 0 (an empty map) or down to rebuildAt
//     (read from the apply batch, Writer.rebuild). So memory is bounded
//     per replica whatever the table holds, and the mirror is never
//     trusted unless complete.
//   - Only the loop goroutine touches it, as it does the apply batch.
//     Readers outside the loop (DataReader) read Pebble's committed state,
//     which may lag the batch; they never use the mirror.
//   - Writes are never undone: an apply error ends the replica (or the
//     node), and a replica loaded again rebuilds the table from disk.
type txnTable struct {
	n    int64
	recs map[string][]byte
	size int // bytes of keys and values in recs
}

// A table is held in memory only while it has at most mirrorRecords
// records of at most mirrorBytes in all (a part carries its transaction's
// values, which may be large), so a replica holds at most 3 × mirrorBytes
// of them. A table that outgrew them is read from Pebble until its count
// falls back to rebuildAt, when it is read into memory again.
const (
	mirrorRecords = 4096
	mirrorBytes   = 256 << 10
	rebuildAt     = mirrorRecords / 4
)

func newTxnTable() txnTable { return txnTable{recs: map[string][]byte{}} }

// txnTables are a group's three transaction tables (txnTable).
type txnTables struct{ locks, parts, records txnTable }

func newTxnTables() txnTables {
	return txnTables{locks: newTxnTable(), parts: newTxnTable(), records: newTxnTable()}
}

// of returns the table kept for table, nil for one that is not kept
// (cut and restore marks).
func (t *txnTables) of(table byte) *txnTable {
	switch table {
	case storage.TxnLocks:
		return &t.locks
	case storage.TxnParts:
		return &t.parts
	case storage.TxnRecords:
		return &t.records
	}
	return nil
}

// load adds a record of any table read from disk or from a snapshot (k is
// the full storage key), and reports whether k was in one of them.
func (t *txnTables) load(group uint64, k, v []byte) bool {
	for _, table := range []byte{storage.TxnLocks, storage.TxnParts, storage.TxnRecords} {
		if lo, hi := storage.TxnSpan(group, table); bytes.Compare(k, lo) >= 0 && bytes.Compare(k, hi) < 0 {
			t.of(table).load(k[len(lo):], v)
			return true
		}
	}
	return false
}

// load adds a record read from disk or from a snapshot (k is the key
// within the table; v is copied).
func (t *txnTable) load(k, v []byte) {
	t.n++
	t.hold(k, v, false)
}

// hold keeps k's record v in memory, unless that passes the bounds; then
// the table becomes incomplete.
func (t *txnTable) hold(k, v []byte, existed bool) {
	if t.recs == nil {
		return
	}
	old, had := t.recs[string(k)]
	size := t.size - len(old) + len(v)
	if !had {
		size += len(k)
	}
	// had != existed cannot happen (existed was read from recs); if it
	// did, reading Pebble is the safe way on.
	if had != existed || len(t.recs)+1 > mirrorRecords || size > mirrorBytes {
		t.recs, t.size = nil, 0
		return
	}
	t.recs[string(k)] = append([]byte(nil), v...)
	t.size = size
}

// get answers a read from memory; known is false when the table is
// incomplete and the caller must read Pebble.
func (t *txnTable) get(k []byte) (v []byte, ok, known bool) {
	if t.recs == nil {
		return nil, false, false
	}
	v, ok = t.recs[string(k)]
	if ok {
		v = append([]byte(nil), v...) // callers may keep or change it
	}
	return v, ok, true
}

// has is get without the value.
func (t *txnTable) has(k []byte) (ok, known bool) {
	if t.recs == nil {
		return false, false
	}
	_, ok = t.recs[string(k)]
	return ok, true
}

// put records a write of k; existed says whether k had a record.
func (t *txnTable) put(k, v []byte, existed bool) {
	if !existed {
		t.n++
	}
	t.hold(k, v, existed)
}

// del records a delete of k, and reports whether the table should be read
// into memory again (it is incomplete and has come down to rebuildAt).
func (t *txnTable) del(k []byte, existed bool) (rebuild bool) {
	if !existed {
		return false
	}
	t.n--
	if t.recs == nil {
		if t.n == 0 {
			t.recs = map[string][]byte{}
		}
		return t.n == rebuildAt
	}
	if old, ok := t.recs[string(k)]; ok {
		t.size -= len(k) + len(old)
		delete(t.recs, string(k))
	}
	return false
}
