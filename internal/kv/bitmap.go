package kv

import (
	"bytes"
	"math/bits"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/resp"
)

// Bitmaps are strings addressed by bit (bit 0 is the most significant bit
// of the first byte), as in Redis; with Redis 7.0's argument order and
// errors. A string grows to at most MaxValueBytes, so an offset is below
// MaxValueBytes*8 (Redis checks it against proto-max-bulk-len, which here
// is that limit).
func init() {
	register(command.Bitmap,
		writer("setbit", 4, 1, 1, 1, evalSetbit),
		writer("bitop", -4, 2, -1, 1, evalBitop),
		reader("getbit", 3, 1, 1, 1, evalGetbit),
		reader("bitcount", -2, 1, 1, 1, evalBitcount),
		reader("bitpos", -3, 1, 1, 1, evalBitpos),
	)
}

const errBitOffset = "ERR bit offset is not an integer or out of range"

func bitOffset(a []byte) (int64, bool) {
	n, ok := ParseInt(a)
	return n, ok && n >= 0 && n>>3 < MaxValueBytes
}

func evalSetbit(w Writer, args [][]byte, out []byte) ([]byte, error) {
	off, ok := bitOffset(args[2])
	if !ok {
		return appendErr(out, errBitOffset), nil
	}
	on, ok := ParseInt(args[3])
	if !ok || on != 0 && on != 1 {
		return appendErr(out, "ERR bit is not an integer or out of range"), nil
	}
	it, err := load(w, args[1])
	if err != nil || it.wrong {
		return wrongOr(out, err)
	}
	var cur []byte
	if it.ok {
		cur = it.v
	}
	byteAt, mask := off>>3, byte(0x80>>(off&7))
	nv := make([]byte, max(int64(len(cur)), byteAt+1))
	copy(nv, cur)
	old := b2i(nv[byteAt]&mask != 0)
	if on == 1 {
		nv[byteAt] |= mask
	} else {
		nv[byteAt] &^= mask
	}
	// The key keeps its expiry, as in Redis.
	return resp.AppendInt(out, old), w.Put(args[1], encodeString(nv, it.at), !it.present)
}

func evalGetbit(r Reader, args [][]byte, out []byte) ([]byte, error) {
	off, ok := bitOffset(args[2])
	if !ok {
		return appendErr(out, errBitOffset), nil
	}
	it, err := load(r, args[1])
	if err != nil || it.wrong {
		return wrongOr(out, err)
	}
	if !it.ok || off>>3 >= int64(len(it.v)) {
		return resp.AppendInt(out, 0), nil
	}
	return resp.AppendInt(out, b2i(it.v[off>>3]&(0x80>>(off&7)) != 0)), nil
}

// bitRange resolves BITCOUNT's and BITPOS's start and end (byte or bit
// indexes, negative from the end) against a string of n bytes, to the
// inclusive bit range [from, to]; ok=false when it is empty.
func bitRange(start, end int64, n int64, isBit bool) (from, to int64, ok bool) {
	total := n
	if isBit {
		total = n * 8
	}
	if start < 0 {
		start += total
	}
	if end < 0 {
		end += total
	}
	start, end = max(start, 0), max(end, 0)
	if end >= total {
		end = total - 1
	}
	if start > end {
		return 0, 0, false
	}
	if isBit {
		return start, end, true
	}
	return start * 8, end*8 + 7, true
}

func evalBitcount(r Reader, args [][]byte, out []byte) ([]byte, error) {
	// Redis looks the key up first: a missing key answers 0 whatever
	// the other arguments.
	it, err := load(r, args[1])
	switch {
	case err != nil || it.wrong:
		return wrongOr(out, err)
	case !it.ok:
		return resp.AppendInt(out, 0), nil
	}
	v := it.v
	var from, to int64
	switch len(args) {
	case 2:
		from, to = 0, int64(len(v))*8-1
	case 4, 5:
		start, ok1 := ParseInt(args[2])
		end, ok2 := ParseInt(args[3])
		if !ok1 || !ok2 {
			return appendErr(out, ErrNotInteger), nil
		}
		// An empty negative range answers 0 before the unit is read, as
		// in Redis 7.0.
		if start < 0 && end < 0 && start > end {
			return resp.AppendInt(out, 0), nil
		}
		isBit := false
		if len(args) == 5 {
			switch {
			case equalFold(args[4], "bit"):
				isBit = true
			case equalFold(args[4], "byte"):
			default:
				return appendErr(out, ErrSyntax), nil
			}
		}
		var ok bool
		if from, to, ok = bitRange(start, end, int64(len(v)), isBit); !ok {
			return resp.AppendInt(out, 0), nil
		}
	default:
		return appendErr(out, ErrSyntax), nil
	}
	return resp.AppendInt(out, popcount(v, from, to)), nil
}

