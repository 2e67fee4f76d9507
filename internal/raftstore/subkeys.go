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
