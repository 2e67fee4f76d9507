package kv

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kintsu/kintsu/internal/resp"
)

// hv is the metadata record of a hash of n fields stored under version ver.
func hv(ver, n uint64) string { return string(meta{tag: typeHash, ver: ver, n: n}.encode()) }

func rArr(items ...string) string {
	out := resp.AppendArrayHeader(nil, len(items))
	for _, it := range items {
		out = append(out, it...)
	}
	return string(out)
}

// Hash commands against Redis 7's documented replies.
func TestHashCommands(t *testing.T) {
	str := map[string]string{"s": sv("x")}
	runCases(t, []cmdCase{
		{name: "hset counts new fields, hget reads", steps: []cmdStep{
			do(rInt(2), "HSET", "h", "a", "1", "b", "2"),
			do(rInt(1), "HSET", "h", "a", "10", "c", "3"),
			do(rBulk("10"), "HGET", "h", "a"), do(rNil, "HGET", "h", "zz"), do(rNil, "HGET", "nokey", "a"),
			do(rInt(3), "HLEN", "h"), do(rInt(0), "HLEN", "nokey"),
			do(rArr(rBulk("10"), rNil, rBulk("3")), "HMGET", "h", "a", "zz", "c"),
			do(rInt(1), "HEXISTS", "h", "b"), do(rInt(0), "HEXISTS", "h", "zz"),
			do(rInt(2), "HSTRLEN", "h", "a"), do(rInt(0), "HSTRLEN", "h", "zz"),
			do("+hash\r\n", "TYPE", "h"), do("+none\r\n", "TYPE", "nokey"),
		}, final: map[string]string{"h": hv(1, 3)}},
		{name: "hset arity", steps: []cmdStep{
			do(rArity("hset"), "HSET", "h", "a", "1", "b"), do(rArity("hmset"), "HMSET", "h", "a", "1", "b"),
			do(rArity("hset"), "HSET", "h", "a"), do(rOK, "HMSET", "h", "a", "1"),
		}, final: map[string]string{"h": hv(1, 1)}},
		{name: "hdel removes fields and the emptied key", steps: []cmdStep{
			do(rInt(2), "HSET", "h", "a", "1", "b", "2"),
			do(rInt(1), "HDEL", "h", "a", "zz", "a"),
			do(rInt(1), "HDEL", "h", "b"), do(rInt(0), "EXISTS", "h"), do(rInt(0), "HDEL", "h", "b"),
		}, final: map[string]string{}},
		{name: "hsetnx", steps: []cmdStep{
			do(rInt(1), "HSETNX", "h", "a", "1"), do(rInt(0), "HSETNX", "h", "a", "2"), do(rBulk("1"), "HGET", "h", "a"),
		}, final: map[string]string{"h": hv(1, 1)}},
		{name: "hincrby", steps: []cmdStep{
			do(rInt(5), "HINCRBY", "h", "n", "5"), do(rInt(-5), "HINCRBY", "h", "n", "-10"),
			do(rNotInt, "HINCRBY", "h", "n", "x"),
			do(rInt(1), "HSET", "h", "s", "abc"), do("-ERR hash value is not an integer\r\n", "HINCRBY", "h", "s", "1"),
			do(rInt(1), "HSET", "h", "m", maxI), do(rOverflow, "HINCRBY", "h", "m", "1"),
		}, final: map[string]string{"h": hv(1, 3)}},
		{name: "hincrbyfloat", steps: []cmdStep{
			do(rBulk("10.5"), "HINCRBYFLOAT", "h", "f", "10.5"), do(rBulk("10.6"), "HINCRBYFLOAT", "h", "f", "0.1"),
			// In long double, as Redis adds: 0.1 + 0.2 prints 0.3.
			do(rBulk("0.1"), "HINCRBYFLOAT", "h", "g", "0.1"), do(rBulk("0.3"), "HINCRBYFLOAT", "h", "g", "0.2"),
			do(rBulk("5000"), "HINCRBYFLOAT", "h", "e", "5.0e3"),
			do("-ERR value is not a valid float\r\n", "HINCRBYFLOAT", "h", "f", "abc"),
			do("-ERR value is not a valid float\r\n", "HINCRBYFLOAT", "h", "f", " 1"),
			do("-ERR value is not a valid float\r\n", "HINCRBYFLOAT", "h", "f", "1_0"),
			do(rInt(1), "HSET", "h", "s", "abc"), do("-ERR hash value is not a float\r\n", "HINCRBYFLOAT", "h", "s", "1"),
			do("-ERR value is NaN or Infinity\r\n", "HINCRBYFLOAT", "h", "f", "inf"),
			do("-ERR value is not a valid float\r\n", "HINCRBYFLOAT", "h", "f", "nan"),
			do(rInt(1), "HSET", "h", "i", "-inf"), do("-ERR increment would produce NaN or Infinity\r\n", "HINCRBYFLOAT", "h", "i", "1"),
		}, final: map[string]string{"h": hv(1, 5)}},
		{name: "wrong types both ways", init: str, steps: []cmdStep{
			do(rWrongType, "HSET", "s", "a", "1"), do(rWrongType, "HGET", "s", "a"), do(rWrongType, "HGETALL", "s"),
			do(rWrongType, "HLEN", "s"), do(rWrongType, "HDEL", "s", "a"), do(rWrongType, "HINCRBY", "s", "a", "1"),
			do(rInt(1), "HSET", "h", "a", "1"), do(rWrongType, "GET", "h"), do(rWrongType, "INCR", "h"),
			do(rWrongType, "APPEND", "h", "x"), do(rArr(rNil), "MGET", "h"),
		}, final: map[string]string{"s": sv("x"), "h": hv(1, 1)}},
		{name: "set replaces a hash; a new hash takes a new version", steps: []cmdStep{
			do(rInt(2), "HSET", "h", "a", "1", "b", "2"), do(rOK, "SET", "h", "v"), do(rBulk("v"), "GET", "h"),
			do(rInt(1), "DEL", "h"), do(rInt(1), "HSET", "h", "c", "3"),
			// The first hash's fields are left to the sweep, never seen again.
			do(rArr(rBulk("c"), rBulk("3")), "HGETALL", "h"), do(rInt(1), "HLEN", "h"),
		}, final: map[string]string{"h": hv(2, 1)}},
		{name: "hrandfield", steps: []cmdStep{
			do(rNil, "HRANDFIELD", "h"), do(rArr(), "HRANDFIELD", "h", "3"),
			do(rInt(1), "HSET", "h", "a", "1"), do(rBulk("a"), "HRANDFIELD", "h"),
			do(rArr(rBulk("a")), "HRANDFIELD", "h", "5"), do(rArr(rBulk("a")), "HRANDFIELD", "h", "9223372036854775807"),
			do("-ERR value is out of range\r\n", "HRANDFIELD", "h", "-9223372036854775807"), do(rArr(rBulk("a"), rBulk("a")), "HRANDFIELD", "h", "-2"),
			do(rArr(rBulk("a"), rBulk("1")), "HRANDFIELD", "h", "1", "WITHVALUES"),
			do(rArr(), "HRANDFIELD", "h", "0"), do(rSyntax, "HRANDFIELD", "h", "1", "bogus"),
			do(rNotInt, "HRANDFIELD", "h", "x"),
		}, final: map[string]string{"h": hv(1, 1)}},
	})
}

