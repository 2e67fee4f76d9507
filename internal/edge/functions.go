package edge

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/kintsu/kintsu/internal/codec"
	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/resp"
	"github.com/kintsu/kintsu/internal/script"
	"github.com/kintsu/kintsu/internal/statemachine"
)

// Functions: FUNCTION LOAD and its kin, FCALL and FCALL_RO.
//
// The cluster's libraries live in the metadata group
// (statemachine.FunctionSet); each node holds the set as of its last read
// and polls its version with the users' (WatchUsers). A change answers
// only once this node has read it back, and a call to a function this
// node does not know reads the set again before it answers "not found":
// a library loaded through one node is callable at once through it, and
// through any node on its first call. A replaced library reaches the
// other nodes within a poll.
//
// A function runs as EVAL does (scripts.go): its library's code and its
// name go to the leader of its keys' partition, which loads the library
// in the run's VM and calls the function there.

func init() {
	command.Register(
		scriptSpec("fcall", -3, cmdFCall),
		scriptSpec("fcall_ro", -3, cmdFCallRO),
	)
}

// functions are the cluster's libraries as this node knows them.
type functions struct {
	cur     atomic.Pointer[funcIndex]
	refresh sync.Mutex // one read of the set at a time
}

type funcIndex struct {
	set *statemachine.FunctionSet
	fns map[string]funcRef
}

type funcRef struct {
	lib *script.Library
	fn  script.Function
}

func indexFunctions(s *statemachine.FunctionSet) *funcIndex {
	x := &funcIndex{set: s, fns: map[string]funcRef{}}
	for _, l := range s.Libs {
		for _, fn := range l.Functions {
			x.fns[fn.Name] = funcRef{lib: l, fn: fn}
		}
	}
	return x
}

// funcs is the set as this node last read it (empty before any read).
func (f *Server) funcs() *funcIndex {
	if x := f.functions.cur.Load(); x != nil {
		return x
	}
	return indexFunctions(&statemachine.FunctionSet{})
}

// readFunctions reads the set linearizably from the metadata group and
// adopts it unless the node holds a newer one.
func (f *Server) readFunctions(ctx context.Context) (*funcIndex, error) {
	f.functions.refresh.Lock()
	defer f.functions.refresh.Unlock()
	b, null, err := f.readMetaRecord(ctx, statemachine.FunctionsKey)
	if err != nil {
		return nil, err
	}
	set := &statemachine.FunctionSet{}
	if !null {
		if set, err = statemachine.UnmarshalFunctions(b); err != nil {
			return nil, err
		}
	}
	if old := f.functions.cur.Load(); old != nil && old.set.Version > set.Version {
		return old, nil
	}
	x := indexFunctions(set)
	f.functions.cur.Store(x)
	return x, nil
}

// pollFunctions reads the set's version and, when it moved, the set.
func (f *Server) pollFunctions(ctx context.Context) error {
	if cur := f.functions.cur.Load(); cur != nil {
		if ver, err := f.metaVersion(ctx, statemachine.FunctionsVersionKey); err == nil && ver == cur.set.Version {
			return nil
		}
	}
	_, err := f.readFunctions(ctx)
	return err
}

// functionWrite proposes a change of the set and reads the set back, so
// this node serves the change before it answers.
func (f *Server) functionWrite(cmd [][]byte) []byte {
	return f.metaPropose(cmd, func(ctx context.Context) error {
		_, err := f.readFunctions(ctx)
		return err
	})
}

func cmdFCall(f *Server, args [][]byte, st *connState) []byte   { return f.fcall(args, st, false) }
func cmdFCallRO(f *Server, args [][]byte, st *connState) []byte { return f.fcall(args, st, true) }

