package edge

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kintsu/kintsu/internal/acl"
	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/resp"
	"github.com/kintsu/kintsu/internal/statemachine"
)

// redisVersion is what Kintsu reports as redis_version, so clients that
// gate features on it enable the ones Kintsu speaks.
const redisVersion = "7.2.0"

// connHandler answers a connection command; it is the command's
// Spec.Impl. Decode checked the arity before it runs.
type connHandler func(f *Server, args [][]byte, st *connState) []byte

// connSpec describes a command the receiving node answers itself.
func connSpec(name string, arity int, cat command.Category, h connHandler) *command.Spec {
	return &command.Spec{Name: name, Arity: arity, Flags: command.Conn, Category: cat, Impl: h}
}

// The edge's own commands that it treats apart: the transaction-control
// commands drive a connection's MULTI.
var (
	specQuit    = connSpec("quit", -1, command.Connection, cmdQuit)
	specMulti   = txnSpec("multi", 1)
	specExec    = txnSpec("exec", 1)
	specDiscard = txnSpec("discard", 1)
	specWatch   = txnSpec("watch", -2)
	specUnwatch = txnSpec("unwatch", 1)
)

func txnSpec(name string, arity int) *command.Spec {
	s := &command.Spec{Name: name, Arity: arity, Flags: command.TxnControl, Category: command.Transaction}
	if name == "watch" {
		s.FirstKey, s.LastKey, s.Step = 1, -1, 1
	}
	return s
}

func init() {
	command.Register(
		connSpec("ping", -1, command.Connection, cmdPing),
		connSpec("echo", 2, command.Connection, cmdEcho),
		specQuit,
		connSpec("select", 2, command.Connection, cmdSelect),
		connSpec("hello", -1, command.Connection, cmdHello),
		connSpec("auth", -2, command.Connection, cmdAuth),
		connSpec("acl", -2, command.Server, cmdACL),
		connSpec("command", -1, command.Server, cmdCommand),
		connSpec("info", -1, command.Server, cmdInfo),
		// Answered by asking every partition its key count.
		connSpec("dbsize", 1, command.Keyspace, cmdDBSize),
		connSpec("config", -2, command.Server, cmdConfig),
		connSpec("client", -2, command.Connection, cmdClient),
		connSpec("cluster", -2, command.Cluster, cmdCluster),
		connSpec("readonly", 1, command.Cluster, cmdReadonly),
		connSpec("readwrite", 1, command.Cluster, cmdReadonly),
		specMulti, specExec, specDiscard, specWatch, specUnwatch,
	)
}

func lower(b []byte) string { return strings.ToLower(string(b)) }

// connCommand answers a decoded connection command.
func (f *Server) connCommand(c *command.Cmd, st *connState) []byte {
	if c.Spec.Is(command.Blocking) {
		// Its wait is not its work (slowlog.go).
		return c.Spec.Impl.(connHandler)(f, c.Args, st)
	}
	begin := time.Now()
	reply := c.Spec.Impl.(connHandler)(f, c.Args, st)
	f.slowlog.record(c.Args, time.Since(begin), st)
	return reply
}

func errArity(args [][]byte) []byte {
	return resp.AppendError(nil, kv.WrongArity(lower(args[0])))
}

func cmdPing(f *Server, args [][]byte, st *connState) []byte {
	if len(args) <= 2 && st.proto == 2 && f.subscribed(st) {
		// In subscribed mode, as Redis answers it there.
		out := resp.AppendArrayHeader(nil, 2)
		out = resp.AppendBulkString(out, "pong")
		if len(args) == 2 {
			return resp.AppendBulk(out, args[1])
		}
		return resp.AppendBulkString(out, "")
	}
	switch len(args) {
	case 1:
		return resp.AppendSimple(nil, "PONG")
	case 2:
		return resp.AppendBulk(nil, args[1])
	}
	return errArity(args)
}

func cmdEcho(_ *Server, args [][]byte, _ *connState) []byte {
	if len(args) != 2 {
		return errArity(args)
	}
	return resp.AppendBulk(nil, args[1])
}

func cmdQuit(_ *Server, _ [][]byte, st *connState) []byte {
	st.quit = true
	return resp.AppendSimple(nil, "OK")
}

