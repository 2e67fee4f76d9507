package script

import (
	"encoding/hex"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
)

func libState(t *testing.T) *lua.LState {
	t.Helper()
	L := lua.NewState()
	openLibs(L)
	t.Cleanup(L.Close)
	return L
}

// libRun runs src in L and answers what it returns.
func libRun(L *lua.LState, src string) ([]lua.LValue, error) {
	fn, err := L.Load(strings.NewReader(src), "user_script")
	if err != nil {
		return nil, err
	}
	top := L.GetTop()
	L.Push(fn)
	if err := L.PCall(0, lua.MultRet, nil); err != nil {
		return nil, err
	}
	out := make([]lua.LValue, 0, L.GetTop()-top)
	for i := top + 1; i <= L.GetTop(); i++ {
		out = append(out, L.Get(i))
	}
	L.SetTop(top)
	return out, nil
}

// libOK runs src and answers its first result as a string.
func libOK(t *testing.T, L *lua.LState, src string) string {
	t.Helper()
	out, err := libRun(L, src)
	if err != nil {
		t.Fatalf("%s\nfailed: %v", src, err)
	}
	if len(out) == 0 {
		return ""
	}
	return out[0].String()
}

// libFails checks src fails with an error containing want.
func libFails(t *testing.T, L *lua.LState, src, want string) {
	t.Helper()
	_, err := libRun(L, src)
	if err == nil {
		t.Errorf("%s\nsucceeded, want an error with %q", src, want)
		return
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("%s\nerror %q, want it to contain %q", src, err.Error(), want)
	}
}

type libCase struct{ src, want string }

func libCheck(t *testing.T, L *lua.LState, cases []libCase) {
	t.Helper()
	for _, c := range cases {
		if got := libOK(t, L, c.src); got != c.want {
			t.Errorf("%s\n= %q, want %q", c.src, got, c.want)
		}
	}
}

// libHex runs src and answers its first result, a string, in hex.
func libHex(t *testing.T, L *lua.LState, src string) string {
	t.Helper()
	return hex.EncodeToString([]byte(libOK(t, L, src)))
}

