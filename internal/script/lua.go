package script

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/kintsu/kintsu/internal/acl"
	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/resp"
)

// Redis's words for a script's errors (Redis 7.0's).
const (
	errWrongArgs     = "ERR Wrong number of args calling Redis command from script"
	errNoArgs        = "ERR Please specify at least one argument for this redis lib call"
	errArgType       = "ERR Lua redis lib command arguments must be strings or integers"
	errUnknown       = "ERR Unknown Redis command called from script"
	errNotAllowed    = "ERR This Redis command is not allowed from script"
	errWriteRO       = "ERR Write commands are not allowed from read-only scripts."
	errNonLocal      = "ERR Script attempted to access a non local key in a cluster node"
	errReadonlyTable = "Attempt to modify a readonly table"
	errTimedOut      = "ERR Script ran past its time limit and was stopped; it changed nothing"
	errTooMuchMemory = "ERR Script used more memory than allowed and was stopped; it changed nothing"
	errKilled        = "ERR Script killed by user with SCRIPT KILL..."
	errReplyTooDeep  = "ERR reached lua stack limit"
	errOOM           = "OOM command not allowed when used memory > 'maxmemory'."
)

// chunkName is the name errors give a script's source, as Redis's do.
const chunkName = "user_script"

// redisVersion is what redis.REDIS_VERSION says (the version the front end
// reports).
const redisVersion = "7.2.0" // as the front end reports it (INFO, HELLO)

// SHA1 is a script's name for EVALSHA: the hex SHA-1 of its body.
func SHA1(body []byte) string {
	h := sha1.Sum(body)
	return hex.EncodeToString(h[:])
}

// Compile parses a script's body, answering a compile error in Redis's
// words.
// A "#!lua flags=..." first line is read (Shebang) and left out.
func Compile(body []byte) (*lua.FunctionProto, error) {
	_, _, skip, err := Shebang(body)
	if err != nil {
		return nil, err
	}
	chunk, err := parseChunkNamed(body[skip:], chunkName)
	if err != nil {
		return nil, fmt.Errorf("ERR Error compiling script (new function): %s", strings.TrimSpace(oneLine(err.Error())))
	}
	return chunk, nil
}

// runner is one run of a script: its VM and what redis.call reaches.
type runner struct {
	L        *lua.LState
	w        kv.Writer
	local    func(key []byte) bool
	readOnly bool
	sha      string    // the script's name in error replies: its SHA-1, or the function's name
	chunk    string    // its source's name in error replies
	line     int       // where the last redis.call was made, for error replies
	user     *acl.User // nil: may run anything
	ctx      context.Context
	fatal    error
	stop     context.CancelCauseFunc
	float    *floating   // nil: the script's partition is fixed
	globals  *lua.LTable // the globals once protected (protectGlobals)
	denyOOM  bool        // writes that may grow memory fail (Step.DenyOOM)
}

// floating is a script that declared no keys: the first command with
// keys pins it to their partition, and when that is another partition
// the run stops, to run again there (Moved).
type floating struct {
	partOf func(key []byte) uint64
	group  uint64
	pinned bool
	moveTo uint64
	moved  bool
}

// newRunner builds a sandboxed VM: base, table, string and math, with
// nothing that reaches the host, and Redis's redis table.
func newRunner(ctx context.Context, stop context.CancelCauseFunc, w kv.Writer, local func([]byte) bool, readOnly bool, sha string) *runner {
	L := lua.NewState(lua.Options{SkipOpenLibs: true, CallStackSize: 200, RegistrySize: 1024, RegistryMaxSize: 1 << 20})
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.StringLibName, lua.OpenString}, {lua.MathLibName, lua.OpenMath}} {
		L.Push(L.NewFunction(lib.open))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	g := L.G.Global
	for _, name := range []string{"dofile", "loadfile", "load", "loadstring", "require", "module", "setfenv", "getfenv", "print", "_printregs", "collectgarbage", "newproxy"} {
		g.RawSetString(name, lua.LNil)
	}
	g.RawSetString("loadstring", L.NewFunction(loadString))
	if s, ok := g.RawGetString("string").(*lua.LTable); ok {
		s.RawSetString("rep", L.NewFunction(strRep))
	}
	openLibs(L) // cjson, cmsgpack, bit, struct (libs.go)
	if m, ok := g.RawGetString("math").(*lua.LTable); ok {
		openRandom(L, m)
	}
	r := &runner{L: L, w: w, local: local, readOnly: readOnly, sha: sha, chunk: chunkName, stop: stop, ctx: ctx}
	g.RawSetString("redis", libReadOnly(L, r.redisTable()))
	L.SetContext(ctx)
	return r
}

