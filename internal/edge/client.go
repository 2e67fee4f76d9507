package edge

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/pubsub"
	"github.com/kintsu/kintsu/internal/resp"
)

// CLIENT: the connection's own subcommands, and LIST, INFO and KILL over
// this node's connections, in Redis's format and with its validation.
// A node lists its own clients, as each Redis Cluster node does.

// noteCommand records what CLIENT LIST shows of a connection's command.
func (st *connState) noteCommand(name string) {
	if st.track == nil {
		return
	}
	st.track.lastCmd.Store(&name)
	st.track.lastAt.Store(time.Now().UnixNano())
	st.track.inMulti.Store(st.multi.on)
	u := st.auth.user
	if u == "" {
		u = "default"
	}
	if p := st.track.user.Load(); p == nil || *p != u {
		st.track.user.Store(&u)
	}
}

func load(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// clientLine is one line of CLIENT LIST, Redis 7.0's fields.
func (f *Server) clientLine(cl *tracked, self *tracked) string {
	now := time.Now()
	cmd := load(cl.lastCmd.Load())
	if cl == self {
		cmd = "client|list"
	}
	flags := ""
	if sub := f.subOf(cl); sub != nil && (f.pubsub.Count(sub, pubsub.Channel) > 0 || f.pubsub.Count(sub, pubsub.Shard) > 0) {
		flags += "P"
	}
	if cl.inMulti.Load() {
		flags += "x"
	}
	if cl.noEvict.Load() {
		flags += "e"
	}
	if flags == "" {
		flags = "N"
	}
	sub, psub, ssub := 0, 0, 0
	if s := f.subOf(cl); s != nil {
		all := f.pubsub.Count(s, pubsub.Channel)
		psub = f.pubsub.CountKind(s, pubsub.Pattern)
		sub, ssub = all-psub, f.pubsub.Count(s, pubsub.Shard)
	}
	user := load(cl.user.Load())
	if user == "" {
		user = "default"
	}
	return fmt.Sprintf("id=%d addr=%s laddr=%s fd=8 name=%s age=%d idle=%d flags=%s db=0 sub=%d psub=%d ssub=%d multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=%d tot-mem=%d events=r cmd=%s user=%s redir=-1 resp=%d\n",
		cl.id, addrOf(cl.conn.RemoteAddr()), addrOf(cl.conn.LocalAddr()), load(cl.name.Load()),
		int64(now.Sub(cl.created)/time.Second), int64(now.Sub(time.Unix(0, cl.lastAt.Load()))/time.Second),
		flags, sub, psub, ssub, cl.held.Load(), cl.held.Load()+cl.query.Load(), cmd, user, max(2, cl.proto.Load()))
}

func addrOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// subOf is cl's pub/sub writer, nil if it never subscribed.
func (f *Server) subOf(cl *tracked) *subscriber { return cl.sub.Load() }

// clients lists this node's connections by id.
func (f *Server) clients() []*tracked {
	f.lim.mu.Lock()
	out := make([]*tracked, 0, len(f.lim.clients))
	for cl := range f.lim.clients {
		out = append(out, cl)
	}
	f.lim.mu.Unlock()
	slices.SortFunc(out, func(a, b *tracked) int { return int(a.id - b.id) })
	return out
}

var clientHelp = []string{
	"CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
	"GETNAME", "    Return the name of the current connection.",
	"ID", "    Return the ID of the current connection.",
	"INFO", "    Return information about the current client connection.",
	"KILL <ip:port>", "    Kill connection made from <ip:port>.",
	"KILL <option> <value> [<option> <value> [...]]", "    Kill connections. Options are: ID, ADDR, LADDR, USER, SKIPME (yes|no).",
	"LIST [options ...]", "    Return information about client connections. Options: TYPE (normal|pubsub), ID <id> [...].",
	"NO-EVICT (ON|OFF)", "    Protect current client connection from eviction.",
	"NO-TOUCH (ON|OFF)", "    Will not touch LRU/LFU stats when this mode is on.",
	"SETNAME <name>", "    Assign the name <name> to the current connection.",
	"GETREDIR", "    Return the client ID we are redirecting to when tracking is enabled.",
	"HELP", "    Print this help.",
}

func cmdClient(f *Server, args [][]byte, st *connState) []byte {
	sub := lower(args[1])
	wrong := func() []byte {
		return resp.AppendError(nil, fmt.Sprintf("ERR unknown subcommand or wrong number of arguments for '%s'. Try CLIENT HELP.", args[1]))
	}
	switch sub {
	case "setname":
		if len(args) != 3 {
			return errArity([][]byte{[]byte("client|setname")})
		}
		for _, c := range args[2] {
			if c < '!' || c > '~' {
				return resp.AppendError(nil, "ERR Client names cannot contain spaces, newlines or special characters.")
			}
		}
		st.setName(args[2])
		return resp.AppendSimple(nil, "OK")
	case "setinfo":
		return resp.AppendSimple(nil, "OK")
	case "getname":
		if len(args) != 2 {
			return wrong()
		}
		if st.name == nil {
			return resp.AppendNull(nil)
		}
		return resp.AppendBulk(nil, st.name)
	case "id":
		if len(args) != 2 {
			return wrong()
		}
		return resp.AppendInt(nil, st.id)
	case "info":
		if len(args) != 2 || st.track == nil {
			return wrong()
		}
		return resp.AppendBulkString(nil, f.clientLine(st.track, nil))
	case "list":
		return f.clientList(args[2:], st)
	case "kill":
		return f.clientKill(args[2:], st)
	case "no-evict", "no-touch":
		if len(args) != 3 {
			return wrong()
		}
		switch lower(args[2]) {
		case "on", "off":
			if sub == "no-evict" && st.track != nil {
				st.track.noEvict.Store(lower(args[2]) == "on")
			}
			return resp.AppendSimple(nil, "OK")
		}
		return resp.AppendError(nil, kv.ErrSyntax)
	case "getredir":
		if len(args) != 2 {
			return wrong()
		}
		return resp.AppendInt(nil, -1)
	case "help":
		return appendHelp(clientHelp)
	case "reply":
		if len(args) != 3 {
			return wrong()
		}
		st.replyChanged = true
		switch lower(args[2]) {
		case "on":
			st.replies = repliesOn
			return resp.AppendSimple(nil, "OK")
		case "off":
			st.replies = repliesOff
			return []byte{}
		case "skip":
			st.replies = repliesSkip
			return []byte{}
		}
		return resp.AppendError(nil, kv.ErrSyntax)
	case "unblock":
		if len(args) != 3 && len(args) != 4 {
			return wrong()
		}
		id, ok := kv.ParseInt(args[2])
		if !ok {
			return resp.AppendError(nil, kv.ErrNotInteger)
		}
		asError := false
		if len(args) == 4 {
			switch lower(args[3]) {
			case "timeout":
			case "error":
				asError = true
			default:
				return resp.AppendError(nil, "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
			}
		}
		for _, cl := range f.clients() {
			if cl.id != id {
				continue
			}
			if ch := cl.unblock.Load(); ch != nil {
				select {
				case *ch <- asError:
					return resp.AppendInt(nil, 1)
				default:
				}
			}
		}
		return resp.AppendInt(nil, 0)
	case "tracking", "pause", "unpause", "caching", "trackinginfo":
		return resp.AppendError(nil, "ERR CLIENT "+strings.ToUpper(sub)+" is not supported by Kintsu yet")
	}
	return resp.AppendError(nil, fmt.Sprintf("ERR unknown subcommand '%s'. Try CLIENT HELP.", args[1]))
}

// clientList answers CLIENT LIST [TYPE t] [ID id...].
func (f *Server) clientList(opts [][]byte, st *connState) []byte {
	var ids []int64
	typ := ""
	for i := 0; i < len(opts); i++ {
		switch {
		case lower(opts[i]) == "type" && i+1 < len(opts):
			typ = lower(opts[i+1])
			switch typ {
			case "normal", "pubsub", "master", "replica", "slave":
			default:
				return resp.AppendError(nil, "ERR Unknown client type '"+string(opts[i+1])+"'")
			}
			i++
		case lower(opts[i]) == "id" && i+1 < len(opts):
			for i++; i < len(opts); i++ {
				id, err := strconv.ParseInt(string(opts[i]), 10, 64)
				if err != nil || id <= 0 {
					return resp.AppendError(nil, "ERR Invalid client ID")
				}
				ids = append(ids, id)
			}
		default:
			return resp.AppendError(nil, kv.ErrSyntax)
		}
	}
	var b strings.Builder
	for _, cl := range f.clients() {
		if ids != nil && !slices.Contains(ids, cl.id) {
			continue
		}
		pub := f.subOf(cl) != nil
		if typ == "master" || typ == "replica" || typ == "slave" || typ == "pubsub" && !pub || typ == "normal" && pub {
			continue
		}
		b.WriteString(f.clientLine(cl, st.track))
	}
	return resp.AppendBulkString(nil, b.String())
}

// clientKill answers CLIENT KILL ADDR (the old form: OK or an error) and
// CLIENT KILL FILTER VALUE... (the number killed).
func (f *Server) clientKill(opts [][]byte, st *connState) []byte {
	if len(opts) == 1 {
		for _, cl := range f.clients() {
			if addrOf(cl.conn.RemoteAddr()) == string(opts[0]) {
				f.closeClient(cl, "client-kill")
				return resp.AppendSimple(nil, "OK")
			}
		}
		return resp.AppendError(nil, "ERR No such client")
	}
	if len(opts) == 0 || len(opts)%2 != 0 {
		return resp.AppendError(nil, kv.ErrSyntax)
	}
	var id int64 = -1
	var addr, laddr, user string
	skipMe := true
	for i := 0; i < len(opts); i += 2 {
		v := string(opts[i+1])
		switch lower(opts[i]) {
		case "id":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				return resp.AppendError(nil, "ERR client-id should be greater than 0")
			}
			id = n
		case "addr":
			addr = v
		case "laddr":
			laddr = v
		case "user":
			user = v
		case "skipme":
			switch lower(opts[i+1]) {
			case "yes":
				skipMe = true
			case "no":
				skipMe = false
			default:
				return resp.AppendError(nil, kv.ErrSyntax)
			}
		case "type":
			// Every client of a node is a normal or pub/sub one.
		default:
			return resp.AppendError(nil, kv.ErrSyntax)
		}
	}
	n := 0
	for _, cl := range f.clients() {
		switch {
		case id > 0 && cl.id != id,
			addr != "" && addrOf(cl.conn.RemoteAddr()) != addr,
			laddr != "" && addrOf(cl.conn.LocalAddr()) != laddr,
			user != "" && load(cl.user.Load()) != user,
			skipMe && cl == st.track:
			continue
		}
		f.closeClient(cl, "client-kill")
		n++
	}
	return resp.AppendInt(nil, int64(n))
}

// appendHelp answers a HELP subcommand: its lines as status replies.
func appendHelp(lines []string) []byte {
	out := resp.AppendArrayHeader(nil, len(lines))
	for _, l := range lines {
		out = resp.AppendSimple(out, l)
	}
	return out
}