// The cases of Redis 7.0's tests/unit/scripting.tcl that use these
// libraries, as they are there.
func TestLibsRedisSuite(t *testing.T) {
	L := libState(t)
	libCheck(t, L, []libCase{
		{`return table.concat(cjson.decode("[0.0, -5e3, -1, 0.3e-3, 1023.2, 0e10]"), " ")`, "0 -5000 -1 0.0003 1023.2 0"},
		{`local decoded = cjson.decode('{"keya": "a", "keyb": "b"}') return decoded.keya .. decoded.keyb`, "ab"},
	})
	libOK(t, L, `
		local some_map = {s1="Some string", n1=100, a1={"Some","String","Array"}, nil1=nil, b1=true, b2=false}
		local encoded = cjson.encode(some_map)
		local decoded = cjson.decode(encoded)
		assert(table.concat(some_map) == table.concat(decoded))
		cjson.encode_keep_buffer(false)
		encoded = cjson.encode(some_map)
		decoded = cjson.decode(encoded)
		assert(table.concat(some_map) == table.concat(decoded))
		local table1 = {one="one", [1]="one"}
		encoded = cjson.encode(table1)
		decoded = cjson.decode(encoded)
		assert(decoded["one"] == table1["one"])
		assert(decoded["1"] == table1[1])
		local array1 = {[1]="one", [2]="two"}
		encoded = cjson.encode(array1)
		decoded = cjson.decode(encoded)
		assert(table.concat(array1) == table.concat(decoded))
		local invalid_map = {}
		invalid_map[false] = "false"
		local ok, encoded = pcall(cjson.encode, invalid_map)
		assert(ok == false)
		cjson.encode_max_depth(1)
		ok, encoded = pcall(cjson.encode, some_map)
		assert(ok == false)
		cjson.decode_max_depth(1)
		ok, decoded = pcall(cjson.decode, '{"obj": {"array": [1,2,3,4]}}')
		assert(ok == false)
		ok, encoded = pcall(cjson.encode, {num1=0/0})
		assert(ok == false)
		cjson.encode_invalid_numbers(true)
		ok, encoded = pcall(cjson.encode, {num1=0/0})
		assert(ok == true)
		cjson.decode_max_depth(1000)
		cjson.encode_max_depth(1000)
		cjson.encode_invalid_numbers(false)`)

	if got := libHex(t, L, `return cmsgpack.pack(0.1)`); got != "cb3fb999999999999a" {
		t.Errorf("cmsgpack.pack(0.1) = %s", got)
	}
	if got := libHex(t, L, `return cmsgpack.pack(-1099511627776)`); got != "d3ffffff0000000000" {
		t.Errorf("cmsgpack.pack(-1099511627776) = %s", got)
	}
	libOK(t, L, `
		local str_lt_32 = string.rep("x", 30)
		local str_lt_255 = string.rep("x", 250)
		local str_lt_65535 = string.rep("x", 65530)
		local str_long = string.rep("x", 100000)
		local array_lt_15 = {1, 2, 3, 4, 5}
		local array_lt_65535 = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18}
		local array_big = {}
		for i=1, 100000 do array_big[i] = i end
		local map_lt_15 = {a=1, b=2}
		local map_big = {}
		for i=1, 100000 do map_big[tostring(i)] = i end
		local some_map = {s1=str_lt_32, s2=str_lt_255, s3=str_lt_65535, s4=str_long, d1=0.1, i1=1, i2=250,
			i3=65530, i4=100000, i5=2^40, i6=-1, i7=-120, i8=-32000, i9=-100000, i10=-3147483648,
			a1=array_lt_15, a2=array_lt_65535, a3=array_big, m1=map_lt_15, m2=map_big, b1=false, b2=true, n=nil}
		local encoded = cmsgpack.pack(some_map)
		local decoded = cmsgpack.unpack(encoded)
		assert(table.concat(some_map) == table.concat(decoded))
		local offset, decoded_one = cmsgpack.unpack_one(encoded, 0)
		assert(table.concat(some_map) == table.concat(decoded_one))
		assert(offset == -1)
		local encoded_multiple = cmsgpack.pack(str_lt_32, str_lt_255, str_lt_65535, str_long)
		local offset, obj = cmsgpack.unpack_limit(encoded_multiple, 1, 0)
		assert(obj == str_lt_32)
		offset, obj = cmsgpack.unpack_limit(encoded_multiple, 1, offset)
		assert(obj == str_lt_255)
		offset, obj = cmsgpack.unpack_limit(encoded_multiple, 1, offset)
		assert(obj == str_lt_65535)
		offset, obj = cmsgpack.unpack_limit(encoded_multiple, 1, offset)
		assert(obj == str_long)
		assert(offset == -1)
		-- and the values themselves, which table.concat of a map does not see
		for k, v in pairs(some_map) do
			if type(v) == "table" then
				for k2, v2 in pairs(v) do assert(decoded[k][k2] == v2, k .. "." .. k2) end
			else
				assert(decoded[k] == v, k)
			end
		end`)

	out, err := libRun(L, `
		local a = {x=nil,y=5}
		local b = {x=a}
		a['x'] = b
		local encoded = cmsgpack.pack(a)
		local re = cmsgpack.unpack(encoded)
		assert(re)
		assert(re.x)
		assert(re.x.x.y == re.y)
		assert(re.x.x.x.x.y == re.y)
		assert(re.x.x.x.x.x.x.y == re.y)
		assert(re.x.x.x.x.x.x.x.x.x.x.y == re.y)
		assert(re.x.x.x.x.x.x.x.x.x.x.x.x.x.x.y == re.y)
		assert(re.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x)
		assert(re.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x == nil)
		return encoded, re.x.x.x.x.x.x.x.x.y == re.y, re.y == 5`)
	if err != nil {
		t.Fatal(err)
	}
	const circular = "82a17905a17881a17882a17905a17881a17882a17905a17881a17882a17905a17881a17882a17905a17881a17882a17905a17881a17882a17905a17881a17882a17905a17881a178c0"
	if got := hex.EncodeToString([]byte(out[0].String())); got != circular || out[1] != lua.LTrue || out[2] != lua.LTrue {
		t.Errorf("circular references: %s %v %v", got, out[1], out[2])
	}

	libOK(t, L, `
		assert(bit.tobit(1) == 1);
		assert(bit.band(1) == 1);
		assert(bit.bxor(1,2) == 3);
		assert(bit.bor(1,2,4,8,16,32,64,128) == 255)`)

	for _, src := range []string{
		`cjson.encode = function() return 1 end`,
		`cmsgpack.pack = function() return 1 end`,
		`bit.lshift = function() return 1 end`,
		`struct.pack = nil`,
		`cjson.newfield = 1`,
		`setmetatable(cjson, nil)`,
	} {
		libFails(t, L, src, "")
	}
	libFails(t, L, `cjson.encode = function() return 1 end`, "user_script:1: Attempt to modify a readonly table")
	libCheck(t, L, []libCase{{`return cjson._NAME .. cjson._VERSION .. cmsgpack._VERSION`, "cjson2.1.0lua-cmsgpack 0.4.0"}})
}

