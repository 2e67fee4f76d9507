package statemachine

import (
	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/resp"
)

// OpFlush empties a data partition (FLUSHALL and FLUSHDB send it to every
// partition): its keys and collections, at once, in one entry. It is
// refused while the partition's transaction tables hold anything (read
// from the entry's state, so every replica decides alike): a prepared
// transaction's intents were computed on the keys the flush would remove,
// and committing them after it would order the transaction both before
// and after the flush. The edge retries until the deadline.
const OpFlush = "kintsu.flush"

// ErrFlushLocked is the flush's answer while transactions hold locks.
const ErrFlushLocked = "TRYAGAIN a transaction holds keys of this partition; FLUSHALL was not applied to it"

type flushOp struct{}

func init() {
	command.Register(&command.Spec{Name: OpFlush, Arity: 1, Flags: command.Internal | command.Write, Category: command.CatInternal, Impl: flushOp{}})
}

func isFlushOp(spec *command.Spec) bool {
	_, ok := spec.Impl.(flushOp)
	return ok
}

func applyFlush(w Store, out []byte) ([]byte, error) {
	empty, err := w.TxnEmpty()
	if err != nil || !empty {
		return resp.AppendError(out, ErrFlushLocked), err
	}
	return resp.AppendSimple(out, "OK"), w.ClearData()
}