// fcall runs FCALL NAME NUMKEYS KEY... ARG... (or FCALL_RO).
func (f *Server) fcall(args [][]byte, st *connState, readOnly bool) []byte {
	step, reply := f.functionStep(args, readOnly)
	if reply != nil {
		return reply
	}
	group, ok := f.scriptGroup(step, nil)
	st.wrote = append(st.wrote, step.Keys...)
	if ok {
		reply = f.runScript(script.Params{Group: group, Float: len(step.Keys) == 0}, st, step)
	} else {
		reply = f.runCrossScript(st, step)
	}
	f.cfg.Metrics.Requests.WithLabelValues(lower(args[0]), outcomeLabel(reply)).Inc()
	return reply
}

// functionStep reads a function call's arguments: the step to run, or
// the error Redis answers before running anything, in Redis's order.
func (f *Server) functionStep(args [][]byte, readOnly bool) (script.Step, []byte) {
	name := string(args[1])
	ref, ok := f.funcs().fns[name]
	if !ok {
		// Perhaps loaded through another node since this one last read.
		ctx, cancel := context.WithTimeout(f.ctx, f.cfg.RequestTimeout)
		x, err := f.readFunctions(ctx)
		cancel()
		if err != nil {
			return script.Step{}, ErrorReply(err)
		}
		if ref, ok = x.fns[name]; !ok {
			return script.Step{}, resp.AppendError(nil, "ERR Function not found")
		}
	}
	n, ok := kv.ParseInt(args[2])
	switch {
	case !ok:
		return script.Step{}, resp.AppendError(nil, "ERR Bad number of keys provided")
	case n > int64(len(args)-3):
		return script.Step{}, resp.AppendError(nil, "ERR Number of keys can't be greater than number of args")
	case n < 0:
		return script.Step{}, resp.AppendError(nil, "ERR Number of keys can't be negative")
	}
	if reply := flagsRefusal(ref.fn.Flags, readOnly); reply != nil {
		return script.Step{}, reply
	}
	step := script.Step{
		Body: ref.lib.Code, Function: name, Keys: args[3 : 3+n], Argv: args[3+n:],
		ReadOnly: readOnly || ref.fn.Flags&script.FlagNoWrites != 0,
	}
	if reply := f.scriptOOM(&step, ref.fn.Flags, true); reply != nil {
		return script.Step{}, reply
	}
	return step, nil
}

// flagsRefusal is Redis's refusal of a script or function with flags
// before it runs (script.c, scriptPrepareForRun), nil if it may run.
func flagsRefusal(flags script.Flags, readOnly bool) []byte {
	switch {
	case flags&script.FlagNoCluster != 0:
		return resp.AppendError(nil, "ERR Can not run script on cluster, 'no-cluster' flag is set.")
	case flags&script.FlagNoWrites == 0 && readOnly:
		return resp.AppendError(nil, "ERR Can not execute a script with write flag using *_ro command.")
	}
	return nil
}

// scriptOOM applies maxmemory to a script that may write, as Redis does:
// one with flags (a #!lua line, a function) is refused unless allow-oom;
// one without (compatibility mode) runs, and its writes that may grow
// memory fail (Step.DenyOOM).
func (f *Server) scriptOOM(step *script.Step, flags script.Flags, shebang bool) []byte {
	if step.ReadOnly || flags&script.FlagAllowOOM != 0 || !f.overMemory() {
		return nil
	}
	if shebang {
		return resp.AppendError(nil, "OOM allow-oom flag is not set on the script, can not run it when used memory > 'maxmemory'")
	}
	step.DenyOOM = true
	return nil
}

