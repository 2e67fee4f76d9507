package raftstore

import (
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"

	"github.com/kintsu/kintsu/internal/storage"
)

// The key count. A replica keeps its group's number of user keys in its
// applied state, moved by every apply: exactly by writes that read their
// key anyway, and by +1 for each blind write (a SET or MSET, which saves
// reading the key: Writer.PutBlind). So:
//
// Invariant: applied.Keys >= the number of keys, equal while
// !applied.KeysInexact; the excess is the number of blind writes that
// overwrote a key since the count was last exact.
//
// DBSIZE needs the exact number (KeyCount): on an inexact replica it
// counts the group's data span on a snapshot, with the applied state read
// from the same snapshot, and keeps (index, count, bound). Until the next
// blind write, every later apply moves the bound by exactly what it moves
// the number of keys, so the exact number is the bound less the excess
// found then, and later calls cost nothing. An apply that needs the exact
// number (a restore's start) counts in its batch, the same on every
// replica, and makes the count exact again.

// keyCountCache is an exact count found by KeyCount: at applied index at
// the group held count keys, and its bound was bound.
type keyCountCache struct {
	at           uint64
	count, bound int64
}

// keyCounter is a replica's part of it, shared with readers.
type keyCounter struct {
	// blindAt is the index of the last blind write applied.
	blindAt atomic.Uint64
	cache   atomic.Pointer[keyCountCache]
}

// countKeys counts group's user keys in r.
func countKeys(r pebble.Reader, group uint64) (int64, error) {
	lo, hi := storage.DataSpan(group)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, err
	}
	var n int64
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	return n, it.Close()
}

// KeyCount returns the number of user keys in the local replica of group
// as of its applied index (DBSIZE sums these over partition leaders).
func (e *Engine) KeyCount(group uint64) (int64, error) {
	r := e.hosted(group)
	if r == nil {
		return 0, nil
	}
	st := r.status.Load()
	if !st.KeysInexact {
		return st.Keys, nil
	}
	if c := r.keys.cache.Load(); c != nil && st.AppliedIndex >= c.at && r.keys.blindAt.Load() <= c.at {
		return st.Keys - (c.bound - c.count), nil
	}
	snap := e.db.NewSnapshot()
	defer snap.Close()
	b, ok, err := storage.Get(snap, storage.AppliedKey(group))
	if err != nil || !ok {
		return 0, err
	}
	as, err := storage.DecodeAppliedState(b)
	if err != nil {
		return 0, err
	}
	n, err := countKeys(snap, group)
	if err != nil {
		return 0, err
	}
	r.keys.cache.Store(&keyCountCache{at: as.Index, count: n, bound: as.Keys})
	return n, nil
}

// exactKeys makes the count exact in an apply: the same on every replica,
// since each counts the same state.
func (w *Writer) exactKeys() error {
	if !w.r.applied.KeysInexact {
		return nil
	}
	n, err := countKeys(w.b, w.group)
	if err != nil {
		return err
	}
	w.r.applied.Keys, w.r.applied.KeysInexact = n, false
	return nil
}
