package raftstore_test

import (
	"math"
	"slices"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/kintsu/kintsu/internal/raftstore"
)

// FuzzPeerFrames drives arbitrary peer frames into one node of a live
// three-node cluster and checks, after each, that every node still runs,
// the group still takes writes, and every replica holds every write
// acknowledged so far (nothing lost, no replica destroyed).
//
// The frame's sender is any node but the one hosting the group's leader:
// the node 0, a stranger (99), a cluster node outside the group (4), or a
// follower's node speaking as anyone. A frame in the leader's own name is
// the leader's word, which raft must take (a leader may replace a
// follower's uncommitted entries); keeping others from using that name is
// the transport's certificate check. The seeds are the audit's vectors,
// so plain `go test` runs them as a regression.
func FuzzPeerFrames(f *testing.F) {
	c := newCluster(f, 3, 1, nil)
	keys := 0
	c.checkServing(f, 0, &keys)
	l, fs := c.roles(0)
	lid := status(f, l, 0).ReplicaID
	term := status(f, l, 0).Term
	ids := map[uint64]uint64{} // node -> replica id
	for _, n := range c.nodes {
		ids[n.id] = status(f, n, 0).ReplicaID
	}
	target := func(n *testNode) uint8 { return uint8(n.id - 1) } // nodes 1..3, sorted
	const (
		sZero, sStranger, sOutside, sFollower1, sFollower2 = iota, iota, iota, iota, iota
	)
	add := func(m *pb.Message, group uint64, to *testNode, sender uint8, removed bool) {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, group, target(to), sender, removed)
	}
	f0, f1 := fs[0], fs[1]
	// Term overflow: a heartbeat of term 2^64-1 claiming the leader's id,
	// from a stranger and from a follower.
	for _, s := range []uint8{sStranger, sFollower2} {
		add(msg(pb.MsgHeartbeat, lid, ids[f0.id], math.MaxUint64), 0, f0, s, false)
	}
	add(msg(pb.MsgHeartbeat, ids[f1.id], ids[l.id], math.MaxUint64), 0, l, sFollower2, false)
	add(msg(pb.MsgPreVote, ids[f1.id], ids[f0.id], math.MaxUint64), 0, f0, sFollower2, false)
	// Huge and merely large terms.
	for _, tm := range []uint64{raftstore.MaxTerm + 1, term + raftstore.MaxTermJump + 1, term + 1000, term + 1} {
		add(msg(pb.MsgHeartbeat, ids[f1.id], ids[f0.id], tm), 0, f0, sFollower2, false)
		add(msg(pb.MsgApp, ids[f0.id], ids[l.id], tm), 0, l, sFollower1, false)
	}
	// A removal notice to each replica; a leader's message to a higher id.
	for _, n := range c.nodes {
		for _, s := range []uint8{sStranger, sFollower1, sFollower2} {
			add(&pb.Message{To: new(ids[n.id])}, 0, n, s, true)
		}
		add(msg(pb.MsgHeartbeat, lid, ids[n.id]+1, term), 0, n, sFollower1, false)
		add(msg(pb.MsgApp, lid, ids[n.id]+7, term), 0, n, sStranger, false)
	}
	// MsgSnap outside the snapshot stream, with no snapshot or garbage.
	add(msg(pb.MsgSnap, lid, ids[f0.id], term), 0, f0, sStranger, false)
	garbage := msg(pb.MsgSnap, lid, ids[f0.id], term)
	garbage.Snapshot = &pb.Snapshot{Data: []byte("not a snapshot"), Metadata: &pb.SnapshotMetadata{Index: new(uint64(1 << 40))}}
	add(garbage, 0, f0, sFollower2, false)
	// Zero ids, unknown groups, local kinds, malformed appends and reads.
	add(msg(pb.MsgHeartbeat, 0, ids[f0.id], term), 0, f0, sFollower2, false)
	add(msg(pb.MsgHeartbeat, lid, 0, term), 0, f0, sFollower2, false)
	add(msg(pb.MsgApp, lid, 3, term), 7, f0, sOutside, false)
	add(msg(pb.MsgHeartbeat, 2, 1, 1), 1<<32, f0, sStranger, false)
	add(msg(pb.MsgHup, ids[f1.id], ids[f0.id], term), 0, f0, sFollower2, false)
	add(msg(pb.MsgReadIndex, ids[f0.id], ids[l.id], term), 0, l, sFollower1, false)
	add(msg(pb.MsgTimeoutNow, ids[f1.id], ids[f0.id], term), 0, f0, sFollower2, false)
	add(msg(pb.MsgTransferLeader, ids[f0.id], ids[l.id], term), 0, l, sFollower1, false)
	commit := msg(pb.MsgHeartbeat, ids[f1.id], ids[f0.id], term)
	commit.Commit = new(uint64(1 << 40))
	add(commit, 0, f0, sFollower2, false)
	ack := msg(pb.MsgAppResp, ids[f0.id], ids[l.id], term)
	ack.Index = new(uint64(1 << 40))
	add(ack, 0, l, sFollower1, false)
	reads := msg(pb.MsgHeartbeatResp, ids[f0.id], ids[l.id], term)
	reads.Context = []byte{0, 0, 0, 0, 0, 1, 0, 0}
	add(reads, 0, l, sFollower1, false)
	gap := msg(pb.MsgApp, ids[f1.id], ids[f0.id], term+1)
	gap.Index, gap.LogTerm = new(uint64(5)), new(term)
	gap.Entries = []*pb.Entry{{Index: new(uint64(1)), Term: new(term + 1), Type: pb.EntryConfChangeV2.Enum(), Data: []byte{0xff}}}
	add(gap, 0, f0, sFollower2, false)
	f.Add([]byte{0xff, 0x01, 0x02}, uint64(0), uint8(0), uint8(sStranger), false)

	f.Fuzz(func(t *testing.T, raw []byte, group uint64, to, sender uint8, removed bool) {
		c.t = t
		defer func() { c.t = f }()
		var m *pb.Message
		if len(raw) > 0 {
			m = &pb.Message{}
			if proto.Unmarshal(raw, m) != nil {
				m = nil
			}
		}
		l := c.leader(0)
		var nodes, followers []uint64
		for id := range c.nodes {
			nodes = append(nodes, id)
			if id != l.id {
				followers = append(followers, id)
			}
		}
		slices.Sort(nodes)
		slices.Sort(followers)
		senders := append([]uint64{0, 99, 4}, followers...)
		tgt := c.nodes[nodes[int(to)%len(nodes)]]
		from := senders[int(sender)%len(senders)]
		tgt.eng.HandleRaft([]raftstore.Envelope{{Group: group, From: from, Removed: removed, Msg: m}})
		barrier(t, tgt, 0)
		c.checkServing(t, 0, &keys)
	})
}