func TestLibsCJSONEncode(t *testing.T) {
	L := libState(t)
	libCheck(t, L, []libCase{
		{`return cjson.encode({1, "two", true, false, cjson.null})`, `[1,"two",true,false,null]`},
		{`return cjson.encode({})`, `{}`},
		{`return cjson.encode("a\"b\\c/d\1\8\9\10\12\13\31\127é")`, `"a\"b\\c\/d\u0001\b\t\n\f\r\u001f\u007fé"`},
		{`return cjson.encode({0.1, 1/3, 1e20, -0.0, 100, 123456789012345678, 1e-5, 2^53})`,
			`[0.1,0.33333333333333,1e+20,-0,100,1.2345678901235e+17,1e-05,9.007199254741e+15]`},
		{`return cjson.encode({a={b={c=1}}})`, `{"a":{"b":{"c":1}}}`},
		{`return cjson.encode({[1]=1, [2]=2, [4]=4})`, `[1,2,null,4]`},
		{`return cjson.encode({[1.5]=1})`, `{"1.5":1}`},
		// a key past a C int is no array index (Redis's cast makes it INT_MIN)
		{`return cjson.encode({[2^31+5]=1})`, `{"2147483653":1}`},
		{`cjson.encode_sparse_array(true, 0) local s = cjson.encode({[2^32+5]=1}) cjson.encode_sparse_array(false, 2) return s`, `{"4294967301":1}`},
		{`return cjson.encode({["a\0b"]=1})`, `{"a\u0000b":1}`},
		{`return cjson.encode(nil)`, `null`},
		{`return cjson.encode(12)`, `12`},
		// sparse arrays: an array up to encode_sparse_safe, an error past it
		{`local t = {} t[10] = 1 return cjson.encode(t)`, `[null,null,null,null,null,null,null,null,null,1]`},
		{`return tostring(select(2, cjson.encode_sparse_array(true)))`, `2`},
		{`local t = {} t[20] = 1 return cjson.encode(t)`, `{"20":1}`},
		{`cjson.encode_sparse_array(false) return cjson.encode_number_precision(3)`, `3`},
		{`return cjson.encode(math.pi)`, `3.14`},
		{`cjson.encode_number_precision(14) return cjson.encode(math.pi)`, `3.1415926535898`},
		{`return tostring(cjson.encode_keep_buffer())`, `true`},
		{`return cjson.encode_invalid_numbers("null")`, `null`},
		{`return cjson.encode({1/0, -1/0, 0/0})`, `[null,null,null]`},
		{`cjson.encode_invalid_numbers(true) return cjson.encode({1/0, -1/0, 0/0})`, `[inf,-inf,nan]`},
		{`cjson.encode_invalid_numbers(false) return tostring(cjson.encode_invalid_numbers())`, `false`},
		// a table shared, not cyclic, is written out each time
		{`local s = {1} return cjson.encode({s, s})`, `[[1],[1]]`},
	})
	libFails(t, L, `local t = {} t[20] = 1 return cjson.encode(t)`, "Cannot serialise table: excessively sparse array")
	libFails(t, L, `return cjson.encode({[true]=1})`, "Cannot serialise boolean: table key must be a number or string")
	libFails(t, L, `return cjson.encode({print})`, "Cannot serialise function: type not supported")
	libFails(t, L, `return cjson.encode(0/0)`, "Cannot serialise number: must not be NaN or Inf")
	libFails(t, L, `return cjson.encode({[1/0]=1, a=1})`, "Cannot serialise number: must not be NaN or Inf")
	libFails(t, L, `return cjson.encode()`, "expected 1 argument")
	libFails(t, L, `return cjson.encode(1, 2)`, "expected 1 argument")
	libFails(t, L, `return cjson.encode_max_depth(0)`, "expected integer between 1 and 2147483647")
	libFails(t, L, `return cjson.encode_max_depth(1, 2)`, "found too many arguments")
	libFails(t, L, `return cjson.encode_keep_buffer("maybe")`, "invalid option 'maybe'")

	// Cycles and deep nesting end at the depth limit.
	libFails(t, L, `local t = {} t[1] = t return cjson.encode(t)`, "Cannot serialise, excessive nesting (1001)")
	libFails(t, L, `local t = {} t.a = t t.b = t return cjson.encode(t)`, "Cannot serialise, excessive nesting (1001)")
	libFails(t, L, `local t = {} for i = 1, 2000 do t = {t} end return cjson.encode(t)`, "excessive nesting (1001)")
	// Past 1000, Lua 5.1's C stack is the limit, as in Redis.
	libFails(t, L, `cjson.encode_max_depth(100000) local t = {} t[1] = t return cjson.encode(t)`, "excessive nesting (7998)")
	libFails(t, L, `local t = {} t.a = t return cjson.encode(t)`, "excessive nesting (4000)")
	libOK(t, L, `cjson.encode_max_depth(1000)`)
	// A large result is refused.
	libFails(t, L, `local s = string.rep("x", 1048576) local t = {} for i = 1, 20 do t[i] = s end return cjson.encode(t)`,
		"result would be over")
	libFails(t, L, `return cjson.encode(string.rep("\1", 3000000))`, "result would be over")
}

