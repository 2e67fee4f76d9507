package kv

import (
	"errors"
	"github.com/kintsu/kintsu/internal/command"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Exact Redis 7 reply bytes used throughout.
const (
	rOK        = "+OK\r\n"
	rNil       = "$-1\r\n"
	rSyntax    = "-ERR syntax error\r\n"
	rNotInt    = "-ERR value is not an integer or out of range\r\n"
	rOverflow  = "-ERR increment or decrement would overflow\r\n"
	rWrongType = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
	rTooLarge  = "-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n"
)

func rInt(n int64) string { return ":" + strconv.FormatInt(n, 10) + "\r\n" }
func rBulk(s string) string {
	return "$" + strconv.Itoa(len(s)) + "\r\n" + s + "\r\n"
}
func rArity(name string) string {
	return "-ERR wrong number of arguments for '" + name + "' command\r\n"
}

const (
	maxI = "9223372036854775807"
	minI = "-9223372036854775808"
)

type cmdStep struct {
	args []string
	want string
}

func do(want string, args ...string) cmdStep { return cmdStep{args, want} }

type cmdCase struct {
	name  string
	init  map[string]string // raw stored values
	steps []cmdStep
	final map[string]string // raw stored values; nil means "same as init"
}

func runCases(t *testing.T, cases []cmdCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := storeWith(tc.init)
			for _, st := range tc.steps {
				if got := apply(t, s, st.args...); got != st.want {
					t.Errorf("%q\n got  %q\n want %q", st.args, got, st.want)
				}
			}
			want := tc.final
			if want == nil {
				want = tc.init
			}
			if want == nil {
				want = map[string]string{}
			}
			if d := diffState(s.raw(), want); d != "" {
				t.Errorf("final state differs:\n%s", d)
			}
			s.check(t)
		})
	}
}

func TestGetStrlenExistsMget(t *testing.T) {
	base := map[string]string{"k": sv("hello"), "e": sv(""), "h": foreign}
	runCases(t, []cmdCase{
		{name: "get", init: base, steps: []cmdStep{
			do(rBulk("hello"), "GET", "k"),
			do(rBulk("hello"), "gEt", "k"),
			do("$0\r\n\r\n", "GET", "e"),
			do(rNil, "GET", "missing"),
			do(rWrongType, "GET", "h"),
			do(rArity("get"), "GET"),
			do(rArity("get"), "GET", "k", "k"),
		}},
		{name: "strlen", init: base, steps: []cmdStep{
			do(rInt(5), "STRLEN", "k"),
			do(rInt(0), "STRLEN", "e"),
			do(rInt(0), "STRLEN", "missing"),
			do(rWrongType, "STRLEN", "h"),
			do(rArity("strlen"), "strlen"),
		}},
		{name: "exists counts every key named, duplicates included", init: base, steps: []cmdStep{
			do(rInt(1), "EXISTS", "k"),
			do(rInt(2), "EXISTS", "k", "k"),
			do(rInt(0), "EXISTS", "missing"),
			do(rInt(1), "EXISTS", "h"), // any type exists
			do(rInt(4), "EXISTS", "k", "e", "h", "missing", "k"),
			do(rArity("exists"), "EXISTS"),
		}},
		{name: "mget answers nil for missing keys and other types", init: base, steps: []cmdStep{
			do("*4\r\n"+rBulk("hello")+rNil+rNil+"$0\r\n\r\n", "MGET", "k", "missing", "h", "e"),
			do("*2\r\n"+rBulk("hello")+rBulk("hello"), "MGET", "k", "k"),
			do(rArity("mget"), "MGET"),
		}},
	})
}

