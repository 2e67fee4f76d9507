package rdb

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Builders of the encodings Dump never writes, so tests can make the
// payloads older (and newer) Redis versions write. They follow Redis's
// own writers closely enough that redis-server 7.0 loads their output
// with sanitize-dump-payload yes (TestRedisLoadsLegacyEncodings).

// payloadOf wraps an object type and its body into a DUMP payload.
func payloadOf(t byte, body []byte, ver uint16) []byte {
	p := append([]byte{t}, body...)
	p = binary.LittleEndian.AppendUint16(p, ver)
	return binary.LittleEndian.AppendUint64(p, crc64(0, p))
}

// rdbStrs is the body of strings as the RDB writes them, with a count
// first when count is set.
func rdbStrs(count bool, ss ...string) []byte {
	var e encoder
	if count {
		e.len(uint64(len(ss)))
	}
	for _, s := range ss {
		e.str([]byte(s))
	}
	return e.buf
}

func rdbLen(n uint64) []byte {
	var e encoder
	e.len(n)
	return e.buf
}

// canonicalInt is string2ll's test: s is exactly the decimal text of an
// int64, so an encoding may store it as that integer.
func canonicalInt(s string) (int64, bool) {
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil && strconv.FormatInt(v, 10) == s
}

// listpackOf encodes entries as lpAppend does: integer text as an
// integer, anything else as a string.
func listpackOf(entries ...string) []byte {
	lp := make([]byte, 6)
	for _, s := range entries {
		start := len(lp)
		if v, ok := canonicalInt(s); ok {
			switch {
			case v >= 0 && v <= 127:
				lp = append(lp, byte(v))
			case v >= -4096 && v <= 4095:
				u := uint64(v) & (1<<13 - 1)
				lp = append(lp, 0xc0|byte(u>>8), byte(u))
			case v >= -32768 && v <= 32767:
				lp = append(lp, 0xf1)
				lp = binary.LittleEndian.AppendUint16(lp, uint16(v))
			case v >= -8388608 && v <= 8388607:
				u := uint32(v)
				lp = append(lp, 0xf2, byte(u), byte(u>>8), byte(u>>16))
			case v >= -2147483648 && v <= 2147483647:
				lp = append(lp, 0xf3)
				lp = binary.LittleEndian.AppendUint32(lp, uint32(v))
			default:
				lp = append(lp, 0xf4)
				lp = binary.LittleEndian.AppendUint64(lp, uint64(v))
			}
		} else {
			switch n := len(s); {
			case n < 64:
				lp = append(lp, 0x80|byte(n))
			case n < 4096:
				lp = append(lp, 0xe0|byte(n>>8), byte(n))
			default:
				lp = append(lp, 0xf0)
				lp = binary.LittleEndian.AppendUint32(lp, uint32(n))
			}
			lp = append(lp, s...)
		}
		lp = appendBacklen(lp, uint64(len(lp)-start))
	}
	lp = append(lp, 0xff)
	binary.LittleEndian.PutUint32(lp, uint32(len(lp)))
	binary.LittleEndian.PutUint16(lp[4:], uint16(min(len(entries), lpCountUnknown)))
	return lp
}

// appendBacklen writes l as lpEncodeBacklen does: in lpBacklenSize(l)
// bytes, most significant group first, every byte but the first with
// its high bit set, so a reader going backwards knows where to stop.
func appendBacklen(b []byte, l uint64) []byte {
	out := make([]byte, lpBacklenSize(l))
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = byte(l & 127)
		if i > 0 {
			out[i] |= 128
		}
		l >>= 7
	}
	return append(b, out...)
}

