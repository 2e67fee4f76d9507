package kv

import "bytes"

// A sorted set's metadata record carries bounds on its order: no live
// member sorts below lo or above hi (score, then member). A pop from an
// end moves that end's bound to the popped member, so the next pop seeks
// straight past what earlier pops deleted instead of stepping over their
// tombstones from the start of the set (which made ZPOPMIN O(pops) each
// until the LSM compacted them away). A bound keeps a member only up to
// zboundMember bytes: a longer one is widened to the whole score (lo: the
// empty member, the least; hi: the score's end).
//
// Layout of the record's extra field: lo, then hi, each the sortable
// score (8 bytes), a length byte and the member; length 0xff at hi means
// "past every member of that score". An empty extra field (sets made
// before the bounds) is unbounded, for ever.
const zboundMember = 64

type zbound struct {
	key []byte // sortable score + member, or sortable score + 0xff marker (hi)
	end bool   // hi past every member of its score
}

func makeBound(f float64, m []byte, hi bool) zbound {
	k := sortable(f)
	if len(m) > zboundMember {
		return zbound{key: k, end: hi}
	}
	return zbound{key: append(k, m...)}
}

// less orders (score, member) keys as the score family sorts them.
func boundLess(a, b zbound) bool {
	switch c := bytes.Compare(a.key[:8], b.key[:8]); {
	case c != 0:
		return c < 0
	case a.end != b.end:
		return b.end
	}
	return bytes.Compare(a.key[8:], b.key[8:]) < 0
}

func encodeBounds(lo, hi zbound) []byte {
	out := append([]byte(nil), lo.key[:8]...)
	out = append(append(out, byte(len(lo.key)-8)), lo.key[8:]...)
	out = append(out, hi.key[:8]...)
	if hi.end {
		return append(out, 0xff)
	}
	return append(append(out, byte(len(hi.key)-8)), hi.key[8:]...)
}

// decodeBounds reads the extra field; ok=false when it holds none.
func decodeBounds(extra []byte) (lo, hi zbound, ok bool) {
	read := func(b []byte, hiSide bool) (zbound, []byte, bool) {
		if len(b) < 9 {
			return zbound{}, nil, false
		}
		n := int(b[8])
		if n == 0xff && hiSide {
			return zbound{key: append([]byte(nil), b[:8]...), end: true}, b[9:], true
		}
		if n > zboundMember || len(b) < 9+n {
			return zbound{}, nil, false
		}
		return zbound{key: append(append([]byte(nil), b[:8]...), b[9:9+n]...)}, b[9+n:], true
	}
	lo, rest, ok1 := read(extra, false)
	hi, rest, ok2 := read(rest, true)
	return lo, hi, ok1 && ok2 && len(rest) == 0
}

// validZExtra reports whether a stored sorted set's extra field is one
// this version reads.
func validZExtra(extra []byte) bool {
	if len(extra) == 0 {
		return true
	}
	_, _, ok := decodeBounds(extra)
	return ok
}

// widen makes the bounds cover (f, m), a member being added.
func (z *zset) widen(f float64, m []byte) {
	if f == 0 {
		f = 0
	}
	lo, hi, ok := decodeBounds(z.extra)
	nlo, nhi := makeBound(f, m, false), makeBound(f, m, true)
	switch {
	case z.n == 0: // the set's first member: exact bounds from now on
		lo, hi = nlo, nhi
	case !ok:
		return // a set from before the bounds: unbounded
	default:
		if boundLess(nlo, lo) {
			lo = nlo
		}
		if boundLess(hi, nhi) {
			hi = nhi
		}
	}
	z.extra = encodeBounds(lo, hi)
}

// popped moves the bound of the end a pop took (f, m) from.
func (z *zset) popped(f float64, m []byte, max bool) {
	lo, hi, ok := decodeBounds(z.extra)
	if !ok {
		return
	}
	if max {
		hi = makeBound(f, m, true)
	} else {
		lo = makeBound(f, m, false)
	}
	z.extra = encodeBounds(lo, hi)
}

// walkStart is where a walk of the score family starts: forward at the
// lo bound, backward at the hi bound (nil when unbounded).
func (z *zset) walkStart(reverse bool) []byte {
	lo, hi, ok := decodeBounds(z.extra)
	switch {
	case !ok:
		return nil
	case !reverse:
		return append([]byte{zScore}, lo.key...)
	case hi.end:
		return storagePrefixEnd(append([]byte{zScore}, hi.key[:8]...))
	}
	return append([]byte{zScore}, hi.key...)
}