// TestDelDropsSmallCollections: DEL, an emptying HDEL and an expiry take
// a small hash's sub-keys with the key; a large one's are left to the
// sweep, so one entry's work stays bounded.
func TestDelDropsSmallCollections(t *testing.T) {
	s := newMemStore()
	apply(t, s, "HSET", "small", "a", "1", "b", "2")
	apply(t, s, "DEL", "small")
	apply(t, s, "HSET", "one", "a", "1")
	apply(t, s, "HDEL", "one", "a")
	apply(t, s, "HSET", "timed", "a", "1")
	apply(t, s, "PEXPIRE", "timed", "0")
	if n := s.Len(); n != 0 {
		t.Fatalf("%d sub-keys left after dropping small hashes", n)
	}
	for i := range eagerDropMax + 1 {
		apply(t, s, "HSET", "big", strconv.Itoa(i), "v")
	}
	if got := apply(t, s, "DEL", "big"); got != rInt(1) {
		t.Fatalf("DEL big = %q", got)
	}
	if n := s.Len(); n != eagerDropMax+1 {
		t.Fatalf("%d sub-keys left after DEL of a large hash, want all %d (the sweep's)", n, eagerDropMax+1)
	}
	// A sorted set keeps two sub-keys per member: the bound counts
	// sub-keys, so a set of half as many members is dropped whole.
	s = newMemStore()
	for i := range eagerDropMax / 2 {
		apply(t, s, "ZADD", "z", strconv.Itoa(i), strconv.Itoa(i))
	}
	apply(t, s, "DEL", "z")
	if n := s.Len(); n != 0 {
		t.Fatalf("%d sub-keys left after DEL of a sorted set of %d sub-keys", n, eagerDropMax)
	}
	for i := range eagerDropMax/2 + 1 {
		apply(t, s, "ZADD", "z", strconv.Itoa(i), strconv.Itoa(i))
	}
	apply(t, s, "DEL", "z")
	if n := s.Len(); n != eagerDropMax+2 {
		t.Fatalf("%d sub-keys left after DEL of a larger sorted set, want all %d (the sweep's)", n, eagerDropMax+2)
	}
}

