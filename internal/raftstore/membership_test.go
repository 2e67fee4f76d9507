package raftstore_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/storage"
)

// addNode starts an engine hosting nothing and tells every node its address.
func (c *cluster) addNode(id uint64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.t.Fatal(err)
	}
	c.addrs[id] = ln.Addr().String()
	for _, n := range c.nodes {
		n.tr.SetPeer(id, c.addrs[id])
	}
	groups := c.groups
	c.groups = nil // nothing to bootstrap on the new node
	c.start(id, c.t.TempDir(), ln, true)
	c.groups = groups
}

func (c *cluster) change(group uint64, kind raftstore.ChangeKind, node uint64) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		l := c.leader(group)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := l.eng.ChangeReplicas(ctx, group, kind, node)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s node %d in group %d: %v", kind, node, group, err)
		}
		if errors.Is(err, raftstore.ErrRemoveLeader) {
			l.eng.TransferLeadership(context.Background()) //nolint:errcheck // retried
		}
		time.Sleep(10 * time.Millisecond) // the learner catches up, or a new leader settles
	}
}

func groupStatus(n *testNode, group uint64) (raftstore.GroupStatus, bool) {
	for _, st := range n.eng.Status() {
		if st.Group == group {
			return st, true
		}
	}
	return raftstore.GroupStatus{}, false
}

// A replica moves from node 1 to a new node 4 — learner, snapshot,
// promotion, removal — while the group keeps its data; the removed
// replica's state is deleted and stale messages cannot bring it back; the
// new replica survives a restart.
func TestMoveReplicaToNewNode(t *testing.T) {
	c := newCluster(t, 3, 1, func(cfg *raftstore.Config) { cfg.TruncateAfter, cfg.TruncateKeep = 20, 5 })
	for i := 0; i < 50; i++ {
		if r, err := c.write(0, 7, "set", fmt.Sprint("k", i), fmt.Sprint("v", i)); err != nil || r != "+OK\r\n" {
			t.Fatalf("set k%d: %q, %v", i, r, err)
		}
	}
	c.addNode(4)
	n4 := c.nodes[4]

	c.change(0, raftstore.AddLearner, 4)
	waitFor(t, "node 4's learner to receive the data", 10*time.Second, func() bool {
		return n4.eng.HasGroup(0) && localGet(t, n4, 0, "k49") == bulk("v49")
	})
	st, _ := groupStatus(c.leader(0), 0)
	if !slices.Equal(st.Learners, []uint64{4}) || len(st.Nodes) != 3 {
		t.Fatalf("after adding a learner: voters %v, learners %v", st.Nodes, st.Learners)
	}
	c.change(0, raftstore.AddLearner, 4) // repeating a step is a no-op

	c.change(0, raftstore.PromoteLearner, 4)
	c.change(0, raftstore.RemoveReplica, 1)
	n1 := c.nodes[1]
	waitFor(t, "node 1's replica to be destroyed", 10*time.Second, func() bool { return !n1.eng.HasGroup(0) })
	if got := localGet(t, n1, 0, "k1"); got != "$-1\r\n" {
		t.Fatalf("node 1 still holds data of the group it left: %q", got)
	}
	st, _ = groupStatus(c.leader(0), 0)
	want := []uint64{2, 3, 4}
	got := slices.Clone(st.Nodes)
	slices.Sort(got)
	if !slices.Equal(got, want) || len(st.Learners) != 0 {
		t.Fatalf("after the move: voters %v, learners %v", st.Nodes, st.Learners)
	}

	// A leader's heartbeat to the removed replica id (1) does not recreate
	// it; the ChangeReplicas call after it is a barrier: the loop takes
	// messages before functions.
	n1.eng.HandleRaft([]raftstore.Envelope{{Group: 0, From: 2, Msg: &pb.Message{Type: pb.MsgHeartbeat.Enum(), To: new(uint64(1)), From: new(uint64(2)), Term: new(uint64(100))}}})
	if err := n1.eng.ChangeReplicas(context.Background(), 0, raftstore.AddLearner, 9); !errors.Is(err, raftstore.ErrNoGroup) {
		t.Fatalf("barrier: %v", err)
	}
	if n1.eng.HasGroup(0) {
		t.Fatal("a stale heartbeat recreated a destroyed replica")
	}

	for i := 50; i < 60; i++ {
		if r, err := c.write(0, 7, "set", fmt.Sprint("k", i), fmt.Sprint("v", i)); err != nil || r != "+OK\r\n" {
			t.Fatalf("set k%d after the move: %q, %v", i, r, err)
		}
	}
	dir := n4.dir
	c.stop(4)
	c.restart(4, dir)
	n4 = c.nodes[4]
	waitFor(t, "node 4 to serve after a restart", 10*time.Second, func() bool {
		return n4.eng.HasGroup(0) && localGet(t, n4, 0, "k59") == bulk("v59") && localGet(t, n4, 0, "k0") == bulk("v0")
	})
}

