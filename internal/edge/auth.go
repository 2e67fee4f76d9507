package edge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kintsu/kintsu/internal/acl"
	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/resp"
	"github.com/kintsu/kintsu/internal/statemachine"
)

// Authentication and ACLs at the edge.
//
// The cluster's users live in the metadata group (statemachine/acl.go).
// Each node keeps the newest table it has read (users.cur) and checks
// every command against it: the connection's user is looked up by name,
// per command, so a change reaches connections as soon as the node holds
// it. The node learns changes three ways:
//   - AUTH and HELLO ... AUTH read the table linearizably, so they see
//     every change committed before they began, whatever node made it;
//   - a node that makes a change (ACL SETUSER, ACL DELUSER) reads the
//     table back before it answers;
//   - WatchUsers polls the table's version every refresh interval with a
//     linearizable read, and reads the table when the version moved.
//
// Invariant (the staleness bound): a change committed at time t is
// enforced by every node that can read the metadata group, and the
// connections of a deleted user there are closed, by t + refresh +
// RequestTimeout (one poll interval, and one poll's read, bounded by the
// request timeout). A node cut off from the metadata group keeps
// checking against the last table it read (and AUTH falls back to it),
// so it stays as available as its data partitions; it catches up at its
// first successful poll. A node never adopts a table older than the one
// it holds (versions only grow).
//
// Until a node has read the table once, it knows no users: a connection
// then starts unauthenticated (every command but AUTH, HELLO and QUIT is
// answered NOAUTH), never as the default user, so a restarted node cannot
// let anyone in that a password would have kept out.

// defaultRefresh is how often WatchUsers polls the users' version.
const defaultRefresh = time.Second

// users is a node's copy of the cluster's users and its connections' users.
type users struct {
	// stored is the newest table read, as the cluster stores it; cur is
	// the one checks use: stored with a password file laid over the
	// default user. Both nil until read once; adopt sets them together.
	stored, cur atomic.Pointer[acl.Table]
	adopt       sync.Mutex // orders adopts
	refresh     sync.Mutex // one read of the table at a time

	mu    sync.Mutex
	conns map[*connState]authConn // guarded by mu
}

type authConn struct {
	c    net.Conn
	user string
}

// authState is what a connection knows of its user.
type authState struct {
	// user is the name the connection authenticated as ("" none). The
	// user itself is looked up in the node's table at every command.
	user string
	// pending: the node knew no users when the connection came, so it
	// could not tell whether it starts as the default user; the first
	// command after the node learns them decides, as admit would have.
	pending bool
	// refused: from another host while protected mode is on.
	refused bool
}

// table is the node's newest users table, nil if it never read one.
func (f *Server) table() *acl.Table { return f.users.cur.Load() }

// adopt makes t (as stored) the node's table unless it holds a newer
// one, and answers the stored table it holds. A password file's hash is
// laid over the default user for the checks (cur), so every check sees
// it.
func (f *Server) adopt(t *acl.Table) *acl.Table {
	f.users.adopt.Lock()
	defer f.users.adopt.Unlock()
	old := f.users.stored.Load()
	if old != nil && old.Version > t.Version {
		return old
	}
	f.users.stored.Store(t)
	f.users.cur.Store(t.WithDefaultPassword(f.cfg.DefaultPasswordHash))
	if old != nil && old.Version != t.Version {
		f.closeDeleted(t)
	}
	return t
}

// ReadUsers reads the cluster's users linearizably, as stored (without
// a password file's overlay), and makes the node's checks use them.
func (f *Server) ReadUsers(ctx context.Context) (*acl.Table, error) {
	return f.readUsers(ctx)
}

// CheckUsers reads the users linearizably, as the checks see them (a
// password file laid over the default user). When the metadata group
// cannot answer, it falls back to the node's last table: no fresher than
// the checks of every command, which already use it.
func (f *Server) CheckUsers(ctx context.Context) (*acl.Table, error) {
	if _, err := f.readUsers(ctx); err != nil {
		if t := f.table(); t != nil {
			return t, nil
		}
		return nil, err
	}
	return f.table(), nil
}

// Users is the node's table as the checks see it, read now only if the
// node never read one: for the admin API, which must answer (fault hooks,
// removing a dead node) when the node is cut off from the metadata group.
func (f *Server) Users(ctx context.Context) (*acl.Table, error) {
	if t := f.table(); t != nil {
		return t, nil
	}
	return f.CheckUsers(ctx)
}

