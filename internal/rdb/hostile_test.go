package rdb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"runtime"
	"strings"
	"testing"
)

// hostileCase is a payload Parse refuses, and what its error says.
type hostileCase struct {
	name    string
	payload []byte
	want    string
}

func hostileCases() []hostileCase {
	big := func(b byte) []byte { // a 64-bit length of 2^60, then b
		return []byte{0x81, 0x10, 0, 0, 0, 0, 0, 0, 0, b}
	}
	lp := func(entries ...string) string { return string(listpackOf(entries...)) }
	zl := func(entries ...string) string { return string(ziplistOf(entries...)) }
	blob := func(t byte, b []byte) []byte { return payloadOf(t, rdbStrs(false, string(b)), 10) }
	mutate := func(b []byte, f func([]byte)) []byte { b = bytes.Clone(b); f(b); return b }
	nanScore := append(rdbLen(1), rdbStrs(false, "m")...)
	nanScore = binary.LittleEndian.AppendUint64(nanScore, math.Float64bits(math.NaN()))
	textNaN := append(rdbLen(1), rdbStrs(false, "m")...)
	textNaN = append(textNaN, 253)
	goodLP := listpackOf("a", "b")
	goodZL := ziplistOf("a", "b", "1")

	return []hostileCase{
		{"unknown type 8", payloadOf(8, []byte{0}, 10), "unknown object type"},
		{"unknown type 22", payloadOf(22, []byte{0}, 10), "unknown object type"},
		{"no value", payloadOf(typeString, nil, 10), "wanted"},
		{"trailing bytes", payloadOf(typeString, []byte("\x01ab"), 10), "after the value"},
		{"string 2^60", payloadOf(typeString, big('x'), 10), "MaxStringBytes"},
		{"string past the end", payloadOf(typeString, []byte("\x05abc"), 10), "wanted"},
		{"string 32-bit length", payloadOf(typeString, []byte{0x80, 0xff, 0xff, 0xff, 0xff, 'a'}, 10), "MaxStringBytes"},
		{"unknown length form", payloadOf(typeString, []byte{0x82, 0, 0, 0, 0}, 10), "unknown length encoding"},
		{"unknown string encoding", payloadOf(typeString, []byte{0xc4, 0}, 10), "unknown string encoding"},
		{"truncated int32", payloadOf(typeString, []byte{0xc2, 0, 0}, 10), "wanted"},
		{"lzf claims 2^60", payloadOf(typeString, append(append([]byte{0xc3, 0x02}, big(0)[:9]...), 0, 'a'), 10), "cannot come from"},
		{"lzf beyond 88x", payloadOf(typeString, lzfString(lzfRun('a', 1000), 88*uint64(len(lzfRun('a', 1000)))+1), 10), "cannot come from"},
		{"lzf compressed 2^60", payloadOf(typeString, append([]byte{0xc3}, append(big(0)[:9], 1)...), 10), "compressed bytes wanted"},
		{"lzf short output", payloadOf(typeString, lzfString(lzfRun('a', 1000), 1001), 10), "invalid LZF"},
		{"lzf long output", payloadOf(typeString, lzfString(lzfRun('a', 1000), 999), 10), "invalid LZF"},
		{"lzf reference before start", payloadOf(typeString, lzfString([]byte{0, 'a', 0x20, 5}, 4), 10), "invalid LZF"},
		{"lzf truncated reference", payloadOf(typeString, lzfString([]byte{0, 'a', 0xe0}, 4), 10), "invalid LZF"},
		{"lzf truncated literal", payloadOf(typeString, lzfString([]byte{5, 'a'}, 6), 10), "invalid LZF"},
		{"list count 2^60", payloadOf(typeList, big(0), 10), "cannot fit"},
		{"list count past the end", payloadOf(typeList, []byte{3, 1, 'a'}, 10), "cannot fit"},
		{"list empty", payloadOf(typeList, []byte{0}, 10), "empty collection"},
		{"set empty", payloadOf(typeSet, []byte{0}, 10), "empty collection"},
		{"zset empty", payloadOf(typeZSet2, []byte{0}, 10), "empty collection"},
		{"hash empty", payloadOf(typeHash, []byte{0}, 10), "empty collection"},
		{"set duplicates", payloadOf(typeSet, rdbStrs(true, "a", "b", "a"), 10), "duplicate set"},
		{"set int duplicates", payloadOf(typeSet, append(rdbLen(2), 0xc0, 5, 1, '5'), 10), "duplicate set"},
		{"hash duplicates", payloadOf(typeHash, append(rdbLen(2), rdbStrs(false, "f", "1", "f", "2")...), 10), "duplicate hash"},
		{"zset duplicates", payloadOf(typeZSet, append(rdbLen(2), append(rdbStrs(false, "m"), 1, '1', 1, 'm', 1, '2')...), 10), "duplicate sorted set"},
		{"zset NaN", payloadOf(typeZSet2, nanScore, 10), "NaN"},
		{"zset text NaN", payloadOf(typeZSet, textNaN, 10), "NaN"},
		{"zset text not a number", payloadOf(typeZSet, append(rdbLen(1), append(rdbStrs(false, "m"), 2, '1', 'x')...), 10), "not a number"},
		{"zset truncated score", payloadOf(typeZSet2, append(rdbLen(1), append(rdbStrs(false, "m"), 1, 2, 3)...), 10), "cannot fit"},
		{"quicklist no nodes", payloadOf(typeListQuicklist2, []byte{0}, 10), "empty collection"},
		{"quicklist container 3", payloadOf(typeListQuicklist2, append([]byte{1, 3}, rdbStrs(false, lp("a"))...), 10), "container 3"},
		{"quicklist empty node", payloadOf(typeListQuicklist2, []byte{1, containerPacked, 0}, 10), "empty quicklist node"},
		{"quicklist empty plain", payloadOf(typeListQuicklist2, []byte{1, containerPlain, 0}, 10), "empty quicklist node"},
		{"quicklist only empty", payloadOf(typeListQuicklist2, append([]byte{1, containerPacked}, rdbStrs(false, lp())...), 10), "empty collection"},
		{"quicklist1 only empty", payloadOf(typeListQuicklist, append([]byte{1}, rdbStrs(false, zl())...), 10), "empty collection"},
		{"quicklist nodes 2^60", payloadOf(typeListQuicklist2, big(0), 10), "cannot fit"},
		{"listpack short", blob(typeSetListpack, goodLP[:6]), "listpack header"},
		{"listpack total", blob(typeSetListpack, mutate(goodLP, func(b []byte) { b[0]++ })), "listpack header"},
		{"listpack terminator", blob(typeSetListpack, mutate(goodLP, func(b []byte) { b[len(b)-1] = 0 })), "listpack header"},
		{"listpack early end", blob(typeSetListpack, mutate(goodLP, func(b []byte) { b[9] = 0xff })), "terminator before"},
		{"listpack count", blob(typeSetListpack, mutate(goodLP, func(b []byte) { b[4] = 3 })), "entries, holds"},
		{"listpack backlen", blob(typeSetListpack, mutate(goodLP, func(b []byte) { b[8] = 3 })), "back length"},
		{"listpack encoding f5", blob(typeSetListpack, mutate(goodLP, func(b []byte) { b[6] = 0xf5 })), "0xf5"},
		{"listpack entry overruns", blob(typeSetListpack, mutate(goodLP, func(b []byte) { b[9] = 0x80 | 20 })), "overruns"},
		{"listpack 32-bit string", blob(typeSetListpack, mutate(listpackOf(strings.Repeat("s", 5000)), func(b []byte) { b[8] = 0x7f })), "overruns"},
		{"listpack empty set", blob(typeSetListpack, listpackOf()), "empty collection"},
		{"listpack set duplicates", blob(typeSetListpack, listpackOf("1", "a", "1")), "duplicate set"},
		{"listpack hash odd", blob(typeHashListpack, listpackOf("f", "v", "g")), "odd number"},
		{"listpack hash dup", blob(typeHashListpack, listpackOf("f", "v", "f", "w")), "duplicate hash"},
		{"listpack hash empty", blob(typeHashListpack, listpackOf()), "empty collection"},
		{"listpack zset NaN", blob(typeZSetListpack, listpackOf("m", "nan")), "NaN"},
		{"listpack zset bad score", blob(typeZSetListpack, listpackOf("m", "1.5x")), "not a number"},
		{"listpack zset dup", blob(typeZSetListpack, listpackOf("m", "1", "m", "2")), "duplicate sorted set"},
		{"listpack zset empty", blob(typeZSetListpack, listpackOf()), "empty collection"},
		{"ziplist total", blob(typeListZiplist, mutate(goodZL, func(b []byte) { b[0]-- })), "ziplist header"},
		{"ziplist tail", blob(typeListZiplist, mutate(goodZL, func(b []byte) { b[4]++ })), "tail offset does not"},
		{"ziplist tail out of range", blob(typeListZiplist, mutate(goodZL, func(b []byte) { b[5] = 1 })), "out of range"},
		{"ziplist prevlen", blob(typeListZiplist, mutate(goodZL, func(b []byte) { b[13] = 9 })), "previous-entry"},
		{"ziplist count", blob(typeListZiplist, mutate(goodZL, func(b []byte) { b[8] = 2 })), "entries, holds"},
		{"ziplist encoding", blob(typeListZiplist, mutate(goodZL, func(b []byte) { b[11] = 0xc1 })), "encoding 0xc1"},
		{"ziplist entry overruns", blob(typeListZiplist, mutate(goodZL, func(b []byte) { b[11] = 40 })), "overruns"},
		{"ziplist empty list", blob(typeListZiplist, ziplistOf()), "empty collection"},
		{"ziplist hash odd", blob(typeHashZiplist, ziplistOf("f", "v", "g")), "odd number"},
		{"ziplist hash dup", blob(typeHashZiplist, ziplistOf("1", "v", "1", "w")), "duplicate hash"},
		{"ziplist zset dup", blob(typeZSetZiplist, ziplistOf("m", "1", "m", "2")), "duplicate sorted set"},
		{"ziplist zset empty", blob(typeZSetZiplist, ziplistOf()), "empty collection"},
		{"intset empty", blob(typeSetIntset, intsetOf(2)), "empty collection"},
		{"intset width 3", blob(typeSetIntset, mutate(intsetOf(2, 1, 2), func(b []byte) { b[0] = 3 })), "width 3"},
		{"intset size", blob(typeSetIntset, intsetOf(2, 1, 2)[:11]), "does not match"},
		{"intset unsorted", blob(typeSetIntset, intsetOf(4, 2, 1)), "strictly increasing"},
		{"intset duplicate", blob(typeSetIntset, intsetOf(8, 1, 1)), "strictly increasing"},
		{"intset count 2^32-1", blob(typeSetIntset, mutate(intsetOf(8, 1), func(b []byte) { b[4], b[5], b[6], b[7] = 0xff, 0xff, 0xff, 0xff })), "does not match"},
		{"zipmap empty", blob(typeHashZipmap, zipmapOf(0)), "empty collection"},
		{"zipmap dup", blob(typeHashZipmap, zipmapOf(0, "f", "1", "f", "2")), "duplicate hash"},
		{"zipmap count", blob(typeHashZipmap, mutate(zipmapOf(0, "f", "1"), func(b []byte) { b[0] = 2 })), "pairs, holds"},
		{"zipmap free overruns", blob(typeHashZipmap, mutate(zipmapOf(1, "f", "1"), func(b []byte) { b[4] = 9 })), "overruns"},
		{"zipmap long short length", blob(typeHashZipmap, []byte{1, 254, 1, 0, 0, 0, 'f', 1, 0, 'v', 0xff}), "not canonical"},
		{"zipmap terminator", blob(typeHashZipmap, []byte{1, 1, 'f', 1, 0, 'v'}), "terminator is missing"},
		{"zipmap early end", blob(typeHashZipmap, []byte{1, 1, 'f', 1, 0, 'v', 0xff, 0xff}), "terminator before"},
	}
}

