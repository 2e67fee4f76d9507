package raftstore

import (
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
)

// Envelope is a raft message addressed to a group.
type Envelope struct {
	Group uint64
	Msg   *pb.Message
	// From is the sending node, set by the receiving transport (a new
	// replica needs it to answer the leader that created it).
	From uint64
	// Removed: not a raft message but a notice that the receiver's replica
	// Msg.To of Group was removed from the group (see membership.go).
	Removed bool
	// Lease is the sending node's election timeout if it runs read
	// leases, 0 if not: it then holds back campaigns after answering a
	// lease round (Engine.PeerDown). A leader counts a voter's answer
	// toward its lease only when it says the leader's own election
	// timeout (lease.go), so a voter of an older version, or one run
	// without leases or with other timing, keeps its groups on quorum
	// reads instead of making their leases unsafe. The engine sets it on
	// every envelope it sends; transports carry it once per frame.
	Lease time.Duration
}

// Transport carries raft traffic between nodes. Implementations must not
// block the caller (the engine loop): they queue, and drop when a peer's
// queue is full — raft retransmits.
type Transport interface {
	// Send queues messages for node.
	Send(node uint64, msgs []Envelope)
	// SendSnapshot streams a snapshot to node in the background and calls
	// done with the outcome. done may be called from any goroutine.
	SendSnapshot(node uint64, env Envelope, src SnapshotSource, done func(error))
}

// SnapshotSource yields a snapshot's key-value pairs (storage keys). It is
// a consistent point-in-time view.
type SnapshotSource interface {
	Iterate(fn func(key, value []byte) error) error
}
