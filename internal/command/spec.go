package command

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
)

// Flags say how a command behaves, for routing, transactions and (later)
// ACLs.
type Flags uint16

const (
	// Write: the command changes data. It goes through the log, and its
	// reply is kept so a retry is answered without applying it twice.
	Write Flags = 1 << iota
	// ReadOnly: the command reads data and changes nothing.
	ReadOnly
	// Conn: the node that received the command answers it (PING, INFO,
	// CLUSTER, ...); it names no key and no partition.
	Conn
	// TxnControl: the command drives a transaction (MULTI, EXEC, DISCARD,
	// WATCH, UNWATCH) rather than joining one.
	TxnControl
	// Internal: written into the log by Kintsu itself (transaction
	// operations, expiry, backups, metadata). No client may send it.
	Internal
	// Admin: the command reveals or changes the cluster's configuration.
	Admin
	// Blocking: outside MULTI, the edge waits (up to the command's
	// timeout) until the command has something to pop, and then runs it;
	// applied from the log, or inside MULTI, it never blocks.
	Blocking
)

// Category groups commands as Redis's ACL categories do.
type Category uint8

const (
	CatNone Category = iota
	Keyspace
	String
	Connection
	Transaction
	Server
	Cluster
	CatInternal
	Hash
	Set
	List
	SortedSet
	Bitmap
	Scripting
	PubSub
)

var categoryNames = [...]string{"", "keyspace", "string", "connection", "transaction", "server", "cluster", "internal", "hash", "set", "list", "sortedset", "bitmap", "scripting", "pubsub"}

// String is the category's name as ACL rules spell it (without the @).
func (c Category) String() string {
	if int(c) < len(categoryNames) {
		return categoryNames[c]
	}
	return fmt.Sprintf("category(%d)", c)
}

// Merge says how the replies of a command's per-partition shares make the
// command's reply when its keys span partitions.
type Merge uint8

const (
	// MergeNone: the command cannot be split (single key, or keyless).
	MergeNone Merge = iota
	// MergeSum: integer replies add up (DEL, UNLINK, EXISTS).
	MergeSum
	// MergeByPosition: each share's array elements go back to the
	// positions of their keys (MGET).
	MergeByPosition
	// MergeAllOrNothing: 1 only if every share answers 1, else 0; a share
	// answering 0 vetoes the whole command (MSETNX). Such a command runs
	// alone, since its condition decides the transaction.
	MergeAllOrNothing
	// MergeFirst: every share answers the same (MSET: OK).
	MergeFirst
)

// Spec describes one command.
type Spec struct {
	Name  string // lower case, as Redis prints it in errors
	Arity int    // Redis's convention: n > 0 exactly n args (name included), n < 0 at least -n
	Flags Flags
	// Key positions, Redis's convention: first (0: no keys), last
	// (negative counts from the end), step.
	FirstKey, LastKey, Step int
	Category                Category
	Merge                   Merge
	// Impl is the owner's implementation (kv: its evaluator), handed back
	// to the owner with the Spec so that evaluation needs no second
	// lookup. This package never looks inside it.
	Impl any
	// NumKeys is the position of a count of keys that follow it
	// (ZUNIONSTORE dst NUMKEYS k..., LMPOP NUMKEYS k...), 0 if none: those
	// keys come after the FirstKey..LastKey ones. A count that is not a
	// positive integer names no keys (the command answers the error).
	NumKeys int
	// KeyAfter is an option word (SORT's "store") whose next argument is
	// a key too, wherever it comes after the FirstKey..LastKey ones.
	KeyAfter string
}

// HasKeys reports whether the command may name keys.
func (s *Spec) HasKeys() bool { return s.FirstKey > 0 || s.NumKeys > 0 }

// Is reports whether every flag of f is set.
func (s *Spec) Is(f Flags) bool { return s.Flags&f == f }

// CheckArity reports whether args (name included) has an allowed count.
func (s *Spec) CheckArity(args [][]byte) bool {
	return s.checkCount(args) && s.pairsUp(args)
}

// checkCount is the arity of the command table: how many arguments.
func (s *Spec) checkCount(args [][]byte) bool {
	n := len(args)
	return !(s.Arity > 0 && n != s.Arity || s.Arity < 0 && n < -s.Arity)
}

// pairsUp: MSET k v k — keys and values must pair up. Redis checks this
// when the command runs, not when it is queued in MULTI.
func (s *Spec) pairsUp(args [][]byte) bool {
	return !(s.Step > 1 && s.LastKey < 0 && (len(args)-s.FirstKey)%s.Step != 0)
}

// AppendKeys appends the positions of the keys in args to dst. The arity
// must have been checked.
func (s *Spec) AppendKeys(dst []int, args [][]byte) []int {
	if s.FirstKey > 0 {
		last := s.LastKey
		if last < 0 {
			last = len(args) + last
		}
		for i := s.FirstKey; i <= last; i += s.Step {
			dst = append(dst, i)
		}
	}
	if s.KeyAfter != "" {
		for i := max(s.FirstKey, s.LastKey) + 1; i < len(args)-1; i++ {
			if strings.EqualFold(string(args[i]), s.KeyAfter) {
				dst = append(dst, i+1)
				break
			}
		}
	}
	if s.NumKeys > 0 && s.NumKeys < len(args) {
		n, err := strconv.Atoi(string(args[s.NumKeys]))
		if err != nil || n < 1 {
			return dst
		}
		for i := s.NumKeys + 1; i <= s.NumKeys+n && i < len(args); i++ {
			dst = append(dst, i)
		}
	}
	return dst
}

// maxName bounds a registered name, so Lookup folds case on the stack.
const maxName = 32

var (
	table = map[string]*Spec{}
	// lookupHook, when set, sees every Lookup: tests count them.
	lookupHook atomic.Pointer[func(name []byte)]
)

// Register adds specs to the registry. It is called from init functions;
// a second spec of one name is a programming error and panics.
func Register(specs ...*Spec) {
	for _, s := range specs {
		switch {
		case s.Name == "" || len(s.Name) > maxName:
			panic(fmt.Sprintf("command: bad name %q", s.Name))
		case table[s.Name] != nil:
			panic(fmt.Sprintf("command: %q registered twice", s.Name))
		case s.Arity == 0:
			panic(fmt.Sprintf("command: %q has no arity", s.Name))
		case s.FirstKey > 0 && s.Step < 1:
			panic(fmt.Sprintf("command: %q has keys but no step", s.Name))
		}
		table[s.Name] = s
	}
}

// Lookup finds a command by name, case-insensitively, or nil. It finds
// internal commands too: the state machine applies them.
func Lookup(name []byte) *Spec {
	if h := lookupHook.Load(); h != nil {
		(*h)(name)
	}
	if len(name) > maxName {
		return nil
	}
	var buf [maxName]byte
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return table[string(buf[:len(name)])]
}

// OnLookup makes fn see every Lookup until the returned function is
// called; for tests that count lookups on the request path.
func OnLookup(fn func(name []byte)) (stop func()) {
	lookupHook.Store(&fn)
	return func() { lookupHook.Store(nil) }
}

// Specs lists the commands a client may send, sorted by name: what COMMAND
// shows.
func Specs() []*Spec {
	out := make([]*Spec, 0, len(table))
	for _, s := range table {
		if !s.Is(Internal) {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b *Spec) int { return strings.Compare(a.Name, b.Name) })
	return out
}
