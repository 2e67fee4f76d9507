package script

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	lua "github.com/yuin/gopher-lua"
)

// jsonConfig is one cjson table's settings (cjson.new makes another).
type jsonConfig struct {
	sparseConvert, sparseRatio, sparseSafe int
	encodeMaxDepth, decodeMaxDepth         int
	encodeInvalid                          int // 0 off, 1 on, 2 "null"
	precision                              int
	keepBuffer                             int // kept for its answer only: Go's buffers are the GC's
	decodeInvalid                          int
}

// newCJSON builds a cjson table with Redis's defaults; null is cjson.null,
// shared by every table cjson.new makes in the VM.
func newCJSON(L *lua.LState, null *lua.LUserData) *lua.LTable {
	c := &jsonConfig{sparseRatio: 2, sparseSafe: 10, encodeMaxDepth: 1000, decodeMaxDepth: 1000,
		precision: 14, keepBuffer: 1, decodeInvalid: 1}
	t := libTable(L, map[string]lua.LGFunction{
		"encode": func(L *lua.LState) int { return c.encode(L, null) },
		"decode": func(L *lua.LState) int { return c.decode(L, null) },
		"encode_sparse_array": func(L *lua.LState) int {
			jsonArgs(L, 3)
			jsonEnum(L, 1, &c.sparseConvert, nil)
			jsonInt(L, 2, &c.sparseRatio, 0, math.MaxInt32)
			jsonInt(L, 3, &c.sparseSafe, 0, math.MaxInt32)
			return 3
		},
		"encode_max_depth": func(L *lua.LState) int {
			jsonArgs(L, 1)
			return jsonInt(L, 1, &c.encodeMaxDepth, 1, math.MaxInt32)
		},
		"decode_max_depth": func(L *lua.LState) int {
			jsonArgs(L, 1)
			return jsonInt(L, 1, &c.decodeMaxDepth, 1, math.MaxInt32)
		},
		"encode_number_precision": func(L *lua.LState) int {
			jsonArgs(L, 1)
			return jsonInt(L, 1, &c.precision, 1, 14)
		},
		"encode_keep_buffer": func(L *lua.LState) int {
			jsonArgs(L, 1)
			return jsonEnum(L, 1, &c.keepBuffer, nil)
		},
		"encode_invalid_numbers": func(L *lua.LState) int {
			jsonArgs(L, 1)
			return jsonEnum(L, 1, &c.encodeInvalid, []string{"off", "on", "null"})
		},
		"decode_invalid_numbers": func(L *lua.LState) int {
			jsonArgs(L, 1)
			return jsonEnum(L, 1, &c.decodeInvalid, nil)
		},
		"new": func(L *lua.LState) int {
			L.Push(newCJSON(L, null))
			return 1
		},
	}, map[string]string{"_NAME": "cjson", "_VERSION": "2.1.0"})
	t.RawSetString("null", null)
	return t
}

// jsonArgs is json_arg_init: at most n arguments, padded with nils so
// that the answers pushed come after them.
func jsonArgs(L *lua.LState, n int) {
	if L.GetTop() > n {
		libArgError(L, n+1, "found too many arguments")
	}
	for L.GetTop() < n {
		L.Push(lua.LNil)
	}
}

// jsonInt sets an integer setting from argument i unless it is nil, and
// answers the setting.
func jsonInt(L *lua.LState, i int, setting *int, lo, hi int) int {
	if L.Get(i) != lua.LNil {
		v := int(int32(libInteger(L, i))) // the C library keeps it in an int
		if v < lo || v > hi {             // argument 1 whichever it is, as the C library says
			libArgError(L, 1, "expected integer between "+strconv.Itoa(lo)+" and "+strconv.Itoa(hi))
		}
		*setting = v
	}
	L.Push(lua.LNumber(*setting))
	return 1
}

// jsonEnum sets an enumerated setting (a boolean, or one of options,
// "off" and "on" by default) and answers it: a boolean for off and on.
func jsonEnum(L *lua.LState, i int, setting *int, options []string) int {
	if options == nil {
		options = []string{"off", "on"}
	}
	switch v := L.Get(i).(type) {
	case lua.LBool:
		*setting = boolInt(bool(v))
	case *lua.LNilType:
	default:
		name := libString(L, i)
		n := slices.Index(options, name)
		if n < 0 {
			libArgError(L, i, "invalid option '"+name+"'")
		}
		*setting = n
	}
	if *setting <= 1 {
		L.Push(lua.LBool(*setting == 1))
	} else {
		L.Push(lua.LString(options[*setting]))
	}
	return 1
}

// --- encoding ---

// libOneArg is cjson's check that it was given exactly one argument.
func libOneArg(L *lua.LState) {
	if L.GetTop() != 1 {
		libArgError(L, 1, "expected 1 argument")
	}
}

