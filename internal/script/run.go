package script

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"

	"github.com/kintsu/kintsu/internal/acl"
	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/resp"
	"github.com/kintsu/kintsu/internal/ring"
	"github.com/kintsu/kintsu/internal/txn"
)

// Op is the read that runs a script on its partition's leader
// ("kintsu.script BODY PARAMS", Args); it answers txn.ScriptResult, or the
// holders of locks that stand in its way. Internal: no client may send it.
const Op = "kintsu.script"

// Limits of one run.
const (
	// MaxRunTime bounds a run even when the request allows more.
	MaxRunTime = 5 * time.Second
	// MaxHeapGrowth is how much a run may grow the node's heap before it
	// is stopped (checked every heapCheck).
	MaxHeapGrowth = 256 << 20
	// MaxBodyBytes bounds a script's source.
	MaxBodyBytes = 4 << 20
	heapCheck    = 2 * time.Millisecond
)

const errBusy = "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."

// runSlots bounds the scripts running at once on a node; a run waits for
// a slot within its deadline.
var runSlots = make(chan struct{}, 2)

type op struct{}

func init() {
	command.Register(&command.Spec{Name: Op, Arity: 3, Flags: command.Internal | command.ReadOnly, Category: command.CatInternal, Impl: op{}})
}

// Owns reports whether spec is Op.
func Owns(spec *command.Spec) bool {
	_, ok := spec.Impl.(op)
	return spec != nil && ok
}

// Serve runs the Op args against r, a frozen view of the partition: it
// answers txn.ScriptResult (the reply and the effects), the lock holders
// that stand in the way (txn.LockedReply), or an error reply. For a
// transaction (Params.Multi) the reply is the array of its steps'
// replies, or a null array when a watched key had changed. An error is a
// storage failure.
func Serve(r txn.Reader, args [][]byte) ([]byte, error) {
	p, steps, err := decodeOp(args)
	if err != nil {
		return resp.AppendError(nil, "ERR malformed script operation"), nil
	}
	protos := make([]*lua.FunctionProto, len(steps))
	for i, st := range steps {
		if st.Cmd == nil {
			// A script that does not compile answers so in its step.
			protos[i], _ = compiled(st.Body, st.Function != "")
		}
	}
	user, err := parseUser(p.User)
	if err != nil {
		return resp.AppendError(nil, "ERR malformed script operation"), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.Timeout)
	defer cancel()
	release, ok := takeSlot(ctx)
	if !ok {
		return resp.AppendError(nil, errBusy), nil
	}
	defer release()
	spec := txn.Speculate(r)
	owner, _ := r.(txn.Owner)
	local := func(k []byte) bool {
		if owner != nil && owner.Ranged() {
			return owner.Owns(k) // split: its recorded range decides
		}
		// Never split: the equal range the cluster began with.
		return uint64(ring.PartitionOf(ring.Slot(k), p.Partitions)) == p.Group
	}
	var out []byte
	if p.Multi {
		hold, err := spec.WatchesHold(p.Watches)
		if err != nil {
			return nil, err
		}
		if !hold {
			return txn.ScriptResult(nil, resp.AppendNullArray(nil), nil), nil
		}
		out = resp.AppendArrayHeader(out, len(steps))
	}
	for i, st := range steps {
		var reply []byte
		halted := false
		switch {
		case st.Cmd != nil:
			reply, err = plain(spec, st.Cmd, local)
		case protos[i] == nil:
			_, cerr := compile(st.Body, st.Function != "")
			reply = resp.AppendError(nil, cerr.Error())
		default:
			var fl *floating
			if p.Float {
				fl = &floating{group: p.Group, partOf: func(k []byte) uint64 {
					return uint64(ring.PartitionOf(ring.Slot(k), p.Partitions))
				}}
			}
			reply, halted, err = run(ctx, protos[i], spec, local, user, SHA1(st.Body), st, fl)
			if fl != nil && fl.moved {
				return txn.ScriptResult(nil, fmt.Appendf(nil, "%s%d\r\n", MovedPrefix, fl.moveTo), nil), nil
			}
		}
		if err != nil {
			return nil, err
		}
		if halted {
			return reply, nil // stopped by a limit: nothing it did is kept
		}
		out = append(out, reply...)
	}
	holders, err := spec.Blockers()
	if err != nil {
		return nil, err
	}
	if len(holders) > 0 {
		return txn.LockedReply(nil, holders), nil
	}
	effects, err := spec.Effects(p.Watches)
	if err != nil {
		return nil, err
	}
	return txn.ScriptResult(nil, out, effects), nil
}