// cmdFunction answers FUNCTION's subcommands.
func cmdFunction(f *Server, args [][]byte, st *connState) []byte {
	sub := lower(args[1])
	switch {
	case sub == "load" && len(args) >= 3:
		return f.functionLoad(args)
	case sub == "delete" && len(args) == 3:
		return f.functionWrite([][]byte{[]byte(statemachine.CmdFunctionDelete), args[2]})
	case sub == "flush" && len(args) <= 3:
		if len(args) == 3 && lower(args[2]) != "sync" && lower(args[2]) != "async" {
			return resp.AppendError(nil, "ERR FUNCTION FLUSH only supports SYNC|ASYNC option")
		}
		return f.functionWrite([][]byte{[]byte(statemachine.CmdFunctionFlush)})
	case sub == "list":
		return f.functionList(args, st.proto == 3)
	case sub == "kill" && len(args) == 2:
		if !script.Kill() {
			return resp.AppendError(nil, "NOTBUSY No scripts in execution right now.")
		}
		return resp.AppendSimple(nil, "OK")
	case sub == "stats" && len(args) == 2:
		return f.functionStats(st.proto == 3)
	case (sub == "dump" && len(args) == 2) || (sub == "restore" && (len(args) == 3 || len(args) == 4)):
		return resp.AppendError(nil, "ERR FUNCTION "+strings.ToUpper(sub)+" is not supported by Kintsu yet; load each library with FUNCTION LOAD")
	case sub == "help" && len(args) == 2:
		return appendHelp(functionHelp)
	case sub == "load" || sub == "delete" || sub == "flush" || sub == "kill" || sub == "stats" || sub == "dump" || sub == "restore" || sub == "help":
		return resp.AppendError(nil, fmt.Sprintf("ERR unknown subcommand or wrong number of arguments for '%s'. Try FUNCTION HELP.", args[1]))
	}
	return resp.AppendError(nil, fmt.Sprintf("ERR unknown subcommand '%s'. Try FUNCTION HELP.", args[1]))
}

// functionLoad answers FUNCTION LOAD [REPLACE] CODE: the library is
// loaded here first, so only one that loads reaches the metadata group.
func (f *Server) functionLoad(args [][]byte) []byte {
	replace := false
	i := 2
	for ; i < len(args)-1; i++ {
		if lower(args[i]) != "replace" {
			return resp.AppendError(nil, "ERR Unknown option given: "+string(args[i]))
		}
		replace = true
	}
	if i >= len(args) {
		return resp.AppendError(nil, "ERR Function code is missing")
	}
	lib, err := script.LoadLibrary(args[i])
	if err != nil {
		return resp.AppendError(nil, err.Error())
	}
	if replace {
		// Replacing a library by the same code changes nothing: a read
		// (linearizable) tells so without a write through the log.
		ctx, cancel := context.WithTimeout(f.ctx, f.cfg.RequestTimeout)
		x, err := f.readFunctions(ctx)
		cancel()
		if err == nil {
			if old := x.set.Lib(lib.Name); old != nil && string(old.Code) == string(lib.Code) {
				return resp.AppendBulkString(nil, lib.Name)
			}
		}
	}
	flag := []byte("0")
	if replace {
		flag = []byte("1")
	}
	return f.functionWrite([][]byte{[]byte(statemachine.CmdFunctionLoad), flag, script.AppendLibrary(codec.Encoder(nil), lib)})
}