type jsonEncoder struct {
	L    *lua.LState
	c    *jsonConfig
	null *lua.LUserData
	out  []byte
}

func (c *jsonConfig) encode(L *lua.LState, null *lua.LUserData) int {
	libOneArg(L)
	e := &jsonEncoder{L: L, c: c, null: null}
	e.value(L.Get(1), 0, 0)
	L.Push(lua.LString(e.out))
	return 1
}

func (e *jsonEncoder) fail(v lua.LValue, reason string) {
	libRaise(e.L, "Cannot serialise %s: %s", v.Type().String(), reason)
}

// value appends v's JSON. slots counts the Lua stack slots the C encoder
// would hold at this depth (1 for an array level, 2 for an object's), as
// its lua_checkstack is a limit too.
func (e *jsonEncoder) value(v lua.LValue, depth, slots int) {
	switch v := v.(type) {
	case lua.LString:
		e.string(string(v))
	case lua.LNumber:
		e.number(float64(v))
	case lua.LBool:
		e.out = strconv.AppendBool(e.out, bool(v))
	case *lua.LNilType:
		e.out = append(e.out, "null"...)
	case *lua.LTable:
		depth++
		if depth > e.c.encodeMaxDepth || 1+slots+3 > luaMaxCStack {
			libRaise(e.L, "Cannot serialise, excessive nesting (%d)", depth)
		}
		if n := e.arrayLength(v); n > 0 {
			e.out = append(e.out, '[')
			for i := 1; i <= n; i++ {
				if i > 1 {
					e.out = append(e.out, ',')
				}
				e.value(v.RawGet(lua.LNumber(i)), depth, slots+1)
			}
			e.out = append(e.out, ']')
		} else {
			e.object(v, depth, slots)
		}
	default:
		if v != e.null {
			e.fail(v, "type not supported")
		}
		e.out = append(e.out, "null"...)
	}
	if len(e.out) > libMaxBytes {
		libTooBig(e.L, "Cannot serialise")
	}
}

func (e *jsonEncoder) object(t *lua.LTable, depth, slots int) {
	e.out = append(e.out, '{')
	first := true
	for k, v := t.Next(lua.LNil); k != lua.LNil; k, v = t.Next(k) {
		if !first {
			e.out = append(e.out, ',')
		}
		first = false
		switch k := k.(type) {
		case lua.LNumber:
			e.out = append(e.out, '"')
			e.number(float64(k))
			e.out = append(e.out, '"', ':')
		case lua.LString:
			e.string(string(k))
			e.out = append(e.out, ':')
		default:
			e.fail(k, "table key must be a number or string")
		}
		e.value(v, depth, slots+2)
	}
	e.out = append(e.out, '}')
}

// arrayLength is lua_array_length: the largest key when every key is a
// positive integer, else -1; an excessively sparse array is an object, or
// an error. The largest key is kept in a C int: past it, the C cast on
// x86-64 makes INT_MIN, which reads as "not an array".
func (e *jsonEncoder) arrayLength(t *lua.LTable) int {
	var maxKey int32
	items := 0
	for k, _ := t.Next(lua.LNil); k != lua.LNil; k, _ = t.Next(k) {
		n, ok := k.(lua.LNumber)
		f := float64(n)
		if !ok || f < 1 || math.Floor(f) != f {
			return -1
		}
		if f > float64(maxKey) {
			maxKey = math.MinInt32
			if f < 1<<31 {
				maxKey = int32(f)
			}
		}
		items++
	}
	m := int64(maxKey)
	if e.c.sparseRatio > 0 && m > int64(items)*int64(e.c.sparseRatio) && m > int64(e.c.sparseSafe) {
		if e.c.sparseConvert == 0 {
			e.fail(t, "excessively sparse array")
		}
		return -1
	}
	return int(maxKey)
}

func (e *jsonEncoder) number(f float64) {
	inf, nan := math.IsInf(f, 0), math.IsNaN(f)
	switch e.c.encodeInvalid {
	case 0:
		if inf || nan {
			e.fail(lua.LNumber(f), "must not be NaN or Inf")
		}
	case 1:
		if nan {
			e.out = append(e.out, "nan"...)
			return
		}
	default:
		if inf || nan {
			e.out = append(e.out, "null"...)
			return
		}
	}
	switch {
	case math.IsInf(f, 1):
		e.out = append(e.out, "inf"...) // as C's printf writes them
	case math.IsInf(f, -1):
		e.out = append(e.out, "-inf"...)
	default:
		// Go's 'g' with a precision chooses and trims as C's %.14g does.
		e.out = strconv.AppendFloat(e.out, f, 'g', e.c.precision, 64)
	}
}

