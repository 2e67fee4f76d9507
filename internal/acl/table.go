package acl

import (
	"encoding/json"
	"fmt"
	"slices"
)

// MaxUsers bounds the users a cluster keeps.
const MaxUsers = 1024

// Table is the cluster's users at one version, as the metadata group
// stores them: each user by its description. The default user is always
// there (Default when the table never named it). A Table is never
// modified once published: changes make a new one.
type Table struct {
	// Version counts the changes applied; it only grows.
	Version uint64
	users   map[string]*User
}

// NewTable is the table of a cluster that configured no users.
func NewTable() *Table { return &Table{users: map[string]*User{DefaultName: Default()}} }

// User finds a user by name.
func (t *Table) User(name string) (*User, bool) {
	u, ok := t.users[name]
	return u, ok
}

// Names lists the users by name, sorted (ACL USERS, ACL LIST).
func (t *Table) Names() []string {
	names := make([]string, 0, len(t.users))
	for n := range t.users {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// SetUser applies rules to a user (created as New when missing) and
// returns the new table; t is unchanged. Errors are *RuleError or a
// limit.
func (t *Table) SetUser(name string, rules [][]byte) (*Table, error) {
	if !ValidName([]byte(name)) {
		return t, ErrBadName
	}
	u, ok := t.users[name]
	if !ok {
		if len(t.users) >= MaxUsers {
			return t, fmt.Errorf("at most %d users", MaxUsers)
		}
		u = New(name)
	}
	nu, err := u.Apply(rules)
	if err != nil {
		return t, err
	}
	n := t.next()
	n.users[name] = nu
	return n, nil
}

// ErrBadName: Redis's refusal of a user name.
var ErrBadName = fmt.Errorf("Usernames can't contain spaces or null characters")

// ErrDelDefault: Redis's refusal to delete the default user.
var ErrDelDefault = fmt.Errorf("The 'default' user cannot be removed")

// DelUsers deletes users and answers how many existed; the default user
// cannot be deleted (and then nothing is).
func (t *Table) DelUsers(names []string) (*Table, int, error) {
	if slices.Contains(names, DefaultName) {
		return t, 0, ErrDelDefault
	}
	n := t.next()
	deleted := 0
	for _, name := range names {
		if _, ok := n.users[name]; ok {
			delete(n.users, name)
			deleted++
		}
	}
	return n, deleted, nil
}

func (t *Table) next() *Table {
	n := &Table{Version: t.Version + 1, users: make(map[string]*User, len(t.users)+1)}
	for k, v := range t.users {
		n.users[k] = v
	}
	return n
}

type tableJSON struct {
	Version uint64            `json:"version"`
	Users   map[string]string `json:"users"` // name -> description
}

// Marshal encodes the table for the metadata group.
func (t *Table) Marshal() []byte {
	j := tableJSON{Version: t.Version, Users: map[string]string{}}
	for name, u := range t.users {
		j.Users[name] = u.Describe()
	}
	b, _ := json.Marshal(j)
	return b
}

// Unmarshal decodes a stored table. A user whose description does not
// parse makes the whole table fail: a node must never guess permissions.
func Unmarshal(b []byte) (*Table, error) {
	var j tableJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("acl table: %w", err)
	}
	t := &Table{Version: j.Version, users: map[string]*User{}}
	for name, d := range j.Users {
		u, err := Parse(name, d)
		if err != nil {
			return nil, fmt.Errorf("acl table: user %q: %w", name, err)
		}
		t.users[name] = u
	}
	if _, ok := t.users[DefaultName]; !ok {
		t.users[DefaultName] = Default()
	}
	return t, nil
}

// WithDefaultPassword is t with the default user requiring the password
// of that hash when t's default user has none (nopass): how a node
// started with a password file enforces it before, and whatever, the
// cluster's users say. t is unchanged.
func (t *Table) WithDefaultPassword(hash string) *Table {
	d := t.users[DefaultName]
	if hash == "" || d == nil || !d.NoPass {
		return t
	}
	n := &Table{Version: t.Version, users: make(map[string]*User, len(t.users))}
	for k, v := range t.users {
		n.users[k] = v
	}
	nd := d.Clone()
	nd.NoPass, nd.Passwords = false, []string{hash}
	n.users[DefaultName] = nd
	return n
}

// RequiresPassword reports whether a connection must authenticate
// before it runs commands: the default user is off or has a password.
func (t *Table) RequiresPassword() bool {
	d := t.users[DefaultName]
	return d == nil || !d.On || !d.NoPass
}
