// Redis's extra script libraries: cjson, cmsgpack, bit and struct, as Redis
// 7.0 ships them in deps/lua (lua_cjson.c, lua_cmsgpack.c, lua_bit.c,
// lua_struct.c), rewritten for gopher-lua.
//
// A script must not be able to crash the node or make one Go call allocate
// without bound, so:
//   - nesting is bounded as Redis's is: cjson by encode_max_depth and
//     decode_max_depth (1000 by default) and by Lua 5.1's 8000-slot C stack,
//     which also caps Go recursion when a script raises those settings;
//     cmsgpack.pack stops at 16 levels (a table deeper is packed as nil, so a
//     cycle ends), and unpack by the same C stack bound;
//   - every string these libraries build is at most libMaxBytes, which ends
//     a shared or cyclic table's exponential fan-out too;
//   - declared lengths (msgpack strings, arrays and maps, struct's c and i
//     sizes) are checked against the input before anything is allocated;
//   - a msgpack map's sparse integer keys may not make gopher-lua pad its
//     array part by more than mpMaxPadding slots.
//
// Errors are Lua errors in Redis's words. cjson's settings live in its
// table's closures: one VM's settings never reach another's.
package script

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"

	"github.com/kintsu/kintsu/internal/kv"
)

// libMaxBytes bounds every string these libraries build: no stored value
// is larger, and it is the bound string.rep has.
const libMaxBytes = kv.MaxValueBytes

// luaMaxCStack is Lua 5.1's LUAI_MAXCSTACK: lua_checkstack fails past it,
// which is where Redis's libraries stop nesting and returning values.
const luaMaxCStack = 8000

// openLibs sets the globals cjson, cmsgpack, bit and struct.
func openLibs(L *lua.LState) {
	g := L.G.Global
	null := L.NewUserData() // cjson.null: JSON's null, which a table can hold
	g.RawSetString("cjson", libReadOnly(L, newCJSON(L, null)))
	g.RawSetString("cmsgpack", libReadOnly(L, libTable(L, map[string]lua.LGFunction{
		"pack":         mpPack,
		"unpack":       func(L *lua.LState) int { return mpUnpack(L, 0, 0) },
		"unpack_one":   mpUnpackOne,
		"unpack_limit": mpUnpackLimit,
	}, map[string]string{
		"_NAME":        "cmsgpack",
		"_VERSION":     "lua-cmsgpack 0.4.0",
		"_COPYRIGHT":   "Copyright (C) 2012, Salvatore Sanfilippo",
		"_DESCRIPTION": "MessagePack C implementation for Lua",
	})))
	g.RawSetString("bit", libReadOnly(L, libTable(L, bitFuncs(), nil)))
	g.RawSetString("struct", libReadOnly(L, libTable(L, map[string]lua.LGFunction{
		"pack":   structPack,
		"unpack": structUnpack,
		"size":   structSize,
	}, nil)))
}

func libTable(L *lua.LState, fns map[string]lua.LGFunction, fields map[string]string) *lua.LTable {
	t := L.NewTable()
	for name, fn := range fns {
		t.RawSetString(name, L.NewFunction(fn))
	}
	for name, s := range fields {
		t.RawSetString(name, lua.LString(s))
	}
	return t
}

// libReadOnly stands a proxy in for t: Redis 7 makes these tables
// read-only, and gopher-lua's tables have no such flag, so writes to the
// (always empty) proxy reach __newindex.
func libReadOnly(L *lua.LState, t *lua.LTable) *lua.LTable {
	proxy, mt := L.NewTable(), L.NewTable()
	mt.RawSetString("__index", t)
	mt.RawSetString("__newindex", L.NewFunction(func(L *lua.LState) int {
		L.RaiseError("%s", errReadonlyTable)
		return 0
	}))
	mt.RawSetString("__metatable", lua.LFalse) // or setmetatable could lift it
	L.SetMetatable(proxy, mt)
	return proxy
}

// libTooBig raises the error for a result over libMaxBytes.
func libTooBig(L *lua.LState, what string) {
	libRaise(L, "%s: result would be over %d bytes", what, libMaxBytes)
}

// libRaise is luaL_error: the message gets the calling Lua code's
// position, and none when a Go function (pcall) called us directly;
// gopher-lua's RaiseError would look further up.
func libRaise(L *lua.LState, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if dbg, ok := L.GetStack(1); ok {
		if _, err := L.GetInfo("S", dbg, lua.LNil); err == nil && dbg.What == "G" {
			L.Error(lua.LString(msg), 0)
		}
	}
	L.RaiseError("%s", msg)
}

