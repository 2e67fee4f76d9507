package rdb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestCRC64MatchesRedis(t *testing.T) {
	// The vectors of crc64.c's own test; the second includes the C
	// string's terminating NUL, as its sizeof does.
	lorem := "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed " +
		"do eiusmod tempor incididunt ut labore et dolore magna " +
		"aliqua. Ut enim ad minim veniam, quis nostrud exercitation " +
		"ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis " +
		"aute irure dolor in reprehenderit in voluptate velit esse " +
		"cillum dolore eu fugiat nulla pariatur. Excepteur sint " +
		"occaecat cupidatat non proident, sunt in culpa qui officia " +
		"deserunt mollit anim id est laborum.\x00"
	for in, want := range map[string]uint64{"123456789": 0xe9c6d914c4b8d9ca, lorem: 0xc7794709e69683b3} {
		if got := crc64(0, []byte(in)); got != want {
			t.Errorf("crc64(%.20q) = %016x, want %016x", in, got, want)
		}
	}
	// Incremental use continues the same register.
	if got := crc64(crc64(0, []byte("1234")), []byte("56789")); got != 0xe9c6d914c4b8d9ca {
		t.Errorf("crc64 in two parts = %016x", got)
	}
}

func TestDumpWritesRedisBytes(t *testing.T) {
	// What redis-server 7.0.15 answers to DUMP for these strings (the
	// live test checks more of them against a running server).
	for _, c := range []struct {
		s    string
		body string // after the type byte, before the footer
	}{
		{"hello", "\x05hello"},
		{"", "\x00"},
		{"12", "\xc0\x0c"},
		{"-129", "\xc1\x7f\xff"},
		{"2147483647", "\xc2\xff\xff\xff\x7f"},
		{"2147483648", "\x0a2147483648"},
		{"007", "\x03007"},
		{"-0", "\x02-0"},
		{"+1", "\x02+1"},
	} {
		got := Dump(&Value{Kind: String, Str: []byte(c.s)})
		if want := payloadOf(typeString, []byte(c.body), Version); !bytes.Equal(got, want) {
			t.Errorf("Dump(%q) = %x, want %x", c.s, got, want)
		}
	}
	for _, c := range []struct {
		v   Value
		typ byte
	}{
		{Value{Kind: List, Elems: strs("a")}, typeList},
		{Value{Kind: Set, Elems: strs("a")}, typeSet},
		{Value{Kind: ZSet, Scores: []ScoredMember{{[]byte("a"), 1}}}, typeZSet2},
		{Value{Kind: Hash, Pairs: pairs("a", "b")}, typeHash},
	} {
		p := Dump(&c.v)
		if p[0] != c.typ || binary.LittleEndian.Uint16(p[len(p)-10:]) != 10 {
			t.Errorf("Dump(%s) starts with type %d, version %d", c.v.Kind, p[0], binary.LittleEndian.Uint16(p[len(p)-10:]))
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("Dump of an unknown kind did not panic")
		}
	}()
	Dump(&Value{Kind: 9})
}