func TestLibsCJSONDecode(t *testing.T) {
	L := libState(t)
	libCheck(t, L, []libCase{
		{`local t = cjson.decode('{"a":[1,2,{"b":null}],"c":"d"}') return tostring(t.a[3].b == cjson.null) .. #t.a .. t.c`, "true3d"},
		{`return cjson.decode('"\\u00e9\\ud83d\\ude00\\n\\t\\/\\"\\\\"')`, "é\U0001F600\n\t/\"\\"},
		{`return #cjson.decode('"\\u0000"')`, "1"},
		{`return cjson.decode(' \t\r\n 12.5e1 ')`, "125"},
		{`return cjson.decode('true') == true`, "true"},
		{`return #cjson.decode('[]') + #cjson.decode('[[],[]]')`, "2"},
		{`return next(cjson.decode('{}')) == nil`, "true"},
		{`return cjson.decode('{"a":1,"a":2}').a`, "2"},
		{`return cjson.decode(42)`, "42"},
		// strtod's numbers, which decode_invalid_numbers (on by default) lets in
		{`return cjson.decode('0x10') + cjson.decode('+1') + cjson.decode('010') + cjson.decode('-0x1p4')`, "11"},
		{`return cjson.decode('[1e999]')[1] == 1/0`, "true"},
		{`local n = cjson.decode('NaN') return n ~= n`, "true"},
		{`return cjson.decode('-Infinity') == -1/0`, "true"},
		{`return cjson.decode('[1]\0garbage')[1]`, "1"},
		{`return cjson.decode_max_depth(5)`, "5"},
		{`return #cjson.decode('[[[[[1]]]]]')`, "1"},
		{`return cjson.decode_max_depth(1000)`, "1000"},
	})
	for _, c := range []libCase{
		{`{"obj": {"array": [1,2,3,4]}}`, ""},
		{`{"a":}`, "Expected value but found T_OBJ_END at character 6"},
		{`{"a" 1}`, "Expected colon but found T_NUMBER at character 6"},
		{`{"a":1,}`, "Expected object key string but found T_OBJ_END at character 8"},
		{`{1:1}`, "Expected object key string but found T_NUMBER at character 2"},
		{`{"a":1 "b":2}`, "Expected comma or object end but found T_STRING at character 8"},
		{`[1,]`, "Expected value but found T_ARR_END at character 4"},
		{`[1 2]`, "Expected comma or array end but found T_NUMBER at character 4"},
		{`[1`, "Expected comma or array end but found T_END at character 3"},
		{`[1] x`, "Expected the end but found invalid token at character 5"},
		{`"abc`, "Expected value but found unexpected end of string at character 5"},
		{`"a\x"`, "Expected value but found invalid escape code at character 3"},
		{`"\ud800"`, "Expected value but found invalid unicode escape code at character 2"},
		{`"\udc00\ud800"`, "invalid unicode escape code"},
		{`"\u12"`, "invalid unicode escape code"},
		{`nul`, "Expected value but found invalid token at character 1"},
		{`-`, "Expected value but found invalid number at character 1"},
		{`[1.5.3]`, "Expected comma or array end but found invalid token at character 5"},
		{``, "Expected value but found T_END at character 1"},
		{"\x00{}", "JSON parser does not support UTF-16 or UTF-32"},
		{"[\x00]", "JSON parser does not support UTF-16 or UTF-32"},
	} {
		if c.want == "" {
			continue
		}
		L.SetGlobal("input", lua.LString(c.src))
		libFails(t, L, `return cjson.decode(input)`, c.want)
	}
	libFails(t, L, `return cjson.decode()`, "expected 1 argument")
	// Called by pcall directly, an error has no position, as in Redis.
	libCheck(t, L, []libCase{
		{`return select(2, pcall(cjson.decode, '['))`, "Expected value but found T_END at character 2"},
		{`return select(2, pcall(function() return cjson.decode('[') end))`, "user_script:1: Expected value but found T_END at character 2"},
	})
	libFails(t, L, `cjson.decode_max_depth(1) return cjson.decode('{"obj": {"array": [1,2,3,4]}}')`,
		"Found too many nested data structures (2) at character 9")
	libOK(t, L, `cjson.decode_max_depth(1000)`)
	libFails(t, L, `return cjson.decode(string.rep("[", 100000))`, "Found too many nested data structures (1001) at character 1001")
	// Past 1000, Lua 5.1's C stack is the limit, as in Redis.
	libFails(t, L, `cjson.decode_max_depth(1000000) return cjson.decode(string.rep("[", 100000))`,
		"Found too many nested data structures (7999)")
	libFails(t, L, `return cjson.decode(string.rep('{"a":', 100000))`, "Found too many nested data structures (4000)")

	libOK(t, L, `cjson.decode_invalid_numbers(false)`)
	for _, c := range []libCase{
		{"0x10", "invalid number at character 1"}, {"010", "invalid number at character 1"},
		{"-inf", "invalid number at character 1"}, {"[-nan]", "invalid number at character 2"},
		// what is not sure to be a number is an invalid token
		{"+1", "invalid token at character 1"}, {"NaN", "invalid token at character 1"},
		{"Infinity", "invalid token at character 1"}, {"[nan]", "invalid token at character 2"},
	} {
		L.SetGlobal("input", lua.LString(c.src))
		libFails(t, L, `return cjson.decode(input)`, c.want)
	}
	libFails(t, L, `return cjson.decode("[x]")`, "Expected value but found invalid token at character 2")
}

