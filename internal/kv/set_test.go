package kv

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

// setRec is the metadata record of a set of n members under version ver.
func setRec(ver, n uint64) string { return string(meta{tag: typeSet, ver: ver, n: n}.encode()) }

// Set commands against Redis 7's documented replies (orders are this
// store's: byte order of members' hashes, or of members for SINTER...).
func TestSetCommands(t *testing.T) {
	runCases(t, []cmdCase{
		{name: "sadd srem scard sismember", steps: []cmdStep{
			do(rInt(3), "SADD", "s", "a", "b", "c", "a"), do(rInt(0), "SADD", "s", "b"),
			do(rInt(3), "SCARD", "s"), do(rInt(1), "SISMEMBER", "s", "a"), do(rInt(0), "SISMEMBER", "s", "z"),
			do(rArr(rInt(1), rInt(0)), "SMISMEMBER", "s", "c", "z"), do(rArr(rInt(0)), "SMISMEMBER", "none", "c"),
			do(rInt(2), "SREM", "s", "a", "b", "z"), do(rInt(1), "SCARD", "s"), do("+set\r\n", "TYPE", "s"),
			do(rInt(1), "SREM", "s", "c"), do(rInt(0), "EXISTS", "s"), do(rInt(0), "SCARD", "s"),
		}, final: map[string]string{}},
		{name: "set algebra and stores", steps: []cmdStep{
			do(rInt(3), "SADD", "x", "a", "b", "c"), do(rInt(3), "SADD", "y", "b", "c", "d"),
			do(rArr(rBulk("b"), rBulk("c")), "SINTER", "x", "y"),
			do(rArr(rBulk("a"), rBulk("b"), rBulk("c"), rBulk("d")), "SUNION", "x", "y", "none"),
			do(rArr(rBulk("a")), "SDIFF", "x", "y"), do(rArr(), "SINTER", "x", "none"), do(rArr(), "SDIFF", "none", "x"),
			do(rInt(2), "SINTERSTORE", "z", "x", "y"), do(rInt(2), "SCARD", "z"),
			do(rInt(0), "SINTERSTORE", "z", "x", "none"), do(rInt(0), "EXISTS", "z"),
			do(rOK, "SET", "str", "v"), do(rWrongType, "SINTER", "x", "str"),
			do(rInt(1), "SDIFFSTORE", "str", "x", "y"), do("+set\r\n", "TYPE", "str"),
		}, final: map[string]string{"x": setRec(1, 3), "y": setRec(1, 3), "str": setRec(1, 1)}},
		{name: "smove", steps: []cmdStep{
			do(rInt(2), "SADD", "a", "m", "n"), do(rOK, "SET", "str", "v"),
			do(rInt(0), "SMOVE", "none", "str", "m"), do(rWrongType, "SMOVE", "a", "str", "m"),
			do(rInt(0), "SMOVE", "a", "b", "zz"), do(rInt(1), "SMOVE", "a", "a", "m"),
			do(rInt(1), "SMOVE", "a", "b", "m"), do(rInt(1), "SMOVE", "a", "b", "n"),
			do(rInt(0), "EXISTS", "a"), do(rInt(2), "SCARD", "b"),
		}, final: map[string]string{"str": sv("v"), "b": setRec(1, 2)}},
		{name: "spop and srandmember bounds", steps: []cmdStep{
			do(rNil, "SPOP", "s"), do(rArr(), "SPOP", "s", "3"), do("-ERR value is out of range, must be positive\r\n", "SPOP", "s", "-1"),
			do(rInt(1), "SADD", "s", "only"), do(rBulk("only"), "SRANDMEMBER", "s"), do(rArr(rBulk("only"), rBulk("only")), "SRANDMEMBER", "s", "-2"),
			do(rArr(), "SPOP", "s", "0"), do(rBulk("only"), "SPOP", "s"), do(rInt(0), "EXISTS", "s"),
			do(rSyntax, "SPOP", "s", "1", "2"),
		}, final: map[string]string{}},
	})
}

// TestSpopIsDeterministic: two replicas applying the same SPOP at the same
// entry time remove the same members, and a count past the size takes all.
func TestSpopIsDeterministic(t *testing.T) {
	fill := func() *memStore {
		s := newMemStore()
		for i := range 50 {
			apply(t, s, "SADD", "s", strconv.Itoa(i))
		}
		return s
	}
	a, b := fill(), fill()
	ra, rb := parseArray(t, apply(t, a, "SPOP", "s", "7")), parseArray(t, apply(t, b, "SPOP", "s", "7"))
	if len(ra) != 7 || !slices.Equal(ra, rb) {
		t.Fatalf("replicas popped %v and %v", ra, rb)
	}
	left := parseArray(t, apply(t, a, "SPOP", "s", "1000"))
	if len(left) != 43 || apply(t, a, "EXISTS", "s") != rInt(0) {
		t.Fatalf("SPOP of more than the set: %d members, then EXISTS %q", len(left), apply(t, a, "EXISTS", "s"))
	}
	if a.Len() != 0 {
		t.Fatalf("%d sub-keys left after popping everything", a.Len())
	}
}

// TestRenameMovesCollections: RENAME and COPY carry a collection's
// elements (its sub-keys, under a new version at the new key) and its
// expiry; the old key's sub-keys go with it.
func TestRenameMovesCollections(t *testing.T) {
	s := newMemStore()
	apply(t, s, "ZADD", "z", "1", "a", "2", "b")
	apply(t, s, "PEXPIRE", "z", "100000")
	apply(t, s, "SADD", "dst", "x")
	if got := apply(t, s, "RENAME", "z", "dst"); got != rOK {
		t.Fatalf("RENAME = %q", got)
	}
	if got := parseArray(t, apply(t, s, "ZRANGE", "dst", "0", "-1", "WITHSCORES")); !slices.Equal(got, []string{"a", "1", "b", "2"}) {
		t.Fatalf("after RENAME: %v", got)
	}
	if got := apply(t, s, "PTTL", "dst"); got != rInt(100000) {
		t.Fatalf("PTTL after RENAME = %q", got)
	}
	if s.Len() != 4 { // two members, two sub-keys each; z's and dst's old ones gone
		t.Fatalf("%d sub-keys after RENAME", s.Len())
	}
	if got := apply(t, s, "COPY", "dst", "c"); got != rInt(1) || s.Len() != 8 {
		t.Fatalf("COPY = %q, %d sub-keys", got, s.Len())
	}
	if got := apply(t, s, "RENAME", "none", "x"); got != "-ERR no such key\r\n" {
		t.Fatalf("RENAME of a missing key = %q", got)
	}
	// Past MaxMoveBytes: refused before anything is written.
	big := strings.Repeat("v", 15<<20)
	for i := range MaxMoveBytes/len(big) + 1 {
		apply(t, s, "HSET", "h", strconv.Itoa(i), big)
	}
	before := s.Len()
	if got := apply(t, s, "COPY", "h", "h2"); !strings.HasPrefix(got, "-ERR the value is over") {
		t.Fatalf("COPY of a hash over %d bytes = %q", MaxMoveBytes, got)
	}
	if got := apply(t, s, "EXISTS", "h2"); got != rInt(0) || s.Len() != before {
		t.Fatalf("a refused COPY wrote: EXISTS %q, %d sub-keys (was %d)", got, s.Len(), before)
	}
}