// loadString is Lua's loadstring for source text only, as Redis keeps
// it: a binary chunk is refused (nil and a message), so a script cannot
// hand the VM bytecode. The chunk runs with the script's globals.
func loadString(L *lua.LState) int {
	src := L.CheckString(1)
	name := L.OptString(2, src)
	if strings.HasPrefix(src, "\x1b") {
		L.Push(lua.LNil)
		L.Push(lua.LString("binary chunks are not allowed"))
		return 2
	}
	fn, err := L.Load(strings.NewReader(src), name)
	if err != nil {
		L.Push(lua.LNil)
		L.Push(lua.LString(err.Error()))
		return 2
	}
	L.Push(fn)
	return 1
}

// protectGlobals makes the globals read-only, as Redis 7 does: a script
// that sets or reads an undeclared global fails.
//
// The globals move to a table behind the global table, which stays
// empty: so even a global that exists cannot be assigned (Lua's
// __newindex fires only for absent keys), and the metatable that does
// this is itself read-only (getmetatable answers a read-only view, and
// setmetatable refuses a protected table).
func (r *runner) protectGlobals() {
	L := r.L
	g := L.G.Global
	backing := L.NewTable()
	var names []lua.LValue
	g.ForEach(func(k, v lua.LValue) {
		backing.RawSet(k, v)
		names = append(names, k)
	})
	for _, k := range names {
		g.RawSet(k, lua.LNil)
	}
	backing.RawSetString("setmetatable", L.NewFunction(setMetatable))
	missing := L.NewTable()
	missing.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
		L.RaiseError("Script attempted to access nonexistent global variable '%s'", L.ToString(2))
		return 0
	}))
	L.SetMetatable(backing, missing)
	mt := L.NewTable()
	mt.RawSetString("__index", backing)
	mt.RawSetString("__newindex", L.NewFunction(func(L *lua.LState) int {
		L.RaiseError("%s", errReadonlyTable)
		return 0
	}))
	mt.RawSetString("__metatable", libReadOnly(L, L.NewTable()))
	L.SetMetatable(g, mt)
	r.globals = backing
}

// setMetatable is Lua's setmetatable, refusing a table whose metatable
// is protected with Redis's words.
func setMetatable(L *lua.LState) int {
	t := L.CheckTable(1)
	mt := L.Get(2)
	if mt != lua.LNil {
		if _, ok := mt.(*lua.LTable); !ok {
			L.ArgError(2, "nil or table expected")
		}
	}
	if L.GetMetaField(t, "__metatable") != lua.LNil {
		L.RaiseError("%s", errReadonlyTable)
	}
	L.SetMetatable(t, mt)
	L.Push(t)
	return 1
}

// maxRep bounds string.rep's result: the VM's other allocations are
// bounded by the heap watch (run.go).
const maxRep = kv.MaxValueBytes

func strRep(L *lua.LState) int {
	s := L.CheckString(1)
	n := L.CheckInt(2)
	if n <= 0 || len(s) == 0 {
		L.Push(lua.LString(""))
		return 1
	}
	if int64(len(s))*int64(n) > maxRep {
		L.RaiseError("string.rep would make a string over %d bytes", maxRep)
		return 0
	}
	L.Push(lua.LString(strings.Repeat(s, n)))
	return 1
}