// Each cjson table has its own settings: another VM's, or cjson.new's,
// are not touched.
func TestLibsCJSONSettingsPerVM(t *testing.T) {
	a, b := libState(t), libState(t)
	libOK(t, a, `cjson.encode_max_depth(1) cjson.encode_invalid_numbers(true)`)
	libFails(t, a, `return cjson.encode({{}})`, "excessive nesting (2)")
	libCheck(t, b, []libCase{
		{`return cjson.encode({{}})`, `[{}]`},
		{`return tostring(cjson.encode_invalid_numbers())`, "false"},
	})
	libCheck(t, a, []libCase{
		{`local j = cjson.new() return j.encode({{}}) .. tostring(j.decode("null") == cjson.null)`, `[{}]true`},
		{`return cjson.encode_max_depth()`, "1"},
	})
}

func TestLibsMsgpackPack(t *testing.T) {
	L := libState(t)
	for _, c := range []libCase{
		{`0`, "00"}, {`127`, "7f"}, {`128`, "cc80"}, {`255`, "ccff"}, {`256`, "cd0100"},
		{`65535`, "cdffff"}, {`65536`, "ce00010000"}, {`2^32`, "cf0000000100000000"},
		{`-1`, "ff"}, {`-32`, "e0"}, {`-33`, "d0df"}, {`-128`, "d080"}, {`-129`, "d1ff7f"},
		{`-32769`, "d2ffff7fff"}, {`-2^31`, "d280000000"}, {`-2^31-1`, "d3ffffffff7fffffff"},
		{`0.5`, "ca3f000000"}, {`1/0`, "ca7f800000"}, {`2^63`, "ca5f000000"}, {`2^63+2^40`, "ca5f000001"}, {`2^63+2^30`, "cb43e0000000080000"},
		{`-2^63`, "d38000000000000000"},
		{`true, false, nil`, "c3c2c0"}, {`print`, "c0"},
		{`""`, "a0"}, {`string.rep("a", 31)`, "bf" + strings.Repeat("61", 31)},
		{`string.rep("a", 32)`, "d920" + strings.Repeat("61", 32)},
		{`{}`, "90"}, {`{1, 2, 3}`, "93010203"}, {`{[1]=1, [3]=3}`, "820101" + "0303"},
		{`{a=1}`, "81a16101"}, {`{[2^31]=1}`, "81ce8000000001"},
	} {
		if got := libHex(t, L, "return cmsgpack.pack("+c.src+")"); got != c.want {
			t.Errorf("cmsgpack.pack(%s) = %s, want %s", c.src, got, c.want)
		}
	}
	if got := libHex(t, L, `return cmsgpack.pack(string.rep("a", 256))`); got[:6] != "da0100" {
		t.Errorf("256-byte string packs as %s...", got[:6])
	}
	if got := libHex(t, L, `return cmsgpack.pack(string.rep("a", 65536))`); got[:10] != "db00010000" {
		t.Errorf("64KiB string packs as %s...", got[:10])
	}
	if got := libHex(t, L, `local t = {} for i = 1, 16 do t[i] = i end return cmsgpack.pack(t)`); got[:6] != "dc0010" {
		t.Errorf("16 items pack as %s...", got[:6])
	}
	if got := libHex(t, L, `local t = {} for i = 1, 65536 do t[i] = 0 end return cmsgpack.pack(t)`); got[:10] != "dd00010000" {
		t.Errorf("65536 items pack as %s...", got[:10])
	}
	if got := libHex(t, L, `local t = {} for i = 1, 16 do t["k" .. i] = i end return cmsgpack.pack(t)`); got[:6] != "de0010" {
		t.Errorf("16 pairs pack as %s...", got[:6])
	}

	// A cycle with fan-out ends at 16 levels: 2^16-1 tables, 2^16 nils.
	libCheck(t, L, []libCase{{`local t = {} t[1] = t t[2] = t return #cmsgpack.pack(t)`, "131071"}})
	libFails(t, L, `local s = string.rep("x", 1048576) local t = {} for i = 1, 20 do t[i] = s end return cmsgpack.pack(t)`,
		"result would be over")
	// A cycle whose fan-out would make 2^16 copies of a string ends at the bound.
	libFails(t, L, `local t = {string.rep("x", 65536)} t[2] = t t[3] = t return cmsgpack.pack(t)`, "result would be over")
	libFails(t, L, `return cmsgpack.pack()`, "MessagePack pack needs input.")
}

