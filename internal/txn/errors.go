package txn

import "errors"

// The coordinator's typed errors: each says whether anything may have
// been applied. The RESP edge words them for clients.

// GaveUpError: the transaction kept meeting conflicting transactions
// until its attempts or its deadline ran out; nothing was applied.
type GaveUpError struct{ Attempts int }

func (e *GaveUpError) Error() string { return "transaction gave up after conflicts" }

// AbortedError: a participant could not be prepared or read, so no COMMIT
// was sent; nothing was applied. Cause is that partition's failure (nil:
// no answer).
type AbortedError struct {
	Group uint64
	Cause error
}

func (e *AbortedError) Error() string { return "transaction could not reach a partition" }
func (e *AbortedError) Unwrap() error { return e.Cause }

// DecisionUnknownError: the COMMIT may have applied, and its record could
// not be read back: the transaction may or may not have been applied.
type DecisionUnknownError struct{ Group uint64 }

func (e *DecisionUnknownError) Error() string { return "transaction decision unknown" }

// InternalError: an answer the protocol does not allow (a bug).
type InternalError struct{ Msg string }

func (e *InternalError) Error() string { return "internal transaction error: " + e.Msg }

// ErrCrossMSETNX: MSETNX across partitions only runs alone, where its
// all-or-nothing condition becomes the transaction's decision; the edge
// refuses it while queuing inside MULTI.
var ErrCrossMSETNX = errors.New("MSETNX across partitions inside MULTI")
