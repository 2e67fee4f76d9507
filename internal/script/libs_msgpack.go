package script

import (
	"encoding/binary"
	"math"

	lua "github.com/yuin/gopher-lua"
)

const (
	// mpMaxNesting is LUACMSGPACK_MAX_NESTING: a table this deep packs as
	// nil, which is how a cycle ends.
	mpMaxNesting = 16
	// mpMaxPadding bounds the nil slots gopher-lua adds to a table's array
	// part when an unpacked map has a large integer key (Lua 5.1 would put
	// it in the hash part): 12 bytes of input could cost a gigabyte.
	mpMaxPadding = 1 << 20
)

// mpPack is cmsgpack.pack: each argument packed, one after another.
func mpPack(L *lua.LState) int {
	n := L.GetTop()
	if n == 0 {
		libArgError(L, 0, "MessagePack pack needs input.")
	}
	if n+n > luaMaxCStack {
		libArgError(L, 0, "Too many arguments for MessagePack pack.")
	}
	p := &mpPacker{L: L}
	for i := 1; i <= n; i++ {
		p.value(L.Get(i), 0)
	}
	L.Push(lua.LString(p.out))
	return 1
}

type mpPacker struct {
	L   *lua.LState
	out []byte
}

func (p *mpPacker) value(v lua.LValue, level int) {
	switch v := v.(type) {
	case lua.LString:
		p.bytes(string(v))
	case lua.LBool:
		p.out = append(p.out, 0xc2+byte(boolInt(bool(v))))
	case lua.LNumber:
		p.number(float64(v))
	case *lua.LTable:
		if level == mpMaxNesting {
			p.out = append(p.out, 0xc0)
		} else {
			p.table(v, level)
		}
	default: // nil, and what msgpack cannot hold
		p.out = append(p.out, 0xc0)
	}
	if len(p.out) > libMaxBytes {
		libTooBig(p.L, "MessagePack pack")
	}
}

// header appends a type byte and n in size bytes, big-endian.
func (p *mpPacker) header(code byte, n uint64, size int) {
	p.out = append(p.out, code)
	for i := size - 1; i >= 0; i-- {
		p.out = append(p.out, byte(n>>(8*i)))
	}
}

func (p *mpPacker) bytes(s string) {
	switch n := uint64(len(s)); {
	case n < 32:
		p.out = append(p.out, 0xa0|byte(n))
	case n <= 0xff:
		p.header(0xd9, n, 1)
	case n <= 0xffff:
		p.header(0xda, n, 2)
	default:
		p.header(0xdb, n, 4)
	}
	p.out = append(p.out, s...)
}

// number packs an integral number that fits int64 as an integer, the
// rest as a float when that loses nothing, else as a double.
func (p *mpPacker) number(f float64) {
	if f != math.Trunc(f) || f < -(1<<63) || f >= 1<<63 {
		if f32 := float32(f); float64(f32) == f {
			p.header(0xca, uint64(math.Float32bits(f32)), 4)
		} else {
			p.header(0xcb, math.Float64bits(f), 8)
		}
		return
	}
	n := int64(f)
	u := uint64(n)
	switch {
	case n >= 0 && n <= 127, n < 0 && n >= -32:
		p.out = append(p.out, byte(n))
	case n >= 0 && n <= 0xff:
		p.header(0xcc, u, 1)
	case n >= 0 && n <= 0xffff:
		p.header(0xcd, u, 2)
	case n >= 0 && n <= 0xffffffff:
		p.header(0xce, u, 4)
	case n >= 0:
		p.header(0xcf, u, 8)
	case n >= -128:
		p.header(0xd0, u, 1)
	case n >= -32768:
		p.header(0xd1, u, 2)
	case n >= -(1 << 31):
		p.header(0xd2, u, 4)
	default:
		p.header(0xd3, u, 8)
	}
}

