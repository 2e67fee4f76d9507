package statemachine

import (
	"time"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/txn"
)

// MetaGroup is the raft group id of the metadata group; data partitions
// are numbered from 0.
const MetaGroup uint64 = 1 << 32

// Store is one group's state as a committed command changes it: the
// engine's apply batch (raftstore.Writer), or an in-memory twin in tests.
type Store interface {
	txn.Store
	// Index is the log index of the entry being applied.
	Index() uint64
	// Cut keeps a snapshot of the state after this entry and holds later
	// answers until Uncut or the lease ends (raftstore/cut.go).
	Cut(id string, lease time.Duration) error
	Uncut(id string) error
	// Restoring, SetRestoring: whether a restore is loading the group
	// (client writes are refused meanwhile).
	Restoring() bool
	SetRestoring(on bool)
	// HasKeys reports whether the group holds any user key.
	HasKeys() (bool, error)
	// ScanPrefix calls fn with the value of each user key that starts
	// with prefix, in key order, until fn returns false (the metadata
	// group's registry; not for data groups' keyspaces). The value is
	// valid only during the call.
	ScanPrefix(prefix []byte, fn func(v []byte) bool) error
	// TxnEmpty reports whether no transaction table holds anything.
	TxnEmpty() (bool, error)
	// Clear deletes the group's user data and transaction tables.
	Clear() error
	// ClearData deletes the group's user data (keys and collections'
	// sub-keys), not its transaction tables.
	ClearData() error
}

// Apply dispatches committed commands to the right state machine;
// spec is the command's one lookup (Classify).
func Apply(group uint64, w Store, spec *command.Spec, args [][]byte, out []byte) ([]byte, error) {
	if group == MetaGroup {
		return applyMeta(w, args, out)
	}
	return applyData(w, spec, args, out)
}

// Classify looks a committed command up, once, for its apply and its
// deduplication: replies of writes are kept; a read carried through the
// log can simply be evaluated again if retried.
func Classify(group uint64, args [][]byte) (*command.Spec, bool) {
	if len(args) == 0 {
		return nil, true
	}
	s := command.Lookup(args[0])
	if s != nil && s.Is(command.Internal) && kv.Of(s) == nil && string(args[0]) != s.Name {
		// Internal operations were always matched by their exact name;
		// any other spelling stays unknown, so every version of Kintsu
		// answers the same entry alike. (kv's kintsu.expired was a client
		// command once, looked up in any case, and still is.)
		s = nil
	}
	if group == MetaGroup {
		return s, true
	}
	return s, kv.Of(s) == nil || s.Is(command.Write)
}
