package edge

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/kintsu/kintsu/internal/acl"
	"github.com/kintsu/kintsu/internal/resp"
	"github.com/kintsu/kintsu/internal/statemachine"
)

func cmdBytes(args ...string) []byte {
	b := resp.AppendArrayHeader(nil, len(args))
	for _, a := range args {
		b = resp.AppendBulkString(b, a)
	}
	return b
}

// changeElsewhere commits a users change to the metadata group as
// another node would: this node's edge hears nothing of it.
func (h *harness) changeElsewhere(t *testing.T, args ...string) {
	t.Helper()
	b := make([][]byte, len(args))
	for i, a := range args {
		b[i] = []byte(a)
	}
	h.router.store.mu.Lock()
	out, err := statemachine.ApplyACL(h.router.store, b, nil)
	h.router.store.mu.Unlock()
	if err != nil || out[0] == '-' {
		t.Fatalf("%v: %q %v", args, out, err)
	}
}

// The staleness bound of auth.go: a change committed through another
// node reaches this node's checks, and closes a deleted user's
// connections, within one refresh interval and one read; AUTH sees it at
// once.
func TestUsersChangedElsewhereWithinTheBound(t *testing.T) {
	h := newHarness(t)
	defer h.close()
	h.changeElsewhere(t, statemachine.CmdACLSetUser, "bob", "on", "#"+acl.Hash([]byte("pw")), "~*", "+get", "+del")
	// AUTH reads linearizably: no refresh needed.
	if got := strings.Join(h.exchange(t, "c1", cmdBytes("AUTH", "bob", "pw"), 1), ""); got != "OK\n" {
		t.Fatalf("AUTH right after a change elsewhere: %q", got)
	}
	h.changeElsewhere(t, statemachine.CmdACLSetUser, "bob", "-del")
	const refresh = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go h.srv.WatchUsers(ctx, refresh)
	bound := refresh + replyTimeout
	deadline := time.Now().Add(bound)
	for {
		got := strings.Join(h.exchange(t, "c1", cmdBytes("DEL", "k"), 1), "")
		if strings.HasPrefix(got, "(error) NOPERM") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a permission removed elsewhere still allowed after %v: %q", bound, got)
		}
		time.Sleep(refresh / 4) // polling a condition, not synchronizing
	}
	h.changeElsewhere(t, statemachine.CmdACLDelUser, "bob")
	c := h.conn(t, "c1").c
	_ = c.SetReadDeadline(time.Now().Add(bound))
	if n, err := bufio.NewReader(c).ReadByte(); err == nil {
		t.Fatalf("the connection of a user deleted elsewhere was not closed within %v (read %q)", bound, n)
	}
}

// A password file is required of the default user while the cluster's
// users give it none, from the node's first connection on.
func TestPasswordFileGuardsTheDefaultUser(t *testing.T) {
	h := newHarnessWith(t, func(c *Config) { c.DefaultPasswordHash = acl.Hash([]byte("filepw")) })
	defer h.close()
	got := strings.Join(h.exchange(t, "c1", append(append(cmdBytes("GET", "a"), cmdBytes("AUTH", "nope")...), cmdBytes("AUTH", "filepw")...), 3), "")
	want := "(error) NOAUTH Authentication required.\n(error) WRONGPASS invalid username-password pair or user is disabled.\nOK\n"
	if got != want {
		t.Fatalf("got:\n%swant:\n%s", got, want)
	}
}

// fakeRemote is a connection that seems to come from another host.
type fakeRemote struct{ net.Conn }

func (fakeRemote) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 5555}
}

