package acl

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/kintsu/kintsu/internal/command"
	_ "github.com/kintsu/kintsu/internal/kv" // registers the data commands
)

func mustUser(t *testing.T, rules string) *User {
	t.Helper()
	u, err := New("alice").ApplyStrings(strings.Fields(rules)...)
	if err != nil {
		t.Fatalf("rules %q: %v", rules, err)
	}
	return u
}

// Descriptions as Redis 7 prints them in ACL LIST for the same rules.
func TestDescribeAsRedis(t *testing.T) {
	for _, tc := range []struct{ rules, want string }{
		{"", "off sanitize-payload resetchannels -@all"},
		// Flags come before the password hashes.
		{"on >secret", "on sanitize-payload #2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b resetchannels -@all"},
		{"on nopass ~* &* +@all", "on nopass sanitize-payload ~* &* +@all"},
		{"+@all -@dangerous +info", "off sanitize-payload resetchannels +@all -@dangerous +info"},
		{"+get +get -get", "off sanitize-payload resetchannels -@all -get"},
		{"+acl|whoami +acl", "off sanitize-payload resetchannels -@all +acl"},
		{"+acl -acl|setuser", "off sanitize-payload resetchannels -@all +acl -acl|setuser"},
		{"+GET +@READ", "off sanitize-payload resetchannels -@all +get +@read"},
		{"+get allcommands", "off sanitize-payload resetchannels +@all"},
		{"+get nocommands +set", "off sanitize-payload resetchannels -@all +set"},
		{"~a* %R~b* %W~c* %RW~d*", "off sanitize-payload ~a* %R~b* %W~c* ~d* resetchannels -@all"},
		{"%R~a %W~a", "off sanitize-payload ~a resetchannels -@all"},
		{"~a allkeys", "off sanitize-payload ~* resetchannels -@all"},
		{"~a resetkeys ~b", "off sanitize-payload ~b resetchannels -@all"},
		{"&ch1 &ch2", "off sanitize-payload resetchannels &ch1 &ch2 -@all"},
		{"on nopass ~* +@all reset", "off sanitize-payload resetchannels -@all"},
		{"skip-sanitize-payload", "off skip-sanitize-payload resetchannels -@all"},
		{">a >b <a", "off sanitize-payload #3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d resetchannels -@all"},
		{">a nopass", "off nopass sanitize-payload resetchannels -@all"},
		{"nopass >a resetpass", "off sanitize-payload resetchannels -@all"},
		{"clearselectors", "off sanitize-payload resetchannels -@all"},
	} {
		u := mustUser(t, tc.rules)
		if got := u.Describe(); got != tc.want {
			t.Errorf("rules %q:\n got %q\nwant %q", tc.rules, got, tc.want)
		}
		back, err := Parse(u.Name, u.Describe())
		if err != nil || back.Describe() != u.Describe() {
			t.Errorf("rules %q: description does not round-trip: %v %q", tc.rules, err, back.Describe())
		}
	}
	if got := Default().Line(); got != "user default on nopass sanitize-payload ~* &* +@all" {
		t.Errorf("default user: %q", got)
	}
}

