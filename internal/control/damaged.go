package control

import (
	"context"
	"fmt"
	"time"

	"github.com/kintsu/kintsu/internal/codec"
)

// A damaged replica (a node found a corrupt file holding its data and
// quarantined it, see server/quarantine.go) is replaced through the usual
// path: its node asks the group's leader to remove it by replica id, and
// the placement driver, seeing the group one voter short, adds a learner
// with a new id — on the same node when placement still wants it there —
// which the leader fills with a snapshot and placement promotes.
//
// Invariants:
//   - Only a node may ask for its own replica's removal (when peers are
//     authenticated, the caller's certificate names the node), and only by
//     id: a retried request never removes the replica that replaced it.
//   - Removing the damaged replica before its replacement is added is
//     safe and costs nothing: it neither votes nor acknowledges any more,
//     so the group's quorum already stands on its other replicas, which
//     hold every committed entry.

// MethodRemoveDamaged: group, node, replica id -> removes that replica of
// the caller's node, on the group's leader.
const MethodRemoveDamaged = "q"

// DamagedEngine is what serving MethodRemoveDamaged needs
// (*raftstore.Engine).
type DamagedEngine interface {
	RemoveDamaged(ctx context.Context, group, node, id uint64) error
}

// ServeRemoveDamaged answers MethodRemoveDamaged. caller is the calling
// node named by its certificate, 0 when peers are not authenticated.
func ServeRemoveDamaged(ctx context.Context, eng DamagedEngine, caller uint64, body []byte) ([]byte, error) {
	d := codec.NewDecoder(body)
	group, node, id := d.Uvarint(), d.Uvarint(), d.Uvarint()
	if d.Err() != nil || node == 0 || id == 0 {
		return nil, ErrMalformed
	}
	if caller != 0 && caller != node {
		return nil, fmt.Errorf("node %d may not remove a replica of node %d", caller, node)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return nil, eng.RemoveDamaged(ctx, group, node, id)
}

// GroupMembers is a group's membership as its leader reports it.
type GroupMembers struct {
	GroupState
	// IDs are the replica ids of its voters and learners.
	IDs []uint64
	// NextID is the next replica id the group will give.
	NextID uint64
	// Settled: the leader had applied all it committed, up to an entry
	// of its own term, with no membership change pending: its membership
	// holds every replica the group ever added.
	Settled bool
	// placed pairs nodes with replica ids.
	placed [][2]uint64
}

// ReplicaOn returns the id of node's replica, 0 if it has none (or the
// leader did not pair ids with nodes).
func (m GroupMembers) ReplicaOn(node uint64) uint64 {
	for _, p := range m.placed {
		if p[0] == node {
			return p[1]
		}
	}
	return 0
}

// AskGroup asks candidates, in order, for group's membership until one
// answers as its leader.
func AskGroup(ctx context.Context, c Caller, candidates []uint64, group uint64) (GroupMembers, bool) {
	for _, node := range candidates {
		gi, ok := askGroupInfo(ctx, c, group, node)
		if ok {
			return GroupMembers{GroupState: GroupState{Voters: gi.Voters, Learners: gi.Learners, Leader: gi.Leader}, IDs: gi.IDs, NextID: gi.NextID, Settled: gi.Settled, placed: gi.Placed}, true
		}
	}
	return GroupMembers{}, false
}

// RemoveDamaged has group's leader remove replica id of node.
func RemoveDamaged(ctx context.Context, c Caller, leader, group, node, id uint64) error {
	ctx, cancel := context.WithTimeout(ctx, 6*time.Second)
	defer cancel()
	_, err := c.Call(ctx, leader, MethodRemoveDamaged, codec.Encoder(nil).Uvarint(group).Uvarint(node).Uvarint(id))
	return err
}
