package failure

import (
	"context"
	"errors"
	"sync/atomic"
)

// ErrNotRun is a read left unserved because the replies already built for
// its connection spent their ReplyBudget. It certainly had no effect: the
// edge writes the replies it holds, then runs the read again.
var ErrNotRun = errors.New("not run: reply budget spent")

// ReplyTooLargeError is a read whose reply would be too big to be sent
// between nodes; it is refused on every node alike. Nothing was applied.
type ReplyTooLargeError struct {
	Bytes int // the reply's size, or as much of it as was built
	Limit int // the largest reply a forward carries
}

func (e *ReplyTooLargeError) Error() string { return "reply too large to forward" }

// ReplyBudget bounds the bytes of replies a connection builds before it
// writes them. Reads draw on it as they are served; once it is spent the
// rest of a batch is answered ErrNotRun. The first read drawing on a fresh
// budget always runs, whatever its size, so every round makes progress.
//
// Invariant: the bytes drawn exceed the budget by at most the replies of
// reads that started while some budget was left (one per lane running at
// once).
type ReplyBudget struct {
	left  atomic.Int64
	drawn atomic.Bool
}

// NewReplyBudget returns a budget of n bytes.
func NewReplyBudget(n int64) *ReplyBudget {
	b := &ReplyBudget{}
	b.left.Store(n)
	return b
}

// CanStart reports whether another read may run: the budget has bytes
// left, or nothing was drawn yet.
func (b *ReplyBudget) CanStart() bool {
	return b == nil || b.left.Load() > 0 || !b.drawn.Load()
}

// Draw spends n bytes of replies already built.
func (b *ReplyBudget) Draw(n int) {
	if b == nil {
		return
	}
	b.drawn.Store(true)
	b.left.Add(-int64(n))
}

type budgetKey struct{}

// WithReplyBudget returns ctx carrying b, for the reads served under it.
func WithReplyBudget(ctx context.Context, b *ReplyBudget) context.Context {
	if b == nil {
		return ctx
	}
	return context.WithValue(ctx, budgetKey{}, b)
}

// ReplyBudgetOf is ctx's reply budget; nil (no limit) when it has none.
func ReplyBudgetOf(ctx context.Context) *ReplyBudget {
	b, _ := ctx.Value(budgetKey{}).(*ReplyBudget)
	return b
}