func TestSet(t *testing.T) {
	one := map[string]string{"k": sv("old")}
	hash := map[string]string{"k": foreign}
	cases := []cmdCase{
		{name: "plain", steps: []cmdStep{do(rOK, "SET", "k", "v")}, final: map[string]string{"k": sv("v")}},
		{name: "overwrite", init: one, steps: []cmdStep{do(rOK, "set", "k", "v")}, final: map[string]string{"k": sv("v")}},
		{name: "overwrites another type", init: hash, steps: []cmdStep{do(rOK, "SET", "k", "v")}, final: map[string]string{"k": sv("v")}},
		{name: "empty value and binary key", steps: []cmdStep{do(rOK, "SET", "\x00\r\n", "")}, final: map[string]string{"\x00\r\n": sv("")}},
		{name: "NX missing", steps: []cmdStep{do(rOK, "SET", "k", "v", "NX")}, final: map[string]string{"k": sv("v")}},
		{name: "NX existing", init: one, steps: []cmdStep{do(rNil, "SET", "k", "v", "nx")}},
		{name: "NX on another type", init: hash, steps: []cmdStep{do(rNil, "SET", "k", "v", "NX")}},
		{name: "NX twice is allowed", steps: []cmdStep{do(rOK, "SET", "k", "v", "NX", "nx")}, final: map[string]string{"k": sv("v")}},
		{name: "XX missing", steps: []cmdStep{do(rNil, "SET", "k", "v", "XX")}},
		{name: "XX existing", init: one, steps: []cmdStep{do(rOK, "SET", "k", "v", "Xx")}, final: map[string]string{"k": sv("v")}},
		{name: "XX on another type", init: hash, steps: []cmdStep{do(rOK, "SET", "k", "v", "XX")}, final: map[string]string{"k": sv("v")}},
		{name: "NX XX is a syntax error", init: one, steps: []cmdStep{
			do(rSyntax, "SET", "k", "v", "NX", "XX"),
			do(rSyntax, "SET", "k", "v", "xx", "nx"),
			do(rSyntax, "SET", "new", "v", "NX", "GET", "XX"),
		}},
		{name: "GET missing answers nil and sets", steps: []cmdStep{do(rNil, "SET", "k", "v", "GET")}, final: map[string]string{"k": sv("v")}},
		{name: "GET existing answers the old value", init: one, steps: []cmdStep{do(rBulk("old"), "SET", "k", "v", "get")}, final: map[string]string{"k": sv("v")}},
		{name: "GET on another type", init: hash, steps: []cmdStep{do(rWrongType, "SET", "k", "v", "GET")}},
		{name: "GET twice", init: one, steps: []cmdStep{do(rBulk("old"), "SET", "k", "v", "GET", "GET")}, final: map[string]string{"k": sv("v")}},
		// Redis 7 allows NX with GET (6.2 rejected it).
		{name: "NX GET existing keeps the value", init: one, steps: []cmdStep{do(rBulk("old"), "SET", "k", "v", "NX", "GET")}},
		{name: "NX GET missing sets", steps: []cmdStep{do(rNil, "SET", "k", "v", "GET", "NX")}, final: map[string]string{"k": sv("v")}},
		{name: "NX GET on another type", init: hash, steps: []cmdStep{do(rWrongType, "SET", "k", "v", "NX", "GET")}},
		{name: "XX GET missing", steps: []cmdStep{do(rNil, "SET", "k", "v", "XX", "GET")}},
		{name: "XX GET existing", init: one, steps: []cmdStep{do(rBulk("old"), "SET", "k", "v", "XX", "GET")}, final: map[string]string{"k": sv("v")}},
		{name: "unknown options", init: one, steps: []cmdStep{
			do(rSyntax, "SET", "k", "v", "FOO"),
			do(rSyntax, "SET", "k", "v", "NXX"),
			do(rSyntax, "SET", "k", "v", "N"),
			do(rSyntax, "SET", "k", "v", ""),
			do(rSyntax, "SET", "k", "v", "NX", "bogus"),
		}},
		{name: "arity", steps: []cmdStep{do(rArity("set"), "SET", "k"), do(rArity("set"), "SET")}},
		{name: "IFEQ equal sets", init: one, steps: []cmdStep{do(rOK, "SET", "k", "v", "IFEQ", "old")}, final: map[string]string{"k": sv("v")}},
		{name: "IFEQ different keeps", init: one, steps: []cmdStep{do(rNil, "SET", "k", "v", "ifeq", "OLD")}},
		{name: "IFEQ missing does not create", steps: []cmdStep{do(rNil, "SET", "k", "v", "IFEQ", "")}},
		{name: "IFEQ GET answers the old value either way", init: one, steps: []cmdStep{
			do(rBulk("old"), "SET", "k", "v", "IFEQ", "nope", "GET"),
			do(rBulk("old"), "SET", "k", "v", "GET", "IFEQ", "old"),
		}, final: map[string]string{"k": sv("v")}},
		{name: "IFEQ on another type", init: hash, steps: []cmdStep{do(rWrongType, "SET", "k", "v", "IFEQ", "x")}},
		{name: "IFNE different sets", init: one, steps: []cmdStep{do(rOK, "SET", "k", "v", "IFNE", "other")}, final: map[string]string{"k": sv("v")}},
		{name: "IFNE equal keeps", init: one, steps: []cmdStep{do(rNil, "SET", "k", "v", "IFNE", "old")}},
		{name: "IFNE missing creates", steps: []cmdStep{do(rOK, "SET", "k", "v", "IFNE", "old")}, final: map[string]string{"k": sv("v")}},
		{name: "IFNE on another type", init: hash, steps: []cmdStep{do(rWrongType, "SET", "k", "v", "IFNE", "x")}},
		{name: "conditions exclude each other", init: one, steps: []cmdStep{
			do(rSyntax, "SET", "k", "v", "IFEQ", "old", "NX"),
			do(rSyntax, "SET", "k", "v", "XX", "IFEQ", "old"),
			do(rSyntax, "SET", "k", "v", "IFEQ", "old", "IFNE", "old"),
			do(rSyntax, "SET", "k", "v", "IFEQ", "old", "IFEQ", "old"),
			do(rSyntax, "SET", "k", "v", "IFEQ"),
		}},
	}
	// An expiry option missing its argument is a syntax error, as in Redis.
	for _, o := range []string{"EX", "PX", "EXAT", "PXAT"} {
		cases = append(cases, cmdCase{name: o + " without argument", init: one, steps: []cmdStep{do(rSyntax, "SET", "k", "v", o)}})
	}
	runCases(t, cases)
}

