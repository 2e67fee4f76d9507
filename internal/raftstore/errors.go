package raftstore

import (
	"errors"
	"fmt"
)

// Sentinel errors. The front end maps them to Redis replies.
var (
	// ErrNotLeader: the local replica is not the leader; nothing was
	// proposed, so any retry is safe. See NotLeaderError for the hint.
	ErrNotLeader = errors.New("not the partition leader")
	// ErrLeaderChanged: the command was proposed but the leader lost its
	// role before it applied. It may or may not apply; retrying with the
	// same (origin, seq) is safe and returns the one true outcome.
	ErrLeaderChanged = errors.New("leader changed while the command was in flight")
	// ErrUnknownOutcome: the deadline passed after the command was handed
	// to raft; it may or may not have been applied.
	ErrUnknownOutcome = errors.New("the outcome of the write is unknown")
	// ErrNoGroup: this node hosts no replica of the group.
	ErrNoGroup = errors.New("no local replica of the partition")
	// ErrBusy: too many requests are waiting; nothing was proposed.
	ErrBusy = errors.New("too many requests in flight")
	// ErrStopped: the engine is shutting down.
	ErrStopped = errors.New("node is shutting down")
	// ErrEmptyCommand: a request without arguments; nothing was proposed.
	ErrEmptyCommand = errors.New("empty command")
	// ErrSuperseded: a retry with the same (origin, seq) replaced this wait.
	ErrSuperseded = errors.New("request superseded by a retry")
)

// NotLeaderError carries the node the local replica believes leads.
type NotLeaderError struct {
	Group  uint64
	Leader uint64 // node id, 0 when unknown
}

func (e *NotLeaderError) Error() string {
	return fmt.Sprintf("group %d: not the leader (leader node %d)", e.Group, e.Leader)
}

func (e *NotLeaderError) Unwrap() error { return ErrNotLeader }
