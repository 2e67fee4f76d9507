package script

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/kintsu/kintsu/internal/codec"
)

// Functions (FUNCTION LOAD, FCALL): a library is Lua code that registers
// named functions with redis.register_function when it is loaded. The
// cluster keeps libraries in its metadata group (statemachine); a node
// checks one here when it is loaded (LoadLibrary), and a leader that runs
// a function loads its library again in the run's own fresh VM, then
// calls the function (run.go), so nothing of one run reaches the next, as
// for EVAL.
//
// As in Redis, the library's code sees only a restricted API while it
// loads (redis.register_function, redis.log and the version), and the
// functions it registers see the full one when they run: both through one
// environment whose lookups are switched once the load is over.

// Flags are a script's flags (EVAL's "#!lua flags=" line, a function's
// registered flags), as Redis 7 defines them.
type Flags uint8

const (
	FlagNoWrites Flags = 1 << iota
	FlagAllowOOM
	FlagAllowStale
	FlagNoCluster
	FlagAllowCrossSlot
)

var flagNames = []string{"no-writes", "allow-oom", "allow-stale", "no-cluster", "allow-cross-slot-keys"}

// Names are the flags' names, in Redis's order.
func (f Flags) Names() []string {
	var out []string
	for i, n := range flagNames {
		if f&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

func flagOf(name string, fold bool) (Flags, bool) {
	for i, n := range flagNames {
		if n == name || fold && strings.EqualFold(n, name) {
			return 1 << i, true
		}
	}
	return 0, false
}

// Shebang reads an EVAL body's first line when it is "#!...": the
// script's flags, and shebang=false for a script without one (Redis's
// compatibility mode, where EVAL_RO alone makes a script read-only).
// skip is how many bytes of the body the line takes (the newline stays,
// so line numbers do not move).
func Shebang(body []byte) (flags Flags, shebang bool, skip int, err error) {
	if !strings.HasPrefix(string(body[:min(2, len(body))]), "#!") {
		return 0, false, 0, nil
	}
	end := strings.IndexByte(string(body), '\n')
	if end < 0 {
		return 0, true, 0, errors.New("ERR Invalid script shebang")
	}
	parts := strings.Fields(string(body[:end]))
	if len(parts) == 0 {
		return 0, true, 0, errors.New("ERR Invalid engine in script shebang")
	}
	if parts[0] != "#!lua" {
		return 0, true, 0, fmt.Errorf("ERR Unexpected engine in script shebang: %s", parts[0])
	}
	for _, p := range parts[1:] {
		list, ok := strings.CutPrefix(p, "flags=")
		if !ok {
			return 0, true, 0, fmt.Errorf("ERR Unknown lua shebang option: %s", p)
		}
		for _, name := range strings.Split(list, ",") {
			if name == "" {
				continue
			}
			f, ok := flagOf(name, false)
			if !ok {
				return 0, true, 0, fmt.Errorf("ERR Unexpected flag in script shebang: %s", name)
			}
			flags |= f
		}
	}
	return flags, true, end, nil
}

// Function is one function a library registers.
type Function struct {
	Name    string
	Desc    string
	HasDesc bool
	Flags   Flags
}

// Library is a loaded library: its name (from its "#!lua name=" line),
// its whole code, and the functions it registers, in their order.
type Library struct {
	Name      string
	Code      []byte
	Functions []Function
}

// LoadTimeout bounds a library's load, as Redis's does.
const LoadTimeout = 500 * time.Millisecond

// maxFunctions bounds the functions one library may register.
const maxFunctions = 1024

// LoadLibrary reads a library's metadata and loads it in a VM of its own,
// answering what it registers, or Redis's error for FUNCTION LOAD.
func LoadLibrary(code []byte) (*Library, error) {
	if len(code) > MaxBodyBytes {
		return nil, fmt.Errorf("ERR library over %d bytes", MaxBodyBytes)
	}
	name, skip, err := libraryMeta(code)
	if err != nil {
		return nil, err
	}
	proto, err := compileFunction(code[skip:])
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), LoadTimeout)
	defer cancel()
	r := newRunner(ctx, func(error) {}, nil, func([]byte) bool { return false }, true, name)
	defer r.L.Close()
	r.protectGlobals()
	fns, _, err := r.loadLibrary(proto)
	if err != nil {
		return nil, err
	}
	lib := &Library{Name: name, Code: code}
	for _, f := range fns {
		lib.Functions = append(lib.Functions, f.Function)
	}
	return lib, nil
}