func TestSetnxGetsetAppend(t *testing.T) {
	one := map[string]string{"k": sv("old")}
	hash := map[string]string{"k": foreign}
	runCases(t, []cmdCase{
		{name: "setnx missing", steps: []cmdStep{do(rInt(1), "SETNX", "k", "v")}, final: map[string]string{"k": sv("v")}},
		{name: "setnx existing", init: one, steps: []cmdStep{do(rInt(0), "SETNX", "k", "v")}},
		{name: "setnx on another type", init: hash, steps: []cmdStep{do(rInt(0), "SETNX", "k", "v")}},
		{name: "setnx arity", steps: []cmdStep{do(rArity("setnx"), "SETNX", "k"), do(rArity("setnx"), "SETNX", "k", "v", "NX")}},
		{name: "getset missing", steps: []cmdStep{do(rNil, "GETSET", "k", "v")}, final: map[string]string{"k": sv("v")}},
		{name: "getset existing", init: one, steps: []cmdStep{do(rBulk("old"), "GETSET", "k", "v"), do(rBulk("v"), "GETSET", "k", "w")}, final: map[string]string{"k": sv("w")}},
		{name: "getset on another type", init: hash, steps: []cmdStep{do(rWrongType, "GETSET", "k", "v")}},
		{name: "getset arity", steps: []cmdStep{do(rArity("getset"), "GETSET", "k")}},
		{name: "append missing", steps: []cmdStep{do(rInt(3), "APPEND", "k", "abc"), do(rInt(5), "APPEND", "k", "de")}, final: map[string]string{"k": sv("abcde")}},
		{name: "append existing", init: one, steps: []cmdStep{do(rInt(6), "append", "k", "new")}, final: map[string]string{"k": sv("oldnew")}},
		{name: "append nothing", init: one, steps: []cmdStep{do(rInt(3), "APPEND", "k", "")}},
		{name: "append nothing to missing creates an empty string", steps: []cmdStep{do(rInt(0), "APPEND", "k", "")}, final: map[string]string{"k": sv("")}},
		{name: "append on another type", init: hash, steps: []cmdStep{do(rWrongType, "APPEND", "k", "x")}},
		{name: "append arity", steps: []cmdStep{do(rArity("append"), "APPEND", "k")}},
	})
}

func TestDelMset(t *testing.T) {
	base := map[string]string{"a": sv("1"), "b": sv("2"), "h": foreign}
	runCases(t, []cmdCase{
		{name: "del counts keys removed", init: base, steps: []cmdStep{do(rInt(2), "DEL", "a", "b", "missing")}, final: map[string]string{"h": foreign}},
		{name: "del k k removes once", init: base, steps: []cmdStep{do(rInt(1), "DEL", "a", "a")}, final: map[string]string{"b": sv("2"), "h": foreign}},
		{name: "del any type", init: base, steps: []cmdStep{do(rInt(1), "DEL", "h"), do(rInt(0), "DEL", "h")}, final: map[string]string{"a": sv("1"), "b": sv("2")}},
		{name: "del arity", steps: []cmdStep{do(rArity("del"), "DEL")}},
		{name: "mset", init: base, steps: []cmdStep{do(rOK, "MSET", "a", "x", "c", "y", "h", "z")},
			final: map[string]string{"a": sv("x"), "b": sv("2"), "c": sv("y"), "h": sv("z")}},
		{name: "unlink is del", init: base, steps: []cmdStep{do(rInt(2), "UNLINK", "a", "h", "missing")}, final: map[string]string{"b": sv("2")}},
		{name: "msetnx sets all when none exists", init: base, steps: []cmdStep{do(rInt(1), "MSETNX", "x", "1", "y", "2")},
			final: map[string]string{"a": sv("1"), "b": sv("2"), "h": foreign, "x": sv("1"), "y": sv("2")}},
		{name: "msetnx sets nothing when one exists", init: base, steps: []cmdStep{
			do(rInt(0), "MSETNX", "x", "1", "a", "2"),
			do(rInt(0), "MSETNX", "h", "1"), // any type counts
			do(rArity("msetnx"), "MSETNX", "x", "1", "y"),
		}},
		{name: "msetnx same key twice: last wins", steps: []cmdStep{do(rInt(1), "MSETNX", "x", "1", "x", "2")}, final: map[string]string{"x": sv("2")}},
		{name: "mset same key twice: last wins", steps: []cmdStep{do(rOK, "MSET", "a", "1", "a", "2")}, final: map[string]string{"a": sv("2")}},
		{name: "mset with odd args changes nothing", init: base, steps: []cmdStep{
			do(rArity("mset"), "MSET", "a"),
			do(rArity("mset"), "MSET", "a", "x", "b"),
			do(rArity("mset"), "MSET", "a", "x", "b", "y", "c"),
			do(rArity("mset"), "mset"),
		}},
	})
}