// plain runs a transaction's data command (checked by the edge when it
// was queued) in its place among the scripts.
func plain(w kv.Writer, args [][]byte, local func([]byte) bool) ([]byte, error) {
	spec := command.Lookup(args[0])
	c := kv.Of(spec)
	if c == nil || spec.Is(command.Internal) || !c.CheckArity(args) {
		return resp.AppendError(nil, "ERR malformed script operation"), nil
	}
	for _, i := range spec.AppendKeys(nil, args) {
		if !local(args[i]) {
			return resp.AppendError(nil, kv.ErrCrossSlot), nil
		}
	}
	return kv.Exec(w, spec, args, nil)
}

// run executes proto and converts its result; a Lua error becomes the
// error reply Redis would give. halted: a limit (time, memory, SCRIPT
// KILL, the reply's size or depth) stopped it, and nothing it did may be
// kept.
func run(ctx context.Context, proto *lua.FunctionProto, spec *txn.Speculation, local func([]byte) bool, user *acl.User, sha string, p Step, fl *floating) (reply []byte, halted bool, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer watchRun(cancel)()

	r := newRunner(ctx, cancel, spec, local, p.ReadOnly, sha)
	r.user, r.float, r.denyOOM = user, fl, p.DenyOOM
	defer r.L.Close()
	L := r.L
	var callErr error
	if p.Function != "" {
		// A function: its library registers it again in this VM, then
		// it is called with the keys and arguments as its parameters.
		r.sha, r.chunk = p.Function, functionChunk
		r.protectGlobals()
		fns, _, err := r.loadLibrary(proto)
		if err != nil {
			if cause := context.Cause(ctx); cause != nil {
				return resp.AppendError(nil, limitText(cause)), true, nil
			}
			return resp.AppendError(nil, oneLine(err.Error())), true, nil
		}
		var fn *lua.LFunction
		for _, f := range fns {
			if f.Name == p.Function {
				fn = f.fn
			}
		}
		if fn == nil {
			return resp.AppendError(nil, "ERR Function not found"), true, nil
		}
		L.Push(fn)
		L.Push(stringsTable(L, p.Keys))
		L.Push(stringsTable(L, p.Argv))
		callErr = L.PCall(2, 1, nil)
	} else {
		L.G.Global.RawSetString("KEYS", stringsTable(L, p.Keys))
		L.G.Global.RawSetString("ARGV", stringsTable(L, p.Argv))
		r.protectGlobals()
		L.Push(L.NewFunctionFromProto(proto))
		callErr = L.PCall(0, 1, nil)
	}
	if r.fatal != nil {
		return nil, false, r.fatal
	}
	if cause := context.Cause(ctx); cause != nil {
		return resp.AppendError(nil, limitText(cause)), true, nil
	}
	if callErr != nil {
		var ae *lua.ApiError
		if errors.As(callErr, &ae) {
			return resp.AppendError(nil, r.errorText(ae.Object, luaMessage(ae))), false, nil
		}
		return resp.AppendError(nil, r.errorText(lua.LNil, callErr.Error())), false, nil
	}
	out, cerr := appendReply(nil, L.Get(-1), 0)
	if cerr != nil {
		return resp.AppendError(nil, cerr.Error()), true, nil
	}
	return out, false, nil
}

func luaMessage(ae *lua.ApiError) string {
	if s, ok := ae.Object.(lua.LString); ok {
		return string(s)
	}
	return ae.Error()
}

func limitText(cause error) string {
	switch {
	case errors.Is(cause, errHeap):
		return errTooMuchMemory
	case errors.Is(cause, errKill):
		return errKilled
	}
	return errTimedOut
}

func stringsTable(L *lua.LState, vs [][]byte) *lua.LTable {
	t := L.CreateTable(len(vs), 0)
	for i, v := range vs {
		t.RawSetInt(i+1, lua.LString(string(v)))
	}
	return t
}

var (
	errHeap  = errors.New("heap limit")
	errKill  = errors.New("killed")
	errMoved = errors.New("moved")
)

