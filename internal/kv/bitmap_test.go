package kv

import "testing"

// Bitmaps against Redis 7's documented replies.
func TestBitmapCommands(t *testing.T) {
	runCases(t, []cmdCase{
		{name: "setbit getbit bitcount bitpos", steps: []cmdStep{
			do(rInt(0), "SETBIT", "b", "7", "1"), do(rInt(1), "SETBIT", "b", "7", "1"), do(rBulk("\x01"), "GET", "b"),
			do(rInt(0), "SETBIT", "b", "17", "1"), do(rBulk("\x01\x00\x40"), "GET", "b"),
			do(rInt(1), "GETBIT", "b", "17"), do(rInt(0), "GETBIT", "b", "1000"), do(rInt(0), "GETBIT", "none", "3"),
			do(rInt(2), "BITCOUNT", "b"), do(rInt(1), "BITCOUNT", "b", "0", "0"), do(rInt(1), "BITCOUNT", "b", "8", "17", "BIT"),
			do(rInt(7), "BITPOS", "b", "1"), do(rInt(17), "BITPOS", "b", "1", "1"), do(rInt(0), "BITPOS", "b", "0"),
			do(rInt(-1), "BITPOS", "b", "1", "1", "1"), do(rInt(8), "BITPOS", "b", "0", "1", "1"),
			do(rInt(-1), "BITPOS", "none", "1"), do(rInt(0), "BITPOS", "none", "0"),
			do("-ERR bit offset is not an integer or out of range\r\n", "SETBIT", "b", "-1", "1"),
			do("-ERR bit offset is not an integer or out of range\r\n", "SETBIT", "b", "134217728", "1"),
			do("-ERR bit is not an integer or out of range\r\n", "SETBIT", "b", "1", "2"),
			do("-ERR The bit argument must be 1 or 0.\r\n", "BITPOS", "b", "2"),
			do(rSyntax, "BITCOUNT", "b", "1"), do(rInt(0), "BITCOUNT", "none", "x"),
		}, final: map[string]string{"b": sv("\x01\x00\x40")}},
		{name: "bitop", steps: []cmdStep{
			do(rOK, "SET", "x", "\xf0\x0f"), do(rOK, "SET", "y", "\xff"),
			do(rInt(2), "BITOP", "AND", "d", "x", "y"), do(rBulk("\xf0\x00"), "GET", "d"),
			do(rInt(2), "BITOP", "XOR", "d", "x", "y", "none"), do(rBulk("\x0f\x0f"), "GET", "d"),
			do(rInt(1), "BITOP", "NOT", "d", "y"), do(rBulk("\x00"), "GET", "d"),
			do(rInt(0), "BITOP", "OR", "d", "none"), do(rInt(0), "EXISTS", "d"),
			do("-ERR BITOP NOT must be called with a single source key.\r\n", "BITOP", "NOT", "d", "x", "y"),
			do(rSyntax, "BITOP", "NAND", "d", "x"),
		}, final: map[string]string{"x": sv("\xf0\x0f"), "y": sv("\xff")}},
	})
}
