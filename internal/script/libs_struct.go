package script

import (
	"encoding/binary"
	"math"
	"slices"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// The C library's sizes on x86-64 (long and size_t: 8 bytes), whose native
// order, like arm64's, is little-endian.
const (
	structMaxIntSize = 32
	structMaxAlign   = 8
)

type structFormat struct {
	L      *lua.LState
	f      string
	i      int
	little bool
	align  int
}

func newStructFormat(L *lua.LState) *structFormat {
	f := libString(L, 1)
	if i := strings.IndexByte(f, 0); i >= 0 {
		f = f[:i] // the C library reads a C string
	}
	return &structFormat{L: L, f: f, little: true, align: 1}
}

func (s *structFormat) more() bool { return s.i < len(s.f) }

func (s *structFormat) next() byte { s.i++; return s.f[s.i-1] }

// num reads a count after an option, or answers def.
func (s *structFormat) num(def int) int {
	if !s.more() || !isDigit(s.f[s.i]) {
		return def
	}
	a := 0
	for s.more() && isDigit(s.f[s.i]) {
		d := int(s.f[s.i] - '0')
		if a > math.MaxInt32/10 || a*10 > math.MaxInt32-d {
			libRaise(s.L, "integral size overflow")
		}
		a = a*10 + d
		s.i++
	}
	return a
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// size is an option's size (reading its count); 0 for the options that
// take no room.
func (s *structFormat) size(opt byte) uint64 {
	switch opt {
	case 'b', 'B', 'x':
		return 1
	case 'h', 'H':
		return 2
	case 'f':
		return 4
	case 'l', 'L', 'T', 'd':
		return 8
	case 'c':
		return uint64(s.num(1))
	case 'i', 'I':
		n := s.num(4)
		if n > structMaxIntSize {
			libRaise(s.L, "integral size %d is larger than limit of %d", n, structMaxIntSize)
		}
		return uint64(n)
	}
	return 0
}

// pad is how many bytes align an item of size at offset n.
func (s *structFormat) pad(n uint64, opt byte, size uint64) uint64 {
	if size == 0 || opt == 'c' {
		return 0
	}
	size = min(size, uint64(s.align))
	return (size - (n & (size - 1))) & (size - 1)
}

// control handles the options that set order and alignment.
func (s *structFormat) control(opt byte) {
	switch opt {
	case ' ':
	case '>':
		s.little = false
	case '<':
		s.little = true
	case '!':
		a := s.num(structMaxAlign)
		if a <= 0 || a&(a-1) != 0 {
			libRaise(s.L, "alignment %d is not a power of 2", a)
		}
		s.align = a
	default:
		libArgError(s.L, 1, "invalid format option '"+string([]byte{opt})+"'")
	}
}

func (s *structFormat) order() interface {
	binary.ByteOrder
	binary.AppendByteOrder
} {
	if s.little {
		return binary.LittleEndian
	}
	return binary.BigEndian
}

func structPack(L *lua.LState) int {
	s := newStructFormat(L)
	L.Push(lua.LNil) // the C library's marker: a missing first value is "got nil"
	arg := 2
	var out []byte
	for s.more() {
		opt := s.next()
		size := s.size(opt)
		toalign := s.pad(uint64(len(out)), opt, size)
		out = append(out, make([]byte, toalign)...)
		switch opt {
		case 'b', 'B', 'h', 'H', 'l', 'L', 'T', 'i', 'I':
			n := libNumber(L, arg)
			arg++
			v := cvtUint64(n) // a negative n wraps as the C library's (long) cast does
			var b [structMaxIntSize]byte
			for i := range size {
				b[i] = byte(v)
				v >>= 8 // past 8 bytes, zeros: the C library's long has no more
			}
			if !s.little {
				slices.Reverse(b[:size])
			}
			out = append(out, b[:size]...)
		case 'x':
			out = append(out, 0)
		case 'f':
			out = s.order().AppendUint32(out, math.Float32bits(float32(libNumber(L, arg))))
			arg++
		case 'd':
			out = s.order().AppendUint64(out, math.Float64bits(libNumber(L, arg)))
			arg++
		case 'c', 's':
			str := libString(L, arg)
			arg++
			if size == 0 {
				size = uint64(len(str))
			}
			if uint64(len(str)) < size {
				libArgError(L, arg, "string too short")
			}
			out = append(out, str[:size]...)
			if opt == 's' {
				out = append(out, 0)
			}
		default:
			s.control(opt)
		}
		if len(out) > libMaxBytes {
			libTooBig(L, "struct.pack")
		}
	}
	L.Push(lua.LString(out))
	return 1
}

func structUnpack(L *lua.LState) int {
	s := newStructFormat(L)
	data := libString(L, 2)
	ld := uint64(len(data))
	// The C library keeps the offset in a size_t: a negative one wraps and
	// fails the length check below.
	pos := uint64(libOptInteger(L, 3, 1))
	if pos == 0 {
		libArgError(L, 3, "offset must be 1 or greater")
	}
	pos--
	var res []lua.LValue
	for s.more() {
		opt := s.next()
		size := s.size(opt)
		pos += s.pad(pos, opt, size)
		if size > ld || pos > ld-size {
			libArgError(L, 2, "data string too short")
		}
		if L.GetTop()+len(res)+2 > luaMaxCStack {
			libRaise(L, "stack overflow (too many results)")
		}
		switch opt {
		case 'b', 'B', 'h', 'H', 'l', 'L', 'T', 'i', 'I':
			res = append(res, lua.LNumber(structInteger(data[pos:pos+size], s.little, 'a' <= opt)))
		case 'x':
		case 'f':
			res = append(res, lua.LNumber(math.Float32frombits(s.order().Uint32([]byte(data[pos:pos+4])))))
		case 'd':
			res = append(res, lua.LNumber(math.Float64frombits(s.order().Uint64([]byte(data[pos:pos+8])))))
		case 'c':
			if size == 0 {
				var prev float64
				ok := len(res) > 0
				if ok {
					prev, ok = luaNumberOf(res[len(res)-1])
				}
				if !ok {
					libRaise(L, "format 'c0' needs a previous size")
				}
				size = cvtUint64(prev)
				res = res[:len(res)-1]
				if size > ld || pos > ld-size {
					libArgError(L, 2, "data string too short")
				}
			}
			res = append(res, lua.LString(data[pos:pos+size]))
		case 's':
			e := strings.IndexByte(data[pos:], 0)
			if e < 0 {
				libRaise(L, "unfinished string in data")
			}
			size = uint64(e) + 1
			res = append(res, lua.LString(data[pos:pos+uint64(e)]))
		default:
			s.control(opt)
		}
		pos += size
	}
	for _, v := range res {
		L.Push(v)
	}
	L.Push(lua.LNumber(int64(pos + 1)))
	return len(res) + 1
}

// structInteger reads an integer of len(b) bytes (up to 32) as the C
// library does, in a 64-bit long: bytes past the low 8 are lost.
func structInteger(b string, little, signed bool) float64 {
	var l uint64
	for i := range len(b) {
		c := b[i]
		if little {
			c = b[len(b)-1-i]
		}
		l = l<<8 | uint64(c)
	}
	if !signed {
		return float64(l)
	}
	// The shift count is taken mod 64, as x86-64 takes it.
	mask := ^uint64(0) << (uint(len(b)*8-1) & 63)
	if l&mask != 0 {
		l |= mask
	}
	return float64(int64(l))
}

func structSize(L *lua.LState) int {
	s := newStructFormat(L)
	var pos uint64
	for s.more() {
		opt := s.next()
		size := s.size(opt)
		pos += s.pad(pos, opt, size)
		switch {
		case opt == 's':
			libArgError(L, 1, "option 's' has no fixed size")
		case opt == 'c' && size == 0:
			libArgError(L, 1, "option 'c0' has no fixed size")
		}
		if !isDigit(opt) && !('a' <= opt|0x20 && opt|0x20 <= 'z') {
			s.control(opt)
		}
		pos += size
	}
	L.Push(lua.LNumber(int64(pos)))
	return 1
}
