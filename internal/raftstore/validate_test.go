package raftstore_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/storage"
	"github.com/kintsu/kintsu/internal/transport"
)

// barrier returns once n's loop has handled everything queued for it
// before the call and published the status that follows: the loop takes
// messages before functions, publishes status at the end of the cycle,
// and a membership change of an unknown kind is refused without effect.
// The second call runs in a later cycle than the first.
func barrier(t testing.TB, n *testNode, group uint64) {
	t.Helper()
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := n.eng.ChangeReplicas(ctx, group, raftstore.ChangeKind(99), 9)
		expired := ctx.Err() != nil
		cancel()
		if err == nil || expired {
			t.Fatalf("barrier on node %d: %v", n.id, err)
		}
	}
}

// roles returns the group's leader and its followers, sorted by node id.
func (c *cluster) roles(group uint64) (*testNode, []*testNode) {
	l := c.leader(group)
	var fs []*testNode
	for id := uint64(1); id <= 16; id++ {
		if n := c.nodes[id]; n != nil && n != l {
			fs = append(fs, n)
		}
	}
	return l, fs
}

func status(t testing.TB, n *testNode, group uint64) raftstore.GroupStatus {
	t.Helper()
	st, ok := n.eng.GroupStatus(group)
	if !ok {
		t.Fatalf("node %d hosts no replica of group %d", n.id, group)
	}
	return st
}

func msg(typ pb.MessageType, from, to, term uint64) *pb.Message {
	return &pb.Message{Type: typ.Enum(), From: new(from), To: new(to), Term: new(term)}
}

// checkServing fails unless every node runs, a write succeeds, and every
// replica holds every key written so far (keys k0..k{n-1}).
func (c *cluster) checkServing(t testing.TB, group uint64, n *int) {
	t.Helper()
	for _, nd := range c.nodes {
		if err := nd.eng.Err(); err != nil {
			t.Fatalf("node %d stopped: %v", nd.id, err)
		}
	}
	key := fmt.Sprint("k", *n)
	if r, err := c.write(group, 3, "set", key, "v"); err != nil || r != "+OK\r\n" {
		t.Fatalf("set %s: %q, %v", key, r, err)
	}
	*n++
	for _, nd := range c.nodes {
		waitFor(t, fmt.Sprintf("node %d to hold all %d keys", nd.id, *n), 10*time.Second, func() bool {
			st, ok := nd.eng.GroupStatus(group)
			return ok && st.Keys == int64(*n) && localGet(t, nd, group, key) == bulk("v")
		})
	}
}

// A term near 2^64 from a member (here: the leader's own replica id and
// node) is refused, never saved, so no replica overflows its term when it
// campaigns; a jump of more than MaxTermJump too. Before, nodes panicked
// with "term should be set when sending MsgPreVote".
func TestImplausibleTermsRefused(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	keys := 0
	c.checkServing(t, 0, &keys)
	l, fs := c.roles(0)
	lid := status(t, l, 0).ReplicaID
	for _, f := range fs {
		st := status(t, f, 0)
		for _, term := range []uint64{math.MaxUint64, raftstore.MaxTerm + 1, st.Term + raftstore.MaxTermJump + 1} {
			f.eng.HandleRaft([]raftstore.Envelope{
				{Group: 0, From: l.id, Msg: msg(pb.MsgHeartbeat, lid, st.ReplicaID, term)},
				{Group: 0, From: l.id, Msg: msg(pb.MsgPreVote, lid, st.ReplicaID, term)},
			})
		}
		barrier(t, f, 0)
		if got := status(t, f, 0).Term; got > st.Term+raftstore.MaxTermJump {
			t.Fatalf("node %d took term %d", f.id, got)
		}
	}
	// Elections: every replica campaigns from its own term.
	c.stop(l.id)
	c.checkServing(t, 0, &keys)
	for _, n := range c.nodes {
		if term := status(t, n, 0).Term; term > 100 {
			t.Fatalf("node %d at term %d after an election", n.id, term)
		}
	}
}