func (e *jsonEncoder) string(s string) {
	const hex = "0123456789abcdef"
	e.out = append(e.out, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\', '/':
			e.out = append(e.out, '\\', c)
		case '\b':
			e.out = append(e.out, '\\', 'b')
		case '\t':
			e.out = append(e.out, '\\', 't')
		case '\n':
			e.out = append(e.out, '\\', 'n')
		case '\f':
			e.out = append(e.out, '\\', 'f')
		case '\r':
			e.out = append(e.out, '\\', 'r')
		default:
			if c < 0x20 || c == 0x7f {
				e.out = append(e.out, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			} else {
				e.out = append(e.out, c)
			}
		}
		if len(e.out) > libMaxBytes {
			libTooBig(e.L, "Cannot serialise")
		}
	}
	e.out = append(e.out, '"')
}

// --- decoding ---

type jsonTokenType int

const (
	tObjBegin jsonTokenType = iota
	tObjEnd
	tArrBegin
	tArrEnd
	tString
	tNumber
	tBoolean
	tNull
	tColon
	tComma
	tEnd
	tError
)

var jsonTokenNames = [...]string{"T_OBJ_BEGIN", "T_OBJ_END", "T_ARR_BEGIN", "T_ARR_END", "T_STRING",
	"T_NUMBER", "T_BOOLEAN", "T_NULL", "T_COLON", "T_COMMA", "T_END", "T_ERROR"}

type jsonToken struct {
	typ   jsonTokenType
	index int    // where it starts (where the error is, for tError)
	str   string // tString's value, or tError's reason
	num   float64
	b     bool
}

type jsonDecoder struct {
	L     *lua.LState
	c     *jsonConfig
	null  *lua.LUserData
	data  string
	pos   int
	depth int
	slots int // as jsonEncoder.value's
	tmp   []byte
}

func (c *jsonConfig) decode(L *lua.LState, null *lua.LUserData) int {
	libOneArg(L)
	s := libString(L, 1)
	if len(s) >= 2 && (s[0] == 0 || s[1] == 0) {
		libRaise(L, "JSON parser does not support UTF-16 or UTF-32")
	}
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i] // the C parser stops at a NUL, as at the end
	}
	d := &jsonDecoder{L: L, c: c, null: null, data: s}
	v := d.value(d.token())
	if t := d.token(); t.typ != tEnd {
		d.expected("the end", t)
	}
	L.Push(v)
	return 1
}

func (d *jsonDecoder) at(i int) byte {
	if i < len(d.data) {
		return d.data[i]
	}
	return 0
}

func (d *jsonDecoder) expected(what string, t jsonToken) {
	found := jsonTokenNames[t.typ]
	if t.typ == tError {
		found = t.str
	}
	libRaise(d.L, "Expected %s but found %s at character %d", what, found, t.index+1)
}

func (d *jsonDecoder) errToken(reason string) jsonToken {
	return jsonToken{typ: tError, index: d.pos, str: reason}
}

func (d *jsonDecoder) token() jsonToken {
	for c := d.at(d.pos); c == ' ' || c == '\t' || c == '\n' || c == '\r'; c = d.at(d.pos) {
		d.pos++
	}
	ch, rest := d.at(d.pos), d.data[d.pos:]
	single := func(typ jsonTokenType) jsonToken {
		d.pos++
		return jsonToken{typ: typ, index: d.pos - 1}
	}
	switch {
	case ch == '{':
		return single(tObjBegin)
	case ch == '}':
		return single(tObjEnd)
	case ch == '[':
		return single(tArrBegin)
	case ch == ']':
		return single(tArrEnd)
	case ch == ',':
		return single(tComma)
	case ch == ':':
		return single(tColon)
	case ch == 0:
		return jsonToken{typ: tEnd, index: d.pos}
	case ch == '"':
		return d.string()
	case ch == '-' || isDigit(ch):
		if d.c.decodeInvalid == 0 && d.invalidNumber() {
			return d.errToken("invalid number")
		}
		return d.number()
	case strings.HasPrefix(rest, "true"), strings.HasPrefix(rest, "false"):
		t := jsonToken{typ: tBoolean, index: d.pos, b: ch == 't'}
		d.pos += 5 - boolInt(t.b)
		return t
	case strings.HasPrefix(rest, "null"):
		d.pos += 4
		return jsonToken{typ: tNull, index: d.pos - 4}
	case strings.IndexByte("iInN+", ch) >= 0 && d.c.decodeInvalid != 0 && d.invalidNumber():
		// Only what is sure to be a number (Inf, NaN, hex) reads as one,
		// so other bad tokens are called invalid tokens.
		return d.number()
	}
	return d.errToken("invalid token")
}