// functionList answers FUNCTION LIST [LIBRARYNAME PATTERN] [WITHCODE].
func (f *Server) functionList(args [][]byte, resp3 bool) []byte {
	withCode := false
	var pattern []byte
	for i := 2; i < len(args); i++ {
		switch a := lower(args[i]); {
		case a == "withcode" && !withCode:
			withCode = true
		case a == "libraryname" && pattern == nil:
			if i >= len(args)-1 {
				return resp.AppendError(nil, "ERR library name argument was not given")
			}
			i++
			pattern = args[i]
		default:
			return resp.AppendError(nil, "ERR Unknown argument "+string(args[i]))
		}
	}
	ctx, cancel := context.WithTimeout(f.ctx, f.cfg.RequestTimeout)
	x, err := f.readFunctions(ctx)
	cancel()
	if err != nil {
		return ErrorReply(err)
	}
	var libs []*script.Library
	for _, l := range x.set.Libs {
		if pattern == nil || kv.Match(pattern, []byte(l.Name)) {
			libs = append(libs, l)
		}
	}
	mapOf := func(out []byte, n int) []byte {
		if resp3 {
			return resp.AppendMapHeader(out, n)
		}
		return resp.AppendArrayHeader(out, 2*n)
	}
	out := resp.AppendArrayHeader(nil, len(libs))
	for _, l := range libs {
		out = mapOf(out, map[bool]int{false: 3, true: 4}[withCode])
		out = resp.AppendBulkString(out, "library_name")
		out = resp.AppendBulkString(out, l.Name)
		out = resp.AppendBulkString(out, "engine")
		out = resp.AppendBulkString(out, "LUA")
		out = resp.AppendBulkString(out, "functions")
		out = resp.AppendArrayHeader(out, len(l.Functions))
		for _, fn := range l.Functions {
			out = mapOf(out, 3)
			out = resp.AppendBulkString(out, "name")
			out = resp.AppendBulkString(out, fn.Name)
			out = resp.AppendBulkString(out, "description")
			switch {
			case fn.HasDesc:
				out = resp.AppendBulkString(out, fn.Desc)
			case resp3:
				out = append(out, resp.Null...)
			default:
				out = resp.AppendNull(out)
			}
			out = resp.AppendBulkString(out, "flags")
			names := fn.Flags.Names()
			if resp3 {
				out = resp.AppendSetHeader(out, len(names))
			} else {
				out = resp.AppendArrayHeader(out, len(names))
			}
			for _, n := range names {
				out = resp.AppendSimple(out, n)
			}
		}
		if withCode {
			out = resp.AppendBulkString(out, "library_code")
			out = resp.AppendBulk(out, l.Code)
		}
	}
	return out
}

// functionStats answers FUNCTION STATS: the script running on this node
// is not named (runs are not tracked by name), the engine's counts are
// the cluster's.
func (f *Server) functionStats(resp3 bool) []byte {
	x := f.funcs()
	nfns := 0
	for _, l := range x.set.Libs {
		nfns += len(l.Functions)
	}
	mapOf := func(out []byte, n int) []byte {
		if resp3 {
			return resp.AppendMapHeader(out, n)
		}
		return resp.AppendArrayHeader(out, 2*n)
	}
	out := mapOf(nil, 2)
	out = resp.AppendBulkString(out, "running_script")
	if resp3 {
		out = append(out, resp.Null...)
	} else {
		out = resp.AppendNull(out)
	}
	out = resp.AppendBulkString(out, "engines")
	out = mapOf(out, 1)
	out = resp.AppendBulkString(out, "LUA")
	out = mapOf(out, 2)
	out = resp.AppendBulkString(out, "libraries_count")
	out = resp.AppendInt(out, int64(len(x.set.Libs)))
	out = resp.AppendBulkString(out, "functions_count")
	return resp.AppendInt(out, int64(nfns))
}

var functionHelp = []string{
	"FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
	"LOAD [REPLACE] <FUNCTION CODE>",
	"    Create a new library with the given library name and code.",
	"DELETE <LIBRARY NAME>",
	"    Delete the given library.",
	"LIST [LIBRARYNAME PATTERN] [WITHCODE]",
	"    Return general information on all the libraries:",
	"    * Library name",
	"    * The engine used to run the Library",
	"    * Library description",
	"    * Functions list",
	"    * Library code (if WITHCODE is given)",
	"    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
	"STATS",
	"    Return information about the current function running:",
	"    * Function name",
	"    * Command used to run the function",
	"    * Duration in MS that the function is running",
	"    If no function is running, return nil",
	"    In addition, returns a list of available engines.",
	"KILL",
	"    Kill the current running function.",
	"FLUSH [ASYNC|SYNC]",
	"    Delete all the libraries.",
	"    When called without the optional mode argument, the behavior is determined by the",
	"    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
	"    * ASYNC: Asynchronously flush the libraries.",
	"    * SYNC: Synchronously flush the libraries.",
	"DUMP",
	"    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
	"RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
	"    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
	"    control how to handle existing libraries (default APPEND):",
	"    * FLUSH: delete all existing libraries.",
	"    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
	"    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
	"      libraries with the new libraries (notice that even on this case there is no guarantee that the",
	"      functions will be restored in the same order as they were before).",
	"HELP",
	"    Print this help.",
}