// libArgError raises luaL_argerror's words, which quote the function's
// name (gopher-lua's do not).
func libArgError(L *lua.LState, n int, msg string) {
	name := "?"
	if dbg, ok := L.GetStack(0); ok {
		if _, err := L.GetInfo("n", dbg, lua.LNil); err == nil && dbg.Name != "" && dbg.Name != "(anonymous)" {
			name = dbg.Name
		}
	}
	libRaise(L, "bad argument #%d to '%s' (%s)", n, name, msg)
}

// libTypeError is luaL_typerror: a missing argument is "no value".
func libTypeError(L *lua.LState, n int, want string) {
	got := "no value"
	if n <= L.GetTop() {
		got = L.Get(n).Type().String()
	}
	libArgError(L, n, want+" expected, got "+got)
}

// libNumber is luaL_checknumber: a number, or a string that reads as one.
func libNumber(L *lua.LState, n int) float64 {
	f, ok := luaNumberOf(L.Get(n))
	if !ok {
		libTypeError(L, n, "number")
	}
	return f
}

// libString is luaL_checkstring: a string, or a number written as Lua 5.1
// writes it (%.14g).
func libString(L *lua.LState, n int) string {
	switch v := L.Get(n).(type) {
	case lua.LString:
		return string(v)
	case lua.LNumber:
		return luaNumberString(float64(v))
	}
	libTypeError(L, n, "string")
	return ""
}

func luaNumberString(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case f != f:
		return "nan"
	}
	return strconv.FormatFloat(f, 'g', 14, 64)
}

// libInteger is luaL_checkinteger: libNumber, truncated.
func libInteger(L *lua.LState, n int) int64 {
	return cvtInt64(libNumber(L, n))
}

// libOptInteger is luaL_optinteger.
func libOptInteger(L *lua.LState, n int, def int64) int64 {
	if L.Get(n) == lua.LNil {
		return def
	}
	return libInteger(L, n)
}

// cvtInt64 converts as C's cast does on x86-64 (cvttsd2si): a value out of
// range, or NaN, becomes math.MinInt64. Go leaves such conversions to the
// platform; the libraries' results should not depend on it.
func cvtInt64(f float64) int64 {
	if f >= -(1<<63) && f < 1<<63 {
		return int64(f)
	}
	return math.MinInt64
}

// cvtUint64 is C's (uint64_t) cast of a double on x86-64.
func cvtUint64(f float64) uint64 {
	switch {
	case f < 1<<63 || f != f:
		return uint64(cvtInt64(f))
	case f < 1<<64:
		return uint64(f)
	}
	return 0
}

// luaNumberOf is Lua 5.1's lua_isnumber/lua_tonumber: numbers, and strings
// that read wholly as one (luaO_str2d).
func luaNumberOf(v lua.LValue) (float64, bool) {
	switch v := v.(type) {
	case lua.LNumber:
		return float64(v), true
	case lua.LString:
		s := strings.TrimLeft(string(v), " \t\n\v\f\r")
		f, n := strtod(s)
		if n == 0 || strings.TrimRight(s[n:], " \t\n\v\f\r") != "" {
			return 0, false
		}
		return f, true
	}
	return 0, false
}

