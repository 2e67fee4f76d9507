package kv

import (
	"strconv"
	"testing"
)

func rExpire(cmd string) string { return "-ERR invalid expire time in '" + cmd + "' command\r\n" }

func ms(d int64) string { return strconv.FormatInt(d, 10) }

// Expiry against Redis 7's documented replies; the stores' clock reads
// testNow throughout.
func TestExpiry(t *testing.T) {
	one := map[string]string{"k": sv("v")}
	timed := map[string]string{"k": svAt("v", testNow+10_000)}
	gone := map[string]string{"k": svAt("v", testNow)} // expired exactly now
	hash := map[string]string{"k": foreign}
	runCases(t, []cmdCase{
		{name: "set ex", steps: []cmdStep{do(rOK, "SET", "k", "v", "EX", "10"), do(rInt(10), "TTL", "k"), do(rInt(10_000), "PTTL", "k")},
			final: map[string]string{"k": svAt("v", testNow+10_000)}},
		{name: "set px, exat, pxat", steps: []cmdStep{
			do(rOK, "SET", "a", "1", "px", "1500"),
			do(rOK, "SET", "b", "2", "EXAT", ms(testNow/1000+100)),
			do(rOK, "SET", "c", "3", "PXAT", ms(testNow+7)),
			do(rInt(2), "TTL", "a"), do(rInt(100), "TTL", "b"), do(rInt(7), "PTTL", "c"),
			do(rInt(testNow/1000+100), "EXPIRETIME", "b"), do(rInt(testNow+7), "PEXPIRETIME", "c"),
		}, final: map[string]string{"a": svAt("1", testNow+1500), "b": svAt("2", (testNow/1000+100)*1000), "c": svAt("3", testNow+7)}},
		{name: "set without keepttl clears the expiry", init: timed, steps: []cmdStep{do(rOK, "SET", "k", "w"), do(rInt(-1), "TTL", "k")},
			final: map[string]string{"k": sv("w")}},
		{name: "set keepttl keeps it", init: timed, steps: []cmdStep{do(rOK, "SET", "k", "w", "KEEPTTL"), do(rInt(10), "TTL", "k")},
			final: map[string]string{"k": svAt("w", testNow+10_000)}},
		{name: "set bad expiry", init: one, steps: []cmdStep{
			do(rExpire("set"), "SET", "k", "w", "EX", "0"),
			do(rExpire("set"), "SET", "k", "w", "PX", "-5"),
			do(rExpire("set"), "SET", "k", "w", "EX", maxI),
			do(rExpire("set"), "SET", "k", "w", "PX", maxI),
			do(rNotInt, "SET", "k", "w", "EX", "soon"),
			do(rSyntax, "SET", "k", "w", "EX", "10", "PX", "10"),
			do(rSyntax, "SET", "k", "w", "EX", "10", "KEEPTTL"),
			do(rSyntax, "SET", "k", "w", "KEEPTTL", "EX", "10"),
		}},
		{name: "expired key is absent", init: gone, steps: []cmdStep{
			do(rNil, "GET", "k"), do(rInt(0), "EXISTS", "k"), do(rInt(-2), "TTL", "k"), do(rInt(0), "STRLEN", "k"),
			do("*1\r\n"+rNil, "MGET", "k"), do(rInt(0), "EXPIRE", "k", "100"), do(rInt(0), "PERSIST", "k"),
		}},
		{name: "incr on an expired key starts over, without expiry", init: gone, steps: []cmdStep{do(rInt(1), "INCR", "k"), do(rInt(-1), "TTL", "k")},
			final: map[string]string{"k": sv("1")}},
		{name: "incr and append keep the expiry", init: map[string]string{"k": svAt("5", testNow+3000)}, steps: []cmdStep{
			do(rInt(6), "INCR", "k"), do(rInt(2), "APPEND", "k", "0"), do(rInt(3), "TTL", "k"),
		}, final: map[string]string{"k": svAt("60", testNow+3000)}},
		{name: "setnx and set nx see an expired key as absent", init: gone, steps: []cmdStep{do(rInt(1), "SETNX", "k", "n"), do(rNil, "SET", "k", "m", "NX")},
			final: map[string]string{"k": sv("n")}},
		{name: "del removes an expired key but does not count it", init: gone, steps: []cmdStep{do(rInt(0), "DEL", "k")},
			final: map[string]string{}},
		{name: "expire", init: one, steps: []cmdStep{
			do(rInt(1), "EXPIRE", "k", "100"), do(rInt(100), "TTL", "k"), do(rInt(1), "PEXPIRE", "k", "2500"), do(rInt(3), "TTL", "k"),
			do(rInt(2500), "PTTL", "k"), do(rInt(0), "EXPIRE", "missing", "10"),
		}, final: map[string]string{"k": svAt("v", testNow+2500)}},
		{name: "expireat", init: one, steps: []cmdStep{do(rInt(1), "EXPIREAT", "k", ms(testNow/1000+60)), do(rInt((testNow/1000+60)*1000), "PEXPIRETIME", "k")},
			final: map[string]string{"k": svAt("v", (testNow/1000+60)*1000)}},
		{name: "expire in the past deletes", init: one, steps: []cmdStep{do(rInt(1), "EXPIRE", "k", "-1"), do(rNil, "GET", "k")},
			final: map[string]string{}},
		{name: "pexpireat now deletes", init: one, steps: []cmdStep{do(rInt(1), "PEXPIREAT", "k", ms(testNow))}, final: map[string]string{}},
		{name: "expire options", init: one, steps: []cmdStep{
			do(rInt(0), "EXPIRE", "k", "100", "XX"),
			do(rInt(0), "EXPIRE", "k", "100", "GT"), // no expiry counts as infinite
			do(rInt(1), "EXPIRE", "k", "100", "NX"),
			do(rInt(0), "EXPIRE", "k", "200", "NX"),
			do(rInt(1), "EXPIRE", "k", "200", "gt"),
			do(rInt(0), "EXPIRE", "k", "150", "GT"),
			do(rInt(1), "EXPIRE", "k", "150", "LT"),
			do(rInt(0), "EXPIRE", "k", "150", "LT"),
			do(rInt(1), "EXPIRE", "k", "120", "XX", "LT"),
			do("-ERR NX and XX, GT or LT options at the same time are not compatible\r\n", "EXPIRE", "k", "1", "NX", "XX"),
			do("-ERR GT and LT options at the same time are not compatible\r\n", "EXPIRE", "k", "1", "GT", "LT"),
			do("-ERR Unsupported option soon\r\n", "EXPIRE", "k", "1", "soon"),
			do(rNotInt, "EXPIRE", "k", "1.5"),
			do(rExpire("expire"), "EXPIRE", "k", maxI),
			do(rExpire("pexpire"), "PEXPIRE", "k", maxI),
		}, final: map[string]string{"k": svAt("v", testNow+120_000)}},
		{name: "persist", init: timed, steps: []cmdStep{do(rInt(1), "PERSIST", "k"), do(rInt(0), "PERSIST", "k"), do(rInt(-1), "TTL", "k"), do(rInt(-1), "EXPIRETIME", "k")},
			final: one},
		{name: "ttl of missing and persistent keys", init: one, steps: []cmdStep{do(rInt(-2), "TTL", "x"), do(rInt(-2), "PTTL", "x"), do(rInt(-1), "PTTL", "k")}},
		{name: "setex and psetex", steps: []cmdStep{
			do(rOK, "SETEX", "a", "5", "x"), do(rOK, "PSETEX", "b", "250", "y"),
			do(rExpire("setex"), "SETEX", "c", "0", "z"), do(rExpire("psetex"), "PSETEX", "c", "-1", "z"), do(rNotInt, "SETEX", "c", "x", "z"),
		}, final: map[string]string{"a": svAt("x", testNow+5000), "b": svAt("y", testNow+250)}},
		{name: "expire on a hash", init: hash, steps: []cmdStep{do(rInt(1), "EXPIRE", "k", "10"), do(rInt(10), "TTL", "k"),
			do("+hash\r\n", "TYPE", "k"), do(rInt(1), "PERSIST", "k"), do(rInt(-1), "TTL", "k")},
			final: map[string]string{"k": foreign}},
		{name: "a hash expires", init: hash, steps: []cmdStep{do(rInt(1), "PEXPIRE", "k", "0")}, final: map[string]string{}},
		{name: "kintsu.expired removes only what has expired", init: map[string]string{"a": svAt("1", testNow), "b": svAt("2", testNow+1), "c": sv("3")},
			steps: []cmdStep{do(rInt(1), "KINTSU.EXPIRED", "a", "b", "c", "d")}, final: map[string]string{"b": svAt("2", testNow+1), "c": sv("3")}},
	})
}
