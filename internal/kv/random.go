package kv

import (
	"bytes"
	"encoding/binary"

	"github.com/kintsu/kintsu/internal/resp"
)

// evalRandMember answers HRANDFIELD, SRANDMEMBER and ZRANDMEMBER, in
// Redis's order of checks: the count, then the WITH word (with; "" when
// the command has none, and then a fourth argument is a syntax error
// before anything), then the key. A positive count picks distinct
// members, at most all; a negative one repeats, bounded (Redis: by
// memory). value appends a pick's value for the WITH form.
func evalRandMember(tag, family byte, with string, value func(out, v []byte) []byte) readFunc {
	return func(r Reader, args [][]byte, out []byte) ([]byte, error) {
		hasCount, count, withValues := len(args) >= 3, int64(1), false
		if with == "" && len(args) > 3 {
			return appendErr(out, ErrSyntax), nil
		}
		if hasCount {
			var ok bool
			if count, ok = ParseInt(args[2]); !ok {
				return appendErr(out, ErrNotInteger), nil
			}
			switch {
			case len(args) == 4 && equalFold(args[3], with):
				withValues = true
			case len(args) > 3:
				return appendErr(out, ErrSyntax), nil
			}
			if count < -randCountMax {
				return appendErr(out, errOutOfRange), nil
			}
		}
		c, err := loadColl(r, args[1], tag)
		switch {
		case err != nil || c.wrong:
			return wrongOr(out, err)
		case (!c.ok || count == 0) && hasCount:
			return resp.AppendArrayHeader(out, 0), nil
		case !c.ok:
			return resp.AppendNull(out), nil
		}
		m := seedOf(r, args[1])
		n, distinct := uint64(count), true
		if count < 0 {
			n, distinct = uint64(-count), false
		}
		picks, err := pickRandom(r, args[1], c, family, &m, n, distinct)
		if err != nil {
			return out, err
		}
		if !hasCount {
			if len(picks) == 0 {
				return resp.AppendNull(out), nil
			}
			return resp.AppendBulk(out, picks[0].field), nil
		}
		per := 1
		if withValues {
			per = 2
		}
		out = resp.AppendArrayHeader(out, len(picks)*per)
		for _, p := range picks {
			out = resp.AppendBulk(out, p.field)
			if withValues {
				out = value(out, p.v)
			}
		}
		return out, nil
	}
}

// pickRandom picks count fields of c's family (0: hashes' and sets'
// sub-keys; zMember: a sorted set's members), distinct or with repeats.
// A pick seeks to a random point of the family's hash order and takes the
// next field (wrapping around): O(log n) per pick instead of a walk, so
// SPOP and the RANDMEMBER commands stay cheap on large collections. The
// choice is weighted by the hash gap before each field, as Redis's own is
// not exactly uniform either; collections of at most uniformMax members
// are read whole and picked from uniformly. Distinct picks of most of a collection walk
// it once instead (pickAt).
func pickRandom(r Reader, key []byte, c coll, family byte, m *mix, count uint64, distinct bool) ([]picked, error) {
	if count == 0 || c.n == 0 {
		return nil, nil
	}
	if distinct && (count*2 >= c.n || c.n <= 64) {
		return pickAt(r, key, c, family, distinctPositions(*m, c.n, min(count, c.n)))
	}
	if c.n <= uniformMax {
		// Small enough to read whole: every member equally likely, as
		// Redis's picks are (its test suite checks them by chi-square).
		all := make([]uint64, c.n)
		for i := range all {
			all[i] = uint64(i)
		}
		fields, err := pickAt(r, key, c, family, all)
		if err != nil || uint64(len(fields)) != c.n {
			return fields, err
		}
		if distinct {
			var out []picked
			for _, i := range distinctPositions(*m, c.n, count) {
				out = append(out, fields[i])
			}
			return out, nil
		}
		out := make([]picked, count)
		for i := range out {
			out[i] = fields[m.next()%c.n]
		}
		return out, nil
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

// uniformMax is the largest collection picked from uniformly, by reading
// it whole (one walk of at most this many sub-keys per command).
const uniformMax = 4096

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