// table packs t as an array when its keys are exactly 1..n (ints, as the
// C library checks them), else as a map.
func (p *mpPacker) table(t *lua.LTable, level int) {
	count, maxKey, array := 0, 0.0, true
	for k, _ := t.Next(lua.LNil); k != lua.LNil; k, _ = t.Next(k) {
		count++
		n, ok := k.(lua.LNumber)
		if !ok || n <= 0 || n > math.MaxInt32 || float64(n) != math.Trunc(float64(n)) {
			array = false
		}
		maxKey = max(maxKey, float64(n))
	}
	if array && maxKey == float64(count) {
		p.length(0x90, 0xdc, uint64(count))
		for i := 1; i <= count; i++ {
			p.value(t.RawGet(lua.LNumber(i)), level+1)
		}
		return
	}
	p.length(0x80, 0xde, uint64(count))
	for k, v := t.Next(lua.LNil); k != lua.LNil; k, v = t.Next(k) {
		p.value(k, level+1)
		p.value(v, level+1)
	}
}

// length is an array's or map's header: fix (up to 15), 16 or 32 bits.
func (p *mpPacker) length(fix, code16 byte, n uint64) {
	switch {
	case n <= 15:
		p.out = append(p.out, fix|byte(n))
	case n <= 0xffff:
		p.header(code16, n, 2)
	default:
		p.header(code16+1, n, 4)
	}
}

func mpUnpackOne(L *lua.LState) int {
	return mpUnpack(L, 1, libOptInteger(L, 2, 0))
}

func mpUnpackLimit(L *lua.LState) int {
	limit := libInteger(L, 2)
	return mpUnpack(L, limit, libOptInteger(L, 3, 0))
}

// mpUnpack is mp_unpack_full: up to limit values from offset, or (both 0)
// every value, with no offset returned.
func mpUnpack(L *lua.LState, limit, offset int64) int {
	s := libString(L, 1)
	if offset < 0 || limit < 0 {
		// Redis reports the input's length as the limit.
		libRaise(L, "Invalid request to unpack with offset of %d and limit of %d.", int32(offset), int32(len(s)))
	}
	if offset > int64(len(s)) {
		libRaise(L, "Start offset %d greater than input length %d.", int32(offset), int32(len(s)))
	}
	all := limit == 0 && offset == 0
	if all {
		limit = math.MaxInt32
	}
	c := &mpCursor{L: L, s: s, pos: int(offset)}
	var res []lua.LValue
	for int64(len(res)) < limit && c.pos < len(s) {
		// The C library leaves each value on the Lua stack, above its
		// argument: that stack's bound is how many values one call gives.
		res = append(res, c.value(1+len(res)))
	}
	if c.tooSparse {
		// Raised last, so that input Redis refuses is refused in its words.
		libRaise(L, "Sparse integer keys in input need too much memory.")
	}
	n := len(res)
	if !all {
		next := -1
		if c.pos < len(s) {
			next = c.pos
		}
		L.Push(lua.LNumber(next))
		n++
	}
	for _, v := range res {
		L.Push(v)
	}
	return n
}

type mpCursor struct {
	L         *lua.LState
	s         string
	pos       int
	padding   int  // nil slots added to array parts so far (mpMaxPadding)
	tooSparse bool // a key was left out for padding past mpMaxPadding
}

func (c *mpCursor) need(n int) {
	if len(c.s)-c.pos < n {
		libRaise(c.L, "Missing bytes in input.")
	}
}

// uint reads a big-endian unsigned integer of size bytes after the type
// byte, and skips both.
func (c *mpCursor) uint(size int) uint64 {
	c.need(1 + size)
	var b [8]byte
	copy(b[8-size:], c.s[c.pos+1:c.pos+1+size])
	c.pos += 1 + size
	return binary.BigEndian.Uint64(b[:])
}

func (c *mpCursor) str(n uint64) lua.LValue {
	if uint64(len(c.s)-c.pos) < n {
		libRaise(c.L, "Missing bytes in input.")
	}
	v := lua.LString(c.s[c.pos : c.pos+int(n)])
	c.pos += int(n)
	return v
}

