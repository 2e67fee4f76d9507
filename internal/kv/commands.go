package kv

// Reader is the state a read command sees: stored values by user key.
type Reader interface {
	// Get returns the stored value of key, expired or not. The slice is
	// valid only until the next call.
	Get(key []byte) (stored []byte, ok bool, err error)
	// NowMS is the time (Unix ms) keys expire against: in a log entry's
	// apply the entry's own time, the same on every replica; in a read the
	// serving leader's clock.
	NowMS() int64
}

// Writer is the state a write command changes. An error from it is a
// storage failure, never a user error; the caller must stop applying.
type Writer interface {
	Reader
	// Put stores a value; created says whether the key did not exist.
	Put(key, stored []byte, created bool) error
	// Del removes a key that exists.
	Del(key []byte) error
}

// Command describes one data command. Connection and server commands
// (PING, INFO, ...) are the front end's, not this table's.
type Command struct {
	Name  string // lower case, as Redis prints it in errors
	Arity int    // Redis convention: n > 0 exactly n args (with the name), n < 0 at least -n
	Write bool
	// Key positions, Redis's convention: first, last (negative counts from the end), step.
	FirstKey, LastKey, Step int

	read  func(r Reader, args [][]byte, out []byte) ([]byte, error)
	write func(w Writer, args [][]byte, out []byte) ([]byte, error)
}

var table = map[string]*Command{}

func register(c *Command) { table[c.Name] = c }

// Lookup finds a data command by name, case-insensitively, or nil.
func Lookup(name []byte) *Command {
	if len(name) > 16 {
		return nil
	}
	var buf [16]byte
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return table[string(buf[:len(name)])]
}

// Names lists every data command, for COMMAND.
func Names() []string {
	out := make([]string, 0, len(table))
	for n := range table {
		out = append(out, n)
	}
	return out
}

// CheckArity reports whether args (name included) has an allowed count.
func (c *Command) CheckArity(args [][]byte) bool {
	n := len(args)
	if c.Arity > 0 && n != c.Arity || c.Arity < 0 && n < -c.Arity {
		return false
	}
	if c.Step > 1 && c.LastKey < 0 && (n-c.FirstKey)%c.Step != 0 {
		return false // MSET k v k: keys and values must pair up
	}
	return true
}

// KeyIndexes returns the positions of the keys in args. Arity must have
// been checked.
func (c *Command) KeyIndexes(args [][]byte) []int {
	if c.FirstKey == 0 {
		return nil
	}
	last := c.LastKey
	if last < 0 {
		last = len(args) + last
	}
	out := make([]int, 0, (last-c.FirstKey)/c.Step+1)
	for i := c.FirstKey; i <= last; i += c.Step {
		out = append(out, i)
	}
	return out
}

// Read evaluates a read command and appends its reply to out.
func (c *Command) Read(r Reader, args [][]byte, out []byte) ([]byte, error) {
	return c.read(r, args, out)
}

// Apply evaluates a write command and appends its reply to out.
func (c *Command) Apply(w Writer, args [][]byte, out []byte) ([]byte, error) {
	return c.write(w, args, out)
}

// Apply evaluates any data command from a log entry: the command was
// checked when it was proposed, but is checked again so a bad entry can
// never panic a replica.
func Apply(w Writer, args [][]byte, out []byte) ([]byte, error) {
	if len(args) == 0 {
		return appendErr(out, ErrSyntax), nil
	}
	c := Lookup(args[0])
	switch {
	case c == nil:
		return appendErr(out, UnknownCommand(args)), nil
	case !c.CheckArity(args):
		return appendErr(out, WrongArity(c.Name)), nil
	case c.Write:
		return c.write(w, args, out)
	default:
		return c.read(w, args, out)
	}
}

// equalFold compares ASCII case-insensitively, as Redis's strcasecmp does
// (Unicode folding would accept, e.g., the Kelvin sign as 'k'). s is lower case.
func equalFold(a []byte, s string) bool {
	if len(a) != len(s) {
		return false
	}
	for i, c := range a {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