// A payload's claims are checked before anything is sized by them.
func TestParseRefusesHostilePayloads(t *testing.T) {
	for _, c := range hostileCases() {
		v, err := Parse(c.payload)
		if !errors.Is(err, ErrBadFormat) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Parse = %s, %v; want ErrBadFormat for %q", c.name, describe(v), err, c.want)
		}
	}
}

// A payload that is valid but would decode to more than the budget is
// refused without the budget being spent, whatever its form.
func TestParseLimitBoundsAllocation(t *testing.T) {
	// A quicklist of LZF-compressed listpacks of one-byte integers:
	// each 3 payload bytes expand to 264 listpack bytes, each 2 of
	// which is an element: the worst amplification the format allows.
	entries := make([]string, 30000)
	for i := range entries {
		entries[i] = "7"
	}
	node := listpackOf(entries...) // 0x07 0x01 repeated
	comp := lzfLiterals(node[:8])
	pos, end := 8, len(node)-1
	for end-pos >= 3 { // references to 2 bytes back repeat "07 01"
		k := min(end-pos, 264)
		if k >= 9 {
			comp = append(comp, 7<<5, byte(k-9), 1)
		} else {
			comp = append(comp, byte(k-2)<<5, 1)
		}
		pos += k
	}
	comp = append(comp, lzfLiterals(node[pos:])...)
	dec := make([]byte, len(node))
	if err := lzfDecompress(comp, dec); err != nil || !bytes.Equal(dec, node) {
		t.Fatalf("test stream does not rebuild the listpack: %v", err)
	}
	var body []byte
	nodes := 50
	body = append(body, rdbLen(uint64(nodes))...)
	for range nodes {
		body = append(body, containerPacked)
		body = append(body, lzfString(comp, uint64(len(node)))...)
	}
	p := payloadOf(typeListQuicklist2, body, 10)
	t.Logf("payload of %d bytes holds %d elements", len(p), nodes*len(entries))

	v, err := Parse(p)
	if err != nil || len(v.Elems) != nodes*len(entries) {
		t.Fatalf("Parse under the default budget: %v", err)
	}
	v = nil

	const limit = 4 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = ParseLimit(p, limit)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrBadFormat) {
		t.Fatalf("ParseLimit(%d) = %v, want a refusal", limit, err)
	}
	if spent := after.TotalAlloc - before.TotalAlloc; spent > 2*limit {
		t.Errorf("ParseLimit(%d) allocated %d bytes", limit, spent)
	}

	// A declared count or length of 2^60 costs nothing but the error.
	for _, p := range [][]byte{
		payloadOf(typeList, []byte{0x81, 0x10, 0, 0, 0, 0, 0, 0, 0}, 10),
		payloadOf(typeString, []byte{0x81, 0x10, 0, 0, 0, 0, 0, 0, 0}, 10),
	} {
		runtime.GC()
		runtime.ReadMemStats(&before)
		for range 100 {
			if _, err := Parse(p); err == nil {
				t.Fatal("a length of 2^60 parsed")
			}
		}
		runtime.ReadMemStats(&after)
		if spent := (after.TotalAlloc - before.TotalAlloc) / 100; spent > 1024 {
			t.Errorf("a length of 2^60 cost %d bytes", spent)
		}
	}
}