func TestIncrDecr(t *testing.T) {
	// Values string2ll rejects; INCR on them answers ErrNotInteger and
	// changes nothing.
	notInts := []string{"", "abc", "+1", " 1", "1 ", "01", "-0", "00", "-", "1.5", "1e3", "0x10",
		"9223372036854775808", "-9223372036854775809", "123456789012345678901", "000000000000000000001", "\x001"}
	var cases []cmdCase
	for _, v := range notInts {
		for _, cmd := range []string{"INCR", "DECR"} {
			cases = append(cases, cmdCase{name: cmd + " stored " + strconv.Quote(v), init: map[string]string{"k": sv(v)}, steps: []cmdStep{do(rNotInt, cmd, "k")}})
		}
		for _, cmd := range []string{"INCRBY", "DECRBY"} {
			cases = append(cases,
				cmdCase{name: cmd + " stored " + strconv.Quote(v), init: map[string]string{"k": sv(v)}, steps: []cmdStep{do(rNotInt, cmd, "k", "1")}},
				cmdCase{name: cmd + " by " + strconv.Quote(v), init: map[string]string{"k": sv("5")}, steps: []cmdStep{do(rNotInt, cmd, "k", v)}},
				// The argument is parsed before the key's type is checked.
				cmdCase{name: cmd + " by " + strconv.Quote(v) + " on another type", init: map[string]string{"k": foreign}, steps: []cmdStep{do(rNotInt, cmd, "k", v)}})
		}
	}
	cases = append(cases, []cmdCase{
		{name: "incr missing", steps: []cmdStep{do(rInt(1), "INCR", "k"), do(rInt(2), "incr", "k")}, final: map[string]string{"k": sv("2")}},
		{name: "decr missing", steps: []cmdStep{do(rInt(-1), "DECR", "k"), do(rInt(-2), "DECR", "k")}, final: map[string]string{"k": sv("-2")}},
		{name: "incr zero and negatives", init: map[string]string{"z": sv("0"), "n": sv("-5")}, steps: []cmdStep{do(rInt(1), "INCR", "z"), do(rInt(-4), "INCR", "n"), do(rInt(-6), "DECRBY", "n", "2")},
			final: map[string]string{"z": sv("1"), "n": sv("-6")}},
		{name: "incrby/decrby", init: map[string]string{"k": sv("10")}, steps: []cmdStep{
			do(rInt(15), "INCRBY", "k", "5"), do(rInt(5), "INCRBY", "k", "-10"), do(rInt(-5), "DECRBY", "k", "10"), do(rInt(0), "DECRBY", "k", "-5"), do(rInt(0), "INCRBY", "k", "0"),
		}, final: map[string]string{"k": sv("0")}},
		{name: "on another type", init: map[string]string{"k": foreign}, steps: []cmdStep{
			do(rWrongType, "INCR", "k"), do(rWrongType, "DECR", "k"), do(rWrongType, "INCRBY", "k", "1"), do(rWrongType, "DECRBY", "k", "1"),
		}},
		{name: "incr at max", init: map[string]string{"k": sv(maxI)}, steps: []cmdStep{do(rOverflow, "INCR", "k"), do(rOverflow, "INCRBY", "k", "1"), do(rOverflow, "DECRBY", "k", "-1"), do(rOverflow, "INCRBY", "k", maxI)}},
		{name: "decr at min", init: map[string]string{"k": sv(minI)}, steps: []cmdStep{do(rOverflow, "DECR", "k"), do(rOverflow, "DECRBY", "k", "1"), do(rOverflow, "INCRBY", "k", "-1"), do(rOverflow, "INCRBY", "k", minI)}},
		{name: "reaching the edges exactly", init: map[string]string{"a": sv("9223372036854775806"), "b": sv("-9223372036854775807"), "c": sv("0"), "d": sv("0"), "e": sv("-1"), "f": sv("1")}, steps: []cmdStep{
			do(rInt(1<<63-1), "INCR", "a"),
			do(rInt(-1<<63), "DECR", "b"),
			do(rInt(-1<<63), "INCRBY", "c", minI),
			do(rInt(-(1<<63 - 1)), "DECRBY", "d", maxI),
			do(rInt(-1<<63), "INCRBY", "e", "-9223372036854775807"),
			do(rInt(1<<63-1), "INCRBY", "f", "9223372036854775806"),
		}, final: map[string]string{"a": sv(maxI), "b": sv(minI), "c": sv(minI), "d": sv("-" + maxI), "e": sv(minI), "f": sv(maxI)}},
	}...)
	cases = append(cases, []cmdCase{
		{name: "one past the edges", init: map[string]string{"e": sv("-2"), "f": sv("2")}, steps: []cmdStep{
			do(rOverflow, "INCRBY", "e", "-9223372036854775807"),
			do(rOverflow, "INCRBY", "e", minI),
			do(rOverflow, "INCRBY", "f", maxI),
			do(rOverflow, "DECRBY", "f", "-9223372036854775806"),
			do(rOverflow, "DECRBY", "e", maxI),
		}},
		{name: "min string accepted", init: map[string]string{"k": sv(minI)}, steps: []cmdStep{do(rInt(-(1<<63 - 1)), "INCR", "k")}, final: map[string]string{"k": sv("-" + maxI)}},
		{name: "arity", steps: []cmdStep{do(rArity("incr"), "INCR"), do(rArity("incr"), "INCR", "k", "1"), do(rArity("incrby"), "INCRBY", "k"), do(rArity("decrby"), "DECRBY", "k", "1", "2"), do(rArity("decr"), "DECR")}},
	}...)
	runCases(t, cases)
}

