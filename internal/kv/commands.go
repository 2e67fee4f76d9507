package kv

import "github.com/kintsu/kintsu/internal/command"

// Reader is the state a read command sees: stored values by user key, and
// the sub-keys of collections (collection.go).
type Reader interface {
	// Get returns the stored value of key, expired or not. The slice is
	// valid only until the next call.
	Get(key []byte) (stored []byte, ok bool, err error)
	// GetSub returns the value of sub-key sub of the collection stored at
	// key under version ver. The slice is valid only until the next call.
	GetSub(key []byte, ver uint64, sub []byte) (v []byte, ok bool, err error)
	// ScanSub calls fn with the sub-keys of collection (key, ver) and
	// their values in byte order, from the first at or after from (nil:
	// the first), or, reverse, in descending order from the last at or
	// before from (nil: the last), until fn returns false. The slices are
	// valid only during the call.
	ScanSub(key []byte, ver uint64, from []byte, reverse bool, fn func(sub, v []byte) bool) error
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
	// PutBlind stores a value without knowing whether the key existed: a
	// write that needs nothing of the old value saves reading it. The
	// group's key count then becomes an upper bound until counted again
	// (raftstore: DBSIZE counts on demand).
	PutBlind(key, stored []byte) error
	// Del removes a key that exists.
	Del(key []byte) error
	// PutSub and DelSub store and remove a sub-key of collection (key,
	// ver); they do not touch the key's metadata record.
	PutSub(key []byte, ver uint64, sub, v []byte) error
	DelSub(key []byte, ver uint64, sub []byte) error
	// NewVersion is the version of a new collection at key: greater than
	// every version still holding sub-keys under key (so none shows
	// through) and deterministic on every replica.
	NewVersion(key []byte) (uint64, error)
}

// Command is one data command: its Spec, and the code that evaluates it.
// Connection and server commands (PING, INFO, ...) are the edge's.
type Command struct {
	command.Spec

	read  func(r Reader, args [][]byte, out []byte) ([]byte, error)
	write func(w Writer, args [][]byte, out []byte) ([]byte, error)
}

type (
	readFunc  = func(r Reader, args [][]byte, out []byte) ([]byte, error)
	writeFunc = func(w Writer, args [][]byte, out []byte) ([]byte, error)
)

// reader and writer build the table's entries; key positions follow
// Redis's convention (first, last, step).
func reader(name string, arity, first, last, step int, f readFunc) *Command {
	return &Command{Spec: command.Spec{Name: name, Arity: arity, Flags: command.ReadOnly, FirstKey: first, LastKey: last, Step: step}, read: f}
}

func writer(name string, arity, first, last, step int, f writeFunc) *Command {
	return &Command{Spec: command.Spec{Name: name, Arity: arity, Flags: command.Write, FirstKey: first, LastKey: last, Step: step}, write: f}
}

// merging sets how the replies of the command's per-partition shares merge.
func (c *Command) merging(m command.Merge) *Command { c.Merge = m; return c }

// register adds data commands of one category to the command registry.
func register(cat command.Category, cmds ...*Command) {
	for _, c := range cmds {
		c.Category, c.Impl = cat, c
		command.Register(&c.Spec)
	}
}

// Of returns the data command behind spec, or nil when spec is not one.
func Of(spec *command.Spec) *Command {
	if spec == nil {
		return nil
	}
	c, _ := spec.Impl.(*Command)
	return c
}

// Lookup finds a data command by name, case-insensitively, or nil.
func Lookup(name []byte) *Command { return Of(command.Lookup(name)) }

// Writes reports whether the command changes data.
func (c *Command) Writes() bool { return c.Is(command.Write) }

// Read evaluates a read command and appends its reply to out.
func (c *Command) Read(r Reader, args [][]byte, out []byte) ([]byte, error) {
	return c.read(r, args, out)
}

// Apply evaluates a write command and appends its reply to out.
func (c *Command) Apply(w Writer, args [][]byte, out []byte) ([]byte, error) {
	return c.write(w, args, out)
}

// Exec evaluates the data command spec describes, read or write, from a
// log entry. The command was checked when it was proposed, but its arity
// is checked again so a bad entry can never panic a replica.
func Exec(w Writer, spec *command.Spec, args [][]byte, out []byte) ([]byte, error) {
	c := Of(spec)
	switch {
	case len(args) == 0:
		return appendErr(out, ErrSyntax), nil
	case c == nil:
		return appendErr(out, UnknownCommand(args)), nil
	case !c.CheckArity(args):
		return appendErr(out, WrongArity(c.Name)), nil
	case c.write != nil:
		return c.write(w, args, out)
	default:
		return c.read(w, args, out)
	}
}

// Apply looks a data command up and evaluates it (Exec): for callers that
// hold only the bytes.
func Apply(w Writer, args [][]byte, out []byte) ([]byte, error) {
	if len(args) == 0 {
		return appendErr(out, ErrSyntax), nil
	}
	return Exec(w, command.Lookup(args[0]), args, out)
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