// TestHashAllAndScan: HGETALL/HKEYS/HVALS list every field once, and an
// HSCAN iteration returns every field present throughout it, even while
// fields are added and removed between its calls.
func TestHashAllAndScan(t *testing.T) {
	s := newMemStore()
	want := map[string]string{}
	for i := range 300 {
		f, v := fmt.Sprintf("f%d", i), fmt.Sprintf("v%d", i)
		want[f] = v
		apply(t, s, "HSET", "h", f, v)
	}
	all := parseArray(t, apply(t, s, "HGETALL", "h"))
	if len(all) != 600 {
		t.Fatalf("HGETALL gave %d items, want 600", len(all))
	}
	for i := 0; i < len(all); i += 2 {
		if want[all[i]] != all[i+1] {
			t.Fatalf("HGETALL pairs %q with %q", all[i], all[i+1])
		}
	}
	if keys := parseArray(t, apply(t, s, "HKEYS", "h")); len(keys) != 300 {
		t.Fatalf("HKEYS gave %d", len(keys))
	}

	seen := map[string]bool{}
	cursor, calls := "0", 0
	for {
		reply, _, err := resp.ParseValue([]byte(apply(t, s, "HSCAN", "h", cursor, "COUNT", "7")))
		if err != nil || len(reply.Array) != 2 {
			t.Fatalf("HSCAN reply %v, %v", reply, err)
		}
		page := reply.Array[1].Array
		for i := 0; i < len(page); i += 2 {
			seen[string(page[i].Str)] = true
		}
		// Churn between calls: fields that come and go may or may not be
		// returned; the f-fields stay throughout.
		apply(t, s, "HSET", "h", fmt.Sprintf("tmp%d", calls), "x")
		apply(t, s, "HDEL", "h", fmt.Sprintf("tmp%d", calls-3))
		cursor, calls = string(reply.Array[0].Str), calls+1
		if cursor == "0" {
			break
		}
		if calls > 1000 {
			t.Fatal("HSCAN does not end")
		}
	}
	for f := range want {
		if !seen[f] {
			t.Fatalf("HSCAN missed %s", f)
		}
	}
	if calls < 300/7 {
		t.Fatalf("HSCAN took %d calls for 300 fields at COUNT 7", calls)
	}
	reply, _, _ := resp.ParseValue([]byte(apply(t, s, "HSCAN", "h", "0", "MATCH", "f1?", "COUNT", "1000", "NOVALUES")))
	var fields []string
	for _, v := range reply.Array[1].Array {
		fields = append(fields, string(v.Str))
	}
	slices.Sort(fields)
	if strings.Join(fields, ",") != "f10,f11,f12,f13,f14,f15,f16,f17,f18,f19" {
		t.Fatalf("HSCAN MATCH f1? NOVALUES = %v", fields)
	}
	for _, bad := range [][]string{{"x"}, {"-1"}, {"0", "COUNT", "0"}, {"0", "COUNT"}, {"0", "BOGUS", "1"}} {
		if got := apply(t, s, append([]string{"HSCAN", "h"}, bad...)...); !strings.HasPrefix(got, "-ERR") {
			t.Fatalf("HSCAN %v = %q, want an error", bad, got)
		}
	}
}

func parseArray(t *testing.T, reply string) []string {
	t.Helper()
	v, _, err := resp.ParseValue([]byte(reply))
	if err != nil || v.Kind != '*' {
		t.Fatalf("not an array: %q", reply)
	}
	out := make([]string, len(v.Array))
	for i, e := range v.Array {
		out[i] = string(e.Str)
	}
	return out
}

// TestHscanCountOne: every page moves on, whatever COUNT; COUNT 1 walks
// the fields one by one and ends.
func TestHscanCountOne(t *testing.T) {
	s := newMemStore()
	apply(t, s, "HSET", "h", "f0", "v", "f1", "v", "f2", "v", "f3", "v", "f4", "v")
	seen := map[string]int{}
	cursor := "0"
	for calls := 0; ; calls++ {
		if calls > 10 {
			t.Fatalf("HSCAN COUNT 1 does not end: %v", seen)
		}
		reply, _, _ := resp.ParseValue([]byte(apply(t, s, "HSCAN", "h", cursor, "COUNT", "1")))
		for i := 0; i < len(reply.Array[1].Array); i += 2 {
			seen[string(reply.Array[1].Array[i].Str)]++
		}
		if cursor = string(reply.Array[0].Str); cursor == "0" {
			break
		}
	}
	for _, f := range []string{"f0", "f1", "f2", "f3", "f4"} {
		if seen[f] != 1 {
			t.Fatalf("HSCAN COUNT 1 returned %s %d times (%v)", f, seen[f], seen)
		}
	}
}

