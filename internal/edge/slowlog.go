package edge

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/resp"
)

// SLOWLOG, as Redis keeps it: per node, the last slowlog-max-len commands
// that took longer than slowlog-log-slower-than microseconds (negative:
// none; 0: all), each with its id, start time, duration, arguments (at
// most 32, each cut at 128 bytes, as Redis cuts them), client address and
// name. A command's time is its time in the node: for a data command the
// round to its partition's leader and the replication before its reply,
// which is what makes a Kintsu command slow; a blocking command's wait is
// not counted (Redis logs a blocked command only for its final run).

const (
	slowlogMaxArgs   = 32
	slowlogMaxArgLen = 128
	// slowlogCap bounds slowlog-max-len, so the log stays bounded per
	// node whatever CONFIG SET says.
	slowlogCap = 1 << 16
)

type slowEntry struct {
	id     int64
	at     int64 // Unix seconds
	micros int64
	args   [][]byte
	addr   string
	name   string
}

type slowlog struct {
	slower atomic.Int64 // µs; negative: off
	maxLen atomic.Int64
	mu     sync.Mutex
	nextID int64
	ring   []slowEntry // newest last
}

func newSlowlog() *slowlog {
	s := &slowlog{}
	s.slower.Store(10000)
	s.maxLen.Store(128)
	return s
}

// record logs a command that took d, if it passes the threshold.
func (s *slowlog) record(args [][]byte, d time.Duration, st *connState) {
	limit := s.slower.Load()
	if limit < 0 || d.Microseconds() < limit {
		return
	}
	e := slowEntry{at: time.Now().Unix(), micros: d.Microseconds()}
	n := min(len(args), slowlogMaxArgs)
	for i := range n {
		a := args[i]
		if len(a) > slowlogMaxArgLen {
			a = fmt.Appendf(append([]byte(nil), a[:slowlogMaxArgLen]...), "... (%d more bytes)", len(a)-slowlogMaxArgLen)
		} else {
			a = append([]byte(nil), a...)
		}
		e.args = append(e.args, a)
	}
	if len(args) > slowlogMaxArgs {
		e.args[slowlogMaxArgs-1] = fmt.Appendf(nil, "... (%d more arguments)", len(args)-slowlogMaxArgs+1)
	}
	if st != nil {
		if st.conn != nil {
			e.addr = addrOf(st.conn.RemoteAddr())
		}
		e.name = string(st.name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e.id = s.nextID
	s.nextID++
	s.ring = append(s.ring, e)
	if over := len(s.ring) - int(s.maxLen.Load()); over > 0 {
		s.ring = append(s.ring[:0], s.ring[over:]...)
	}
}

// setting applies CONFIG SET of one of the slowlog's parameters; false
// when name is not one.
func (s *slowlog) setting(name, val string) bool {
	n, _ := strconv.ParseInt(val, 10, 64)
	switch name {
	case "slowlog-log-slower-than":
		s.slower.Store(n)
	case "slowlog-max-len":
		s.maxLen.Store(min(max(n, 0), slowlogCap))
		s.mu.Lock()
		if over := len(s.ring) - int(s.maxLen.Load()); over > 0 {
			s.ring = append(s.ring[:0], s.ring[over:]...)
		}
		s.mu.Unlock()
	default:
		return false
	}
	return true
}

func init() {
	command.Register(&command.Spec{Name: "slowlog", Arity: -2, Flags: command.Conn, Category: command.Server, Impl: connHandler(cmdSlowlog)})
}

// cmdSlowlog answers SLOWLOG GET [count], LEN, RESET and HELP.
func cmdSlowlog(f *Server, args [][]byte, _ *connState) []byte {
	s := f.slowlog
	sub := lower(args[1])
	switch {
	case sub == "get" && len(args) <= 3:
		count := int64(10)
		if len(args) == 3 {
			n, ok := kv.ParseInt(args[2])
			if !ok || n < -1 {
				return resp.AppendError(nil, "ERR count should be greater than or equal to -1")
			}
			count = n
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if count == -1 || count > int64(len(s.ring)) {
			count = int64(len(s.ring))
		}
		out := resp.AppendArrayHeader(nil, int(count))
		for i := len(s.ring) - 1; i >= len(s.ring)-int(count); i-- { // newest first
			e := s.ring[i]
			out = resp.AppendArrayHeader(out, 6)
			out = resp.AppendInt(resp.AppendInt(resp.AppendInt(out, e.id), e.at), e.micros)
			out = resp.AppendArrayHeader(out, len(e.args))
			for _, a := range e.args {
				out = resp.AppendBulk(out, a)
			}
			out = resp.AppendBulkString(resp.AppendBulkString(out, e.addr), e.name)
		}
		return out
	case sub == "len" && len(args) == 2:
		s.mu.Lock()
		defer s.mu.Unlock()
		return resp.AppendInt(nil, int64(len(s.ring)))
	case sub == "reset" && len(args) == 2:
		s.mu.Lock()
		defer s.mu.Unlock()
		s.ring = nil
		return resp.AppendSimple(nil, "OK")
	case sub == "help" && len(args) == 2:
		return appendHelp([]string{
			"SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"GET [<count>]",
			"    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
			"    Entries are made of:",
			"    id, timestamp, time in microseconds, arguments array, client IP and port,",
			"    client name",
			"LEN",
			"    Return the length of the slowlog.",
			"RESET",
			"    Reset the slowlog.",
			"HELP",
			"    Print this help.",
		})
	}
	return resp.AppendError(nil, fmt.Sprintf("ERR unknown subcommand or wrong number of arguments for '%s'. Try SLOWLOG HELP.", args[1]))
}