// invalidNumber reports a number strict JSON refuses but strtod reads:
// +1, 0x1F, 01, inf, nan.
func (d *jsonDecoder) invalidNumber() bool {
	p := d.pos
	switch d.at(p) {
	case '+':
		return true
	case '-':
		p++
	}
	if c := d.at(p); c == '0' {
		c2 := d.at(p + 1)
		return c2|0x20 == 'x' || isDigit(c2)
	} else if c <= '9' {
		return false
	}
	w := strings.ToLower(d.data[p:min(len(d.data), p+3)])
	return w == "inf" || w == "nan"
}

func (d *jsonDecoder) number() jsonToken {
	f, n := strtod(d.data[d.pos:])
	if n == 0 {
		return d.errToken("invalid number")
	}
	d.pos += n
	return jsonToken{typ: tNumber, index: d.pos - n, num: f}
}

func (d *jsonDecoder) string() jsonToken {
	start := d.pos
	d.pos++
	d.tmp = d.tmp[:0]
	for {
		ch := d.at(d.pos)
		switch ch {
		case '"':
			d.pos++
			return jsonToken{typ: tString, index: start, str: string(d.tmp)}
		case 0:
			return d.errToken("unexpected end of string")
		case '\\':
			esc := d.at(d.pos + 1)
			if esc == 'u' {
				if !d.unicodeEscape() {
					return d.errToken("invalid unicode escape code")
				}
				continue
			}
			i := strings.IndexByte("\"\\/btnfr", esc)
			if i < 0 || esc == 0 {
				return d.errToken("invalid escape code")
			}
			ch = "\"\\/\b\t\n\f\r"[i]
			d.pos++
		}
		d.tmp = append(d.tmp, ch)
		d.pos++
	}
}

func (d *jsonDecoder) hex4(i int) int {
	n := 0
	for j := i; j < i+4; j++ {
		c := d.at(j)
		switch {
		case isDigit(c):
			n = n<<4 | int(c-'0')
		case 'a' <= c|0x20 && c|0x20 <= 'f':
			n = n<<4 | int(c|0x20-'a'+10)
		default:
			return -1
		}
	}
	return n
}

// unicodeEscape reads \uXXXX (a surrogate pair: two of them) at d.pos into
// d.tmp as UTF-8.
func (d *jsonDecoder) unicodeEscape() bool {
	cp := d.hex4(d.pos + 2)
	n := 6
	if cp < 0 {
		return false
	}
	if cp&0xF800 == 0xD800 {
		if cp&0x400 != 0 || d.at(d.pos+6) != '\\' || d.at(d.pos+7) != 'u' {
			return false
		}
		lo := d.hex4(d.pos + 8)
		if lo < 0 || lo&0xFC00 != 0xDC00 {
			return false
		}
		cp, n = (cp&0x3FF)<<10|(lo&0x3FF)+0x10000, 12
	}
	d.tmp = utf8.AppendRune(d.tmp, rune(cp))
	d.pos += n
	return true
}

// descend enters an object or array, which needs need more stack slots in
// the C decoder.
func (d *jsonDecoder) descend(need int) {
	d.depth++
	if d.depth > d.c.decodeMaxDepth || 1+d.slots+need > luaMaxCStack {
		libRaise(d.L, "Found too many nested data structures (%d) at character %d", d.depth, d.pos)
	}
}

func (d *jsonDecoder) value(t jsonToken) lua.LValue {
	switch t.typ {
	case tString:
		return lua.LString(t.str)
	case tNumber:
		return lua.LNumber(t.num)
	case tBoolean:
		return lua.LBool(t.b)
	case tNull:
		return d.null
	case tObjBegin:
		d.descend(3)
		obj := d.L.NewTable()
		if t = d.token(); t.typ != tObjEnd {
			for {
				if t.typ != tString {
					d.expected("object key string", t)
				}
				key := t.str
				if t = d.token(); t.typ != tColon {
					d.expected("colon", t)
				}
				d.slots += 2
				obj.RawSetString(key, d.value(d.token()))
				d.slots -= 2
				if t = d.token(); t.typ == tObjEnd {
					break
				} else if t.typ != tComma {
					d.expected("comma or object end", t)
				}
				t = d.token()
			}
		}
		d.depth--
		return obj
	case tArrBegin:
		d.descend(2)
		arr := d.L.NewTable()
		if t = d.token(); t.typ != tArrEnd {
			for i := 1; ; i++ {
				d.slots++
				arr.RawSetInt(i, d.value(t))
				d.slots--
				if t = d.token(); t.typ == tArrEnd {
					break
				} else if t.typ != tComma {
					d.expected("comma or array end", t)
				}
				t = d.token()
			}
		}
		d.depth--
		return arr
	}
	d.expected("value", t)
	return nil
}