// TestHscanCollidingHashes: a page never ends inside a run of fields with
// one hash, so a cursor resuming at the next hash misses none of them.
func TestHscanCollidingHashes(t *testing.T) {
	s := newMemStore()
	apply(t, s, "HSET", "h", "a", "1")
	h, _ := loadColl(s, []byte("h"), typeHash)
	// Plant fields under one forced hash, as colliding FNV values would be.
	for i := range 5 {
		sub := append([]byte{0, 0, 0, 0, 0, 0, 0, 1}, "c"+strconv.Itoa(i)...)
		if err := s.PutSub([]byte("h"), h.ver, sub, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	h.n += 5
	if err := h.save(s, []byte("h")); err != nil {
		t.Fatal(err)
	}
	reply, _, _ := resp.ParseValue([]byte(apply(t, s, "HSCAN", "h", "0", "COUNT", "2")))
	if n := len(reply.Array[1].Array) / 2; n < 5 {
		t.Fatalf("the first page ended inside the colliding run: %d fields", n)
	}
}

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		p, s string
		ok   bool
	}{
		{"*", "", true}, {"*", "abc", true}, {"a*", "abc", true}, {"a*c", "abbbc", true}, {"a*c", "abcd", false},
		{"?", "a", true}, {"?", "", false}, {"h?llo", "hello", true}, {"h[ae]llo", "hallo", true}, {"h[ae]llo", "hillo", false},
		{"h[^e]llo", "hallo", true}, {"h[^e]llo", "hello", false}, {"h[a-b]llo", "hbllo", true}, {"h[b-a]llo", "hallo", true},
		{`h\*llo`, "h*llo", true}, {`h\*llo`, "hello", false}, {"*a*b*c*", "xaybzc", true}, {"*a*b*c*", "xaybz", false},
		{"[abc", "a", true}, {`\`, `\`, true}, {"a**", "a", true},
	} {
		if got := Match([]byte(c.p), []byte(c.s)); got != c.ok {
			t.Errorf("Match(%q, %q) = %v, want %v", c.p, c.s, got, c.ok)
		}
	}
	// No pattern takes exponential time.
	long := strings.Repeat("a", 4000)
	if Match([]byte(strings.Repeat("*a", 50)+"b"), []byte(long)) {
		t.Fatal("matched")
	}
}

// TestSetrangeBounds: SETRANGE cannot grow a value past MaxValueBytes
// (Kintsu's proto-max-bulk-len), and an empty write changes nothing.
func TestSetrangeBounds(t *testing.T) {
	runCases(t, []cmdCase{{name: "setrange", steps: []cmdStep{
		do(rTooLarge, "SETRANGE", "k", strconv.Itoa(MaxValueBytes), "x"),
		do(rInt(0), "SETRANGE", "k", "5", ""), do(rInt(0), "EXISTS", "k"),
		do(rInt(3), "SETRANGE", "k", "1", "ab"), do(rBulk("\x00ab"), "GET", "k"),
		do("-ERR offset is out of range\r\n", "SETRANGE", "k", "-1", "x"),
	}, final: map[string]string{"k": sv("\x00ab")}}})
}

// Picks from a small collection are uniform: a chi-square over 10,000
// picks among 100 fields stays near its 99 degrees of freedom (the
// earlier hash-gap weighting gave hundreds to thousands).
func TestRandomPicksAreUniform(t *testing.T) {
	s := newMemStore()
	args := []string{"HSET", "h"}
	for i := range 100 {
		args = append(args, fmt.Sprint("f", i), "v")
	}
	apply(t, s, args...)
	for _, cmd := range [][]string{{"HRANDFIELD", "h", "-10000"}} {
		v, _, err := resp.ParseValue([]byte(apply(t, s, cmd...)))
		if err != nil || len(v.Array) != 10000 {
			t.Fatalf("%q: %v, %d picks", cmd, err, len(v.Array))
		}
		counts := map[string]int{}
		for _, e := range v.Array {
			counts[string(e.Str)]++
		}
		chi := 0.0
		for i := range 100 {
			d := float64(counts[fmt.Sprint("f", i)]) - 100
			chi += d * d / 100
		}
		if chi > 200 {
			t.Errorf("%q: chi-square %.1f over 100 fields: not uniform", cmd, chi)
		}
	}
}