// One test per error text Redis answers for a bad rule.
func TestRuleErrorsAsRedis(t *testing.T) {
	for _, tc := range []struct{ prior, rule, want string }{
		{"", "+nosuchcommand", "Error in ACL SETUSER modifier '+nosuchcommand': Unknown command or category name in ACL"},
		{"", "-@nosuchcat", "Error in ACL SETUSER modifier '-@nosuchcat': Unknown command or category name in ACL"},
		{"", "bogus", "Error in ACL SETUSER modifier 'bogus': Syntax error"},
		{"", "%X~a", "Error in ACL SETUSER modifier '%X~a': Syntax error"},
		{"", "%~a", "Error in ACL SETUSER modifier '%~a': Syntax error"},
		{"allkeys", "~a", "Error in ACL SETUSER modifier '~a': Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns"},
		{"allchannels", "&a", "Error in ACL SETUSER modifier '&a': Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels"},
		{"", "<nosuch", "Error in ACL SETUSER modifier '<nosuch': The password you are trying to remove from the user does not exist"},
		{"", "#abc", "Error in ACL SETUSER modifier '#abc': The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters"},
		{"", "!" + strings.Repeat("A", 64), "Error in ACL SETUSER modifier '!" + strings.Repeat("A", 64) + "': The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters"},
		{"", "+acl|", "Error in ACL SETUSER modifier '+acl|': Syntax error"},
		{"", "+acl|nosuch", "Error in ACL SETUSER modifier '+acl|nosuch': Unknown command or category name in ACL"},
		{"", "(~x +get)", "Error in ACL SETUSER modifier '(~x +get)': Selectors are not supported by Kintsu"},
	} {
		u := mustUser(t, tc.prior)
		got, err := u.ApplyStrings(tc.rule)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%q after %q: got %v, want %q", tc.rule, tc.prior, err, tc.want)
		}
		if got != u {
			t.Errorf("%q: a refused SETUSER changed the user", tc.rule)
		}
	}
	// All or nothing: a bad rule after good ones leaves the user as it was.
	u := mustUser(t, "on")
	if got, err := u.ApplyStrings("+get", "~a", "bogus"); err == nil || got.Describe() != u.Describe() {
		t.Errorf("a SETUSER with a bad rule applied part of it: %v %q", err, got.Describe())
	}
}

func cmd(t *testing.T, args ...string) *command.Cmd {
	t.Helper()
	b := make([][]byte, len(args))
	for i, a := range args {
		b[i] = []byte(a)
	}
	c, err := command.Decode(b, nil)
	if err != nil {
		// Connection commands are the edge's; describe them here.
		s := &command.Spec{Name: strings.ToLower(args[0]), Arity: -1, Flags: command.Conn}
		c = command.Cmd{Spec: s, Args: b}
	}
	return &c
}

func TestCommandPermissions(t *testing.T) {
	for _, tc := range []struct {
		rules string
		args  []string
		want  string // "" allowed, else the error text
	}{
		{"+@all", []string{"set", "k", "v"}, ""},
		{"", []string{"get", "k"}, "User alice has no permissions to run the 'get' command"},
		{"+get", []string{"get", "k"}, ""},
		{"+@read", []string{"get", "k"}, ""},
		{"+@read", []string{"set", "k", "v"}, "User alice has no permissions to run the 'set' command"},
		{"+@write", []string{"set", "k", "v"}, ""},
		{"+@all -@write", []string{"del", "k"}, "User alice has no permissions to run the 'del' command"},
		{"+@all -@write +del", []string{"del", "k"}, ""},
		{"+@all -@write +del", []string{"unlink", "k"}, "User alice has no permissions to run the 'unlink' command"},
		{"+@string", []string{"incr", "k"}, ""},
		{"+@string", []string{"expire", "k", "1"}, "User alice has no permissions to run the 'expire' command"},
		{"+@keyspace", []string{"expire", "k", "1"}, ""},
		{"+@fast", []string{"get", "k"}, ""},
		{"+@fast", []string{"set", "k", "v"}, "User alice has no permissions to run the 'set' command"},
		{"+@slow", []string{"mset", "a", "1"}, ""},
		{"", []string{"auth", "x"}, ""},
		{"", []string{"hello", "2"}, ""},
		{"", []string{"quit"}, ""},
		{"", []string{"ping"}, "User alice has no permissions to run the 'ping' command"},
		{"+@connection", []string{"ping"}, ""},
		{"+@transaction", []string{"multi"}, ""},
		{"+@all -@admin", []string{"acl", "setuser", "bob"}, "User alice has no permissions to run the 'acl|setuser' command"},
		{"+@all -@admin", []string{"acl", "whoami"}, ""},
		{"+@all -@admin", []string{"acl", "cat"}, ""},
		{"+@all -@dangerous", []string{"config", "get", "x"}, "User alice has no permissions to run the 'config|get' command"},
		{"+@all -@dangerous", []string{"info"}, "User alice has no permissions to run the 'info' command"},
		{"+@all -@dangerous", []string{"client", "kill", "x"}, "User alice has no permissions to run the 'client|kill' command"},
		{"+@all -@dangerous", []string{"client", "setname", "x"}, ""},
		{"-@all +acl|whoami", []string{"acl", "whoami"}, ""},
		{"-@all +acl|whoami", []string{"acl", "list"}, "User alice has no permissions to run the 'acl|list' command"},
		{"+acl -acl|list", []string{"acl", "list"}, "User alice has no permissions to run the 'acl|list' command"},
		{"+acl -acl|list", []string{"acl", "users"}, ""},
		{"+@slow", []string{"acl", "setuser", "x"}, ""}, // ACL is @slow, so are its subcommands
		{"+@admin", []string{"cluster", "setslot", "x"}, ""},
		{"+@admin", []string{"cluster", "nodes"}, "User alice has no permissions to run the 'cluster|nodes' command"},
		{"+@all", []string{"acl", "nosuchsub"}, ""},
	} {
		u := mustUser(t, "on ~* "+tc.rules)
		err := u.Allowed(cmd(t, tc.args...))
		got := ""
		if err != nil {
			got = err.Error()
			var cd *CommandDeniedError
			if !errors.As(err, &cd) {
				t.Errorf("%q %v: want a CommandDeniedError, got %T", tc.rules, tc.args, err)
			}
		}
		if got != tc.want {
			t.Errorf("rules %q, command %v: got %q, want %q", tc.rules, tc.args, got, tc.want)
		}
	}
}