func cmdSelect(_ *Server, args [][]byte, _ *connState) []byte {
	if len(args) != 2 {
		return errArity(args)
	}
	if n, ok := kv.ParseInt(args[1]); !ok {
		return resp.AppendError(nil, kv.ErrNotInteger)
	} else if n != 0 {
		return resp.AppendError(nil, "ERR DB index is out of range")
	}
	return resp.AppendSimple(nil, "OK")
}

// cmdHello answers HELLO [2|3] [AUTH ...] [SETNAME ...]: the connection
// speaks the protocol it names from this reply on (resp3.go).
func cmdHello(f *Server, args [][]byte, st *connState) []byte {
	proto := st.proto
	if len(args) >= 2 {
		v, ok := kv.ParseInt(args[1])
		if !ok {
			return resp.AppendError(nil, "ERR Protocol version is not an integer or out of range")
		}
		if v != 2 && v != 3 {
			return resp.AppendError(nil, "NOPROTO unsupported protocol version")
		}
		proto = int(v)
	}
	if reply := helloOptions(f, args, st); reply != nil {
		return reply
	}
	f.setProto(st, proto)
	var b []byte
	if proto == 3 {
		b = resp.AppendMapHeader(nil, 7)
	} else {
		b = resp.AppendArrayHeader(nil, 14)
	}
	for _, kvp := range [][2]string{{"server", "redis"}, {"version", redisVersion}} {
		b = resp.AppendBulkString(b, kvp[0])
		b = resp.AppendBulkString(b, kvp[1])
	}
	b = resp.AppendBulkString(b, "proto")
	b = resp.AppendInt(b, int64(proto))
	b = resp.AppendBulkString(b, "id")
	b = resp.AppendInt(b, st.id)
	b = resp.AppendBulkString(b, "mode")
	b = resp.AppendBulkString(b, "cluster")
	b = resp.AppendBulkString(b, "role")
	b = resp.AppendBulkString(b, "master")
	b = resp.AppendBulkString(b, "modules")
	return resp.AppendArrayHeader(b, 0)
}

// commandInfo describes one command as COMMAND does: name, arity, flags,
// first key, last key, step.
func commandInfo(b []byte, name string, arity int, flags []string, first, last, step int) []byte {
	b = resp.AppendArrayHeader(b, 6)
	b = resp.AppendBulkString(b, name)
	b = resp.AppendInt(b, int64(arity))
	b = resp.AppendArrayHeader(b, len(flags))
	for _, f := range flags {
		b = resp.AppendSimple(b, f)
	}
	b = resp.AppendInt(b, int64(first))
	b = resp.AppendInt(b, int64(last))
	return resp.AppendInt(b, int64(step))
}

// describe answers COMMAND INFO for one command (nil: unknown).
func describe(b []byte, s *command.Spec) []byte {
	if s == nil || s.Is(command.Internal) {
		return resp.AppendNullArray(b)
	}
	// Clients route readonly commands to replicas: connection and
	// transaction-control commands (WATCH has keys) are fast, as Redis
	// flags them.
	flag := "readonly"
	switch {
	case s.Is(command.Write):
		flag = "write"
	case !s.HasKeys() || s.Flags&(command.Conn|command.TxnControl) != 0:
		flag = "fast"
	}
	flags := []string{flag}
	if s.NumKeys > 0 || s.KeyAfter != "" {
		// Its keys follow a count or an option: clients ask COMMAND
		// GETKEYS.
		flags = append(flags, "movablekeys")
	}
	return commandInfo(b, s.Name, s.Arity, flags, s.FirstKey, s.LastKey, s.Step)
}

// getKeys answers COMMAND GETKEYS: the keys of a command, as this node's
// decoding finds them.
func getKeys(args [][]byte) []byte {
	s := command.Lookup(args[0])
	if s != nil && s.Name == "memory" && len(args) == 3 && lower(args[1]) == "usage" {
		// MEMORY USAGE's key, as Redis's key spec for the subcommand.
		return appendBulks(nil, args[2:3])
	}
	switch {
	case s == nil || s.Is(command.Internal):
		return resp.AppendError(nil, "ERR Invalid command specified")
	case !s.HasKeys():
		return resp.AppendError(nil, "ERR The command has no key arguments")
	case !s.CheckArity(args):
		return resp.AppendError(nil, "ERR Invalid number of arguments specified for command")
	}
	keys := s.AppendKeys(nil, args)
	if len(keys) == 0 {
		return resp.AppendError(nil, "ERR Invalid arguments specified for command")
	}
	out := resp.AppendArrayHeader(nil, len(keys))
	for _, i := range keys {
		out = resp.AppendBulk(out, args[i])
	}
	return out
}