// MovedPrefix begins the reply of a floating script (Params.Float) that
// stopped to run in another partition: "-KINTSUMOVED GROUP". The edge runs
// it there; no client sees it.
const MovedPrefix = "-KINTSUMOVED "

// Moved reads a MovedPrefix reply: the partition to run the script in.
func Moved(reply []byte) (uint64, bool) {
	rest, ok := strings.CutPrefix(string(reply), MovedPrefix)
	if !ok {
		return 0, false
	}
	g, err := strconv.ParseUint(strings.TrimSuffix(rest, "\r\n"), 10, 64)
	return g, err == nil
}

// The scripts running on this node: for the heap watch and SCRIPT KILL.
var running struct {
	sync.Mutex
	runs     map[*run1]struct{}
	watching bool // the watch loop is running
}

type run1 struct {
	base   uint64 // the heap when it began
	cancel context.CancelCauseFunc
}

// watchRun registers a run until done is called: it is stopped (cancel)
// when the heap grows past MaxHeapGrowth since it began, or by Kill. The
// VM's own allocations (tables, concatenation) have no hook; this bounds
// them, late by at most what one heapCheck lets grow. One loop watches
// every run, and only while there are some.
func watchRun(cancel context.CancelCauseFunc) (done func()) {
	r := &run1{base: heapBytes(), cancel: cancel}
	running.Lock()
	defer running.Unlock()
	if running.runs == nil {
		running.runs = map[*run1]struct{}{}
	}
	running.runs[r] = struct{}{}
	if !running.watching {
		running.watching = true
		go watchLoop()
	}
	return func() {
		running.Lock()
		delete(running.runs, r)
		running.Unlock()
	}
}

func watchLoop() {
	t := time.NewTicker(heapCheck)
	defer t.Stop()
	for range t.C {
		running.Lock()
		if len(running.runs) == 0 {
			running.watching = false
			running.Unlock()
			return
		}
		h := heapBytes()
		for r := range running.runs {
			if h > r.base+MaxHeapGrowth {
				r.cancel(errHeap)
			}
		}
		running.Unlock()
	}
}

func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// Kill stops every script running on this node (SCRIPT KILL); none of
// them changes anything. It reports whether one was running.
func Kill() bool {
	running.Lock()
	defer running.Unlock()
	for r := range running.runs {
		r.cancel(errKill)
	}
	return len(running.runs) > 0
}

// compile compiles a script's body, or (library) a library's code.
func compile(body []byte, library bool) (*lua.FunctionProto, error) {
	if !library {
		return Compile(body)
	}
	_, skip, err := libraryMeta(body)
	if err != nil {
		return nil, err
	}
	return compileFunction(body[skip:])
}

// compiled caches compiled scripts and libraries by body: a leader runs
// the same few over and over.
func compiled(body []byte, library bool) (*lua.FunctionProto, error) {
	sha := SHA1(body)
	if library {
		sha = "f" + sha
	}
	cacheMu.Lock()
	p := cache[sha]
	cacheMu.Unlock()
	if p != nil {
		return p, nil
	}
	p, err := compile(body, library)
	if err != nil {
		return nil, err
	}
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if len(cache) >= maxCached || cacheBytes+len(body) > maxCachedBytes {
		// A node that meets this many scripts compiles them again.
		clear(cache)
		cacheBytes = 0
	}
	cache[sha] = p
	cacheBytes += len(body)
	return p, nil
}

const (
	maxCached      = 1024
	maxCachedBytes = 64 << 20
)

var (
	cacheMu    sync.Mutex
	cache      = map[string]*lua.FunctionProto{}
	cacheBytes int
)

func parseChunkNamed(body []byte, name string) (*lua.FunctionProto, error) {
	chunk, err := parse.Parse(bytes.NewReader(body), name)
	if err != nil {
		return nil, err
	}
	return lua.Compile(chunk, name)
}

// toInt converts a Lua number to an integer reply as Redis does: by
// truncation, with what does not fit (NaN included) becoming the lowest
// integer, as C's conversion gives on the machines Redis runs on.
func toInt(f float64) int64 {
	if math.IsNaN(f) || f >= math.MaxInt64 || f < math.MinInt64 {
		return math.MinInt64
	}
	return int64(f)
}
