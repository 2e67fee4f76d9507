package statemachine

import (
	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/failure"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/txn"
)

// applyData is the state machine of a data partition: transaction
// operations, and plain commands unless a transaction's lock stands in
// their way (then the command is refused and the proposer resolves the
// lock and retries).
func applyData(w Store, spec *command.Spec, args [][]byte, out []byte) ([]byte, error) {
	if w.Restoring() && clientWrite(spec) {
		return failure.AppendSignal(out, failure.Loading, nil), nil
	}
	switch {
	case spec == nil && txn.IsOp(args[0]):
		// Any "txn." name is the transaction package's, which answers
		// BADOP to one it does not know, as every earlier version did.
		return txn.Apply(w, args, out)
	case spec == nil:
	case txn.Owns(spec):
		return txn.Apply(w, args, out)
	case isBackupOp(spec):
		return applyBackupOp(w, args, out)
	case isFlushOp(spec):
		return applyFlush(w, out)
	}
	if c := kv.Of(spec); c != nil && c.CheckArity(args) {
		if txn.ForeignArgs(w, spec, args) {
			w.Refuse()
			return failure.AppendSignal(out, failure.WrongGroup, nil), nil
		}
		holders, err := txn.Blocked(w, spec, args)
		if err != nil {
			return out, err
		}
		if len(holders) > 0 {
			w.Refuse()
			return txn.LockedReply(out, holders), nil
		}
	}
	return kv.Exec(w, spec, args, out)
}

// clientWrite reports whether spec is a write a client asked for: a plain
// write, or a transaction taking its locks.
func clientWrite(spec *command.Spec) bool {
	return spec != nil && (txn.ClientWrite(spec) || kv.Of(spec) != nil && spec.Is(command.Write) || isFlushOp(spec))
}