// roundTripValues are values of every kind, shaped to reach every length
// form and integer width of the encodings Dump writes.
func roundTripValues() map[string]*Value {
	all := make([]byte, 512)
	for i := range all {
		all[i] = byte(i)
	}
	ints := []string{"0", "-1", "127", "128", "-128", "-129", "32767", "32768", "-32768", "-32769",
		"2147483647", "2147483648", "-2147483648", "-2147483649", "9223372036854775807",
		"-9223372036854775808", "9223372036854775808", "00", "-0", "+5", " 5", "1e3", "12345678901"}
	var many []string
	for i := range 20000 { // past 16383, the longest 14-bit length
		many = append(many, strconv.Itoa(i*7919))
	}
	vs := map[string]*Value{
		"string/empty":  {Kind: String, Str: []byte{}},
		"string/binary": {Kind: String, Str: all},
		"string/big":    {Kind: String, Str: bytes.Repeat([]byte("big element "), 100000)},
		"string/64":     {Kind: String, Str: bytes.Repeat([]byte("x"), 64)},
		"string/16384":  {Kind: String, Str: bytes.Repeat([]byte("y"), 16384)},
		"list/ints":     {Kind: List, Elems: strs(ints...)},
		"list/one":      {Kind: List, Elems: strs("")},
		"list/repeats":  {Kind: List, Elems: strs("a", "a", "", "", "a")},
		"list/big":      {Kind: List, Elems: [][]byte{bytes.Repeat([]byte("z"), 1<<20), all, {}}},
		"list/many":     {Kind: List, Elems: strs(many...)},
		"set/ints":      {Kind: Set, Elems: strs(ints...)},
		"set/many":      {Kind: Set, Elems: strs(many...)},
		"set/binary":    {Kind: Set, Elems: [][]byte{all, {}, all[:1], all[1:2]}},
		"zset": {Kind: ZSet, Scores: []ScoredMember{
			{[]byte("a"), 1}, {[]byte(""), -2.5}, {[]byte("inf"), math.Inf(1)}, {[]byte("-inf"), math.Inf(-1)},
			{[]byte("max"), math.MaxFloat64}, {[]byte("tiny"), math.SmallestNonzeroFloat64},
			{[]byte("negzero"), math.Copysign(0, -1)}, {[]byte("12"), 12}, {all, 0.1},
		}},
		"hash": {Kind: Hash, Pairs: []Pair{
			{[]byte("f"), []byte("v")}, {[]byte(""), []byte("")}, {[]byte("12"), []byte("-12")},
			{all, bytes.Repeat(all, 100)}, {[]byte("empty"), []byte{}},
		}},
	}
	var zm []ScoredMember
	var hm []Pair
	for i, s := range many {
		zm = append(zm, ScoredMember{[]byte(s), float64(i) / 3})
		hm = append(hm, Pair{[]byte(s), []byte(strconv.Itoa(i))})
	}
	vs["zset/many"] = &Value{Kind: ZSet, Scores: zm}
	vs["hash/many"] = &Value{Kind: Hash, Pairs: hm}
	return vs
}

func TestDumpParseRoundTrip(t *testing.T) {
	for name, v := range roundTripValues() {
		if err := v.Validate(); err != nil {
			t.Fatalf("%s: Validate: %v", name, err)
		}
		p := Dump(v)
		got, err := Parse(p)
		if err != nil {
			t.Errorf("%s: Parse(Dump) = %v", name, err)
			continue
		}
		if describe(got) != describe(v) {
			t.Errorf("%s: round trip\n got %s\nwant %s", name, describe(got), describe(v))
		}
		if v.Kind == ZSet && len(got.Scores) == len(v.Scores) {
			// Order survives too (describe sorts a sorted set).
			for i := range got.Scores {
				if !bytes.Equal(got.Scores[i].Member, v.Scores[i].Member) {
					t.Errorf("%s: member %d out of order", name, i)
					break
				}
			}
		}
		// The result shares nothing with the payload.
		for i := range p {
			p[i] = 0xee
		}
		if describe(got) != describe(v) {
			t.Errorf("%s: the parsed value changed with the payload", name)
		}
	}
}

func TestParseAppendingToAnElementKeepsItsNeighbours(t *testing.T) {
	v, err := Parse(Dump(&Value{Kind: List, Elems: strs("ab", "cd", "12")}))
	if err != nil {
		t.Fatal(err)
	}
	_ = append(v.Elems[0], 'X')
	_ = append(v.Elems[2], 'Y')
	if string(v.Elems[1]) != "cd" {
		t.Fatalf("appending to an element overwrote the next: %q", v.Elems)
	}
}

func TestValidate(t *testing.T) {
	for name, v := range map[string]*Value{
		"empty list":     {Kind: List},
		"empty set":      {Kind: Set},
		"empty zset":     {Kind: ZSet},
		"empty hash":     {Kind: Hash},
		"duplicate set":  {Kind: Set, Elems: strs("a", "b", "a")},
		"duplicate zset": {Kind: ZSet, Scores: []ScoredMember{{[]byte("a"), 1}, {[]byte("a"), 2}}},
		"duplicate hash": {Kind: Hash, Pairs: pairs("f", "1", "f", "2")},
		"NaN score":      {Kind: ZSet, Scores: []ScoredMember{{[]byte("a"), math.NaN()}}},
		"unknown kind":   {Kind: 7},
	} {
		if err := v.Validate(); !errors.Is(err, ErrBadFormat) {
			t.Errorf("%s: Validate = %v, want ErrBadFormat", name, err)
		}
		if v.Kind > Hash {
			continue
		}
		// And Parse refuses what Dump makes of it, as RESTORE does.
		if _, err := Parse(Dump(v)); !errors.Is(err, ErrBadFormat) {
			t.Errorf("%s: Parse(Dump) = %v, want ErrBadFormat", name, err)
		}
	}
	if err := (&Value{Kind: List, Elems: strs("a", "a")}).Validate(); err != nil {
		t.Errorf("a list with repeats: %v", err)
	}
}