func TestKeyPermissions(t *testing.T) {
	for _, tc := range []struct {
		keys string
		args []string
		ok   bool
	}{
		{"~*", []string{"get", "anything"}, true},
		{"", []string{"get", "k"}, false},
		{"~user:*", []string{"get", "user:1"}, true},
		{"~user:*", []string{"get", "order:1"}, false},
		{"~user:*", []string{"mget", "user:1", "order:1"}, false},
		{"~user:* ~order:*", []string{"mget", "user:1", "order:1"}, true},
		{"%R~r:*", []string{"get", "r:1"}, true},
		{"%R~r:*", []string{"set", "r:1", "v"}, false},
		{"%W~w:*", []string{"set", "w:1", "v"}, true},
		{"%W~w:*", []string{"get", "w:1"}, false},
		{"%W~w:*", []string{"incr", "w:1"}, false}, // INCR returns the value: it reads
		{"%W~w:*", []string{"set", "w:1", "v", "GET"}, false},
		{"%W~w:*", []string{"exists", "w:1"}, true}, // EXISTS needs no access, only a pattern
		{"%R~a %W~a", []string{"getset", "a", "v"}, true},
		{"~a?c", []string{"get", "abc"}, true},
		{"~a[bx]c", []string{"get", "axc"}, true},
		{"~a[^b]c", []string{"get", "abc"}, false},
		{"~a\\*", []string{"get", "a*"}, true},
		{"~a\\*", []string{"get", "ab"}, false},
		{"~a/*", []string{"get", "a/b/c"}, true}, // '/' is nothing special
		{"", []string{"ping"}, true},             // no keys, no pattern needed
	} {
		u := mustUser(t, "on +@all "+tc.keys)
		err := u.Allowed(cmd(t, tc.args...))
		if tc.ok != (err == nil) {
			t.Errorf("keys %q, command %v: got %v, want ok=%v", tc.keys, tc.args, err, tc.ok)
		}
		if err != nil && err.Error() != "No permissions to access a key" {
			t.Errorf("key error text %q", err.Error())
		}
	}
}

