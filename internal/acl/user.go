package acl

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
)

// Key permissions of a pattern: %R~ reads, %W~ writes, ~ both.
const (
	permRead  uint8 = 1
	permWrite uint8 = 2
	permAll         = permRead | permWrite
)

// KeyPattern is one ~pattern (or %R~ / %W~) of a user.
type KeyPattern struct {
	Pattern string
	Perm    uint8
}

// User is one ACL user. The zero value is not a user: start from New or
// Default.
type User struct {
	Name string
	On   bool
	// NoPass: any password (or none) authenticates; Passwords is empty.
	NoPass       bool
	SkipSanitize bool     // skip-sanitize-payload (kept for Redis parity; Kintsu has no RESTORE)
	Passwords    []string // SHA-256 hex, in the order added
	// AllCommands is the base the command rules start from: +@all when
	// set, -@all otherwise. Rules are the later command rules, lower
	// case, at most one per name, in order: "+get", "-@write",
	// "+acl|whoami".
	AllCommands bool
	Rules       []string
	AllKeys     bool
	Keys        []KeyPattern
	AllChannels bool
	Channels    []string
}

// New is a user as ACL SETUSER creates it before its rules: off, no
// password, no commands, no keys, no channels (Redis 7's defaults).
func New(name string) *User { return &User{Name: name} }

// DefaultName is the user every connection starts as.
const DefaultName = "default"

// Default is the default user of a cluster where none was configured:
// on, nopass, all keys, all channels, all commands (Redis's default).
func Default() *User {
	return &User{Name: DefaultName, On: true, NoPass: true, AllCommands: true, AllKeys: true, AllChannels: true}
}

// Clone copies u deeply.
func (u *User) Clone() *User {
	c := *u
	c.Passwords = slices.Clone(u.Passwords)
	c.Rules = slices.Clone(u.Rules)
	c.Keys = slices.Clone(u.Keys)
	c.Channels = slices.Clone(u.Channels)
	return &c
}

// Hash is a password's hash as ACL users keep it: SHA-256, lower-case hex.
func Hash(password []byte) string {
	h := sha256.Sum256(password)
	return hex.EncodeToString(h[:])
}

// RuleError is a refused ACL SETUSER rule; nothing of the SETUSER was
// applied.
type RuleError struct {
	Rule string
	Msg  string
}

func (e *RuleError) Error() string {
	return fmt.Sprintf("Error in ACL SETUSER modifier '%s': %s", e.Rule, e.Msg)
}

// Redis's reasons for refusing a rule (acl.c, ACLSetUserStringError).
const (
	msgUnknown    = "Unknown command or category name in ACL"
	msgSyntax     = "Syntax error"
	msgAfterKeys  = "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns"
	msgAfterChans = "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels"
	msgNoSuchPass = "The password you are trying to remove from the user does not exist"
	msgBadHash    = "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters"
	msgFirstArg   = "Allowing first-arg of a subcommand is not supported"
	msgSelectors  = "Selectors are not supported by Kintsu"
)

// Limits on what one user may hold, so the users every node keeps stay
// small: the rules of one SETUSER, and a user's description.
const (
	MaxRules       = 1024
	MaxDescription = 8 << 10
)

// Apply applies ACL SETUSER rules to a copy of u and returns it; on the
// first bad rule it returns u's unchanged self and the error.
func (u *User) Apply(rules [][]byte) (*User, error) {
	if len(rules) > MaxRules {
		return u, &RuleError{Rule: string(rules[MaxRules]), Msg: fmt.Sprintf("at most %d rules at once", MaxRules)}
	}
	n := u.Clone()
	for _, r := range rules {
		if msg := n.apply(r); msg != "" {
			return u, &RuleError{Rule: string(r), Msg: msg}
		}
	}
	if d := n.Describe(); len(d) > MaxDescription {
		return u, &RuleError{Rule: string(rules[len(rules)-1]), Msg: fmt.Sprintf("the user's rules would exceed %d bytes", MaxDescription)}
	}
	return n, nil
}

// ApplyStrings is Apply for rules given as strings.
func (u *User) ApplyStrings(rules ...string) (*User, error) {
	b := make([][]byte, len(rules))
	for i, r := range rules {
		b[i] = []byte(r)
	}
	return u.Apply(b)
}

