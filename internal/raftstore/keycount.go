package raftstore

import (
	"sync"
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
// found then, and later calls cost nothing; the loop then also stores
// that exact number as the replica's count (replicas need not agree on a
// count: nothing compares them). An apply never counts (the loop serves
// every group): a restore's start only asks whether the partition holds a
// key.

// keyCountCache is an exact count found by KeyCount: at applied index at
// the group held count keys, and its bound was bound.
type keyCountCache struct {
	at           uint64
	count, bound int64
}

// exactAt reports whether c still gives the exact number at applied
// index: no blind write came after the count (blindAt), and the index is
// not older than it.
func (c *keyCountCache) exactAt(index, blindAt uint64) bool {
	return c != nil && index >= c.at && blindAt <= c.at
}

// keyCounter is a replica's part of it, shared with readers.
type keyCounter struct {
	// blindAt is the index of the last blind write applied.
	blindAt atomic.Uint64
	cache   atomic.Pointer[keyCountCache]
	// counting serializes counts of the replica: callers that arrive
	// while one runs use its result when no blind write came since.
	counting sync.Mutex
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
		return 0, ErrNoGroup
	}
	if n, ok := r.keysKnown(); ok {
		return n, nil
	}
	r.keys.counting.Lock()
	defer r.keys.counting.Unlock()
	if n, ok := r.keysKnown(); ok {
		return n, nil // counted by the caller before
	}
	snap := e.db.NewSnapshot()
	defer snap.Close()
	b, ok, err := storage.Get(snap, storage.AppliedKey(group))
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, ErrNoGroup // being destroyed
	}
	as, err := storage.DecodeAppliedState(b)
	if err != nil {
		return 0, err
	}
	n, err := countKeys(snap, group)
	if err != nil {
		return 0, err
	}
	c := &keyCountCache{at: as.Index, count: n, bound: as.Keys}
	r.keys.cache.Store(c)
	// The stored count may be made exact too, on the loop, if no blind
	// write came since: status then shows it, and a restart keeps it.
	e.in.addFunc(func() {
		if e.byGroup[group] == r && r.applied.KeysInexact && c.exactAt(r.applied.Index, r.keys.blindAt.Load()) {
			r.applied.Keys -= c.bound - c.count
			r.applied.KeysInexact = false
			r.publishStatus()
		}
	})
	e.notify()
	return n, nil
}

// keysKnown returns the exact number of keys if the status or a kept
// count gives it.
func (r *replica) keysKnown() (int64, bool) {
	st := r.status.Load()
	if !st.KeysInexact {
		return st.Keys, true
	}
	if c := r.keys.cache.Load(); c.exactAt(st.AppliedIndex, r.keys.blindAt.Load()) {
		return st.Keys - (c.bound - c.count), true
	}
	return 0, false
}
