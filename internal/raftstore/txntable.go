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
//     ("incomplete") when the table outgrew maxMirroredLocks, and then
//     every read goes to Pebble as before; it becomes complete again, as an
//     empty map, when n comes back to 0. So memory is bounded per replica
//     whatever the table holds, and the mirror is never trusted unless
//     complete.
//   - Only the loop goroutine touches it, as it does the apply batch.
//     Readers outside the loop (DataReader) read Pebble's committed state,
//     which may lag the batch; they never use the mirror.
//   - Writes are never undone: an apply error ends the replica (or the
//     node), and a replica loaded again rebuilds the table from disk.
type txnTable struct {
	n    int64
	recs map[string][]byte
}

// maxMirroredLocks bounds the records a replica keeps in memory per table
// (about 100 bytes each, so at most a few MiB per replica).
const maxMirroredLocks = 1 << 14

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
	if t.recs == nil {
		return
	}
	if len(t.recs) >= maxMirroredLocks {
		t.recs = nil
		return
	}
	t.recs[string(k)] = append([]byte(nil), v...)
}

// get answers a read from memory; known is false when the mirror is
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

// put records a write of k; existed says whether k had a record (the
// caller read Pebble when the mirror is incomplete).
func (t *txnTable) put(k, v []byte, existed bool) {
	if !existed {
		t.n++
	}
	if t.recs == nil {
		return
	}
	if !existed && len(t.recs) >= maxMirroredLocks {
		t.recs = nil
		return
	}
	t.recs[string(k)] = append([]byte(nil), v...)
}

// del records a delete of k.
func (t *txnTable) del(k []byte, existed bool) {
	if existed {
		t.n--
	}
	if t.recs != nil {
		delete(t.recs, string(k))
	} else if t.n == 0 {
		t.recs = map[string][]byte{}
	}
}