// DECRBY by the minimum int64 must fail (its negation overflows) and change
// nothing, whatever the key holds. The exact text is checked in
// TestDecrbyMinMessage.
func TestDecrbyMinChangesNothing(t *testing.T) {
	for _, init := range []map[string]string{nil, {"k": sv("0")}, {"k": sv("-5")}, {"k": foreign}, {"k": sv("abc")}} {
		s := storeWith(init)
		got := apply(t, s, "DECRBY", "k", minI)
		if !strings.HasPrefix(got, "-ERR ") || !strings.Contains(got, "overflow") {
			t.Errorf("DECRBY k %s on %q = %q, want an overflow error", minI, init, got)
		}
		if d := diffState(s.raw(), storeWith(init).raw()); d != "" {
			t.Errorf("DECRBY k %s changed the state:\n%s", minI, d)
		}
	}
}

func TestDecrbyMinMessage(t *testing.T) {
	s := newMemStore()
	if got, want := apply(t, s, "DECRBY", "k", minI), "-ERR decrement would overflow\r\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestAppendMaxValueBytes(t *testing.T) {
	s := storeWith(map[string]string{"k": sv(strings.Repeat("x", MaxValueBytes-2))})
	if got := apply(t, s, "APPEND", "k", "ab"); got != rInt(MaxValueBytes) {
		t.Fatalf("APPEND up to exactly MaxValueBytes = %q", got)
	}
	for _, extra := range []string{"c", strings.Repeat("c", 100)} {
		if got := apply(t, s, "APPEND", "k", extra); got != rTooLarge {
			t.Errorf("APPEND past MaxValueBytes = %q, want %q", got, rTooLarge)
		}
	}
	if n := len(s.m["k"]) - 1; n != MaxValueBytes {
		t.Errorf("value is %d bytes after the refused APPENDs, want %d", n, MaxValueBytes)
	}
	if got := apply(t, s, "APPEND", "k", ""); got != rInt(MaxValueBytes) {
		t.Errorf("empty APPEND at the limit = %q", got)
	}
	// A new key cannot start past the limit either.
	if got := apply(t, s, "APPEND", "new", strings.Repeat("y", MaxValueBytes+1)); got != rTooLarge {
		t.Errorf("APPEND of an oversized value to a new key = %q", got)
	}
	if _, ok := s.m["new"]; ok {
		t.Error("refused APPEND created the key")
	}
	s.check(t)
}