// libraryMeta reads a library's "#!ENGINE name=NAME" line as Redis does.
func libraryMeta(code []byte) (name string, skip int, err error) {
	if !strings.HasPrefix(string(code[:min(2, len(code))]), "#!") {
		return "", 0, errors.New("ERR Missing library metadata")
	}
	end := strings.IndexByte(string(code), '\n')
	if end < 0 {
		return "", 0, errors.New("ERR Invalid library metadata")
	}
	parts := strings.Fields(string(code[:end]))
	if len(parts) == 0 {
		return "", 0, errors.New("ERR Invalid library metadata")
	}
	engine := parts[0][2:]
	seen := false
	for _, p := range parts[1:] {
		if len(p) >= 5 && strings.EqualFold(p[:5], "name=") {
			if seen {
				return "", 0, errors.New("ERR Invalid metadata value, name argument was given multiple times")
			}
			name, seen = p[5:], true
			continue
		}
		return "", 0, fmt.Errorf("ERR Invalid metadata value given: %s", p)
	}
	if !seen {
		return "", 0, errors.New("ERR Library name was not given")
	}
	if !ValidName(name) {
		return "", 0, errors.New("ERR " + errBadName)
	}
	if !strings.EqualFold(engine, "lua") {
		return "", 0, fmt.Errorf("ERR Engine '%s' not found", engine)
	}
	return name, end, nil
}

const errBadName = "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long"

// ValidName reports whether name may name a library or a function.
func ValidName(name string) bool {
	if name == "" || len(name) > 256 {
		return false
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// functionChunk is the name errors give a library's source, as Redis's do.
const functionChunk = "user_function"

func compileFunction(code []byte) (*lua.FunctionProto, error) {
	chunk, err := parseChunkNamed(code, functionChunk)
	if err != nil {
		return nil, fmt.Errorf("ERR Error compiling function: %s", strings.TrimSpace(oneLine(err.Error())))
	}
	return chunk, nil
}

type registered struct {
	Function
	fn *lua.LFunction
}

// loadLibrary runs a library's code in r's VM with the load-time API and
// answers the functions it registered, and the environment they run in
// (switched to the full API before it returns).
func (r *runner) loadLibrary(proto *lua.FunctionProto) ([]registered, *lua.LTable, error) {
	L := r.L
	var fns []registered
	loading := true
	libRedis := L.NewTable()
	libRedis.RawSetString("register_function", L.NewFunction(func(L *lua.LState) int {
		if !loading {
			L.Error(errTable(L, "ERR redis.register_function can only be called on FUNCTION LOAD command"), 0)
			return 0
		}
		f, err := readRegistration(L)
		if err != "" {
			L.Error(errTable(L, "ERR "+err), 0)
			return 0
		}
		for _, g := range fns {
			if g.Name == f.Name {
				L.Error(errTable(L, "ERR Function already exists in the library"), 0)
				return 0
			}
		}
		if len(fns) >= maxFunctions {
			L.Error(errTable(L, fmt.Sprintf("ERR a library registers at most %d functions", maxFunctions)), 0)
			return 0
		}
		fns = append(fns, f)
		return 0
	}))
	libRedis.RawSetString("log", L.NewFunction(func(*lua.LState) int { return 0 }))
	for i, name := range []string{"LOG_DEBUG", "LOG_VERBOSE", "LOG_NOTICE", "LOG_WARNING"} {
		libRedis.RawSetString(name, lua.LNumber(i))
	}
	libRedis.RawSetString("REDIS_VERSION", lua.LString(redisVersion))
	libRedis.RawSetString("REDIS_VERSION_NUM", lua.LNumber(0x070200))
	L.SetMetatable(libRedis, r.strictTable())

	loadGlobals := L.NewTable()
	loadGlobals.RawSetString("redis", libRedis)
	lookup := loadGlobals
	env := L.NewTable()
	mt := L.NewTable()
	mt.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
		v := lookup.RawGet(L.Get(2))
		if v == lua.LNil {
			L.RaiseError("Script attempted to access nonexistent global variable '%s'", L.ToString(2))
			return 0
		}
		L.Push(v)
		return 1
	}))
	mt.RawSetString("__newindex", L.NewFunction(func(L *lua.LState) int {
		L.RaiseError("%s", errReadonlyTable)
		return 0
	}))
	L.SetMetatable(env, mt)

	fn := L.NewFunctionFromProto(proto)
	fn.Env = env
	L.Push(fn)
	err := L.PCall(0, 0, nil)
	loading, lookup = false, r.globals
	if err != nil {
		if cause := context.Cause(r.ctx); cause != nil {
			if errors.Is(cause, context.DeadlineExceeded) {
				return nil, nil, errors.New("ERR Error registering functions: FUNCTION LOAD timeout")
			}
			return nil, nil, errors.New(limitText(cause))
		}
		msg := err.Error()
		var ae *lua.ApiError
		if errors.As(err, &ae) {
			msg = luaMessage(ae)
			if t, ok := ae.Object.(*lua.LTable); ok {
				if e, ok := t.RawGetString("err").(lua.LString); ok {
					msg = string(e)
				}
			}
		}
		return nil, nil, errors.New("ERR Error registering functions: " + oneLine(msg))
	}
	if len(fns) == 0 {
		return nil, nil, errors.New("ERR No functions registered")
	}
	return fns, env, nil
}

