package rdb

import (
	"bytes"
	"encoding/binary"
	"math"
	"strings"
	"testing"
)

// legacyCase is a payload in an encoding Dump never writes, as some
// Redis version writes it, and the value it holds. redis says whether
// redis-server 7.0 loads it (TestRedisLoadsLegacyEncodings).
type legacyCase struct {
	name    string
	payload []byte
	want    *Value
	redis   bool
}

// zlInts is every ziplist and listpack integer width, and strings that
// look numeric but are not canonical.
var zlInts = []string{"0", "12", "13", "-1", "127", "128", "-128", "-129", "4095", "-4096", "32767",
	"-32768", "32768", "8388607", "-8388608", "8388608", "2147483647", "-2147483648", "2147483648",
	"9223372036854775807", "-9223372036854775808", "012", "-0", "+1", "1.5"}

func legacyCases() []legacyCase {
	long := strings.Repeat("L", 300)     // a 5-byte ziplist prevlen after it
	huge := strings.Repeat("H", 20000)   // a 32-bit string length
	edge := strings.Repeat("E", 16383-5) // a listpack entry of 16383 bytes: 3-byte backlen
	mid := strings.Repeat("M", 16382-5)  // and of 16382: 2-byte backlen
	listElems := append([]string{"", "a", long, huge, "b"}, zlInts...)
	zsetPairs := []string{"a", "1.5", "b", "3", "c", "-inf", "d", "inf", "e", "-0.25", "f", "1e300", long, "7"}
	zsetWant := &Value{Kind: ZSet, Scores: []ScoredMember{{[]byte("a"), 1.5}, {[]byte("b"), 3},
		{[]byte("c"), math.Inf(-1)}, {[]byte("d"), math.Inf(1)}, {[]byte("e"), -0.25}, {[]byte("f"), 1e300},
		{[]byte(long), 7}}}
	hashKV := []string{"f", "v", "num", "123", "", "empty field", "neg", "-77", long, huge, "big", "9223372036854775807"}
	hashWant := &Value{Kind: Hash, Pairs: pairs(hashKV...)}

	textZSet := append(rdbLen(4), rdbStrs(false, "a")...)
	textZSet = append(textZSet, 3, '1', '.', '5')
	textZSet = append(textZSet, rdbStrs(false, "b")...)
	textZSet = append(textZSet, 254) // +inf
	textZSet = append(textZSet, rdbStrs(false, "c")...)
	textZSet = append(textZSet, 255) // -inf
	textZSet = append(textZSet, rdbStrs(false, "d")...)
	textZSet = append(textZSet, 23)
	textZSet = append(textZSet, "-1.0000000000000001e-05"...)

	quicklist1 := append(rdbLen(3), rdbStrs(false, string(ziplistOf("a", "1", long)), string(ziplistOf()), string(ziplistOf(huge, "-5")))...)
	quicklist2 := rdbLen(4)
	quicklist2 = append(quicklist2, containerPacked)
	quicklist2 = append(quicklist2, rdbStrs(false, string(listpackOf(append([]string{"x", long, edge, mid}, zlInts...)...)))...)
	quicklist2 = append(quicklist2, containerPlain)
	quicklist2 = append(quicklist2, rdbStrs(false, huge)...)
	quicklist2 = append(quicklist2, containerPacked)
	// A compressed node, as Redis writes interior nodes with
	// list-compress-depth set.
	quicklist2 = append(quicklist2, lzfString(lzfLiterals(listpackOf("q")), 10)...)
	quicklist2 = append(quicklist2, containerPacked)
	quicklist2 = append(quicklist2, rdbStrs(false, string(listpackOf()))...)

	return []legacyCase{
		{"list (RDB_TYPE_LIST)", payloadOf(typeList, rdbStrs(true, listElems...), 10),
			&Value{Kind: List, Elems: strs(listElems...)}, true},
		{"list ziplist", payloadOf(typeListZiplist, rdbStrs(false, string(ziplistOf(listElems...))), 6),
			&Value{Kind: List, Elems: strs(listElems...)}, true},
		{"list quicklist of ziplists", payloadOf(typeListQuicklist, quicklist1, 9),
			&Value{Kind: List, Elems: strs("a", "1", long, huge, "-5")}, true},
		{"list quicklist 2", payloadOf(typeListQuicklist2, quicklist2, 10),
			&Value{Kind: List, Elems: strs(append(append([]string{"x", long, edge, mid}, zlInts...), huge, "q")...)}, true},
		{"set intset 16", payloadOf(typeSetIntset, rdbStrs(false, string(intsetOf(2, -32768, -1, 0, 7, 32767))), 10),
			&Value{Kind: Set, Elems: strs("-32768", "-1", "0", "7", "32767")}, true},
		{"set intset 32", payloadOf(typeSetIntset, rdbStrs(false, string(intsetOf(4, -2147483648, 5, 2147483647))), 10),
			&Value{Kind: Set, Elems: strs("-2147483648", "5", "2147483647")}, true},
		{"set intset 64", payloadOf(typeSetIntset, rdbStrs(false, string(intsetOf(8, math.MinInt64, 0, math.MaxInt64))), 10),
			&Value{Kind: Set, Elems: strs("-9223372036854775808", "0", "9223372036854775807")}, true},
		{"set listpack (7.2)", payloadOf(typeSetListpack, rdbStrs(false, string(listpackOf(append([]string{"a", long, huge}, zlInts...)...))), 11),
			&Value{Kind: Set, Elems: strs(append([]string{"a", long, huge}, zlInts...)...)}, false},
		{"zset text scores", payloadOf(typeZSet, textZSet, 7),
			&Value{Kind: ZSet, Scores: []ScoredMember{{[]byte("a"), 1.5}, {[]byte("b"), math.Inf(1)},
				{[]byte("c"), math.Inf(-1)}, {[]byte("d"), -1.0000000000000001e-05}}}, true},
		{"zset ziplist", payloadOf(typeZSetZiplist, rdbStrs(false, string(ziplistOf(zsetPairs...))), 9), zsetWant, true},
		{"zset listpack", payloadOf(typeZSetListpack, rdbStrs(false, string(listpackOf(zsetPairs...))), 10), zsetWant, true},
		{"hash zipmap", payloadOf(typeHashZipmap, rdbStrs(false, string(zipmapOf(2, hashKV...))), 4), hashWant, true},
		{"hash zipmap no free", payloadOf(typeHashZipmap, rdbStrs(false, string(zipmapOf(0, "a", "1"))), 4),
			&Value{Kind: Hash, Pairs: pairs("a", "1")}, true},
		{"hash ziplist", payloadOf(typeHashZiplist, rdbStrs(false, string(ziplistOf(hashKV...))), 9), hashWant, true},
		{"hash listpack", payloadOf(typeHashListpack, rdbStrs(false, string(listpackOf(hashKV...))), 10), hashWant, true},
		{"string int8", payloadOf(typeString, []byte{0xc0, 0x80}, 10), &Value{Kind: String, Str: []byte("-128")}, true},
		{"string int16", payloadOf(typeString, []byte{0xc1, 0x00, 0x80}, 10), &Value{Kind: String, Str: []byte("-32768")}, true},
		{"string int32", payloadOf(typeString, []byte{0xc2, 0, 0, 0, 0x80}, 10), &Value{Kind: String, Str: []byte("-2147483648")}, true},
		{"string 64-bit length", payloadOf(typeString, append([]byte{0x81, 0, 0, 0, 0, 0, 0, 0, 2}, "ok"...), 10),
			&Value{Kind: String, Str: []byte("ok")}, true},
		{"string lzf", payloadOf(typeString, lzfString(lzfRun('r', 5000), 5000), 10),
			&Value{Kind: String, Str: bytes.Repeat([]byte("r"), 5000)}, true},
	}
}