func TestAuthenticate(t *testing.T) {
	u := mustUser(t, "on >p1 >p2")
	for _, pw := range []string{"p1", "p2"} {
		if err := u.Authenticate([]byte(pw)); err != nil {
			t.Errorf("password %q refused: %v", pw, err)
		}
	}
	for _, tc := range []struct {
		u  *User
		pw string
	}{{u, "p3"}, {u, ""}, {mustUser(t, "off >p1"), "p1"}, {mustUser(t, "on"), ""}, {nil, "x"}} {
		if err := tc.u.Authenticate([]byte(tc.pw)); !errors.Is(err, ErrWrongPass) {
			t.Errorf("password %q accepted: %v", tc.pw, err)
		}
	}
	if err := mustUser(t, "on nopass").Authenticate([]byte("anything")); err != nil {
		t.Errorf("nopass user refused: %v", err)
	}
	if !slices.Contains(u.Passwords, Hash([]byte("p1"))) || strings.Contains(u.Describe(), "p1 ") {
		t.Error("passwords are not kept hashed")
	}
}

func TestMatchAsRedis(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		ok   bool
	}{
		{"*", "", true}, {"*", "abc", true}, {"a*", "a", true}, {"a*c", "abbbc", true},
		{"a*c", "abbb", false}, {"?", "", false}, {"?", "x", true}, {"[abc]", "b", true},
		{"[a-c]", "d", false}, {"[c-a]", "b", true}, {"[^a]", "a", false}, {"[\\]]", "]", true},
		{"[abc", "b", true}, {"\\?", "?", true}, {"\\?", "x", false}, {"**a", "xa", true},
		{"*a*a*a*a*a*a*a*a*a*a*b", strings.Repeat("a", 60), false},
	} {
		if got := Match([]byte(tc.p), []byte(tc.s)); got != tc.ok {
			t.Errorf("Match(%q, %q) = %v", tc.p, tc.s, got)
		}
	}
}

func TestTable(t *testing.T) {
	tb := NewTable()
	if u, ok := tb.User("default"); !ok || !u.NoPass || !u.On {
		t.Fatal("a new table's default user is not on nopass")
	}
	t2, err := tb.SetUser("bob", [][]byte{[]byte("on"), []byte(">pw"), []byte("~*"), []byte("+get")})
	if err != nil || t2.Version != 1 {
		t.Fatalf("setuser: %v v%d", err, t2.Version)
	}
	if _, ok := tb.User("bob"); ok {
		t.Fatal("SetUser changed the old table")
	}
	if _, err := t2.SetUser("b b", nil); err == nil || err.Error() != "Usernames can't contain spaces or null characters" {
		t.Errorf("bad name: %v", err)
	}
	back, err := Unmarshal(t2.Marshal())
	if err != nil || back.Version != 1 || !slices.Equal(back.Names(), []string{"bob", "default"}) {
		t.Fatalf("round trip: %v %v", err, back)
	}
	if u, _ := back.User("bob"); u.Line() != "user bob on sanitize-payload #"+Hash([]byte("pw"))+" ~* resetchannels -@all +get" {
		t.Errorf("bob: %q", u.Line())
	}
	if _, _, err := back.DelUsers([]string{"bob", "default"}); err == nil || err.Error() != "The 'default' user cannot be removed" {
		t.Errorf("deleting default: %v", err)
	}
	t3, n, err := back.DelUsers([]string{"bob", "nobody"})
	if err != nil || n != 1 || t3.Version != 2 {
		t.Errorf("deluser: %v %d v%d", err, n, t3.Version)
	}
	if _, err := Unmarshal([]byte(`{"version":3,"users":{"x":"bogus"}}`)); err == nil {
		t.Error("a table with an unreadable user was accepted")
	}
}

func TestCategories(t *testing.T) {
	if len(Categories) != 21 || Categories[0] != "keyspace" || Categories[20] != "scripting" {
		t.Errorf("categories: %v", Categories)
	}
	names, ok := CommandsIn("keyspace")
	if !ok || !slices.Contains(names, "del") || slices.Contains(names, "get") {
		t.Errorf("keyspace: %v", names)
	}
	if _, ok := CommandsIn("nosuch"); ok {
		t.Error("an unknown category was listed")
	}
	// Every command a client may send is in a category, and is fast or slow.
	for _, s := range command.Specs() {
		cats := CategoriesOf(s.Name)
		if !slices.Contains(cats, "fast") && !slices.Contains(cats, "slow") {
			t.Errorf("%s: categories %v are neither fast nor slow", s.Name, cats)
		}
	}
}