// Protected mode: with no password for the default user, a client from
// another host is refused with Redis's DENIED; from loopback, or once a
// password is set, it is served.
func TestProtectedMode(t *testing.T) {
	h := newHarnessWith(t, func(c *Config) { c.ProtectedMode = true })
	defer h.close()
	remote := func(c net.Conn) net.Conn { return fakeRemote{c} }
	server, client := net.Pipe()
	go func(client net.Conn) { _, _ = bufio.NewReader(client).ReadString('\n'); client.Close() }(client)
	if h.srv.admit(remote(server), &connState{}) {
		t.Fatal("a remote client was admitted in protected mode with no password")
	}
	server.Close()
	server, client = net.Pipe()
	said := make(chan string, 1)
	go func(client net.Conn) {
		line, _ := bufio.NewReader(client).ReadString('\n')
		said <- line
	}(client)
	h.srv.admit(remote(server), &connState{})
	if got := <-said; !strings.HasPrefix(got, "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user.") {
		t.Fatalf("protected-mode refusal: %q", got)
	}
	server.Close()
	client.Close()
	// From loopback the client is served (the harness dials 127.0.0.1).
	if got := strings.Join(h.exchange(t, "c1", cmdBytes("PING"), 1), ""); got != "PONG\n" {
		t.Fatalf("loopback client in protected mode: %q", got)
	}
	// With a password, remote clients connect and must authenticate.
	h.srv.adopt(acl.NewTable().WithDefaultPassword(acl.Hash([]byte("x"))))
	server, client = net.Pipe()
	defer client.Close()
	defer server.Close()
	if !h.srv.admit(remote(server), &connState{}) {
		t.Fatal("a remote client was refused although the default user has a password")
	}
}

// A connection that came before the node knew its users is decided by
// its first command once they are known: as the default user on
// loopback when no password is set; refused from another host in
// protected mode, even through AUTH (which a nopass default user would
// otherwise accept).
func TestConnectionBeforeUsersAreKnown(t *testing.T) {
	h := newHarnessWith(t, func(c *Config) { c.ProtectedMode = true })
	defer h.close()
	h.srv.users.adopt.Lock()
	h.srv.users.stored.Store(nil)
	h.srv.users.cur.Store(nil)
	h.srv.users.adopt.Unlock()
	h.router.fail(statemachine.MetaGroup, fault{name: "noleader", only: -1})
	if got := strings.Join(h.exchange(t, "c1", cmdBytes("GET", "a"), 1), ""); got != "(error) NOAUTH Authentication required.\n" {
		t.Fatalf("before the node knows its users: %q", got)
	}
	h.srv.adopt(acl.NewTable())
	if got := strings.Join(h.exchange(t, "c1", cmdBytes("PING"), 1), ""); got != "PONG\n" {
		t.Fatalf("loopback, once no password is known to be set: %q", got)
	}

	h.srv.users.adopt.Lock()
	h.srv.users.stored.Store(nil)
	h.srv.users.cur.Store(nil)
	h.srv.users.adopt.Unlock()
	h.router.fail(statemachine.MetaGroup, fault{name: "noleader", only: -1})
	server, client := net.Pipe()
	defer client.Close()
	defer server.Close()
	st := &connState{}
	if !h.srv.admit(fakeRemote{server}, st) {
		t.Fatal("refused before the users were known")
	}
	h.srv.adopt(acl.NewTable())
	replies := h.srv.exec([][][]byte{{[]byte("AUTH"), []byte("default"), []byte("anything")}, {[]byte("GET"), []byte("a")}}, st)
	if len(replies) != 1 || !strings.HasPrefix(string(replies[0]), "-DENIED") || !st.quit {
		t.Fatalf("a remote client in protected mode without a password: %q, quit %v", replies, st.quit)
	}
	st = &connState{auth: authState{user: "", refused: true}}
	replies = h.srv.exec([][][]byte{{[]byte("AUTH"), []byte("default"), []byte("anything")}}, st)
	if len(replies) != 1 || !strings.HasPrefix(string(replies[0]), "-DENIED") || !st.quit {
		t.Fatalf("AUTH from a refused host: %q, quit %v", replies, st.quit)
	}
}