// apply applies one rule, answering Redis's reason when it is refused.
func (u *User) apply(op []byte) string {
	if len(op) == 0 {
		return "" // Redis: an empty rule does nothing
	}
	switch strings.ToLower(string(op)) {
	case "on":
		u.On = true
		return ""
	case "off":
		u.On = false
		return ""
	case "skip-sanitize-payload":
		u.SkipSanitize = true
		return ""
	case "sanitize-payload":
		u.SkipSanitize = false
		return ""
	case "nopass":
		u.NoPass, u.Passwords = true, nil
		return ""
	case "resetpass":
		u.NoPass, u.Passwords = false, nil
		return ""
	case "clearselectors":
		return ""
	case "reset":
		*u = User{Name: u.Name}
		return ""
	}
	switch op[0] {
	case '>', '#':
		h := string(op[1:])
		if op[0] == '>' {
			h = Hash(op[1:])
		} else if !validHash(h) {
			return msgBadHash
		}
		if !slices.Contains(u.Passwords, h) {
			u.Passwords = append(u.Passwords, h)
		}
		u.NoPass = false
		return ""
	case '<', '!':
		h := string(op[1:])
		if op[0] == '<' {
			h = Hash(op[1:])
		} else if !validHash(h) {
			return msgBadHash
		}
		i := slices.Index(u.Passwords, h)
		if i < 0 {
			return msgNoSuchPass
		}
		u.Passwords = slices.Delete(u.Passwords, i, i+1)
		return ""
	case '(':
		return msgSelectors
	}
	return u.applySelector(op)
}

// applySelector applies a rule about commands, keys or channels.
func (u *User) applySelector(op []byte) string {
	switch strings.ToLower(string(op)) {
	case "allkeys", "~*":
		u.AllKeys, u.Keys = true, nil
		return ""
	case "resetkeys":
		u.AllKeys, u.Keys = false, nil
		return ""
	case "allchannels", "&*":
		u.AllChannels, u.Channels = true, nil
		return ""
	case "resetchannels":
		u.AllChannels, u.Channels = false, nil
		return ""
	case "allcommands", "+@all":
		u.AllCommands, u.Rules = true, nil
		return ""
	case "nocommands", "-@all":
		u.AllCommands, u.Rules = false, nil
		return ""
	}
	switch {
	case op[0] == '~' || op[0] == '%':
		return u.addKeyPattern(op)
	case op[0] == '&':
		if u.AllChannels {
			return msgAfterChans
		}
		if hasSpaces(op[1:]) {
			return msgSyntax
		}
		if p := string(op[1:]); !slices.Contains(u.Channels, p) {
			u.Channels = append(u.Channels, p)
		}
		u.AllChannels = false
		return ""
	case (op[0] == '+' || op[0] == '-') && len(op) > 1 && op[1] == '@':
		cat := strings.ToLower(string(op[2:]))
		if !slices.Contains(Categories, cat) {
			return msgUnknown
		}
		u.addRule(op[0], "@"+cat)
		return ""
	case op[0] == '+' || op[0] == '-':
		name := strings.ToLower(string(op[1:]))
		parent, sub, isSub := strings.Cut(name, "|")
		switch {
		case !isSub:
			if !Known(name) {
				return msgUnknown
			}
		case !Known(parent):
			return msgUnknown
		case strings.Contains(parent, "|"):
			return msgFirstArg
		case sub == "":
			return msgSyntax
		case !Known(name):
			// Redis would let a first argument of a command without
			// subcommands through (a use it deprecates); Kintsu does not.
			return msgUnknown
		}
		u.addRule(op[0], name)
		return ""
	}
	return msgSyntax
}

// addRule appends a command rule, dropping earlier rules of the same
// name, and of its subcommands (as Redis's command_rules do).
func (u *User) addRule(sign byte, name string) {
	u.Rules = slices.DeleteFunc(u.Rules, func(r string) bool {
		return r[1:] == name || strings.HasPrefix(r[1:], name+"|")
	})
	u.Rules = append(u.Rules, string(sign)+name)
}

func (u *User) addKeyPattern(op []byte) string {
	if u.AllKeys {
		return msgAfterKeys
	}
	perm, off := permAll, 1
	if op[0] == '%' {
		perm = 0
		for off = 1; off < len(op); off++ {
			c := op[off]
			switch {
			case (c == 'R' || c == 'r') && perm&permRead == 0:
				perm |= permRead
				continue
			case (c == 'W' || c == 'w') && perm&permWrite == 0:
				perm |= permWrite
				continue
			case c == '~' && perm != 0:
				off++
			default:
				return msgSyntax
			}
			break
		}
		if perm == 0 || off > len(op) || op[off-1] != '~' {
			return msgSyntax
		}
	}
	pat := op[off:]
	if hasSpaces(pat) {
		return msgSyntax
	}
	for i := range u.Keys {
		if u.Keys[i].Pattern == string(pat) {
			u.Keys[i].Perm |= perm
			return ""
		}
	}
	u.Keys = append(u.Keys, KeyPattern{Pattern: string(pat), Perm: perm})
	return ""
}

func hasSpaces(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\v', '\f', '\r', 0:
			return true
		}
	}
	return false
}

func validHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	for _, c := range []byte(h) {
		if (c < 'a' || c > 'f') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// ValidName reports whether a user name is acceptable (Redis: no spaces,
// no NUL bytes).
func ValidName(name []byte) bool { return len(name) > 0 && !hasSpaces(name) }