func TestParseInt(t *testing.T) {
	good := map[string]int64{
		"0": 0, "1": 1, "-1": -1, "10": 10, "123456789": 123456789,
		maxI: 1<<63 - 1, minI: -1 << 63, "-9223372036854775807": -(1<<63 - 1),
	}
	for s, want := range good {
		if got, ok := ParseInt([]byte(s)); !ok || got != want {
			t.Errorf("ParseInt(%q) = %d, %v; want %d, true", s, got, ok, want)
		}
	}
	// Everything Redis's string2ll rejects.
	bad := []string{"", "+1", " 1", "1 ", "01", "-0", "-01", "00", "-", "+", "--1", "1-", "1.0", "1e2", "0x1", "١",
		"9223372036854775808", "-9223372036854775809", "18446744073709551616", "99999999999999999999",
		"123456789012345678901", "-123456789012345678901", "\x00", "1\x00"}
	for _, s := range bad {
		if got, ok := ParseInt([]byte(s)); ok {
			t.Errorf("ParseInt(%q) = %d, true; want rejected", s, got)
		}
	}
}

func TestUnknownCommandAndArity(t *testing.T) {
	s := storeWith(map[string]string{"k": sv("v")})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"foo", "a", "b"}, "-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n"},
		{[]string{"foo"}, "-ERR unknown command 'foo', with args beginning with: \r\n"},
		{[]string{"FoO", ""}, "-ERR unknown command 'FoO', with args beginning with: '' \r\n"},
		{[]string{"ping"}, "-ERR unknown command 'ping', with args beginning with: \r\n"},
		{[]string{"bitfield_x", "k"}, "-ERR unknown command 'bitfield_x', with args beginning with: 'k' \r\n"},
		{[]string{"x\r\ny", "a\rb\nc"}, "-ERR unknown command 'x  y', with args beginning with: 'a b c' \r\n"},
		{[]string{strings.Repeat("n", 200)}, "-ERR unknown command '" + strings.Repeat("n", 128) + "', with args beginning with: \r\n"},
		{[]string{"getsetgetsetgetsetx"}, "-ERR unknown command 'getsetgetsetgetsetx', with args beginning with: \r\n"},
		{[]string{"GET"}, rArity("get")},
		{[]string{"MGET"}, rArity("mget")},
		{[]string{"SetNx", "k"}, rArity("setnx")},
		{[]string{}, rSyntax},
	} {
		if got := apply(t, s, tc.args...); got != tc.want {
			t.Errorf("%q\n got  %q\n want %q", tc.args, got, tc.want)
		}
	}
	if d := diffState(s.raw(), map[string]string{"k": sv("v")}); d != "" {
		t.Errorf("errors changed the state:\n%s", d)
	}
}

// Redis 7 builds the argument list within a 128-byte budget (each argument
// printed with precision 128-len(list so far), arguments added while the list
// is under 128 bytes) and prints C strings, so each is cut at its first NUL.
func TestUnknownCommandBudget(t *testing.T) {
	long := strings.Repeat("a", 100)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"foo", long, long, long}, "ERR unknown command 'foo', with args beginning with: '" + long + "' '" + strings.Repeat("a", 25) + "' "},
		{[]string{"foo", strings.Repeat("b", 300), "c"}, "ERR unknown command 'foo', with args beginning with: '" + strings.Repeat("b", 128) + "' "},
		{[]string{"fo\x00o", "a\x00b", "c"}, "ERR unknown command 'fo', with args beginning with: 'a' 'c' "},
	} {
		if got := UnknownCommand(bargs(tc.args...)); got != tc.want {
			t.Errorf("UnknownCommand(%s)\n got  %q\n want %q", showArgs(bargs(tc.args...)), got, tc.want)
		}
		if got := redisUnknownCommand(bargs(tc.args...)); got != tc.want {
			t.Fatalf("test model disagrees with its own example: %q", got)
		}
	}
}

func TestSetOptionsAreASCII(t *testing.T) {
	s := newMemStore()
	if got := apply(t, s, "SET", "k", "v", "\u212Aeepttl"); got != rSyntax {
		t.Errorf("got %q, want %q", got, rSyntax)
	}
}

