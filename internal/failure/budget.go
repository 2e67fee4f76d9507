package failure

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
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

// ReplyCap bounds the bytes of replies one command builds across all the
// reads it makes (a transaction's shares in several partitions): once
// they pass it, the next reads are refused with ReplyTooLargeError.
type ReplyCap struct {
	limit int
	left  atomic.Int64
}

// NewReplyCap returns a cap of n bytes.
func NewReplyCap(n int) *ReplyCap {
	c := &ReplyCap{limit: n}
	c.left.Store(int64(n))
	return c
}

// Limit is the cap's size.
func (c *ReplyCap) Limit() int { return c.limit }

// Left is how many bytes the command may still build; a nil cap has no
// limit (the largest int).
func (c *ReplyCap) Left() int {
	if c == nil {
		return int(^uint(0) >> 1)
	}
	return int(max(c.left.Load(), 0))
}

// Spend counts n bytes of replies built; it returns the refusal once the
// cap is passed.
func (c *ReplyCap) Spend(n int) error {
	if c == nil {
		return nil
	}
	if left := c.left.Add(-int64(n)); left < 0 {
		return &ReplyTooLargeError{Bytes: c.limit - int(left), Limit: c.limit}
	}
	return nil
}

type capKey struct{}

// WithReplyCap returns ctx carrying c, for every read made under it.
func WithReplyCap(ctx context.Context, c *ReplyCap) context.Context {
	return context.WithValue(ctx, capKey{}, c)
}

// ReplyCapOf is ctx's reply cap; nil (no cap) when it has none.
func ReplyCapOf(ctx context.Context) *ReplyCap {
	c, _ := ctx.Value(capKey{}).(*ReplyCap)
	return c
}

type attemptKey struct{}

// WithAttemptTime returns ctx asking that one try at one node may last d
// (a script's run) rather than the router's usual bound.
func WithAttemptTime(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, attemptKey{}, d)
}

// AttemptTime is how long one try made under ctx may last: def, or
// longer if ctx asks for it.
func AttemptTime(ctx context.Context, def time.Duration) time.Duration {
	if d, ok := ctx.Value(attemptKey{}).(time.Duration); ok && d > def {
		return d
	}
	return def
}