func (r *runner) redisTable() *lua.LTable {
	L := r.L
	t := L.NewTable()
	fns := map[string]lua.LGFunction{
		"call":  func(L *lua.LState) int { return r.call(L, true) },
		"pcall": func(L *lua.LState) int { return r.call(L, false) },
		"error_reply": func(L *lua.LState) int {
			L.Push(errTable(L, errorReplyText(L.CheckString(1))))
			return 1
		},
		"status_reply": func(L *lua.LState) int {
			st := L.NewTable()
			st.RawSetString("ok", lua.LString(L.CheckString(1)))
			L.Push(st)
			return 1
		},
		"sha1hex": func(L *lua.LState) int {
			if L.GetTop() != 1 {
				L.Error(errTable(L, "ERR wrong number of arguments"), 0)
				return 0
			}
			L.Push(lua.LString(SHA1([]byte(L.CheckString(1)))))
			return 1
		},
		"acl_check_cmd":      r.aclCheckCmd,
		"log":                func(*lua.LState) int { return 0 },
		"setresp":            func(*lua.LState) int { return 0 },
		"set_repl":           func(*lua.LState) int { return 0 },
		"replicate_commands": func(L *lua.LState) int { L.Push(lua.LTrue); return 1 },
	}
	for name, fn := range fns {
		t.RawSetString(name, L.NewFunction(fn))
	}
	for i, name := range []string{"LOG_DEBUG", "LOG_VERBOSE", "LOG_NOTICE", "LOG_WARNING"} {
		t.RawSetString(name, lua.LNumber(i))
	}
	for i, name := range []string{"REPL_NONE", "REPL_AOF", "REPL_SLAVE", "REPL_REPLICA", "REPL_ALL"} {
		t.RawSetString(name, lua.LNumber([]int{0, 1, 2, 2, 3}[i]))
	}
	t.RawSetString("REDIS_VERSION", lua.LString(redisVersion))
	t.RawSetString("REDIS_VERSION_NUM", lua.LNumber(0x070200))
	return t
}

// errorReplyText is redis.error_reply's text: a message without a code
// gets ERR, as Redis's does.
func errorReplyText(msg string) string {
	msg = strings.TrimPrefix(msg, "-")
	if !strings.Contains(msg, " ") {
		return "ERR " + msg
	}
	return msg
}

func errTable(L *lua.LState, msg string) *lua.LTable {
	t := L.NewTable()
	t.RawSetString("err", lua.LString(oneLine(msg)))
	return t
}

// call is redis.call (raise: an error reply raises it) and redis.pcall
// (the error reply is returned as a table).
func (r *runner) call(L *lua.LState, raise bool) int {
	// The VM checks its deadline between Lua instructions only: a Go
	// function calling redis.call in a loop (string.gsub) must not run
	// on past the limit, SCRIPT KILL or a storage failure.
	if context.Cause(r.ctx) != nil || r.fatal != nil {
		L.RaiseError("script stopped")
		return 0
	}
	r.line = currentLine(L)
	fail := func(msg string) int {
		if raise {
			L.Error(errTable(L, msg), 0)
			return 0
		}
		L.Push(errTable(L, msg))
		return 1
	}
	n := L.GetTop()
	if n == 0 {
		return fail(errNoArgs)
	}
	args := make([][]byte, n)
	for i := 1; i <= n; i++ {
		switch v := L.Get(i).(type) {
		case lua.LString:
			args[i-1] = []byte(string(v))
		case lua.LNumber:
			args[i-1] = []byte(lua.LVAsString(v))
		default:
			return fail(errArgType)
		}
	}
	reply := r.exec(args)
	v, _, err := resp.ParseValue(reply)
	if err != nil {
		return fail("ERR malformed reply")
	}
	if v.Kind == '-' && raise {
		return fail(string(v.Str))
	}
	L.Push(toLua(L, v))
	return 1
}