// readUsers reads the table linearizably from the metadata group and
// adopts it.
func (f *Server) readUsers(ctx context.Context) (*acl.Table, error) {
	f.users.refresh.Lock()
	defer f.users.refresh.Unlock()
	b, null, err := f.readMetaRecord(ctx, statemachine.ACLKey)
	if err != nil {
		return nil, err
	}
	if null {
		return f.adopt(acl.NewTable()), nil
	}
	t, err := acl.Unmarshal(b)
	if err != nil {
		return nil, err
	}
	return f.adopt(t), nil
}

// pollUsers reads the table's version and, when it is not the one the
// node holds, the table.
func (f *Server) pollUsers(ctx context.Context) error {
	if cur := f.users.stored.Load(); cur != nil {
		if ver, err := f.metaVersion(ctx, statemachine.ACLVersionKey); err == nil && ver == cur.Version {
			return nil
		}
	}
	_, err := f.readUsers(ctx)
	return err
}

// WatchUsers keeps the node's users and function libraries fresh until
// ctx ends: every interval (0: one second) it polls their versions. The
// node runs it.
func (f *Server) WatchUsers(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = defaultRefresh
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, f.cfg.RequestTimeout)
		_ = f.pollUsers(rctx) // a failed poll is retried at the next tick
		_ = f.pollFunctions(rctx)
		_ = f.pollConfig(rctx)
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// knownTable is the node's table, read now if it never was (bounded by
// the request timeout); nil if it cannot be read.
func (f *Server) knownTable() *acl.Table {
	if t := f.table(); t != nil {
		return t
	}
	ctx, cancel := context.WithTimeout(f.ctx, f.cfg.RequestTimeout)
	defer cancel()
	t, _ := f.CheckUsers(ctx)
	return t
}

// admit starts a connection as Redis does: authenticated as the default
// user when it needs no password; in protected mode, a client from
// another host is refused then (DENIED), and admit answers false.
func (f *Server) admit(c net.Conn, st *connState) bool {
	st.auth.refused = f.cfg.ProtectedMode && !isLoopback(c.RemoteAddr())
	t := f.knownTable()
	if t == nil || t.RequiresPassword() {
		st.auth.pending = t == nil
		f.setUser(c, st, "")
		return true
	}
	if st.auth.refused {
		_, _ = c.Write(resp.AppendError(nil, errDenied))
		return false
	}
	f.setUser(c, st, acl.DefaultName)
	return true
}

// protectedDenied reports whether protected mode refuses the connection
// now that the node knows its users: the default user has no password
// and the client is from another host. A pending connection that is not
// refused starts as the default user when it needs no password.
func (f *Server) protectedDenied(st *connState) bool {
	t := f.table()
	if t == nil || t.RequiresPassword() {
		return false
	}
	if st.auth.refused {
		return true
	}
	if st.auth.pending {
		st.auth.pending = false
		f.setUser(nil, st, acl.DefaultName)
	}
	return false
}

// errDenied is Redis's protected-mode refusal, word for word: clients
// match on it.
const errDenied = "DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Set up an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside."

func isLoopback(a net.Addr) bool {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	return false
}

// setUser records the connection's user, for the checks and for closing
// the connections of a deleted user.
func (f *Server) setUser(c net.Conn, st *connState, name string) {
	f.users.mu.Lock()
	defer f.users.mu.Unlock()
	st.auth.user = name
	if f.users.conns == nil {
		f.users.conns = map[*connState]authConn{}
	}
	if c == nil {
		c = f.users.conns[st].c
	}
	f.users.conns[st] = authConn{c: c, user: name}
}

// forget drops a closed connection.
func (f *Server) forget(st *connState) {
	f.users.mu.Lock()
	defer f.users.mu.Unlock()
	delete(f.users.conns, st)
}

// closeDeleted closes the connections whose user t no longer has, as
// Redis's ACL DELUSER does; their handlers end on the closed socket.
func (f *Server) closeDeleted(t *acl.Table) {
	f.users.mu.Lock()
	defer f.users.mu.Unlock()
	for _, ac := range f.users.conns {
		if ac.user == "" || ac.c == nil {
			continue
		}
		if _, ok := t.User(ac.user); !ok {
			ac.c.Close()
		}
	}
}

// errUserGone: the connection's user was deleted; it is closed.
var errUserGone = errors.New("the connection's user was deleted")

// errDeniedLate: protected mode refuses a connection admitted before the
// node knew its users; it is closed.
var errDeniedLate = errors.New("protected mode: no password is set for the default user")