func TestLibsMsgpackUnpack(t *testing.T) {
	L := libState(t)
	libCheck(t, L, []libCase{
		{`return cmsgpack.unpack("\207\255\255\255\255\255\255\255\255")`, "-1"},                   // uint64 max wraps, as in Redis
		{`return cmsgpack.unpack("\211\128\0\0\0\0\0\0\0")`, "-9223372036854775808"},               // int64 min
		{`return cmsgpack.unpack("\209\255\1")`, "-255"},                                           // int16
		{`return cmsgpack.unpack("\202\63\0\0\0")`, "0.5"},                                         // float
		{`return select('#', cmsgpack.unpack("\1\2\3"))`, "3"},                                     // a stream
		{`return select('#', cmsgpack.unpack(""))`, "0"},                                           // nothing
		{`return table.concat({cmsgpack.unpack_one("\1\2\3", 1)}, ",")`, "2,2"},                    // offset, value
		{`return table.concat({cmsgpack.unpack_one("\1\2\3", 2)}, ",")`, "-1,3"},                   // the last
		{`return table.concat({cmsgpack.unpack_limit("\1\2\3", 2)}, ",")`, "2,1,2"},                // two values
		{`return table.concat({cmsgpack.unpack_limit("\1\2\3", 0, 1)}, ",")`, "1"},                 // none
		{`return table.concat({cmsgpack.unpack_one("\1\2\3", 3)}, ",")`, "-1"},                     // at the end
		{`local t = cmsgpack.unpack("\147\1\192\3") return #t .. tostring(t[2]) .. t[3]`, "3nil3"}, // nil in an array
		{`local t = cmsgpack.unpack("\130\1\161a\1\192") return tostring(t[1])`, "nil"},            // a key, then nil
		{`local t = cmsgpack.unpack("\129\145\1\2") local k = next(t) return k[1] + t[k]`, "3"},    // a table key
		{`return cmsgpack.unpack("\129\206\0\15\66\64\1")[1000000]`, "1"},                          // sparse, but not too
	})
	for _, c := range []libCase{
		{`"\204"`, "Missing bytes in input."},
		{`"\203\0\0"`, "Missing bytes in input."},
		{`"\165abc"`, "Missing bytes in input."},
		{`"\147\1\2"`, "Missing bytes in input."},
		// huge declared lengths: refused, nothing allocated for them
		{`"\219\255\255\255\255abc"`, "Missing bytes in input."},
		{`"\221\255\255\255\255\1\2"`, "Missing bytes in input."},
		{`"\223\255\255\255\255\1\2"`, "Missing bytes in input."},
		{`"\193"`, "Bad data format in input."},
		{`"\196\1a"`, "Bad data format in input."},
		{`"\1\212"`, "Bad data format in input."},
		{`"\129\192\1"`, "table index is nil"},
		{`"\129\203\127\248\0\0\0\0\0\0\1"`, "table index is NaN"},
		{`"\129\206\3\255\255\255\1"`, "Sparse integer keys in input need too much memory."},
		{`string.rep("\145", 100000)`, "stack overflow (in function mp_decode_to_lua_array)"},
		{`string.rep("\129\1", 100000)`, "stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)"},
		{`string.rep("\1", 8000)`, "stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)"},
		{`string.rep("\144", 7999)`, "stack overflow (in function mp_decode_to_lua_array)"},
		// the sparse key is left out, and truncated input refused as Redis does
		{`"\130\206\3\255\255\255\1\1"`, "Missing bytes in input."},
	} {
		libFails(t, L, "return cmsgpack.unpack("+c.src+")", c.want)
	}
	// Redis's bound on values at once is under 8000; gopher-lua's default
	// stack is smaller than that, the scripts' VMs' is not.
	big := lua.NewState(lua.Options{RegistrySize: 1024, RegistryMaxSize: 1 << 20})
	defer big.Close()
	openLibs(big)
	libCheck(t, big, []libCase{{`return select('#', cmsgpack.unpack(string.rep("\1", 7999)))`, "7999"}})
	libCheck(t, L, []libCase{
		{`return #cmsgpack.unpack(string.rep("\145", 3998) .. "\1")`, "1"},
		{`return table.concat({cmsgpack.unpack_limit(string.rep("\1", 9000), 2, 8990)}, ",")`, "8992,1,1"},
	})
	libFails(t, L, `return cmsgpack.unpack_one("\1", -1)`, "Invalid request to unpack with offset of -1 and limit of 1.")
	libFails(t, L, `return cmsgpack.unpack_limit("\1", -1)`, "Invalid request to unpack with offset of 0 and limit of 1.")
	libFails(t, L, `return cmsgpack.unpack_one("\1", 2)`, "Start offset 2 greater than input length 1.")
	libFails(t, L, `return cmsgpack.unpack_limit("\1")`, "number expected")
	libFails(t, L, `return cmsgpack.unpack()`, "string expected")

	// What pack makes, unpack gives back.
	libOK(t, L, `
		local v = {1, -1, 0.25, 1e300, -2^40, "s", string.rep("y", 300), true, false, {a={b={c="d"}}}, {}}
		local u = cmsgpack.unpack(cmsgpack.pack(v))
		for i = 1, 9 do assert(u[i] == v[i], i) end
		assert(u[10].a.b.c == "d")
		assert(next(u[11]) == nil)
		local a, b, c = cmsgpack.unpack(cmsgpack.pack(1, "two", 3))
		assert(a == 1 and b == "two" and c == 3)`)
}

