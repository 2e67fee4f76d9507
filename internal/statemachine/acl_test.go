package statemachine

import (
	"strings"
	"testing"

	"github.com/kintsu/kintsu/internal/acl"
)

func TestACLCommands(t *testing.T) {
	m := newMemStore()
	m.loose = true
	if got := read(t, m, MetaGroup, "GET aclversion"); got != "$-1\r\n" {
		t.Fatalf("version before any change: %q", got)
	}
	steps := []struct{ cmd, want string }{
		{"kintsu.acl.setuser alice on #" + acl.Hash([]byte("pw")) + " ~a* +get", "+OK\r\n"},
		// Rules compose with what is committed, as two SETUSERs on one Redis.
		{"kintsu.acl.setuser alice +set", "+OK\r\n"},
		// The committed state decides a rule's validity, alike everywhere.
		{"kintsu.acl.setuser alice allkeys", "+OK\r\n"},
		{"kintsu.acl.setuser alice ~b*", "-ERR Error in ACL SETUSER modifier '~b*': Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns\r\n"},
		{"kintsu.acl.setuser bad\x00name on", "-ERR Usernames can't contain spaces or null characters\r\n"},
		{"kintsu.acl.deluser alice default", "-ERR The 'default' user cannot be removed\r\n"},
		{"kintsu.acl.deluser nobody", ":0\r\n"},
	}
	for _, s := range steps {
		if got := apply(t, m, MetaGroup, s.cmd); got != s.want {
			t.Fatalf("%s: got %q, want %q", s.cmd, got, s.want)
		}
	}
	if got := read(t, m, MetaGroup, "GET aclversion"); got != "$1\r\n3\r\n" {
		t.Fatalf("version after three changes: %q", got)
	}
	tb, refusal, err := LoadACL(m)
	if err != nil || refusal != "" {
		t.Fatal(refusal, err)
	}
	u, ok := tb.User("alice")
	if !ok || u.Describe() != "on sanitize-payload #"+acl.Hash([]byte("pw"))+" ~* resetchannels -@all +get +set" {
		t.Fatalf("alice: %v %q", ok, u.Describe())
	}
	if got := read(t, m, MetaGroup, "GET acl"); !strings.Contains(got, `"alice"`) {
		t.Fatalf("the table is not readable with GET: %q", got)
	}
	if got := apply(t, m, MetaGroup, "kintsu.acl.deluser alice"); got != ":1\r\n" {
		t.Fatalf("deluser: %q", got)
	}
	if tb, _, _ := LoadACL(m); tb.Version != 4 {
		t.Fatalf("version after delete: %d", tb.Version)
	}
}