// exec runs one command for the script: its reply, or the error Redis
// would raise.
func (r *runner) exec(args [][]byte) []byte {
	name := strings.ToLower(string(args[0]))
	switch name {
	case "ping":
		if len(args) == 2 {
			return resp.AppendBulk(nil, args[1])
		}
		if len(args) > 2 {
			return resp.AppendError(nil, errWrongArgs)
		}
		return resp.AppendSimple(nil, "PONG")
	case "echo":
		if len(args) != 2 {
			return resp.AppendError(nil, errWrongArgs)
		}
		return resp.AppendBulk(nil, args[1])
	case "time":
		now := time.Now()
		out := resp.AppendArrayHeader(nil, 2)
		out = resp.AppendBulkString(out, strconv.FormatInt(now.Unix(), 10))
		return resp.AppendBulkString(out, strconv.Itoa(now.Nanosecond()/1000))
	}
	spec := command.Lookup(args[0])
	c := kv.Of(spec)
	switch {
	case spec == nil || spec.Is(command.Internal):
		return resp.AppendError(nil, errUnknown)
	case c == nil || spec.Is(command.Blocking):
		return resp.AppendError(nil, errNotAllowed)
	case !c.CheckArity(args):
		return resp.AppendError(nil, errWrongArgs)
	case r.readOnly && c.Writes():
		return resp.AppendError(nil, errWriteRO)
	case r.denyOOM && kv.DenyOOM(spec):
		return resp.AppendError(nil, errOOM)
	}
	keys := spec.AppendKeys(nil, args)
	if r.user != nil {
		if err := r.user.Allowed(&command.Cmd{Spec: spec, Args: args, Keys: keys}); err != nil {
			return resp.AppendError(nil, "ERR ACL failure in script: "+aclText(err, r.user.Name, name))
		}
	}
	if fl := r.float; fl != nil && !fl.pinned && len(keys) > 0 {
		fl.pinned = true
		g := fl.partOf(args[keys[0]])
		same := true
		for _, i := range keys[1:] {
			same = same && fl.partOf(args[i]) == g
		}
		if same && g != fl.group {
			fl.moveTo, fl.moved = g, true
			r.stop(errMoved)
			return resp.AppendError(nil, "ERR script moved")
		}
	}
	for _, i := range keys {
		if !r.local(args[i]) {
			return resp.AppendError(nil, errNonLocal)
		}
	}
	out, err := kv.Exec(r.w, spec, args, nil)
	if err != nil {
		// The run fails as a whole, never with a reply the script could
		// catch: the VM stops at its next instruction.
		r.fatal = err
		r.stop(errStorage)
		return resp.AppendError(nil, "ERR storage failure")
	}
	return out
}

var errStorage = errors.New("storage failure")

// toLua converts a command's reply as Redis does: integers to numbers,
// bulk strings to strings, nulls to false, arrays to tables, a status to
// {ok=...} and an error to {err=...}.
func toLua(L *lua.LState, v resp.Value) lua.LValue {
	switch v.Kind {
	case ':':
		return lua.LNumber(v.Int)
	case '$':
		if v.Null {
			return lua.LFalse
		}
		return lua.LString(string(v.Str))
	case '+':
		t := L.NewTable()
		t.RawSetString("ok", lua.LString(string(v.Str)))
		return t
	case '-':
		return errTable(L, string(v.Str))
	case '*':
		if v.Null {
			return lua.LFalse
		}
		t := L.CreateTable(len(v.Array), 0)
		for i, e := range v.Array {
			t.RawSetInt(i+1, toLua(L, e))
		}
		return t
	}
	return lua.LFalse
}

// maxReplyDepth bounds the nesting of a script's reply.
const maxReplyDepth = 64

