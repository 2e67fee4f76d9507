package edge

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/kintsu/kintsu/internal/acl"
	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/failure"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/resp"
	"github.com/kintsu/kintsu/internal/script"
	"github.com/kintsu/kintsu/internal/txn"
)

// Scripts: EVAL and friends. The edge checks the call, picks the
// partition the script's keys live in, and has the transaction layer run
// it on that partition's leader and replicate what it did (package
// script). The node keeps the bodies it has seen, for EVALSHA.

func init() {
	command.Register(
		scriptSpec("eval", -3, cmdEval),
		scriptSpec("evalsha", -3, cmdEvalSHA),
		scriptSpec("eval_ro", -3, cmdEvalRO),
		scriptSpec("evalsha_ro", -3, cmdEvalSHARO),
		scriptSpec("script", -2, cmdScript),
		scriptSpec("function", -2, cmdFunction),
	)
}

func scriptSpec(name string, arity int, h connHandler) *command.Spec {
	s := &command.Spec{Name: name, Arity: arity, Flags: command.Conn, Category: command.Scripting, Impl: h}
	if strings.HasPrefix(name, "eval") {
		// Its keys follow the count at 2: ACLs check them, COMMAND
		// GETKEYS finds them; keys in two partitions make it a
		// cross-partition script (crossscript.go).
		s.NumKeys = 2
	}
	return s
}

const errNoScript = "NOSCRIPT No matching script. Please use EVAL."

// scriptCache holds the bodies of scripts this node was given (EVAL,
// SCRIPT LOAD), by SHA-1, bounded in count and bytes: past them it starts
// over, and a client's EVALSHA meets NOSCRIPT and sends the body again,
// as after a restart.
type scriptCache struct {
	mu     sync.Mutex
	bodies map[string][]byte
	bytes  int
}

const (
	maxScripts     = 10000
	maxScriptBytes = 64 << 20
)

func (c *scriptCache) add(body []byte) string {
	sha := script.SHA1(body)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.bodies[sha]; ok {
		return sha
	}
	if c.bodies == nil || len(c.bodies) >= maxScripts || c.bytes+len(body) > maxScriptBytes {
		c.bodies, c.bytes = map[string][]byte{}, 0
	}
	c.bodies[sha] = body
	c.bytes += len(body)
	return sha
}

func (c *scriptCache) get(sha []byte) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.bodies[strings.ToLower(string(sha))]
	return b, ok
}

// scriptBody finds the body of a script by its SHA-1: in this node's
// cache, or else in another node's (a client that loaded it through
// another node, or a cluster client that loaded it on the nodes it
// believed primaries), which this node then keeps.
func (f *Server) scriptBody(sha []byte) ([]byte, bool) {
	if b, ok := f.scripts.get(sha); ok {
		return b, true
	}
	if len(sha) != 40 {
		return nil, false
	}
	want := strings.ToLower(string(sha))
	for _, r := range f.askPeers(peerRequest([]byte("script"), []byte(want))) {
		v, _, err := resp.ParseValue(r)
		if err == nil && v.Kind == '$' && !v.Null && script.SHA1(v.Str) == want {
			f.scripts.add(v.Str)
			return v.Str, true
		}
	}
	return nil, false
}

// size is how many bodies the cache holds, and their bytes.
func (c *scriptCache) size() (n, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.bodies), c.bytes
}

func (c *scriptCache) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bodies, c.bytes = nil, 0
}

func cmdEval(f *Server, args [][]byte, st *connState) []byte { return f.eval(args, st, false, false) }
func cmdEvalRO(f *Server, args [][]byte, st *connState) []byte {
	return f.eval(args, st, false, true)
}
func cmdEvalSHA(f *Server, args [][]byte, st *connState) []byte {
	return f.eval(args, st, true, false)
}
func cmdEvalSHARO(f *Server, args [][]byte, st *connState) []byte {
	return f.eval(args, st, true, true)
}

