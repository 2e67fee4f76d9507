package kv

import (
	"bytes"
	"encoding/binary"
)

// pickRandom picks count fields of c's family (0: hashes' and sets'
// sub-keys; zMember: a sorted set's members), distinct or with repeats.
// A pick seeks to a random point of the family's hash order and takes the
// next field (wrapping around): O(log n) per pick instead of a walk, so
// SPOP and the RANDMEMBER commands stay cheap on large collections. The
// choice is weighted by the hash gap before each field, as Redis's own is
// not exactly uniform either. Distinct picks of most of a collection walk
// it once instead (pickAt).
func pickRandom(r Reader, key []byte, c coll, family byte, m *mix, count uint64, distinct bool) ([]picked, error) {
	if count == 0 || c.n == 0 {
		return nil, nil
	}
	if distinct && (count*2 >= c.n || c.n <= 64) {
		return pickAt(r, key, c, family, distinctPositions(*m, c.n, min(count, c.n)))
	}
	var prefix []byte
	if family != 0 {
		prefix = []byte{family}
	}
	var out []picked
	seen := map[string]bool{}
	for tries := uint64(0); uint64(len(out)) < count; tries++ {
		if distinct && tries > 8*count { // unlucky: walk instead
			return pickAt(r, key, c, family, distinctPositions(*m, c.n, count))
		}
		from := binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), m.next()>>1)
		p, ok, err := firstFrom(r, key, c, prefix, from)
		if err == nil && !ok {
			p, ok, err = firstFrom(r, key, c, prefix, prefix) // wrap around
		}
		if err != nil || !ok {
			return out, err
		}
		if distinct {
			if seen[string(p.field)] {
				continue
			}
			seen[string(p.field)] = true
		}
		out = append(out, p)
	}
	return out, nil
}

// firstFrom is the first field of the family at or after from.
func firstFrom(r Reader, key []byte, c coll, prefix, from []byte) (picked, bool, error) {
	var p picked
	found := false
	err := r.ScanSub(key, c.ver, from, false, func(sub, v []byte) bool {
		if bytes.HasPrefix(sub, prefix) {
			p = picked{field: bytes.Clone(fieldOf(sub[len(prefix):])), v: bytes.Clone(v)}
			found = true
		}
		return false
	})
	return p, found, err
}
