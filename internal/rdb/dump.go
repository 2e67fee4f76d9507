package rdb

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// Dump encodes v as the DUMP payload Redis 7.0 would accept in RESTORE.
// It writes the plainest encoding of each kind, which every Redis from
// 7.0 on loads and re-encodes by its own configuration:
//
//	String  RDB_TYPE_STRING, as an 8/16/32-bit integer when the text is
//	        one exactly (as Redis writes it), else raw; never compressed
//	List    RDB_TYPE_LIST: a count and each element. Redis rebuilds its
//	        quicklist with its own node sizes, which a payload of ready
//	        nodes would otherwise impose on it.
//	Set     RDB_TYPE_SET
//	ZSet    RDB_TYPE_ZSET_2 (scores as binary doubles)
//	Hash    RDB_TYPE_HASH
//
// followed by RDB version 10 and the CRC64. Elements are written as
// strings are. Dump does not check v: a value Validate refuses (an empty
// collection, a duplicate, a NaN score) is encoded anyway, and RESTORE
// and Parse refuse the payload. Dump panics on an unknown Kind.
func Dump(v *Value) []byte {
	e := encoder{buf: make([]byte, 0, dumpSize(v))}
	switch v.Kind {
	case String:
		e.buf = append(e.buf, typeString)
		e.str(v.Str)
	case List, Set:
		t := byte(typeList)
		if v.Kind == Set {
			t = typeSet
		}
		e.buf = append(e.buf, t)
		e.len(uint64(len(v.Elems)))
		for _, s := range v.Elems {
			e.str(s)
		}
	case ZSet:
		e.buf = append(e.buf, typeZSet2)
		e.len(uint64(len(v.Scores)))
		for _, m := range v.Scores {
			e.str(m.Member)
			e.buf = binary.LittleEndian.AppendUint64(e.buf, math.Float64bits(m.Score))
		}
	case Hash:
		e.buf = append(e.buf, typeHash)
		e.len(uint64(len(v.Pairs)))
		for _, p := range v.Pairs {
			e.str(p.Field)
			e.str(p.Value)
		}
	default:
		panic(fmt.Sprintf("rdb: Dump of unknown kind %v", v.Kind))
	}
	e.buf = binary.LittleEndian.AppendUint16(e.buf, Version)
	return binary.LittleEndian.AppendUint64(e.buf, crc64(0, e.buf))
}

// dumpSize bounds Dump's output, so it allocates once: a string costs at
// most a 9-byte length and itself.
func dumpSize(v *Value) int {
	n := 1 + 9 + footerLen + 9 + len(v.Str)
	for _, s := range v.Elems {
		n += 9 + len(s)
	}
	for _, m := range v.Scores {
		n += 9 + len(m.Member) + 8
	}
	for _, p := range v.Pairs {
		n += 18 + len(p.Field) + len(p.Value)
	}
	return n
}

type encoder struct{ buf []byte }

// len writes a length in the shortest of rdbSaveLen's forms.
func (e *encoder) len(n uint64) {
	switch {
	case n < 1<<6:
		e.buf = append(e.buf, byte(n))
	case n < 1<<14:
		e.buf = append(e.buf, byte(n>>8)|0x40, byte(n))
	case n <= math.MaxUint32:
		e.buf = append(e.buf, 0x80)
		e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(n))
	default:
		e.buf = append(e.buf, 0x81)
		e.buf = binary.BigEndian.AppendUint64(e.buf, n)
	}
}

// str writes s as rdbSaveRawString does, less the compression: as an
// integer when s is the canonical decimal text of one that fits in 32
// bits (so it decodes to exactly s again), else as a length and bytes.
func (e *encoder) str(s []byte) {
	if len(s) <= 11 {
		if v, err := strconv.ParseInt(string(s), 10, 32); err == nil && strconv.FormatInt(v, 10) == string(s) {
			switch {
			case v >= math.MinInt8 && v <= math.MaxInt8:
				e.buf = append(e.buf, 0xc0|encInt8, byte(v))
			case v >= math.MinInt16 && v <= math.MaxInt16:
				e.buf = append(e.buf, 0xc0|encInt16)
				e.buf = binary.LittleEndian.AppendUint16(e.buf, uint16(v))
			default:
				e.buf = append(e.buf, 0xc0|encInt32)
				e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(v))
			}
			return
		}
	}
	e.len(uint64(len(s)))
	e.buf = append(e.buf, s...)
}

// Validate reports whether Parse would accept v's payload, which is
// whether Redis can hold v: a collection is not empty and has no
// duplicate member or field, no score is NaN, and no string is longer
// than MaxStringBytes.
func (v *Value) Validate() error {
	bad := func(what string) error { return fmt.Errorf("%w: %s", ErrBadFormat, what) }
	long := func(s []byte) bool { return len(s) > MaxStringBytes }
	var n int
	switch v.Kind {
	case String:
		if long(v.Str) {
			return bad("string longer than MaxStringBytes")
		}
		return nil
	case List, Set:
		n = len(v.Elems)
		if slices.ContainsFunc(v.Elems, long) {
			return bad("element longer than MaxStringBytes")
		}
		if v.Kind == Set && dupAt(n, func(i int) []byte { return v.Elems[i] }) {
			return bad("duplicate set members")
		}
	case ZSet:
		n = len(v.Scores)
		for _, m := range v.Scores {
			if math.IsNaN(m.Score) {
				return bad("NaN score")
			}
			if long(m.Member) {
				return bad("member longer than MaxStringBytes")
			}
		}
		if dupAt(n, func(i int) []byte { return v.Scores[i].Member }) {
			return bad("duplicate sorted set members")
		}
	case Hash:
		n = len(v.Pairs)
		for _, p := range v.Pairs {
			if long(p.Field) || long(p.Value) {
				return bad("field or value longer than MaxStringBytes")
			}
		}
		if dupAt(n, func(i int) []byte { return v.Pairs[i].Field }) {
			return bad("duplicate hash fields")
		}
	default:
		return bad(fmt.Sprintf("unknown kind %v", v.Kind))
	}
	if n == 0 {
		return bad("empty collection")
	}
	return nil
}
