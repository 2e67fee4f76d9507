package failure

import "errors"

// NoLeaderError: no reachable leader served the request; nothing was
// applied. Read says it was a read.
type NoLeaderError struct {
	Group uint64
	Read  bool
}

func (e *NoLeaderError) Error() string { return "no reachable leader" }

// BusyError: the node refused the request before proposing it (overload);
// nothing was applied.
type BusyError struct{}

func (*BusyError) Error() string { return "node overloaded" }

// LockedError: the keys stayed locked by a transaction still in progress
// until the request's deadline; nothing was applied. Read says it was a
// read.
type LockedError struct{ Read bool }

func (e *LockedError) Error() string { return "locked by a transaction in progress" }

// UncertainError: a write that may or may not have been applied (its
// attempt reached raft, and no answer came before the deadline).
type UncertainError struct {
	Group  uint64
	Reason string
}

func (e *UncertainError) Error() string { return "outcome unknown: " + e.Reason }

// EngineError: the serving node's engine failed the request (stopping,
// a storage failure); it may have applied.
type EngineError struct{ Msg string }

func (e *EngineError) Error() string { return e.Msg }

// NoSpaceError: the leader's disk is below its reserve, so it refused
// the write before proposing it; nothing was applied. Msg says which node
// and how much space is left.
type NoSpaceError struct{ Msg string }

func (e *NoSpaceError) Error() string { return e.Msg }

// NotApplied reports whether err says the request certainly had no
// effect, so retrying it is safe.
func NotApplied(err error) bool {
	var (
		nl *NoLeaderError
		b  *BusyError
		l  *LockedError
	)
	var ld *LoadingError
	var ns *NoSpaceError
	var wg *WrongGroupError
	return errors.As(err, &nl) || errors.As(err, &b) || errors.As(err, &l) || errors.As(err, &ld) || errors.As(err, &ns) || errors.As(err, &wg)
}