// eval runs EVAL BODY NUMKEYS KEY... ARG... (or EVALSHA SHA ...).
func (f *Server) eval(args [][]byte, st *connState, bySHA, readOnly bool) []byte {
	step, reply := f.scriptStep(args, bySHA, readOnly)
	if reply != nil {
		return reply
	}
	if _, err := script.Compile(step.Body); err != nil {
		return resp.AppendError(nil, err.Error())
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

// scriptStep reads a script call's arguments: the step to run, or the
// error Redis answers before running anything.
func (f *Server) scriptStep(args [][]byte, bySHA, readOnly bool) (script.Step, []byte) {
	if len(args) < 3 {
		return script.Step{}, errArity(args)
	}
	body := args[1]
	if bySHA {
		b, ok := f.scriptBody(args[1])
		if !ok {
			return script.Step{}, resp.AppendError(nil, errNoScript)
		}
		body = b
	} else if len(body) > script.MaxBodyBytes {
		return script.Step{}, resp.AppendError(nil, fmt.Sprintf("ERR script over %d bytes", script.MaxBodyBytes))
	}
	n, ok := kv.ParseInt(args[2])
	switch {
	case !ok:
		return script.Step{}, resp.AppendError(nil, kv.ErrNotInteger)
	case n < 0:
		return script.Step{}, resp.AppendError(nil, "ERR Number of keys can't be negative")
	case n > int64(len(args)-3):
		return script.Step{}, resp.AppendError(nil, "ERR Number of keys can't be greater than number of args")
	}
	flags, shebang, _, err := script.Shebang(body)
	if err != nil {
		return script.Step{}, resp.AppendError(nil, err.Error())
	}
	if shebang {
		if reply := flagsRefusal(flags, readOnly); reply != nil {
			return script.Step{}, reply
		}
	}
	f.scripts.add(body)
	step := script.Step{Body: body, Keys: args[3 : 3+n], Argv: args[3+n:], ReadOnly: readOnly || flags&script.FlagNoWrites != 0}
	if reply := f.scriptOOM(&step, flags, shebang); reply != nil {
		return script.Step{}, reply
	}
	return step, nil
}

// scriptGroup is the partition a script runs in: its keys', which must
// share one; a script without keys runs in the partition its SHA-1 names,
// or in pinned's if set. ok is false when the keys span partitions.
func (f *Server) scriptGroup(step script.Step, pinned *uint64) (group uint64, ok bool) {
	if pinned != nil {
		group = *pinned
	} else {
		group = f.partitionOf([]byte(script.SHA1(step.Body)))
	}
	for i, k := range step.Keys {
		g := f.partitionOf(k)
		if i == 0 && pinned == nil {
			group = g
		} else if g != group {
			return 0, false
		}
	}
	return group, true
}

// hasPartition reports whether the current map has partition g.
func (f *Server) hasPartition(g uint64) bool {
	for _, p := range f.cfg.View.Partitions() {
		if uint64(p.ID) == g {
			return true
		}
	}
	return false
}

// runScript has the transaction layer run steps on p.Group's leader.
func (f *Server) runScript(p script.Params, st *connState, steps ...script.Step) []byte {
	rules, err := f.scriptRules(st)
	if err != nil {
		return ErrorReply(err)
	}
	ctx, cancel := context.WithTimeout(commandCap(f.ctx), f.cfg.RequestTimeout)
	defer cancel()
	p.Partitions, p.User = f.cfg.Partitions, rules
	// The run must end before the request does, leaving time to
	// replicate what it did; one try at the leader lasts as long as the
	// run may.
	p.Timeout = f.cfg.RequestTimeout * 4 / 5
	ctx = failure.WithAttemptTime(ctx, p.Timeout+500*time.Millisecond)
	reply, err := f.cfg.Txns.Script(ctx, p.Group, script.Args(p, steps...))
	if g, ok := script.Moved(reply); ok && err == nil && p.Float && f.hasPartition(g) {
		// A script without declared keys touched another partition's
		// first: it runs there, once.
		p.Group, p.Float = g, false
		reply, err = f.cfg.Txns.Script(ctx, p.Group, script.Args(p, steps...))
	}
	if err != nil {
		return ErrorReply(err)
	}
	if _, ok := script.Moved(reply); ok {
		return resp.AppendError(nil, "ERR script moved twice")
	}
	return reply
}

// isScriptCall reports whether spec runs a script (EVAL and its kin).
func isScriptCall(spec *command.Spec) bool {
	return spec != nil && spec.Category == command.Scripting && spec.Name != "script"
}

// execScripted runs a transaction that holds scripts: all of it, scripts
// and data commands in their order, on its partition's leader, as one
// speculation replicated as effects (package script). Its keys, and the
// keys it watches, must share one partition. Connection commands are
// answered in their slots, as in execMulti.
func (f *Server) execScripted(queued []command.Cmd, atRun, denied map[int][]byte, watches []txn.Watch, st *connState) []byte {
	var steps []script.Step
	var group *uint64
	cross := false
	pin := func(g uint64) {
		if group == nil {
			group = &g
		} else if *group != g {
			cross = true
		}
	}
	for _, w := range watches {
		pin(f.partitionOf(w.Key))
	}
	known := map[int][]byte{} // replies the edge gives itself
	inSteps := map[int]bool{}
	for i, c := range queued {
		switch {
		case atRun[i] != nil:
			known[i] = atRun[i]
		case denied[i] != nil:
			known[i] = denied[i]
		case isScriptCall(c.Spec):
			step, reply := f.scriptStep(c.Args, strings.HasPrefix(c.Spec.Name, "evalsha"), strings.HasSuffix(c.Spec.Name, "_ro"))
			if reply != nil {
				known[i] = reply
				continue
			}
			for _, k := range step.Keys {
				pin(f.partitionOf(k))
			}
			st.wrote = append(st.wrote, step.Keys...)
			steps, inSteps[i] = append(steps, step), true
		case isData(c.Spec):
			if c.Cross {
				cross = true
			} else if len(c.Keys) > 0 {
				pin(c.Group)
			}
			steps, inSteps[i] = append(steps, script.Step{Cmd: c.Args}), true
			st.wrote = appendKeys(st.wrote, &c)
		}
	}
	if cross {
		return resp.AppendError(nil, kv.ErrCrossSlot)
	}
	var elems [][]byte
	if len(steps) > 0 {
		if group == nil {
			g, _ := f.scriptGroup(steps[0], nil)
			group = &g
		}
		reply := f.runScript(script.Params{Group: *group, Multi: true, Watches: watches}, st, steps...)
		var ok bool
		if elems, ok = txn.SplitArray(reply); !ok || len(elems) != len(steps) {
			return reply // a null array (a watched key changed) or an error
		}
	}
	out := resp.AppendArrayHeader(nil, len(queued))
	j := 0
	for i := range queued {
		switch c := &queued[i]; {
		case known[i] != nil:
			out = append(out, known[i]...)
		case inSteps[i]:
			out = append(out, f.slot3(st, c, elems[j])...)
			j++
		case c.Spec == specUnwatch:
			out = resp.AppendSimple(out, "OK")
		default:
			out = append(out, f.slot3(st, c, f.connCommand(c, st))...)
		}
	}
	return out
}

// scriptRules are the ACL rules the script's commands are checked
// against on the leader: "" when the user may run anything on any key.
func (f *Server) scriptRules(st *connState) (string, error) {
	if st.auth.user == "" {
		return "", nil // the gate let the command through: no users here
	}
	t := f.table()
	if t == nil {
		return "", acl.ErrNoAuth
	}
	u, ok := t.User(st.auth.user)
	if !ok {
		return "", errUserGone
	}
	if u.AllCommands && len(u.Rules) == 0 && u.AllKeys {
		return "", nil
	}
	return u.Name + " on nopass " + u.KeyRules() + " " + u.CommandRules(), nil
}

// cmdScript answers SCRIPT LOAD, EXISTS, FLUSH, KILL and HELP.
func cmdScript(f *Server, args [][]byte, _ *connState) []byte {
	sub := lower(args[1])
	switch {
	case sub == "load" && len(args) == 3:
		if len(args[2]) > script.MaxBodyBytes {
			return resp.AppendError(nil, fmt.Sprintf("ERR script over %d bytes", script.MaxBodyBytes))
		}
		if _, err := script.Compile(args[2]); err != nil {
			return resp.AppendError(nil, err.Error())
		}
		return resp.AppendBulkString(nil, f.scripts.add(args[2]))
	case sub == "exists" && len(args) >= 3:
		out := resp.AppendArrayHeader(nil, len(args)-2)
		for _, sha := range args[2:] {
			_, ok := f.scriptBody(sha)
			out = resp.AppendInt(out, map[bool]int64{false: 0, true: 1}[ok])
		}
		return out
	case sub == "flush" && len(args) <= 3:
		if len(args) == 3 && lower(args[2]) != "sync" && lower(args[2]) != "async" {
			return resp.AppendError(nil, "ERR SCRIPT FLUSH only support SYNC|ASYNC option")
		}
		// Every node's: EVALSHA looks for a body on the other nodes.
		f.scripts.flush()
		f.askPeers(peerRequest([]byte("scriptflush")))
		return resp.AppendSimple(nil, "OK")
	case sub == "kill" && len(args) == 2:
		if !script.Kill() {
			return resp.AppendError(nil, "NOTBUSY No scripts in execution right now.")
		}
		return resp.AppendSimple(nil, "OK")
	case sub == "help" && len(args) == 2:
		lines := []string{
			"SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"EXISTS <sha1> [<sha1> ...]",
			"    Return information about the existence of the scripts in the script cache.",
			"FLUSH [ASYNC|SYNC]",
			"    Flush the Lua scripts cache.",
			"KILL",
			"    Kill the currently executing Lua script.",
			"LOAD <script>",
			"    Load a script into the scripts cache without executing it.",
			"HELP",
			"    Print this help.",
		}
		return appendHelp(lines)
	case sub == "load" || sub == "exists" || sub == "flush" || sub == "kill" || sub == "help":
		return resp.AppendError(nil, fmt.Sprintf("ERR unknown subcommand or wrong number of arguments for '%s'. Try SCRIPT HELP.", args[1]))
	}
	return resp.AppendError(nil, fmt.Sprintf("ERR unknown subcommand '%s'. Try SCRIPT HELP.", args[1]))
}