// One change at a time: a second concurrent change is refused at once
// (not left to time out), and a learner with no data is not promoted.
func TestOneChangeAtATimeAndNoEmptyPromotion(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	if r, err := c.write(0, 7, "set", "k", "v"); err != nil || r != "+OK\r\n" {
		t.Fatalf("set: %q, %v", r, err)
	}
	l := c.leader(0)
	// Node 9 has no address: a learner there never receives anything.
	errs := make(chan error, 2)
	for _, node := range []uint64{8, 9} {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			errs <- l.eng.ChangeReplicas(ctx, 0, raftstore.AddLearner, node)
		}()
	}
	var got []error
	for range 2 {
		got = append(got, <-errs)
	}
	ok, busy := 0, 0
	for _, err := range got {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, raftstore.ErrConfPending):
			busy++
		}
	}
	if ok < 1 || ok+busy != 2 {
		t.Fatalf("two concurrent changes: %v; want at least one done, the other refused as pending", got)
	}
	st, _ := groupStatus(l, 0)
	for _, node := range st.Learners {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := l.eng.ChangeReplicas(ctx, 0, raftstore.PromoteLearner, node)
		cancel()
		if !errors.Is(err, raftstore.ErrNotCaughtUp) {
			t.Fatalf("promoting learner on node %d that has nothing: %v", node, err)
		}
	}
}

// A node that crashed after applying its own removal but before deleting
// the replica finishes the removal when it starts again.
func TestRestartFinishesInterruptedRemoval(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	if r, err := c.write(0, 7, "set", "k", "v"); err != nil || r != "+OK\r\n" {
		t.Fatalf("set: %q, %v", r, err)
	}
	n3 := c.nodes[3]
	dir := n3.dir
	c.stop(3)
	// What the apply batch leaves on disk: a descriptor without node 3.
	db, err := storage.Open(storage.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	d := c.groups[0].Clone()
	id := d.ReplicaOn(3)
	d.Replicas = slices.DeleteFunc(d.Replicas, func(r storage.Replica) bool { return r.Node == 3 })
	if err := db.Set(storage.DescriptorKey(0), d.Encode(), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	c.restart(3, dir)
	if c.nodes[3].eng.HasGroup(0) {
		t.Fatal("the removed replica was loaded")
	}
	if got := localGet(t, c.nodes[3], 0, "k"); got != "$-1\r\n" {
		t.Fatalf("the removed replica's data is still there: %q", got)
	}
	b, ok, err := storage.Get(c.nodes[3].db, storage.TombstoneKey(0))
	if err != nil || !ok || binary.BigEndian.Uint64(b) < id {
		t.Fatalf("tombstone %x %v %v, want at least %d", b, ok, err, id)
	}
}

// When the leader's process dies its connections break, and a follower is
// elected at once instead of after the election timeout (here 2–4 s).
func TestLeaderCrashElectsAtOnce(t *testing.T) {
	c := newCluster(t, 3, 1, func(cfg *raftstore.Config) { cfg.ElectionTicks = 200 })
	old := c.settle(t)
	c.stop(old.id)
	stopped := time.Now()
	waitFor(t, "a new leader well within the election timeout", 1500*time.Millisecond, func() bool {
		for _, n := range c.nodes {
			if n.eng.Leader(0) == n.id {
				return true
			}
		}
		return false
	})
	t.Logf("new leader %v after the old one stopped", time.Since(stopped).Round(time.Millisecond))
}

// A replica that missed membership changes (its node was down) still
// votes for members added meanwhile: otherwise, with the leader gone, the
// group would have a quorum up and no leader.
func TestLaggingReplicaVotesForNewerMembers(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	if r, err := c.write(0, 7, "set", "k", "v"); err != nil || r != "+OK\r\n" {
		t.Fatalf("set: %q, %v", r, err)
	}
	// Node 1 goes down before the group changes.
	if c.leader(0).id == 1 {
		c.nodes[1].eng.TransferLeadership(context.Background()) //nolint:errcheck // checked below
	}
	waitFor(t, "node 1 not to lead", 5*time.Second, func() bool { return c.leader(0).id != 1 })
	dir1 := c.nodes[1].dir
	c.stop(1)
	// Node 4 replaces node 2; node 3 leads.
	c.addNode(4)
	c.change(0, raftstore.AddLearner, 4)
	c.change(0, raftstore.PromoteLearner, 4)
	// A transfer is refused while node 3 is catching up: ask until it leads.
	waitFor(t, "node 3 to lead", 15*time.Second, func() bool {
		l := c.leader(0)
		if l.id != 3 {
			l.eng.TransferGroupLeader(0, 3)
		}
		return l.id == 3
	})
	c.change(0, raftstore.RemoveReplica, 2)
	// Node 1 comes back, but the leader cannot reach it before it dies:
	// node 1 knows nothing of node 4's replica.
	c.nodes[3].tr.SetCut([]uint64{1})
	c.restart(1, dir1)
	c.stop(3)
	waitFor(t, "node 1 and node 4 to elect a leader", 15*time.Second, func() bool {
		for _, id := range []uint64{1, 4} {
			if n := c.nodes[id]; n != nil && n.eng.Leader(0) == id {
				return true
			}
		}
		return false
	})
	if r, err := c.write(0, 7, "set", "k2", "v2"); err != nil || r != "+OK\r\n" {
		t.Fatalf("set after the election: %q, %v", r, err)
	}
}