// strtod reads the longest prefix of s that C's strtod would (glibc's
// grammar: decimal, hex with an optional binary exponent, inf, infinity,
// nan, nan(chars)), answering its value and length (0: no number).
func strtod(s string) (float64, int) {
	at := func(i int) byte {
		if i < len(s) {
			return s[i]
		}
		return 0
	}
	digits := func(i int, hex bool) int {
		for ; ; i++ {
			c := at(i)
			if !('0' <= c && c <= '9' || hex && ('a' <= c|0x20 && c|0x20 <= 'f')) {
				return i
			}
		}
	}
	i, neg := 0, false
	if c := at(0); c == '+' || c == '-' {
		neg, i = c == '-', 1
	}
	sign := 1.0
	if neg {
		sign = -1
	}
	rest := strings.ToLower(s[i:min(len(s), i+8)])
	switch {
	case strings.HasPrefix(rest, "infinity"):
		return math.Inf(int(sign)), i + 8
	case strings.HasPrefix(rest, "inf"):
		return math.Inf(int(sign)), i + 3
	case strings.HasPrefix(rest, "nan"):
		i += 3
		if at(i) == '(' {
			j := i + 1
			for c := at(j); '0' <= c && c <= '9' || 'a' <= c|0x20 && c|0x20 <= 'z' || c == '_'; c = at(j) {
				j++
			}
			if at(j) == ')' {
				i = j + 1
			}
		}
		return math.NaN(), i
	}
	start := i
	if at(i) == '0' && at(i+1)|0x20 == 'x' {
		j := digits(i+2, true)
		n := j - (i + 2)
		if at(j) == '.' {
			k := digits(j+1, true)
			n += k - j - 1
			j = k
		}
		if n > 0 {
			end, exp := j, "p0" // Go wants the exponent that C may leave out
			if at(j)|0x20 == 'p' {
				k := j + 1
				if c := at(k); c == '+' || c == '-' {
					k++
				}
				if e := digits(k, false); e > k {
					end, exp = e, ""
				}
			}
			f, _ := strconv.ParseFloat(s[start:end]+exp, 64)
			return sign * f, end
		}
		// "0x" with no hex digits: strtod reads the 0 alone.
	}
	j := digits(i, false)
	n := j - i
	if at(j) == '.' {
		k := digits(j+1, false)
		n += k - j - 1
		j = k
	}
	if n == 0 {
		return 0, 0
	}
	if at(j)|0x20 == 'e' {
		k := j + 1
		if c := at(k); c == '+' || c == '-' {
			k++
		}
		if e := digits(k, false); e > k {
			j = e
		}
	}
	f, _ := strconv.ParseFloat(s[start:j], 64) // out of range: ±Inf or 0, as strtod
	return sign * f, j
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// --- bit (LuaBitOp 1.0.2) ---

// bitArg is LuaBitOp's barg: the number's low 32 bits after rounding to
// an integer, the way the C library gets them (adding 2^52+2^51).
func bitArg(L *lua.LState, n int) uint32 {
	return uint32(math.Float64bits(libNumber(L, n) + 6755399441055744.0))
}

func bitRet(L *lua.LState, b uint32) int {
	L.Push(lua.LNumber(int32(b)))
	return 1
}

func bitFuncs() map[string]lua.LGFunction {
	fold := func(op func(a, b uint32) uint32) lua.LGFunction {
		return func(L *lua.LState) int {
			b := bitArg(L, 1)
			for i := L.GetTop(); i > 1; i-- {
				b = op(b, bitArg(L, i))
			}
			return bitRet(L, b)
		}
	}
	shift := func(op func(b, n uint32) uint32) lua.LGFunction {
		return func(L *lua.LState) int {
			b := bitArg(L, 1)
			return bitRet(L, op(b, bitArg(L, 2)&31))
		}
	}
	return map[string]lua.LGFunction{
		"tobit":  func(L *lua.LState) int { return bitRet(L, bitArg(L, 1)) },
		"bnot":   func(L *lua.LState) int { return bitRet(L, ^bitArg(L, 1)) },
		"band":   fold(func(a, b uint32) uint32 { return a & b }),
		"bor":    fold(func(a, b uint32) uint32 { return a | b }),
		"bxor":   fold(func(a, b uint32) uint32 { return a ^ b }),
		"lshift": shift(func(b, n uint32) uint32 { return b << n }),
		"rshift": shift(func(b, n uint32) uint32 { return b >> n }),
		"arshift": shift(func(b, n uint32) uint32 {
			return uint32(int32(b) >> n)
		}),
		"rol":   shift(func(b, n uint32) uint32 { return b<<n | b>>(32-n) }),
		"ror":   shift(func(b, n uint32) uint32 { return b<<(32-n) | b>>n }),
		"bswap": func(L *lua.LState) int { b := bitArg(L, 1); return bitRet(L, b>>24|b>>8&0xff00|b&0xff00<<8|b<<24) },
		"tohex": func(L *lua.LState) int {
			b := bitArg(L, 1)
			n := int64(8)
			if L.GetTop() >= 2 {
				n = int64(int32(bitArg(L, 2)))
			}
			digits := "0123456789abcdef"
			if n < 0 {
				n, digits = -n, "0123456789ABCDEF"
			}
			n = min(n, 8)
			buf := make([]byte, n)
			for i := n - 1; i >= 0; i-- {
				buf[i] = digits[b&15]
				b >>= 4
			}
			L.Push(lua.LString(buf))
			return 1
		},
	}
}