// appendReply converts a script's result as Redis does: a string to a
// bulk string, a number to an integer (truncated), true to 1, false and
// nil to a null, {ok=...} to a status, {err=...} to an error, another table
// to the array of its elements up to the first nil.
func appendReply(out []byte, v lua.LValue, depth int) ([]byte, error) {
	if depth > maxReplyDepth {
		return nil, errors.New(errReplyTooDeep)
	}
	if len(out) > maxReply {
		return nil, errReplyTooLarge
	}
	switch x := v.(type) {
	case lua.LString:
		return resp.AppendBulk(out, []byte(string(x))), nil
	case lua.LNumber:
		return resp.AppendInt(out, toInt(float64(x))), nil
	case lua.LBool:
		if x {
			return resp.AppendInt(out, 1), nil
		}
		return resp.AppendNull(out), nil
	case *lua.LTable:
		if e, ok := x.RawGetString("err").(lua.LString); ok {
			return resp.AppendError(out, oneLine(string(e))), nil
		}
		if s, ok := x.RawGetString("ok").(lua.LString); ok {
			return resp.AppendSimple(out, oneLine(string(s))), nil
		}
		n := 0
		for x.RawGetInt(n+1) != lua.LNil {
			n++
		}
		out = resp.AppendArrayHeader(out, n)
		for i := 1; i <= n; i++ {
			var err error
			if out, err = appendReply(out, x.RawGetInt(i), depth+1); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return resp.AppendNull(out), nil
}

// maxReply bounds a script's reply.
const maxReply = 64 << 20

var errReplyTooLarge = errors.New("ERR script reply over 64 MiB")

// currentLine is the line of the script being run where the calling Lua
// function is, 0 if unknown.
func currentLine(L *lua.LState) int {
	w := L.Where(1) // "user_script:LINE:"
	if i := strings.LastIndexByte(strings.TrimSuffix(w, ":"), ':'); i >= 0 {
		if n, err := strconv.Atoi(strings.TrimSuffix(w[i+1:], ":")); err == nil {
			return n
		}
	}
	return 0
}

// errorText is the error reply of a script that raised v, in Redis's
// words: the error's text, then which script and where.
func (r *runner) errorText(v lua.LValue, msg string) string {
	text, line := "", r.line
	if t, ok := v.(*lua.LTable); ok {
		if e, ok := t.RawGetString("err").(lua.LString); ok {
			text = string(e)
		}
	}
	if text == "" {
		text = "ERR " + msg
		if n := r.lineOf(msg); n > 0 {
			line = n
		}
	}
	if line == 0 {
		line = 1
	}
	return oneLine(fmt.Sprintf("%s script: %s, on @%s:%d.", text, r.sha, r.chunk, line))
}

// lineOf reads the line from a Lua error "user_script:LINE: ...".
func (r *runner) lineOf(msg string) int {
	rest, ok := strings.CutPrefix(msg, r.chunk+":")
	if !ok {
		return 0
	}
	if i := strings.IndexByte(rest, ':'); i > 0 {
		n, _ := strconv.Atoi(rest[:i])
		return n
	}
	return 0
}

// oneLine keeps an error reply on one line.
func oneLine(s string) string {
	return strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ").Replace(s)
}

// aclText words an ACL refusal as Redis does in a script.
func aclText(err error, user, cmd string) string {
	var kd *acl.KeyDeniedError
	if errors.As(err, &kd) {
		return "No permissions to access a key"
	}
	return fmt.Sprintf("User %s has no permissions to run the '%s' command", user, cmd)
}

// aclCheckCmd is redis.acl_check_cmd(cmd, arg...): whether the script's
// user may run the command on those arguments.
func (r *runner) aclCheckCmd(L *lua.LState) int {
	n := L.GetTop()
	if n == 0 {
		L.Error(errTable(L, errNoArgs), 0)
		return 0
	}
	args := make([][]byte, n)
	for i := 1; i <= n; i++ {
		s, ok := luaString(L.Get(i))
		if !ok {
			L.Error(errTable(L, errArgType), 0)
			return 0
		}
		args[i-1] = []byte(s)
	}
	spec := command.Lookup(args[0])
	if spec == nil || spec.Is(command.Internal) || !spec.CheckArity(args) {
		L.Error(errTable(L, "ERR Invalid command passed to redis.acl_check_cmd()"), 0)
		return 0
	}
	ok := r.user == nil || r.user.Allowed(&command.Cmd{Spec: spec, Args: args, Keys: spec.AppendKeys(nil, args)}) == nil
	L.Push(lua.LBool(ok))
	return 1
}