func TestLookupAndTable(t *testing.T) {
	want := []string{"append", "bitcount", "bitfield", "bitfield_ro", "bitop", "bitpos", "blmove", "blmpop", "blpop", "brpop", "brpoplpush", "bzmpop", "bzpopmax", "bzpopmin", "copy", "decr", "decrby", "del", "dump", "exists", "expire", "expireat", "expiretime", "get", "getbit", "getdel", "getex", "getrange", "getset",
		"hdel", "hexists", "hget", "hgetall", "hincrby", "hincrbyfloat", "hkeys", "hlen", "hmget", "hmset", "hrandfield", "hscan", "hset", "hsetnx", "hstrlen", "hvals",
		"incr", "incrby", "incrbyfloat", "kintsu.expired", "lcs", "lindex", "linsert", "llen", "lmove", "lmpop", "lpop", "lpos", "lpush", "lpushx", "lrange", "lrem", "lset", "ltrim",
		"mget", "mset", "msetnx", "persist", "pexpire", "pexpireat", "pexpiretime", "pfadd", "pfcount", "pfmerge", "psetex", "pttl",
		"rename", "renamenx", "restore", "rpop", "rpoplpush", "rpush", "rpushx", "sadd", "scard", "sdiff", "sdiffstore", "set", "setbit", "setex", "setnx", "setrange", "sinter", "sintercard", "sinterstore", "sismember", "smembers", "smismember", "smove", "sort", "sort_ro", "spop", "srandmember", "srem", "sscan",
		"strlen", "substr", "sunion", "sunionstore", "touch", "ttl", "type", "unlink",
		"zadd", "zcard", "zcount", "zdiff", "zdiffstore", "zincrby", "zinter", "zintercard", "zinterstore", "zlexcount", "zmpop", "zmscore", "zpopmax", "zpopmin", "zrandmember", "zrange", "zrangebylex", "zrangebyscore", "zrangestore", "zrank",
		"zrem", "zremrangebylex", "zremrangebyrank", "zremrangebyscore", "zrevrange", "zrevrangebylex", "zrevrangebyscore", "zrevrank", "zscan", "zscore", "zunion", "zunionstore"}
	var listed []string // what COMMAND shows of the data commands: not the internal one
	for _, s := range command.Specs() {
		if Of(s) != nil {
			listed = append(listed, s.Name)
		}
	}
	if wantListed := slices.DeleteFunc(slices.Clone(want), func(n string) bool { return n == OpExpired }); !slices.Equal(listed, wantListed) {
		t.Errorf("listed data commands = %v, want %v", listed, wantListed)
	}
	writes := map[string]bool{"set": true, "setnx": true, "getset": true, "del": true, "incr": true, "decr": true, "incrby": true, "decrby": true, "append": true, "mset": true, "msetnx": true, "unlink": true,
		"expire": true, "pexpire": true, "expireat": true, "pexpireat": true, "persist": true, "setex": true, "psetex": true, "kintsu.expired": true,
		"hset": true, "hmset": true, "hsetnx": true, "hdel": true, "hincrby": true, "hincrbyfloat": true,
		"sadd": true, "srem": true, "spop": true, "smove": true, "sort": true, "sinterstore": true, "sunionstore": true, "sdiffstore": true,
		"lpush": true, "rpush": true, "lpushx": true, "rpushx": true, "lpop": true, "rpop": true, "lset": true, "linsert": true, "lrem": true, "ltrim": true, "lmove": true, "rpoplpush": true,
		"rename": true, "renamenx": true, "copy": true, "restore": true,
		"setbit": true, "bitop": true, "blpop": true, "brpop": true, "brpoplpush": true, "blmove": true, "bzpopmin": true, "bzpopmax": true, "getdel": true, "getex": true, "setrange": true, "incrbyfloat": true,
		"zadd": true, "zincrby": true, "zrem": true, "zpopmin": true, "zpopmax": true, "zremrangebyrank": true, "zremrangebyscore": true, "zremrangebylex": true,
		"pfadd": true, "pfmerge": true, "bitfield": true, "blmpop": true, "bzmpop": true, "zunionstore": true, "zinterstore": true, "zdiffstore": true, "zrangestore": true, "zmpop": true, "lmpop": true}
	for _, n := range want {
		for _, spelled := range []string{n, strings.ToUpper(n), strings.ToUpper(n[:1]) + n[1:]} {
			c := Lookup([]byte(spelled))
			if c == nil || c.Name != n {
				t.Fatalf("Lookup(%q) = %v", spelled, c)
			}
		}
		if c := Lookup([]byte(n)); c.Writes() != writes[n] || c.Is(command.ReadOnly) == writes[n] {
			t.Errorf("%s: flags %b", n, c.Flags)
		}
	}
	for _, bad := range []string{"", "gett", "ge", "get ", "g\x00et", "getsetgetsetgetsetx", "\u212Aeys", strings.Repeat("a", 1000)} {
		if c := Lookup([]byte(bad)); c != nil {
			t.Errorf("Lookup(%q) = %s", bad, c.Name)
		}
	}
}