// authorize is the gate's ACL check of one decoded command: NOAUTH before
// authentication, NOPERM when the user may not run it or touch its keys.
func (f *Server) authorize(c *command.Cmd, st *connState) error {
	if st.auth.user == "" && (st.auth.pending || st.auth.refused) && f.protectedDenied(st) {
		return errDeniedLate
	}
	if st.auth.user == "" {
		if acl.NoAuth(c.Spec) {
			return nil
		}
		return acl.ErrNoAuth
	}
	t := f.table()
	if t == nil {
		return acl.ErrNoAuth // never read: cannot happen once authenticated
	}
	u, ok := t.User(st.auth.user)
	if !ok {
		return errUserGone
	}
	return u.Allowed(c)
}

// gate runs authorize on command i of a batch once. It answers nil to go
// on; else the connection must close after the replies before i and
// the one returned (empty: none).
func (f *Server) gate(cmds []command.Cmd, errs []error, checked []bool, i int, st *connState) [][]byte {
	if checked[i] || errs[i] != nil {
		return nil
	}
	checked[i] = true
	err := f.authorize(&cmds[i], st)
	switch {
	case errors.Is(err, errUserGone):
		st.quit = true
		return [][]byte{}
	case errors.Is(err, errDeniedLate):
		st.quit = true
		return [][]byte{resp.AppendError(nil, errDenied)}
	case err != nil:
		errs[i] = err
	default:
		// Memory after permission, as Redis orders them (limits.go).
		errs[i] = f.denyOOM(&cmds[i])
	}
	return nil
}

// authenticate checks a user's password against the cluster's users,
// read linearizably, and makes it the connection's user.
func (f *Server) authenticate(st *connState, user, password []byte) []byte {
	ctx, cancel := context.WithTimeout(f.ctx, f.cfg.RequestTimeout)
	defer cancel()
	t, err := f.CheckUsers(ctx)
	if err != nil {
		return ErrorReply(err)
	}
	if st.auth.refused && !t.RequiresPassword() {
		// Without a password, AUTH must not open what protected mode
		// keeps closed.
		st.quit = true
		return resp.AppendError(nil, errDenied)
	}
	u, _ := t.User(string(user))
	if err := u.Authenticate(password); err != nil {
		return ErrorReply(err)
	}
	st.auth.pending = false
	f.setUser(nil, st, u.Name)
	return nil
}

func cmdAuth(f *Server, args [][]byte, st *connState) []byte {
	if len(args) > 3 {
		return resp.AppendError(nil, "ERR syntax error")
	}
	user, pass := []byte(acl.DefaultName), args[1]
	if len(args) == 3 {
		user, pass = args[1], args[2]
	} else if t := f.knownTable(); t != nil && !t.RequiresPassword() {
		return resp.AppendError(nil, "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
	}
	if reply := f.authenticate(st, user, pass); reply != nil {
		return reply
	}
	return resp.AppendSimple(nil, "OK")
}

// helloOptions applies HELLO's AUTH and SETNAME as Redis does: the
// options are checked first, then AUTH, then the connection must be
// authenticated for SETNAME and the reply. nil: go on.
func helloOptions(f *Server, args [][]byte, st *connState) []byte {
	var user, pass, name []byte
	for i := 2; i < len(args); i++ {
		more := len(args) - 1 - i
		switch opt := lower(args[i]); {
		case opt == "auth" && more >= 2:
			user, pass = args[i+1], args[i+2]
			i += 2
		case opt == "setname" && more >= 1:
			name = args[i+1]
			i++
		default:
			return resp.AppendError(nil, fmt.Sprintf("ERR Syntax error in HELLO option '%s'", args[i]))
		}
	}
	if user != nil {
		if reply := f.authenticate(st, user, pass); reply != nil {
			return reply
		}
	}
	if st.auth.user == "" {
		return resp.AppendError(nil, "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
	}
	if name != nil {
		st.setName(name)
	}
	return nil
}

// recheck checks queued commands against the user's permissions at EXEC
// and answers, by position, Redis's reply for each one no longer allowed.
func (f *Server) recheck(queued []command.Cmd, st *connState) map[int][]byte {
	var denied map[int][]byte
	for i := range queued {
		if queued[i].Spec == nil {
			continue // answered when it was queued
		}
		err := f.authorize(&queued[i], st)
		if err == nil {
			continue
		}
		if denied == nil {
			denied = map[int][]byte{}
		}
		denied[i] = resp.AppendError(nil, "NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: "+aclReason(err))
	}
	return denied
}

// aclReason is Redis's reason for a command refused at EXEC.
func aclReason(err error) string {
	var key *acl.KeyDeniedError
	switch {
	case errors.As(err, &key):
		return "no permission to touch the specified keys"
	case errors.Is(err, acl.ErrNoAuth), errors.Is(err, errUserGone):
		return "no permission"
	}
	return "no permission to execute the command or subcommand"
}
