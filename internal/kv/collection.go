package kv

import (
	"bytes"
	"encoding/binary"
	"hash/fnv"
	"strconv"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/resp"
)

func init() {
	sweep := writer(OpSweep, 3, 1, 1, 1, evalSweep)
	sweep.Flags |= command.Internal
	register(command.CatInternal, sweep)
}

// Collections (hashes now; lists, sets and sorted sets share the scheme)
// are a metadata record under the user key plus one sub-key per field,
// member or element, stored under the collection's version (see
// docs/decisions.md, "Collections: a metadata record per key, sub-keys
// under a version"):
//
//   - The metadata record is a stored value like a string's: its tag, its
//     expiry time (8 bytes, at the same place as typeStringTTL's, 0 for
//     none), its version (8 bytes) and its length (8 bytes, never 0: an
//     emptied collection is deleted, as in Redis), then what the type needs.
//   - Sub-keys of a version no metadata record names are invisible: DEL,
//     an overwrite or an expiry changes only the metadata record, and the
//     sweep removes the leftovers later (OpSweep).
//   - A new collection takes Writer.NewVersion, which is greater than every
//     version still holding sub-keys under the key, so leftovers never show
//     through.
//   - Every write of a collection rewrites its metadata record, so the
//     record's write version (WATCH) moves with every change.
const (
	typeHash byte = 'h'
	typeList byte = 'l'
	typeSet  byte = 't'
	typeZSet byte = 'z'
)

// metaBytes is the size of a collection's metadata record before its
// type's own fields.
const metaBytes = 1 + 8 + 8 + 8

func isCollection(tag byte) bool {
	return tag == typeHash || tag == typeList || tag == typeSet || tag == typeZSet
}

// meta is a collection's metadata record.
type meta struct {
	tag   byte
	at    int64  // expiry time (Unix ms), 0 for none
	ver   uint64 // the version its sub-keys are stored under
	n     uint64 // length
	extra []byte // the type's own fields
}

func (m meta) encode() []byte {
	b := make([]byte, metaBytes, metaBytes+len(m.extra))
	b[0] = m.tag
	binary.BigEndian.PutUint64(b[1:], uint64(m.at))
	binary.BigEndian.PutUint64(b[9:], m.ver)
	binary.BigEndian.PutUint64(b[17:], m.n)
	return append(b, m.extra...)
}

func decodeMeta(stored []byte) (meta, bool) {
	if len(stored) < metaBytes || !isCollection(stored[0]) {
		return meta{}, false
	}
	m := meta{
		tag:   stored[0],
		at:    int64(binary.BigEndian.Uint64(stored[1:])),
		ver:   binary.BigEndian.Uint64(stored[9:]),
		n:     binary.BigEndian.Uint64(stored[17:]),
		extra: stored[metaBytes:],
	}
	return m, m.n > 0 && m.at >= 0
}

// typeName is TYPE's answer for a stored value.
func typeName(stored []byte) string {
	if len(stored) == 0 {
		return "none"
	}
	switch stored[0] {
	case typeString, typeStringTTL:
		return "string"
	case typeHash:
		return "hash"
	case typeList:
		return "list"
	case typeSet:
		return "set"
	case typeZSet:
		return "zset"
	}
	return "none"
}

// withExpiry is stored with its expiry time set to at (0: none).
func withExpiry(stored []byte, at int64) []byte {
	if m, ok := decodeMeta(stored); ok {
		m.at = at
		return m.encode()
	}
	v, _, _ := decodeString(stored)
	return encodeString(v, at)
}

// coll is a collection as a command sees it.
type coll struct {
	meta
	ok      bool // the key holds a live collection of the wanted type
	present bool // something is stored, expired or not
	wrong   bool // the key holds a live value of another type
}

// loadColl reads key for a command on collections tagged tag.
func loadColl(r Reader, key []byte, tag byte) (coll, error) {
	stored, present, err := r.Get(key)
	if err != nil || !present {
		return coll{}, err
	}
	if at := expiryOf(stored); at != 0 && at <= r.NowMS() {
		return coll{present: true}, nil
	}
	m, ok := decodeMeta(stored)
	if !ok || m.tag != tag {
		return coll{present: true, wrong: true}, nil
	}
	m.extra = append([]byte(nil), m.extra...) // stored is valid only until the next read
	return coll{meta: m, ok: true, present: true}, nil
}

// create makes c a new, empty collection of type tag at key, unless it
// is one already; from then on c is live (ok), so lookups in it read its
// sub-keys (a command may add a member twice).
func (c *coll) create(w Writer, key []byte, tag byte) error {
	if c.ok {
		return nil
	}
	ver, err := w.NewVersion(key)
	if err != nil {
		return err
	}
	c.meta, c.ok, c.wrong = meta{tag: tag, ver: ver}, true, false
	return nil
}

// save stores c's metadata record after a change; an emptied collection
// is deleted (its sub-keys are left to the sweep). A collection that was
// absent and stays empty writes nothing.
func (c *coll) save(w Writer, key []byte) error {
	if c.n == 0 {
		if !c.present {
			return nil
		}
		c.present, c.ok = false, false
		return delKey(w, key)
	}
	created := !c.present
	c.present, c.ok = true, true
	return w.Put(key, c.encode(), created)
}