// ziplistOf encodes entries as ziplistPush does.
func ziplistOf(entries ...string) []byte {
	zl := make([]byte, zlHeader)
	prevLen, tail := 0, zlHeader
	for _, s := range entries {
		start := len(zl)
		tail = start
		if prevLen < 254 {
			zl = append(zl, byte(prevLen))
		} else {
			zl = append(zl, 0xfe)
			zl = binary.LittleEndian.AppendUint32(zl, uint32(prevLen))
		}
		if v, ok := canonicalInt(s); ok && len(s) < 32 {
			switch {
			case v >= 0 && v <= 12:
				zl = append(zl, 0xf1+byte(v))
			case v >= -128 && v <= 127:
				zl = append(zl, 0xfe, byte(v))
			case v >= -32768 && v <= 32767:
				zl = append(zl, 0xc0)
				zl = binary.LittleEndian.AppendUint16(zl, uint16(v))
			case v >= -8388608 && v <= 8388607:
				u := uint32(v)
				zl = append(zl, 0xf0, byte(u), byte(u>>8), byte(u>>16))
			case v >= -2147483648 && v <= 2147483647:
				zl = append(zl, 0xd0)
				zl = binary.LittleEndian.AppendUint32(zl, uint32(v))
			default:
				zl = append(zl, 0xe0)
				zl = binary.LittleEndian.AppendUint64(zl, uint64(v))
			}
		} else {
			switch n := len(s); {
			case n <= 0x3f:
				zl = append(zl, byte(n))
			case n <= 0x3fff:
				zl = append(zl, 0x40|byte(n>>8), byte(n))
			default:
				zl = append(zl, 0x80)
				zl = binary.BigEndian.AppendUint32(zl, uint32(n))
			}
			zl = append(zl, s...)
		}
		prevLen = len(zl) - start
	}
	zl = append(zl, 0xff)
	binary.LittleEndian.PutUint32(zl, uint32(len(zl)))
	binary.LittleEndian.PutUint32(zl[4:], uint32(tail))
	binary.LittleEndian.PutUint16(zl[8:], uint16(min(len(entries), 65535)))
	return zl
}

func intsetOf(width int, vs ...int64) []byte {
	is := binary.LittleEndian.AppendUint32(nil, uint32(width))
	is = binary.LittleEndian.AppendUint32(is, uint32(len(vs)))
	for _, v := range vs {
		switch width {
		case 2:
			is = binary.LittleEndian.AppendUint16(is, uint16(v))
		case 4:
			is = binary.LittleEndian.AppendUint32(is, uint32(v))
		default:
			is = binary.LittleEndian.AppendUint64(is, uint64(v))
		}
	}
	return is
}

// zipmapOf encodes field, value pairs with free bytes after each value.
func zipmapOf(free int, kv ...string) []byte {
	zm := []byte{byte(min(len(kv)/2, 254))}
	length := func(n int) {
		if n < 254 {
			zm = append(zm, byte(n))
		} else {
			zm = append(zm, 254)
			zm = binary.LittleEndian.AppendUint32(zm, uint32(n))
		}
	}
	for i := 0; i < len(kv); i += 2 {
		length(len(kv[i]))
		zm = append(zm, kv[i]...)
		length(len(kv[i+1]))
		zm = append(zm, byte(free))
		zm = append(zm, kv[i+1]...)
		zm = append(zm, make([]byte, free)...)
	}
	return append(zm, 0xff)
}

// describe renders a value canonically (a list in order; members,
// fields and scores sorted), so values compare as text and a mismatch
// reads well. A long rendering is cut, with a checksum of the whole.
func describe(v *Value) string {
	if v == nil {
		return "<nil>"
	}
	var parts []string
	switch v.Kind {
	case String:
		return fmt.Sprintf("string %q", v.Str)
	case List, Set:
		for _, e := range v.Elems {
			parts = append(parts, strconv.Quote(string(e)))
		}
		if v.Kind == Set {
			slices.Sort(parts)
		}
	case ZSet:
		for _, m := range v.Scores {
			parts = append(parts, fmt.Sprintf("%q=%s", m.Member, strconv.FormatFloat(m.Score, 'g', -1, 64)))
		}
		slices.Sort(parts)
	case Hash:
		for _, p := range v.Pairs {
			parts = append(parts, fmt.Sprintf("%q:%q", p.Field, p.Value))
		}
		slices.Sort(parts)
	}
	s := v.Kind.String() + " [" + strings.Join(parts, " ") + "]"
	if len(s) > 400 {
		s = fmt.Sprintf("%s ... (%d bytes, crc %016x)", s[:300], len(s), crc64(0, []byte(s)))
	}
	return s
}

func strs(ss ...string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

func pairs(kv ...string) []Pair {
	var out []Pair
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, Pair{[]byte(kv[i]), []byte(kv[i+1])})
	}
	return out
}