// value decodes one value. top is the Lua stack's height the C decoder
// would be at; it fails as lua_checkstack would, which bounds nesting.
func (c *mpCursor) value(top int) lua.LValue {
	c.need(1)
	if top+1 > luaMaxCStack {
		libRaise(c.L, "stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)")
	}
	b := c.s[c.pos]
	switch {
	case b <= 0x7f:
		c.pos++
		return lua.LNumber(b)
	case b >= 0xe0:
		c.pos++
		return lua.LNumber(int8(b))
	case b&0xe0 == 0xa0:
		c.pos++
		return c.str(uint64(b & 0x1f))
	case b&0xf0 == 0x90:
		c.pos++
		return c.array(uint64(b&0xf), top)
	case b&0xf0 == 0x80:
		c.pos++
		return c.hash(uint64(b&0xf), top)
	}
	switch b {
	case 0xc0:
		c.pos++
		return lua.LNil
	case 0xc2, 0xc3:
		c.pos++
		return lua.LBool(b == 0xc3)
	case 0xcc:
		return lua.LNumber(c.uint(1))
	case 0xcd:
		return lua.LNumber(c.uint(2))
	case 0xce:
		return lua.LNumber(c.uint(4))
	case 0xcf:
		return lua.LNumber(int64(c.uint(8))) // Lua 5.1's lua_Integer wraps it
	case 0xd0:
		return lua.LNumber(int8(c.uint(1)))
	case 0xd1:
		return lua.LNumber(int16(c.uint(2)))
	case 0xd2:
		return lua.LNumber(int32(c.uint(4)))
	case 0xd3:
		return lua.LNumber(int64(c.uint(8)))
	case 0xca:
		return lua.LNumber(math.Float32frombits(uint32(c.uint(4))))
	case 0xcb:
		return lua.LNumber(math.Float64frombits(c.uint(8)))
	case 0xd9:
		return c.str(c.uint(1))
	case 0xda:
		return c.str(c.uint(2))
	case 0xdb:
		return c.str(c.uint(4))
	case 0xdc:
		return c.array(c.uint(2), top)
	case 0xdd:
		return c.array(c.uint(4), top)
	case 0xde:
		return c.hash(c.uint(2), top)
	case 0xdf:
		return c.hash(c.uint(4), top)
	}
	libRaise(c.L, "Bad data format in input.")
	return nil
}

// room is a size hint for n declared items: each takes a byte at least,
// so a declared length past the input allocates nothing, and a large
// one grows as its items come.
func (c *mpCursor) room(n uint64) int {
	return int(min(n, uint64(len(c.s)-c.pos), 1<<12))
}

func (c *mpCursor) array(n uint64, top int) lua.LValue {
	if top+2 > luaMaxCStack { // the table, and a slot for each item's index
		libRaise(c.L, "stack overflow (in function mp_decode_to_lua_array)")
	}
	t := c.L.CreateTable(c.room(n), 0)
	for i := uint64(1); i <= n; i++ {
		if v := c.value(top + 2); v != lua.LNil { // the table and the index
			t.RawSetInt(int(i), v)
		}
	}
	return t
}

func (c *mpCursor) hash(n uint64, top int) lua.LValue {
	t := c.L.NewTable()
	arrayLen := 0 // the length of t's array part in gopher-lua
	for range n {
		k := c.value(top + 1)
		v := c.value(top + 2)
		switch kn := k.(type) {
		case *lua.LNilType:
			c.L.Error(lua.LString("table index is nil"), 0) // lua_settable's words, without a position
		case lua.LNumber:
			f := float64(kn)
			if f != f {
				c.L.Error(lua.LString("table index is NaN"), 0)
			}
			if v != lua.LNil && f == math.Trunc(f) && f > float64(arrayLen) && f < float64(lua.MaxArrayIndex) {
				if c.padding+int(f)-arrayLen-1 > mpMaxPadding {
					c.tooSparse = true
					continue
				}
				c.padding += int(f) - arrayLen - 1
				arrayLen = int(f)
			}
		}
		if v != lua.LNil || t.RawGet(k) != lua.LNil {
			t.RawSet(k, v)
		}
	}
	return t
}