// lzfRun is an LZF stream of n bytes of c the way liblzf compresses a
// run: one literal, then back references of up to 264 bytes to the byte
// before.
func lzfRun(c byte, n int) []byte {
	out := []byte{0, c}
	for left := n - 1; left > 0; {
		k := min(left, 264)
		switch {
		case k < 3:
			out = append(out, byte(k-1))
			out = append(out, bytes.Repeat([]byte{c}, k)...)
		case k-2 < 7:
			out = append(out, byte(k-2)<<5, 0)
		default:
			out = append(out, 7<<5, byte(k-2-7), 0)
		}
		left -= k
	}
	return out
}

// lzfLiterals is b as LZF literal runs, which any decompressor takes.
func lzfLiterals(b []byte) []byte {
	var out []byte
	for len(b) > 0 {
		k := min(len(b), 32)
		out = append(append(out, byte(k-1)), b[:k]...)
		b = b[k:]
	}
	return out
}

// lzfString is an LZF-encoded string: the encoding, the compressed and
// uncompressed lengths, and the compressed bytes.
func lzfString(comp []byte, ulen uint64) []byte {
	b := append([]byte{0xc0 | encLZF}, rdbLen(uint64(len(comp)))...)
	b = append(b, rdbLen(ulen)...)
	return append(b, comp...)
}

func TestParseLZF(t *testing.T) {
	for _, n := range []int{1, 2, 3, 9, 264, 265, 1000, 1 << 20} {
		comp := lzfRun('a', n)
		v, err := Parse(payloadOf(typeString, lzfString(comp, uint64(n)), 9))
		if err != nil {
			t.Fatalf("run of %d: %v", n, err)
		}
		if !bytes.Equal(v.Str, bytes.Repeat([]byte("a"), n)) {
			t.Fatalf("run of %d decoded to %d bytes", n, len(v.Str))
		}
		if n == 1<<20 && float64(n)/float64(len(comp)) < 80 {
			t.Errorf("a run compresses %.1f times; the 88x bound is meant to be reachable", float64(n)/float64(len(comp)))
		}
	}
	// Overlapping and disjoint references, and a literal run after them.
	comp := []byte{2, 'a', 'b', 'c', 1 << 5, 2, 1 << 5, 0, 1, 'x', 'y'}
	v, err := Parse(payloadOf(typeString, lzfString(comp, 11), 10))
	if err != nil {
		t.Fatal(err)
	}
	if string(v.Str) != "abcabccccxy" {
		t.Fatalf("Parse = %q", v.Str)
	}
}

func TestParseRefusesVersionAndChecksum(t *testing.T) {
	good := Dump(&Value{Kind: String, Str: []byte("v")})
	for _, ver := range []uint16{1, 9, 10, 11} {
		if _, err := Parse(payloadOf(typeString, []byte("\x01v"), ver)); err != nil {
			t.Errorf("version %d refused: %v", ver, err)
		}
	}
	flipped := bytes.Clone(good)
	flipped[2] ^= 1
	badCRC := bytes.Clone(good)
	badCRC[len(badCRC)-1] ^= 0x80
	for name, p := range map[string][]byte{
		"empty":      nil,
		"short":      good[len(good)-9:],
		"version 0":  payloadOf(typeString, []byte("\x01v"), 0),
		"version 12": payloadOf(typeString, []byte("\x01v"), 12),
		"big endian": payloadOf(typeString, []byte("\x01v"), 10<<8),
		"flipped":    flipped,
		"bad crc":    badCRC,
	} {
		if _, err := Parse(p); err != ErrVersionOrChecksum {
			t.Errorf("%s: Parse = %v, want ErrVersionOrChecksum", name, err)
		}
	}
	// A footer alone passes Redis's checks, and then there is no value.
	if _, err := Parse(footerAlone()); !errors.Is(err, ErrBadFormat) {
		t.Errorf("a footer alone: %v, want ErrBadFormat", err)
	}
}

func TestParseRefusesUnsupportedTypes(t *testing.T) {
	for _, typ := range []byte{typeModule, typeModule2, typeStreamListpacks, typeStream2, typeStream3} {
		_, err := Parse(payloadOf(typ, []byte{0}, 10))
		if !errors.Is(err, ErrUnsupportedType) || !errors.Is(err, ErrBadFormat) {
			t.Errorf("type %d: %v, want ErrUnsupportedType", typ, err)
		}
	}
	if !strings.Contains(ErrUnsupportedType.Error(), "Bad data format") {
		t.Errorf("ErrUnsupportedType reads %q", ErrUnsupportedType)
	}
}