func TestParseLegacyEncodings(t *testing.T) {
	for _, c := range legacyCases() {
		got, err := Parse(c.payload)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if describe(got) != describe(c.want) {
			t.Errorf("%s:\n got %s\nwant %s", c.name, describe(got), describe(c.want))
		}
	}
}

func TestListpackBacklenEdges(t *testing.T) {
	// Entries whose total length sits on each side of every back-length
	// size change; lpBacklenSize follows lpEncodeBacklen's boundaries.
	for _, n := range []int{127, 128, 16382, 16383, 16384, 2097150, 2097151, 2097152} {
		for _, hdr := range []int{2, 5} {
			size := n - hdr
			if (hdr == 2 && (size < 64 || size >= 4096)) || (hdr == 5 && size < 4096) {
				continue
			}
			s := strings.Repeat("b", size)
			lp := listpackOf(s)
			if got := len(lp) - 7 - n; got != int(lpBacklenSize(uint64(n))) {
				t.Fatalf("entry of %d bytes: back length of %d bytes", n, got)
			}
			v, err := Parse(payloadOf(typeSetListpack, rdbStrs(false, string(lp)), 11))
			if err != nil || len(v.Elems) != 1 || len(v.Elems[0]) != size {
				t.Fatalf("entry of %d bytes: %v", n, err)
			}
		}
	}
}

func TestListpackCountMayBeUnknown(t *testing.T) {
	lp := listpackOf("a", "b")
	binary.LittleEndian.PutUint16(lp[4:], lpCountUnknown)
	if _, err := Parse(payloadOf(typeSetListpack, rdbStrs(false, string(lp)), 11)); err != nil {
		t.Fatal(err)
	}
	zl := ziplistOf("a", "b")
	binary.LittleEndian.PutUint16(zl[8:], 65535)
	if _, err := Parse(payloadOf(typeListZiplist, rdbStrs(false, string(zl)), 6)); err != nil {
		t.Fatal(err)
	}
}