// eagerDropMax is the most sub-keys a DEL (or the expiry sweep) removes
// with their collection in its own entry; a larger collection's are left
// to the background sweep, so one entry's work stays bounded.
const eagerDropMax = 256

// delKey removes key, whatever it holds; a small collection's sub-keys go
// with it.
func delKey(w Writer, key []byte) error {
	stored, ok, err := w.Get(key)
	if err != nil || !ok {
		return err
	}
	return dropStored(w, key, stored)
}

// dropStored is delKey for a caller that has just read key's stored
// value (stored), so it is not read twice.
func dropStored(w Writer, key, stored []byte) error {
	m, isColl := decodeMeta(stored) // before any other read: stored is the reader's
	n := subKeysOf(stored)
	if err := w.Del(key); err != nil || !isColl || n > eagerDropMax {
		return err
	}
	var subs [][]byte
	if err := w.ScanSub(key, m.ver, nil, false, func(sub, _ []byte) bool {
		subs = append(subs, append([]byte(nil), sub...))
		return uint64(len(subs)) < n
	}); err != nil {
		return err
	}
	for _, sub := range subs {
		if err := w.DelSub(key, m.ver, sub); err != nil {
			return err
		}
	}
	return nil
}

// OpSweep removes the sub-keys of a collection no metadata record names
// any more ("kintsu.sweep KEY VERSION"): the leader's sweep proposes it
// for the leftovers of large deleted or overwritten collections. It
// removes at most SweepMax sub-keys per entry, and only if the version is
// still orphaned when the entry applies, and answers how many it removed
// (SweepMax: call again). Internal: no client may send it.
const (
	OpSweep  = "kintsu.sweep"
	SweepMax = 1024
)

// Orphaned reports whether sub-keys of version ver under a key whose
// stored value is stored (present: whether there is one) belong to no
// live collection.
func Orphaned(stored []byte, present bool, ver uint64) bool {
	m, ok := decodeMeta(stored)
	return !present || !ok || m.ver != ver
}

func evalSweep(w Writer, args [][]byte, out []byte) ([]byte, error) {
	ver, err := strconv.ParseUint(string(args[2]), 10, 64)
	if err != nil {
		return appendErr(out, ErrSyntax), nil
	}
	stored, present, err := w.Get(args[1])
	if err != nil {
		return out, err
	}
	if !Orphaned(stored, present, ver) {
		return resp.AppendInt(out, 0), nil
	}
	var subs [][]byte
	if err := w.ScanSub(args[1], ver, nil, false, func(sub, _ []byte) bool {
		subs = append(subs, append([]byte(nil), sub...))
		return len(subs) < SweepMax
	}); err != nil {
		return out, err
	}
	for _, sub := range subs {
		if err := w.DelSub(args[1], ver, sub); err != nil {
			return out, err
		}
	}
	return resp.AppendInt(out, int64(len(subs))), nil
}

// fieldHash orders the fields of hashes and the members of sets: SCAN's
// cursor is a position in this order, so it stays valid while the
// collection changes (an element present throughout an iteration is
// returned, as Redis guarantees). FNV-1a, fixed forever: it is part of
// the stored format.
func fieldHash(field []byte) uint64 {
	h := fnv.New64a()
	h.Write(field)
	return h.Sum64() >> 1 // 63 bits: cursor = hash + 1 never wraps to 0
}

// hashedSub is the sub-key of a hash field or set member: its hash (8
// bytes, big endian), then the field.
func hashedSub(field []byte) []byte {
	b := make([]byte, 8, 8+len(field))
	binary.BigEndian.PutUint64(b, fieldHash(field))
	return append(b, field...)
}

// fieldOf is the field a hashedSub sub-key holds.
func fieldOf(sub []byte) []byte {
	if len(sub) < 8 {
		return nil
	}
	return sub[8:]
}

// mix is a deterministic pseudo-random sequence for commands that pick at
// random (HRANDFIELD, SPOP): seeded from replicated inputs only, so every
// replica that applies a write picks the same elements (splitmix64).
type mix uint64

func (m *mix) next() uint64 {
	*m += 0x9e3779b97f4a7c15
	z := uint64(*m)
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// CollectionVersion is the version the sub-keys of the collection stored
// in stored live under; ok is false for anything but a collection's
// metadata record.
func CollectionVersion(stored []byte) (ver uint64, ok bool) {
	if len(stored) < metaBytes || !isCollection(stored[0]) {
		return 0, false
	}
	return binary.BigEndian.Uint64(stored[9:]), true
}

// WithCollectionVersion is a copy of a collection's metadata record with
// its version set to ver (stored unchanged if it is not one).
func WithCollectionVersion(stored []byte, ver uint64) []byte {
	if _, ok := CollectionVersion(stored); !ok {
		return stored
	}
	b := bytes.Clone(stored)
	binary.BigEndian.PutUint64(b[9:], ver)
	return b
}