// A replica whose saved term is implausible (older versions saved any
// term a peer sent) refuses to load, with an error naming the group,
// instead of panicking when it campaigns.
func TestPoisonedSavedTermRefusesStart(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	keys := 0
	c.checkServing(t, 0, &keys)
	dir := c.nodes[3].dir
	c.stop(3)
	db, err := storage.Open(storage.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	rlog, err := raftstore.OpenLog(nil, dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rlog.Close()
	hs, err := rlog.HardState(0)
	if err != nil {
		t.Fatal(err)
	}
	hs.Term = new(uint64(math.MaxUint64))
	batch := rlog.NewBatch()
	batch.SetHardState(0, hs)
	if err := rlog.Commit(batch, true); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	eng, err := raftstore.New(raftstore.Config{NodeID: 3, TickInterval: 10 * time.Millisecond, Apply: applyKV, Logger: logger}, db, rlog, transport.New(3, logger))
	if err != nil {
		t.Fatal(err)
	}
	err = eng.LoadAll()
	if err == nil {
		t.Fatal("a replica with a saved term of 2^64-1 was loaded")
	}
	if !strings.Contains(err.Error(), "group 0") || !strings.Contains(err.Error(), "term") {
		t.Fatalf("error does not say which group and why: %v", err)
	}
}

// No peer's word destroys a replica: removal notices from every other
// member to every replica, and a leader's message to a higher replica id
// on every node, leave the group whole (a notice counts only as the
// answer to the replica's own question). Before, each destroyed the
// replica.
func TestOnePeerCannotDestroyAReplica(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	keys := 0
	for range 5 {
		c.checkServing(t, 0, &keys)
	}
	l, _ := c.roles(0)
	lid := status(t, l, 0).ReplicaID
	for _, n := range c.nodes {
		st := status(t, n, 0)
		var envs []raftstore.Envelope
		for _, o := range c.nodes {
			if o != n {
				envs = append(envs,
					raftstore.Envelope{Group: 0, From: o.id, Removed: true, Msg: &pb.Message{To: new(st.ReplicaID)}},
					raftstore.Envelope{Group: 0, From: o.id, Removed: true, Msg: &pb.Message{To: new(st.ReplicaID), RejectHint: new(uint64(12345))}})
			}
		}
		envs = append(envs,
			raftstore.Envelope{Group: 0, From: l.id, Msg: msg(pb.MsgHeartbeat, lid, st.ReplicaID+10, st.Term)},
			raftstore.Envelope{Group: 0, From: l.id, Msg: msg(pb.MsgApp, lid, st.ReplicaID+10, st.Term)})
		n.eng.HandleRaft(envs)
		barrier(t, n, 0)
	}
	for _, n := range c.nodes {
		if !n.eng.HasGroup(0) {
			t.Fatalf("node %d destroyed its replica on one peer's word", n.id)
		}
	}
	c.checkServing(t, 0, &keys)
}

// A message counts only from the node its sending replica lives on, and a
// member cannot pass off another replica id as a newly added member.
// Before, either moved the follower to a new term.
func TestSenderMustBeItsReplicasNode(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	keys := 0
	c.checkServing(t, 0, &keys)
	l, fs := c.roles(0)
	lid := status(t, l, 0).ReplicaID
	f, other := fs[0], fs[1]
	st := status(t, f, 0)
	f.eng.HandleRaft([]raftstore.Envelope{
		{Group: 0, From: other.id, Msg: msg(pb.MsgHeartbeat, lid, st.ReplicaID, st.Term+1)},
		{Group: 0, From: 99, Msg: msg(pb.MsgHeartbeat, lid, st.ReplicaID, st.Term+1)},
		{Group: 0, From: other.id, Msg: msg(pb.MsgHeartbeat, 42, st.ReplicaID, st.Term+1)},
	})
	barrier(t, f, 0)
	if got := status(t, f, 0).Term; got != st.Term {
		t.Fatalf("forged heartbeats moved node %d from term %d to %d", f.id, st.Term, got)
	}
	c.checkServing(t, 0, &keys)
}

// Messages raft would panic on, or that only a group's leader may send,
// are refused: a commit past the follower's log, an append whose entries
// do not follow its index, a garbage conf change, a follower claiming to
// lead the current term. Before, the first three stopped the node.
func TestMalformedPeerMessagesRefused(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	keys := 0
	c.checkServing(t, 0, &keys)
	l, fs := c.roles(0)
	lid := status(t, l, 0).ReplicaID
	f, other := fs[0], fs[1]
	st := status(t, f, 0)
	oid := status(t, other, 0).ReplicaID

	hb := msg(pb.MsgHeartbeat, lid, st.ReplicaID, st.Term)
	hb.Commit = new(uint64(1 << 40))
	gap := msg(pb.MsgApp, lid, st.ReplicaID, st.Term)
	gap.Index, gap.LogTerm = new(st.CommitIndex), new(st.Term)
	gap.Entries = []*pb.Entry{{Index: new(uint64(1)), Term: new(st.Term)}}
	last := st.CommitIndex
	cc := msg(pb.MsgApp, lid, st.ReplicaID, st.Term)
	cc.Index, cc.LogTerm, cc.Commit = new(last), new(st.Term), new(last+1)
	cc.Entries = []*pb.Entry{{Index: new(last + 1), Term: new(st.Term), Type: pb.EntryConfChangeV2.Enum(), Data: []byte{0xff, 0xff, 0xff}}}
	usurp := msg(pb.MsgHeartbeat, oid, st.ReplicaID, st.Term)
	for _, m := range []*pb.Message{hb, gap, cc, usurp} {
		from := l.id
		if m == usurp {
			from = other.id
		}
		f.eng.HandleRaft([]raftstore.Envelope{{Group: 0, From: from, Msg: m}})
		barrier(t, f, 0)
		if err := f.eng.Err(); err != nil {
			t.Fatalf("after %v: node %d stopped: %v", m.GetType(), f.id, err)
		}
	}
	if got := status(t, f, 0); got.LeaderNode != l.id {
		t.Fatalf("node %d follows node %d, not the leader %d", f.id, got.LeaderNode, l.id)
	}
	c.checkServing(t, 0, &keys)
}

// A replica removed while cut off never hears of its removal; when its
// node is added again under a new id, the old replica checks with the
// group, is destroyed once the other members confirm, and the new one is
// built from a snapshot.
func TestReAddAfterRemovalWhileCutOff(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	keys := 0
	for range 5 {
		c.checkServing(t, 0, &keys)
	}
	c.addNode(4)
	c.change(0, raftstore.AddLearner, 4)
	c.change(0, raftstore.PromoteLearner, 4)
	waitFor(t, "node 1 not to lead", 10*time.Second, func() bool {
		l := c.leader(0)
		if l.id == 1 {
			l.eng.TransferGroupLeader(0, 2)
		}
		return l.id != 1
	})
	old := status(t, c.nodes[1], 0).ReplicaID
	cut := func(on bool) {
		for id, n := range c.nodes {
			switch {
			case !on:
				n.tr.SetCut(nil)
			case id == 1:
				n.tr.SetCut([]uint64{2, 3, 4})
			default:
				n.tr.SetCut([]uint64{1})
			}
		}
	}
	cut(true)
	c.change(0, raftstore.RemoveReplica, 1)
	c.checkServingOn(t, 0, &keys, 2, 3, 4)
	cut(false)
	c.change(0, raftstore.AddLearner, 1)
	n1 := c.nodes[1]
	waitFor(t, "node 1 to hold a new replica with the data", 10*time.Second, func() bool {
		st, ok := n1.eng.GroupStatus(0)
		return ok && st.ReplicaID > old && st.Keys == int64(keys)
	})
	c.change(0, raftstore.PromoteLearner, 1)
	c.checkServing(t, 0, &keys)
}

// A member that lagged while another node's replica was removed and
// added back under a new id follows that new replica once it leads.
// Before, the lagging replica refused every message from an id its
// descriptor did not know on a node it mapped to an older id, and stayed
// behind for good (the simulator's seed 1844).
func TestFollowsALeaderAddedBackWhileLagging(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	keys := 0
	c.checkServing(t, 0, &keys)
	c.addNode(4)
	c.change(0, raftstore.AddLearner, 4)
	c.change(0, raftstore.PromoteLearner, 4)
	c.moveLeader(t, 0, 3)
	isolate := func(id uint64, on bool) {
		for nid, n := range c.nodes {
			switch {
			case !on:
				n.tr.SetCut(nil)
			case nid == id:
				n.tr.SetCut([]uint64{1, 2, 3, 4})
			default:
				n.tr.SetCut([]uint64{id})
			}
		}
	}
	isolate(1, true)
	old := status(t, c.nodes[2], 0).ReplicaID
	c.change(0, raftstore.RemoveReplica, 2)
	// With node 1 away, no majority of the voters node 2 knows can confirm
	// its removal: the control plane's hint from the leader drops it.
	lst := status(t, c.leader(0), 0)
	c.nodes[2].eng.DestroyIfRemoved(0, lst.NextID, lst.MemberIDs)
	c.change(0, raftstore.AddLearner, 2)
	waitFor(t, "node 2 to hold a new replica with the data", 10*time.Second, func() bool {
		st, ok := c.nodes[2].eng.GroupStatus(0)
		return ok && st.ReplicaID > old && st.Keys == int64(keys)
	})
	c.change(0, raftstore.PromoteLearner, 2)
	c.moveLeader(t, 0, 2)
	c.checkServingOn(t, 0, &keys, 2, 3, 4)
	isolate(1, false)
	waitFor(t, "node 1 to follow node 2's new replica", 15*time.Second, func() bool {
		st, ok := c.nodes[1].eng.GroupStatus(0)
		return ok && st.LeaderNode == 2 && st.Keys == int64(keys)
	})
	c.checkServing(t, 0, &keys)
}

// moveLeader hands group's leadership to node to, asking until it leads
// (a transfer is refused while the target catches up).
func (c *cluster) moveLeader(t testing.TB, group, to uint64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("node %d to lead group %d", to, group), 15*time.Second, func() bool {
		l := c.leader(group)
		if l.id != to {
			l.eng.TransferGroupLeader(group, to)
		}
		return l.id == to
	})
}

// checkServingOn is checkServing for the given nodes only.
func (c *cluster) checkServingOn(t testing.TB, group uint64, n *int, ids ...uint64) {
	t.Helper()
	key := fmt.Sprint("k", *n)
	if r, err := c.write(group, 3, "set", key, "v"); err != nil || r != "+OK\r\n" {
		t.Fatalf("set %s: %q, %v", key, r, err)
	}
	*n++
	for _, id := range ids {
		nd := c.nodes[id]
		waitFor(t, fmt.Sprintf("node %d to hold all %d keys", nd.id, *n), 10*time.Second, func() bool {
			st, ok := nd.eng.GroupStatus(group)
			return ok && st.Keys == int64(*n)
		})
	}
}

// A follower's heartbeat answer confirms the leader's pending reads only
// with a context the leader sent: raft slices its pending reads by the
// confirmed position, and a position beyond them panics. The leader is
// cut off from its followers so that only forged answers arrive; the read
// then fails as a read without a quorum must. Before, the node stopped.
func TestForgedReadConfirmationsRefused(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	keys := 0
	c.checkServing(t, 0, &keys)
	l, fs := c.roles(0)
	lst := status(t, l, 0)
	l.tr.SetCut([]uint64{fs[0].id, fs[1].id})
	for _, f := range fs {
		f.tr.SetCut([]uint64{l.id})
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		done <- l.eng.ReadBarrier(ctx, 0)
	}()
	forge := time.NewTicker(5 * time.Millisecond)
	defer forge.Stop()
	for {
		select {
		case err := <-done:
			if err == nil {
				t.Fatal("a leader cut off from its followers served a read confirmed by forged heartbeat answers")
			}
			if err := l.eng.Err(); err != nil {
				t.Fatalf("forged heartbeat answers stopped the leader's node: %v", err)
			}
			return
		case <-forge.C:
			var envs []raftstore.Envelope
			for _, f := range fs {
				m := msg(pb.MsgHeartbeatResp, status(t, f, 0).ReplicaID, lst.ReplicaID, lst.Term)
				m.Context = []byte{0, 0, 0, 0, 0, 1, 0, 0} // far ahead of any read
				envs = append(envs, raftstore.Envelope{Group: 0, From: f.id, Msg: m})
			}
			l.eng.HandleRaft(envs)
		}
	}
}

// Leaders' messages for groups a node does not host create empty replicas
// only up to a bound: a flood of them cannot grow the node without limit.
// Before, every one created a replica.
func TestEmptyReplicasBounded(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	n := c.nodes[1]
	var envs []raftstore.Envelope
	for g := uint64(1000); g < 1200; g++ {
		envs = append(envs, raftstore.Envelope{Group: g, From: 2, Msg: msg(pb.MsgHeartbeat, 2, 5, 1)})
	}
	n.eng.HandleRaft(envs)
	barrier(t, n, 0)
	if got := len(n.eng.Status()) - 1; got > 64 {
		t.Fatalf("%d empty replicas created for unknown groups", got)
	}
	keys := 0
	c.checkServing(t, 0, &keys)
}

// A leader's message from a node that is not a member of the cluster
// creates no replica: a certified stranger must not leave empty replicas
// with made-up ids behind, which would stand in the way of the replicas
// placement adds later. A member's still does.
func TestNoReplicaForANonMembersLeaderMessage(t *testing.T) {
	c := newCluster(t, 3, 1, func(cfg *raftstore.Config) {
		cfg.IsMember = func(node uint64) bool { return node >= 1 && node <= 3 }
	})
	n := c.nodes[1]
	n.eng.HandleRaft([]raftstore.Envelope{{Group: 500, From: 99, Msg: msg(pb.MsgHeartbeat, 2, 12, 1)}})
	barrier(t, n, 0)
	if got := len(n.eng.Status()); got != 1 {
		t.Fatalf("%d replicas after a non-member's leader message, want 1 (the group's own)", got)
	}
	n.eng.HandleRaft([]raftstore.Envelope{{Group: 501, From: 2, Msg: msg(pb.MsgHeartbeat, 2, 5, 1)}})
	barrier(t, n, 0)
	if got := len(n.eng.Status()); got != 2 {
		t.Fatalf("%d replicas after a member's leader message, want 2", got)
	}
}

// An empty replica (waiting for its first snapshot) whose creating leader
// was removed, and its node added back under a new id that now leads,
// takes that id once the old one is silent; while it still hears the old
// one, the node cannot pass off a second id.
func TestEmptyReplicaTakesItsLeaderNodesNewID(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	n := c.nodes[1]
	n.eng.HandleRaft([]raftstore.Envelope{
		{Group: 501, From: 2, Msg: msg(pb.MsgHeartbeat, 2, 5, 1)},
		{Group: 501, From: 2, Msg: msg(pb.MsgHeartbeat, 9, 5, 2)},
	})
	barrier(t, n, 0)
	if st := status(t, n, 501); st.Term != 1 {
		t.Fatalf("the empty replica is at term %d; a second id of its leader's node moved it while it heard the leader", st.Term)
	}
	waitFor(t, "the empty replica to follow its leader node's new id", 5*time.Second, func() bool {
		n.eng.HandleRaft([]raftstore.Envelope{{Group: 501, From: 2, Msg: msg(pb.MsgHeartbeat, 9, 5, 2)}})
		barrier(t, n, 0)
		return status(t, n, 501).Term == 2
	})
}