func TestKeyIndexesAndArity(t *testing.T) {
	for _, tc := range []struct {
		args []string
		ok   bool
		keys []int
	}{
		{[]string{"get", "k"}, true, []int{1}},
		{[]string{"set", "k", "v", "NX"}, true, []int{1}},
		{[]string{"del", "a", "b", "c"}, true, []int{1, 2, 3}},
		{[]string{"exists", "a"}, true, []int{1}},
		{[]string{"mget", "a", "b"}, true, []int{1, 2}},
		{[]string{"mset", "a", "1", "b", "2"}, true, []int{1, 3}},
		{[]string{"mset", "a", "1"}, true, []int{1}},
		{[]string{"mset", "a", "1", "b"}, false, nil},
		{[]string{"mset", "a"}, false, nil},
		{[]string{"incrby", "k"}, false, nil},
		{[]string{"incrby", "k", "1", "2"}, false, nil},
		{[]string{"del"}, false, nil},
	} {
		c := Lookup([]byte(tc.args[0]))
		if got := c.CheckArity(bargs(tc.args...)); got != tc.ok {
			t.Errorf("CheckArity(%q) = %v", tc.args, got)
			continue
		}
		if tc.ok {
			if got := c.AppendKeys(nil, bargs(tc.args...)); !slices.Equal(got, tc.keys) {
				t.Errorf("AppendKeys(%q) = %v, want %v", tc.args, got, tc.keys)
			}
		}
	}
}

// A storage error must come back as the error result, never as a reply,
// and a failed read must not be followed by a write.
func TestStorageErrorsPropagate(t *testing.T) {
	cmds := [][]string{
		{"GET", "k"}, {"STRLEN", "k"}, {"EXISTS", "k"}, {"MGET", "k"}, {"SET", "k", "v"}, {"SET", "k", "v", "GET"},
		{"SETNX", "n", "v"}, {"GETSET", "k", "v"}, {"DEL", "k"}, {"INCR", "i"}, {"DECRBY", "i", "2"},
		{"APPEND", "k", "x"}, {"MSET", "k", "v", "n", "w"},
	}
	for _, failOn := range []string{"get", "put", "del"} {
		for _, args := range cmds {
			init := map[string]string{"k": sv("v"), "i": sv("1")}
			s := storeWith(init)
			s.failOn = failOn
			_, err := Apply(s, bargs(args...), nil)
			c := Lookup([]byte(args[0]))
			// A plain SET and MSET write blind: they read nothing.
			blind := args[0] == "MSET" || args[0] == "SET" && len(args) == 3
			touches := failOn == "get" && !blind || (failOn == "put" && c.Writes() && args[0] != "DEL") || (failOn == "del" && args[0] == "DEL")
			if touches && !errors.Is(err, errStore) {
				t.Errorf("%q with failing %s: err = %v, want the storage error", args, failOn, err)
			}
			if !touches && err != nil {
				t.Errorf("%q with failing %s: unexpected err %v", args, failOn, err)
			}
			if d := diffState(s.raw(), init); failOn == "get" && !blind && d != "" {
				t.Errorf("%q wrote after a failed read:\n%s", args, d)
			}
		}
	}
}

// TestBlindWrites: a SET without options and MSET store without reading
// their keys (PutBlind), whatever the key held; every other write reads.
func TestBlindWrites(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		blind int
	}{
		{[]string{"SET", "k", "v"}, 1},
		{[]string{"SET", "new", "v"}, 1},
		{[]string{"MSET", "k", "v", "new", "w"}, 2},
		{[]string{"SET", "k", "v", "EX", "10"}, 0},
		{[]string{"SET", "k", "v", "NX"}, 0},
		{[]string{"SET", "k", "v", "GET"}, 0},
		{[]string{"MSETNX", "a", "v", "b", "w"}, 0},
		{[]string{"SETEX", "k", "10", "v"}, 0},
	} {
		s := storeWith(map[string]string{"k": sv("old")})
		s.failOn = ""
		if _, err := Apply(s, bargs(tc.args...), nil); err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if s.blind != tc.blind {
			t.Errorf("%q: %d blind writes, want %d", tc.args, s.blind, tc.blind)
		}
		if len(s.violations) > 0 {
			t.Errorf("%q: %v", tc.args, s.violations)
		}
	}
}

func TestReadAndApplyMethods(t *testing.T) {
	s := storeWith(map[string]string{"k": sv("v")})
	out, err := Lookup([]byte("get")).Read(s, bargs("get", "k"), []byte("prefix"))
	if err != nil || string(out) != "prefix"+rBulk("v") {
		t.Errorf("Read appended %q, %v", out, err)
	}
	out, err = Lookup([]byte("set")).Apply(s, bargs("set", "k", "w"), nil)
	if err != nil || string(out) != rOK || s.raw()["k"] != sv("w") {
		t.Errorf("Apply = %q, %v; state %q", out, err, s.raw())
	}
	s.check(t)
}