// popcount counts the set bits of v from bit from to bit to, inclusive.
func popcount(v []byte, from, to int64) int64 {
	var n int64
	for i := from; i <= to; {
		if i&7 == 0 && i+7 <= to {
			n += int64(bits.OnesCount8(v[i>>3]))
			i += 8
			continue
		}
		if v[i>>3]&(0x80>>(i&7)) != 0 {
			n++
		}
		i++
	}
	return n
}

func evalBitpos(r Reader, args [][]byte, out []byte) ([]byte, error) {
	bit, ok := ParseInt(args[2])
	if !ok {
		return appendErr(out, ErrNotInteger), nil
	}
	if bit != 0 && bit != 1 {
		return appendErr(out, "ERR The bit argument must be 1 or 0."), nil
	}
	it, err := load(r, args[1])
	switch {
	case err != nil:
		return out, err
	case !it.ok && !it.wrong: // no key: an endless run of zeros
		if bit == 1 {
			return resp.AppendInt(out, -1), nil
		}
		return resp.AppendInt(out, 0), nil
	case it.wrong:
		return appendErr(out, ErrWrongType), nil
	}
	v, n := it.v, int64(len(it.v))
	var from, to int64
	endGiven := false
	switch len(args) {
	case 3:
		from, to = 0, n*8-1
	case 4, 5, 6:
		start, ok := ParseInt(args[3])
		if !ok {
			return appendErr(out, ErrNotInteger), nil
		}
		isBit := false
		if len(args) == 6 {
			switch {
			case equalFold(args[5], "bit"):
				isBit = true
			case equalFold(args[5], "byte"):
			default:
				return appendErr(out, ErrSyntax), nil
			}
		}
		end := n - 1
		if isBit {
			end = n*8 - 1
		}
		if len(args) >= 5 {
			if end, ok = ParseInt(args[4]); !ok {
				return appendErr(out, ErrNotInteger), nil
			}
			endGiven = true
		}
		if from, to, ok = bitRange(start, end, n, isBit); !ok {
			return resp.AppendInt(out, -1), nil
		}
	default:
		return appendErr(out, ErrSyntax), nil
	}
	if from > to {
		return resp.AppendInt(out, -1), nil
	}
	want := bit == 1
	for i := from; i <= to; {
		b := v[i>>3]
		if i&7 == 0 && i+7 <= to && (want && b == 0 || !want && b == 0xff) {
			i += 8 // a whole byte without the bit sought
			continue
		}
		if (b&(0x80>>(i&7)) != 0) == want {
			return resp.AppendInt(out, i), nil
		}
		i++
	}
	// Looking for a clear bit with no end given: the string continues
	// with zeros, as in Redis.
	if !want && !endGiven {
		return resp.AppendInt(out, to+1), nil
	}
	return resp.AppendInt(out, -1), nil
}

func evalBitop(w Writer, args [][]byte, out []byte) ([]byte, error) {
	op := args[1]
	not := equalFold(op, "not")
	if !not && !equalFold(op, "and") && !equalFold(op, "or") && !equalFold(op, "xor") {
		return appendErr(out, ErrSyntax), nil
	}
	if not && len(args) != 4 {
		return appendErr(out, "ERR BITOP NOT must be called with a single source key."), nil
	}
	var srcs [][]byte
	maxLen := 0
	for _, k := range args[3:] {
		it, err := load(w, k)
		if err != nil || it.wrong {
			return wrongOr(out, err)
		}
		var v []byte
		if it.ok {
			v = bytes.Clone(it.v)
		}
		srcs = append(srcs, v)
		maxLen = max(maxLen, len(v))
	}
	res := make([]byte, maxLen)
	for i := range res {
		at := func(s []byte) byte {
			if i < len(s) {
				return s[i]
			}
			return 0
		}
		b := at(srcs[0])
		switch {
		case not:
			b = ^b
		default:
			for _, s := range srcs[1:] {
				switch {
				case equalFold(op, "and"):
					b &= at(s)
				case equalFold(op, "or"):
					b |= at(s)
				default:
					b ^= at(s)
				}
			}
		}
		res[i] = b
	}
	if err := delKey(w, args[2]); err != nil {
		return out, err
	}
	if len(res) > 0 {
		if err := w.Put(args[2], encodeString(res, 0), true); err != nil {
			return out, err
		}
	}
	return resp.AppendInt(out, int64(len(res))), nil
}
