package statemachine

import (
	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/failure"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/resp"
	"github.com/kintsu/kintsu/internal/script"
	"github.com/kintsu/kintsu/internal/txn"
)

// OpKeyCount asks a partition for its number of keys (DBSIZE sums them);
// the node that serves the read answers it from its replica's count. On
// the wire it is DBSIZE itself, as earlier versions send it (nodes of two
// versions forward reads to each other during a rolling upgrade).
const OpKeyCount = "dbsize"

// IsKeyCount reports whether args is OpKeyCount, exactly as sent.
func IsKeyCount(args [][]byte) bool {
	return len(args) == 1 && string(args[0]) == OpKeyCount
}

// Read evaluates a read (spec its one lookup) against a group's applied
// state. r must not change while it runs (a snapshot): a multi-key read,
// or a lock check and the read after it, must not see an entry applied
// halfway through. A read that meets a transaction's write lock answers
// the lock's holders instead (txn.LockedReply); the caller resolves them
// and reads again. An error is a storage failure.
func Read(r txn.Reader, group uint64, spec *command.Spec, args [][]byte) ([]byte, error) {
	if spec != nil && script.Owns(spec) {
		return script.Serve(r, args)
	}
	if spec != nil && txn.Owns(spec) && spec.Is(command.ReadOnly) {
		return txn.Read(r, args, nil)
	}
	c := kv.Of(spec)
	if c == nil || c.Writes() || !c.CheckArity(args) {
		return resp.AppendError(nil, "ERR not a read command"), nil
	}
	if group != MetaGroup {
		if txn.ForeignArgs(r, spec, args) {
			return failure.AppendSignal(nil, failure.WrongGroup, nil), nil
		}
		holders, err := txn.Blocked(r, spec, args)
		if err != nil {
			return nil, err
		}
		if len(holders) > 0 {
			return txn.LockedReply(nil, holders), nil
		}
	}
	return c.Read(r, args, nil)
}