func TestLibsBit(t *testing.T) {
	L := libState(t)
	libCheck(t, L, []libCase{
		{`return bit.tobit(0xffffffff)`, "-1"},
		{`return bit.tobit(0xffffffff + 1)`, "0"},
		{`return bit.tobit(2^40 + 1234)`, "1234"},
		{`return bit.tobit(1.5) .. bit.tobit(2.5) .. bit.tobit(-1.5)`, "22-2"},
		{`return bit.tobit("10")`, "10"},
		{`return bit.bnot(0)`, "-1"},
		{`return bit.band(0xff, 0x0f, 0x3c)`, "12"},
		{`return bit.bor(1, 2, 4)`, "7"},
		{`return bit.bxor(0xff, 0x0f)`, "240"},
		{`return bit.lshift(1, 31)`, "-2147483648"},
		{`return bit.lshift(1, 33)`, "2"},
		{`return bit.rshift(-1, 28)`, "15"},
		{`return bit.arshift(-256, 4)`, "-16"},
		{`return bit.rol(0x12345678, 12) == 0x45678123`, "true"},
		{`return bit.ror(0x12345678, 12) == 0x67812345`, "true"},
		{`return bit.rol(0x12345678, 0) == 0x12345678`, "true"},
		{`return bit.bswap(0x12345678) == 0x78563412`, "true"},
		{`return bit.tohex(255)`, "000000ff"},
		{`return bit.tohex(-1, -4)`, "FFFF"},
		{`return bit.tohex(0x12345678, 2)`, "78"},
		{`return bit.tohex(1, 100)`, "00000001"},
		{`return bit.tohex(1, -2147483648)`, "00000001"},
	})
	libFails(t, L, `return bit.band()`, "bad argument #1 to 'band' (number expected, got no value)")
	libFails(t, L, `return bit.lshift(1)`, "bad argument #2 to 'lshift' (number expected, got no value)")
	libFails(t, L, `return bit.bor(1, {})`, "bad argument #2 to 'bor' (number expected, got table)")
	libFails(t, L, `return bit.tohex(1, nil)`, "bad argument #2 to 'tohex' (number expected, got nil)")
	libCheck(t, L, []libCase{{`return select(2, pcall(bit.tobit))`, "bad argument #1 to '?' (number expected, got no value)"}})
}

