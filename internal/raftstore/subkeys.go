package raftstore

import (
	"crypto/rand"
	"encoding/binary"

	"github.com/cockroachdb/pebble/v2"

	"github.com/kintsu/kintsu/internal/storage"
)

// Collections' sub-keys (kv/collection.go): stored under the group's
// sub-key span as they are, without the write version user values carry
// (the metadata record's version serves WATCH for the whole collection).

func subKey(group uint64, k []byte, ver uint64, sub []byte) []byte {
	return append(storage.SubPrefix(group, k, ver), sub...)
}

// scanSub iterates r over the sub-keys of (k, ver); see kv.Reader.ScanSub.
func scanSub(r pebble.Reader, group uint64, k []byte, ver uint64, from []byte, reverse bool, fn func(sub, v []byte) bool) error {
	lo := storage.SubPrefix(group, k, ver)
	hi := storage.PrefixEnd(lo)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	var ok bool
	switch {
	case !reverse && from == nil:
		ok = it.First()
	case !reverse:
		ok = it.SeekGE(append(lo[:len(lo):len(lo)], from...))
	case from == nil:
		ok = it.Last()
	default:
		// The last key at or before from: before from's successor.
		ok = it.SeekLT(append(append(lo[:len(lo):len(lo)], from...), 0))
	}
	for ; ok; ok = step(it, reverse) {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return err
		}
		if !fn(it.Key()[len(lo):], v) {
			break
		}
	}
	return it.Close()
}

func step(it *pebble.Iterator, reverse bool) bool {
	if reverse {
		return it.Prev()
	}
	return it.Next()
}

// GetSub implements kv.Reader.
func (w *Writer) GetSub(k []byte, ver uint64, sub []byte) ([]byte, bool, error) {
	return storage.Get(w.b, subKey(w.group, k, ver, sub))
}

// ScanSub implements kv.Reader.
func (w *Writer) ScanSub(k []byte, ver uint64, from []byte, reverse bool, fn func(sub, v []byte) bool) error {
	return scanSub(w.b, w.group, k, ver, from, reverse, fn)
}

// PutSub implements kv.Writer.
func (w *Writer) PutSub(k []byte, ver uint64, sub, v []byte) error {
	return w.b.Set(subKey(w.group, k, ver, sub), v, nil)
}

// DelSub implements kv.Writer.
func (w *Writer) DelSub(k []byte, ver uint64, sub []byte) error {
	return w.b.Delete(subKey(w.group, k, ver, sub), nil)
}

// NewVersion implements kv.Writer: the entry's index, or one past the
// highest version with sub-keys left under k (a restore's, or an earlier
// collection's of this entry), whichever is greater.
func (w *Writer) NewVersion(k []byte) (uint64, error) {
	top, err := lastSubVersion(w.b, w.group, k)
	if err != nil {
		return 0, err
	}
	return max(w.index, top+1), nil
}

// lastSubVersion is the highest version holding sub-keys under k, 0 if
// none does.
func lastSubVersion(r pebble.Reader, group uint64, k []byte) (uint64, error) {
	lo := storage.SubKeyPrefix(group, k)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: storage.PrefixEnd(lo)})
	if err != nil {
		return 0, err
	}
	var top uint64
	if it.Last() {
		if rest := it.Key()[len(lo):]; len(rest) >= 8 {
			top = binary.BigEndian.Uint64(rest)
		}
	}
	return top, it.Close()
}

// GetSub implements kv.Reader.
func (d *DataReader) GetSub(k []byte, ver uint64, sub []byte) ([]byte, bool, error) {
	return storage.Get(d.r, subKey(d.group, k, ver, sub))
}

// ScanSub implements kv.Reader.
func (d *DataReader) ScanSub(k []byte, ver uint64, from []byte, reverse bool, fn func(sub, v []byte) bool) error {
	return scanSub(d.r, d.group, k, ver, from, reverse, fn)
}

// Seed implements kv.Seeder: a read's random choices (HRANDFIELD) differ
// from call to call, as Redis's do.
func (d *DataReader) Seed() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:])
}

// ScanCollections calls fn once per collection version holding sub-keys
// in group, in sub-key order from position from (nil: the start; else a
// next that an earlier call handed fn), with the key's stored value in
// the applied state (present: whether it has one) and the position after
// this collection, until fn returns false. It seeks past each
// collection's sub-keys, so it costs a seek per collection, not a step
// per sub-key. It reads the applied state as it is, not a snapshot:
// callers only use it to find work (the sweep of orphaned sub-keys).
func (e *Engine) ScanCollections(group uint64, from []byte, fn func(k []byte, ver uint64, stored []byte, present bool, next []byte) bool) error {
	lo, hi := storage.SubSpan(group)
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	ok := it.SeekGE(append(lo[:len(lo):len(lo)], from...))
	for ok {
		rel := it.Key()[len(lo):]
		if len(rel) < 4 || uint64(len(rel)-4) < uint64(binary.BigEndian.Uint32(rel))+8 {
			ok = it.Next() // not a sub-key this version writes
			continue
		}
		n := binary.BigEndian.Uint32(rel)
		k := append([]byte(nil), rel[4:4+n]...)
		ver := binary.BigEndian.Uint64(rel[4+n:])
		next := storage.PrefixEnd(storage.SubPrefix(group, k, ver))
		stored, present, err := storage.Get(e.db, storage.DataKey(group, k))
		if err == nil && present {
			_, stored, err = splitVersion(stored)
		}
		if err != nil {
			_ = it.Close()
			return err
		}
		if !fn(k, ver, stored, present, next[len(lo):]) {
			break
		}
		ok = it.SeekGE(next)
	}
	return it.Close()
}

// ScanKeys implements kv.KeyScanner: the group's user keys in order,
// with their stored values (without the write version).
func (d *DataReader) ScanKeys(from []byte, fn func(k, stored []byte) bool) error {
	lo, hi := storage.DataSpan(d.group)
	it, err := d.r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	for ok := it.SeekGE(append(lo[:len(lo):len(lo)], from...)); ok; ok = it.Next() {
		_, v, err := splitVersion(it.Value())
		if err != nil {
			_ = it.Close()
			return err
		}
		if !fn(it.Key()[len(lo):], v) {
			break
		}
	}
	return it.Close()
}
