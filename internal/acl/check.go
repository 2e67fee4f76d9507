package acl

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"

	"github.com/kintsu/kintsu/internal/command"
)

// ErrNoAuth: the connection has not authenticated and the default user
// needs a password. Redis: -NOAUTH Authentication required.
var ErrNoAuth = errors.New("authentication required")

// ErrWrongPass: no such user, a wrong password, or the user is off.
// Redis: -WRONGPASS invalid username-password pair or user is disabled.
var ErrWrongPass = errors.New("invalid username-password pair or user is disabled")

// CommandDeniedError: the user may not run the command.
type CommandDeniedError struct{ User, Command string }

func (e *CommandDeniedError) Error() string {
	return fmt.Sprintf("User %s has no permissions to run the '%s' command", e.User, e.Command)
}

// KeyDeniedError: the user may not access one of the command's keys.
type KeyDeniedError struct{ User string }

func (e *KeyDeniedError) Error() string { return "No permissions to access a key" }

// Authenticate checks a password against the user: nil when the user is
// on and nopass or one of its hashes matches; ErrWrongPass otherwise.
// Every hash is compared, in constant time, so the time taken says
// nothing about which one matched or how much of it.
func (u *User) Authenticate(password []byte) error {
	if u == nil || !u.On {
		return ErrWrongPass
	}
	if u.NoPass {
		return nil
	}
	h := []byte(Hash(password))
	ok := 0
	for _, p := range u.Passwords {
		ok |= subtle.ConstantTimeCompare(h, []byte(p))
	}
	if ok == 1 {
		return nil
	}
	return ErrWrongPass
}

// noAuth reports whether a command runs before authentication and for
// every user (Redis's no-auth commands).
func noAuth(name string) bool { return name == "auth" || name == "hello" || name == "quit" }

// NoAuth reports whether the command may run on a connection that has
// not authenticated.
func NoAuth(spec *command.Spec) bool { return noAuth(spec.Name) }

// CanRun reports whether the user may run the command of that full name
// (see FullName), whatever its keys.
func (u *User) CanRun(full string) bool {
	parent, _, _ := strings.Cut(full, "|")
	if noAuth(parent) {
		return true
	}
	allowed := u.AllCommands
	for _, r := range u.Rules {
		name := r[1:]
		var hit bool
		switch {
		case name[0] == '@':
			hit = inCategory(full, name[1:])
		default:
			hit = name == full || name == parent
		}
		if hit {
			allowed = r[0] == '+'
		}
	}
	return allowed
}

// Allowed checks the user may run the decoded command c: the command by
// its rules, then each key by the user's patterns for the access the
// command makes. It answers nil, *CommandDeniedError or *KeyDeniedError.
func (u *User) Allowed(c *command.Cmd) error {
	if u.AllCommands && len(u.Rules) == 0 && u.AllKeys {
		return nil // the common case, kept off the rule walk
	}
	full := FullName(c.Spec, c.Args)
	if !u.CanRun(full) {
		return &CommandDeniedError{User: u.Name, Command: full}
	}
	if u.AllKeys || len(c.Keys) == 0 {
		return nil
	}
	need := keyAccess(c)
	for _, i := range c.Keys {
		if !u.CanAccessKey(c.Args[i], need) {
			return &KeyDeniedError{User: u.Name}
		}
	}
	return nil
}

// CanAccessKey reports whether a pattern of the user grants the access
// need (permRead, permWrite, both or none) to key.
func (u *User) CanAccessKey(key []byte, need uint8) bool {
	if u.AllKeys {
		return true
	}
	for _, k := range u.Keys {
		if k.Perm&need == need && Match([]byte(k.Pattern), key) {
			return true
		}
	}
	return false
}

// keyAccess is the access a command makes to its keys, as Redis's key
// specs say: commands that return the value read it (ACCESS), commands
// that change it write it; EXISTS and STRLEN-like probes of existence
// need only a pattern that names the key.
func keyAccess(c *command.Cmd) uint8 {
	switch c.Spec.Name {
	case "exists":
		return 0
	case "getset", "incr", "decr", "incrby", "decrby":
		return permRead | permWrite
	case "set":
		for _, a := range c.Args[3:] {
			if strings.EqualFold(string(a), "get") {
				return permRead | permWrite
			}
		}
	}
	if c.Spec.Is(command.Write) {
		return permWrite
	}
	return permRead
}

// AllowsCategory reports whether the user may run every command of the
// category (the admin API asks it of @admin).
func (u *User) AllowsCategory(cat string) bool {
	names, ok := CommandsIn(cat)
	if !ok {
		return false
	}
	for _, n := range names {
		if !u.CanRun(n) {
			return false
		}
	}
	return true
}