func TestLibsStruct(t *testing.T) {
	L := libState(t)
	for _, c := range []libCase{
		{`">I2", 258`, "0102"},
		{`"<I2", 258`, "0201"},
		{`"<i4", -2`, "feffffff"},
		{`">i3", -2`, "fffffe"},
		{`"bBhHlL", -1, 255, -1, 65535, -1, 1`, "ffffffffffff" + strings.Repeat("ff", 8) + "01" + strings.Repeat("00", 7)},
		{`"<i16", -1`, strings.Repeat("ff", 8) + strings.Repeat("00", 8)},
		{`">i16", 1`, strings.Repeat("00", 15) + "01"},
		{`"!4 b i4", 1, 2`, "0100000002000000"},
		{`"!8 b d", 1, 0.5`, "0100000000000000000000000000e03f"},
		{`"b d", 1, 0.5`, "01000000000000e03f"},
		{`">d", 0.1`, "3fb999999999999a"},
		{`"<f", 0.5`, "0000003f"},
		{`"s", "hi"`, "686900"},
		{`"c0", "abc"`, "616263"},
		{`"c2", "abc"`, "6162"},
		{`"xbx", 7`, "000700"},
		{`"i", 42`, "2a000000"},
		{`"b", "12"`, "0c"},
		{`"", 1`, ""},
	} {
		if got := libHex(t, L, "return struct.pack("+c.src+")"); got != c.want {
			t.Errorf("struct.pack(%s) = %s, want %s", c.src, got, c.want)
		}
	}
	libCheck(t, L, []libCase{
		{`return table.concat({struct.unpack("<i4", "\254\255\255\255")}, ",")`, "-2,5"},
		{`return table.concat({struct.unpack(">I2", "\1\2")}, ",")`, "258,3"},
		{`return table.concat({struct.unpack("<i16", struct.pack("<i16", -1))}, ",")`, "-1,17"},
		{`return table.concat({struct.unpack("bBhH", "\255\255\255\255\255\255")}, ",")`, "-1,255,-1,65535,7"},
		{`return table.concat({struct.unpack("!4 b i4", "\1\0\0\0\2\0\0\0")}, ",")`, "1,2,9"},
		{`return table.concat({struct.unpack("s", "hi\0x")}, ",")`, "hi,4"},
		{`return table.concat({struct.unpack("b c0", "\3abcd")}, ",")`, "abc,5"},
		{`return table.concat({struct.unpack("c1 c0", "3abcd")}, ",")`, "abc,5"},
		{`return table.concat({struct.unpack("c2", "abcd", 3)}, ",")`, "cd,5"},
		{`return table.concat({struct.unpack(">d", struct.pack(">d", 0.1))}, ",")`, "0.1,9"},
		{`return table.concat({struct.unpack("f", struct.pack("f", 0.5))}, ",")`, "0.5,5"},
		{`return table.concat({struct.unpack("x b", "\0\7")}, ",")`, "7,3"},
		{`return struct.unpack("", "", -5)`, "-5"},
		{`return struct.size("!4 b i4")`, "8"},
		{`return struct.size("bhlTfdxc3i2")`, "37"},
		{`return struct.size("z")`, "0"},
		{`return struct.size("c2147483647c2147483647")`, "4294967294"},
	})
	for _, c := range []libCase{
		{`struct.pack("i33", 1)`, "integral size 33 is larger than limit of 32"},
		{`struct.pack("c99999999999", "x")`, "integral size overflow"},
		{`struct.pack("c5", "ab")`, "bad argument #3 to 'pack' (string too short)"},
		{`struct.pack("cc", "a")`, "bad argument #3 to 'pack' (string expected, got nil)"},
		{`struct.pack("!3")`, "alignment 3 is not a power of 2"},
		{`struct.pack("z")`, "invalid format option 'z'"},
		{`struct.pack("i")`, "number expected, got nil"},
		{`struct.pack(string.rep("x", 17 * 1048576))`, "result would be over"},
		{`struct.unpack("i4", "ab")`, "data string too short"},
		{`struct.unpack("c2000000000", "x")`, "data string too short"},
		{`struct.unpack("b c0", "\255x")`, "data string too short"},
		{`struct.unpack("b", "x", 0)`, "offset must be 1 or greater"},
		{`struct.unpack("b", "x", -1)`, "data string too short"},
		{`struct.unpack("b", "x", 3)`, "data string too short"},
		{`struct.unpack("c0", "abc")`, "format 'c0' needs a previous size"},
		{`struct.unpack("c1 c0", "xabc")`, "format 'c0' needs a previous size"},
		{`struct.unpack("s", "abc")`, "unfinished string in data"},
		{`struct.unpack("z", "abc")`, "invalid format option 'z'"},
		{`struct.unpack(string.rep("b", 9000), string.rep("\0", 9000))`, "stack overflow (too many results)"},
		{`struct.size("s")`, "option 's' has no fixed size"},
		{`struct.size("c0")`, "option 'c0' has no fixed size"},
		{`struct.size("?")`, "invalid format option '?'"},
	} {
		libFails(t, L, "return "+c.src, c.want)
	}
}