// strictTable is a metatable that makes a table read-only and raises an
// error on a missing field, as Redis's protected tables do.
func (r *runner) strictTable() *lua.LTable {
	L := r.L
	mt := L.NewTable()
	mt.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
		L.RaiseError("Script attempted to access nonexistent global variable '%s'", L.ToString(2))
		return 0
	}))
	mt.RawSetString("__newindex", L.NewFunction(func(L *lua.LState) int {
		L.RaiseError("%s", errReadonlyTable)
		return 0
	}))
	return mt
}

// readRegistration reads redis.register_function's arguments: (name,
// callback) or one table of named arguments.
func readRegistration(L *lua.LState) (registered, string) {
	var f registered
	switch L.GetTop() {
	case 2:
		name, ok := L.Get(1).(lua.LString)
		if !ok {
			if n, isNum := L.Get(1).(lua.LNumber); isNum {
				name, ok = lua.LString(lua.LVAsString(n)), true
			}
		}
		if !ok {
			return f, "first argument to redis.register_function must be a string"
		}
		cb, ok := L.Get(2).(*lua.LFunction)
		if !ok {
			return f, "second argument to redis.register_function must be a function"
		}
		f.Name, f.fn = string(name), cb
	case 1:
		t, ok := L.Get(1).(*lua.LTable)
		if !ok {
			return f, "calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments)."
		}
		var why string
		hasName := false
		t.ForEach(func(k, v lua.LValue) {
			if why != "" {
				return
			}
			key, ok := k.(lua.LString)
			if !ok {
				why = "named argument key given to redis.register_function is not a string"
				return
			}
			switch strings.ToLower(string(key)) {
			case "function_name":
				s, ok := luaString(v)
				if !ok {
					why = "function_name argument given to redis.register_function must be a string"
					return
				}
				f.Name, hasName = s, true
			case "description":
				s, ok := luaString(v)
				if !ok {
					why = "description argument given to redis.register_function must be a string"
					return
				}
				f.Desc, f.HasDesc = s, true
			case "callback":
				cb, ok := v.(*lua.LFunction)
				if !ok {
					why = "callback argument given to redis.register_function must be a function"
					return
				}
				f.fn = cb
			case "flags":
				ft, ok := v.(*lua.LTable)
				if !ok {
					why = "flags argument to redis.register_function must be a table representing function flags"
					return
				}
				for i := 1; ; i++ {
					e := ft.RawGetInt(i)
					if e == lua.LNil {
						break
					}
					s, ok := luaString(e)
					fl, known := flagOf(s, true)
					if !ok || !known {
						why = "unknown flag given"
						return
					}
					f.Flags |= fl
				}
			default:
				why = "unknown argument given to redis.register_function"
			}
		})
		switch {
		case why != "":
			return f, why
		case !hasName:
			return f, "redis.register_function must get a function name argument"
		case f.fn == nil:
			return f, "redis.register_function must get a callback argument"
		}
	default:
		return f, "wrong number of arguments to redis.register_function"
	}
	if !ValidName(f.Name) {
		return f, errBadName
	}
	return f, ""
}

func luaString(v lua.LValue) (string, bool) {
	switch x := v.(type) {
	case lua.LString:
		return string(x), true
	case lua.LNumber:
		return lua.LVAsString(x), true
	}
	return "", false
}

// AppendLibrary encodes a library for the metadata group.
func AppendLibrary(e codec.Encoder, l *Library) codec.Encoder {
	e = e.Bytes([]byte(l.Name)).Bytes(l.Code).Uvarint(uint64(len(l.Functions)))
	for _, f := range l.Functions {
		e = e.Bytes([]byte(f.Name)).Bytes([]byte(f.Desc)).Byte(boolByte(f.HasDesc)).Byte(byte(f.Flags))
	}
	return e
}

// ReadLibrary decodes what AppendLibrary wrote; d fails on what is not a
// well-formed library.
func ReadLibrary(d *codec.Decoder) *Library {
	l := &Library{Name: string(d.Bytes()), Code: d.Bytes()}
	n := d.Count()
	if n > maxFunctions || !ValidName(l.Name) || len(l.Code) > MaxBodyBytes {
		d.Fail()
		return l
	}
	for ; n > 0 && d.Err() == nil; n-- {
		f := Function{Name: string(d.Bytes()), Desc: string(d.Bytes()), HasDesc: d.Byte() == 1, Flags: Flags(d.Byte())}
		if !ValidName(f.Name) {
			d.Fail()
		}
		l.Functions = append(l.Functions, f)
	}
	return l
}