func cmdCommand(_ *Server, args [][]byte, _ *connState) []byte {
	specs := command.Specs()
	if len(args) == 1 {
		b := resp.AppendArrayHeader(nil, len(specs))
		for _, s := range specs {
			b = describe(b, s)
		}
		return b
	}
	switch lower(args[1]) {
	case "getkeys":
		if len(args) < 3 {
			return errArity([][]byte{[]byte("command|getkeys")})
		}
		return getKeys(args[2:])
	case "count":
		return resp.AppendInt(nil, int64(len(specs)))
	case "docs":
		// No docs: clients (redis-cli) then simply show no hints.
		return resp.AppendArrayHeader(nil, 0)
	case "list":
		return commandList(specs, args[2:])
	case "info":
		b := resp.AppendArrayHeader(nil, len(args)-2)
		for _, a := range args[2:] {
			b = describe(b, command.Lookup(a))
		}
		return b
	}
	return resp.AppendError(nil, fmt.Sprintf("ERR unknown subcommand '%s'. Try COMMAND HELP.", args[1]))
}

func portOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		return addr[i+1:]
	}
	return addr
}

// ConnectedClients is how many client connections the node holds.
func (f *Server) ConnectedClients() int { return f.connCount() }

func (f *Server) connCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.conns)
}

// cmdDBSize sums the key counts of every partition, each read from its
// leader.
func cmdDBSize(f *Server, args [][]byte, _ *connState) []byte {
	if len(args) != 1 {
		return errArity(args)
	}
	ctx, cancel := context.WithTimeout(f.ctx, f.cfg.RequestTimeout)
	defer cancel()
	n, err := f.keyCount(ctx)
	if err != nil {
		return err.reply
	}
	return resp.AppendInt(nil, n)
}

// keyCount sums the key counts of every partition, each read from its
// leader.
func (f *Server) keyCount(ctx context.Context) (int64, *replyError) {
	var total atomic.Int64
	fail := f.eachPartition(func(g uint64) []byte {
		// DBSIZE, sent to a partition, answers its number of keys.
		reply, err := f.readOne(ctx, g, [][]byte{[]byte(statemachine.OpKeyCount)})
		if err != nil {
			return ErrorReply(err)
		}
		v, _, err := resp.ParseValue(reply)
		if err != nil || v.Kind != ':' {
			return reply
		}
		total.Add(v.Int)
		return nil
	})
	if fail != nil {
		return 0, &replyError{fail}
	}
	return total.Load(), nil
}

// replyError is an error already worded as a reply.
type replyError struct{ reply []byte }

// setName names the connection; an empty name clears it, as in Redis.
func (st *connState) setName(name []byte) {
	st.name = nil
	if len(name) > 0 {
		st.name = name
	}
	if st.track != nil {
		n := string(st.name)
		st.track.name.Store(&n)
	}
}

// commandList answers COMMAND LIST [FILTERBY MODULE m|ACLCAT c|PATTERN p]:
// every command, and, as Redis 7 lists them, its subcommands by their
// full names ("config|get").
func commandList(specs []*command.Spec, opts [][]byte) []byte {
	keep := func(string) bool { return true }
	switch {
	case len(opts) == 0:
	case len(opts) == 3 && lower(opts[0]) == "filterby":
		arg := opts[2]
		switch lower(opts[1]) {
		case "module":
			keep = func(string) bool { return false } // no modules
		case "aclcat":
			if !slices.Contains(acl.Categories, lower(arg)) {
				return resp.AppendArrayHeader(nil, 0)
			}
			keep = func(name string) bool { return acl.InCategory(name, lower(arg)) }
		case "pattern":
			keep = func(name string) bool { return kv.Match(arg, []byte(name)) }
		default:
			return resp.AppendError(nil, kv.ErrSyntax)
		}
	default:
		return resp.AppendError(nil, kv.ErrSyntax)
	}
	var names [][]byte
	for _, s := range specs {
		for _, name := range append([]string{s.Name}, acl.Subcommands(s.Name)...) {
			if keep(name) {
				names = append(names, []byte(name))
			}
		}
	}
	return appendBulks(nil, names)
}
