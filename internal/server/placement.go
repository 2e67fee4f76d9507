package server

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/codec"
	"github.com/kintsu/kintsu/internal/control"
	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/ring"
	"github.com/kintsu/kintsu/internal/statemachine"
)

// The placement driver turns membership and liveness into replica moves.
// It runs on every node and acts only where the metadata group is led,
// once per heartbeat interval:
//
//  1. The eligible nodes are the members that are up or suspect (a
//     suspect node may only be paused: moving its replicas at once would
//     churn on every hiccup). Dead, draining and removed nodes are not.
//  2. The target of every partition is ring.Place over the eligible nodes
//     (consistent hashing: adding or losing a node moves about R·P/N
//     replicas), and the metadata group's is ring.MetaReplicas.
//  3. For each group, the actual replicas are asked of its leader, and
//     planStep picks at most one step: remove a learner that is not
//     wanted, promote a wanted learner, add a learner on a wanted node
//     that is up, hand leadership away from a replica about to go, or
//     remove a voter that is not wanted once every wanted node votes.
//     A replica is added before one is removed, so a group never has
//     fewer than R voters because of a move.
//  4. At most maxMoving groups have a learner at once (rate limit), and
//     each step is one raft conf change that ChangeReplicas applies whole.
//
// Invariants: the plan is recomputed from what raft says each round, so a
// crash of the driver, the source or the target leaves nothing to resume
// but the next round; replica ids come from the group's descriptor and are
// never reused. The partition table in the metadata records each group's
// replicas after raft applied them; it is what routing reads, never what
// decides.

// maxMoving bounds how many groups are gaining a replica at once.
const maxMoving = 4

// groupState is a group's membership as its leader reports it.
type groupState struct {
	voters, learners []uint64 // node ids
	leader           uint64
}

// step is one move: a membership change, or (kind 0) a leadership
// transfer to node.
type step struct {
	kind raftstore.ChangeKind
	node uint64
}

func (s step) String() string {
	if s.kind == 0 {
		return fmt.Sprintf("transfer leadership to node %d", s.node)
	}
	return fmt.Sprintf("%s node %d", s.kind, s.node)
}

// planStep picks the next step moving gs towards target; up says which
// nodes are up (a learner is only added on one). It is pure.
func planStep(gs groupState, target []uint64, up func(uint64) bool) (step, bool) {
	for _, l := range gs.learners {
		if !slices.Contains(target, l) {
			return step{raftstore.RemoveReplica, l}, true
		}
	}
	if len(gs.learners) > 0 {
		return step{raftstore.PromoteLearner, gs.learners[0]}, true
	}
	for _, t := range target {
		if !slices.Contains(gs.voters, t) {
			if up(t) {
				return step{raftstore.AddLearner, t}, true
			}
			return step{}, false // wait for it; do not shrink meanwhile
		}
	}
	var extra []uint64
	for _, v := range gs.voters {
		if !slices.Contains(target, v) {
			extra = append(extra, v)
		}
	}
	if len(extra) == 0 {
		return step{}, false
	}
	// The unreachable go first: they cost availability while they vote.
	slices.SortStableFunc(extra, func(a, b uint64) int {
		switch {
		case !up(a) && up(b):
			return -1
		case up(a) && !up(b):
			return 1
		}
		return 0
	})
	victim := extra[0]
	if victim == gs.leader {
		for _, t := range target {
			if up(t) {
				return step{0, t}, true
			}
		}
		return step{}, false
	}
	return step{raftstore.RemoveReplica, victim}, true
}

// placementLoop runs the driver until the node stops.
func (n *Node) placementLoop() {
	defer n.bg.Done()
	t := time.NewTicker(n.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-n.bgStop:
			return
		case <-t.C:
		}
		if n.eng.Leader(MetaGroup) == n.cfg.NodeID {
			n.placeOnce()
		}
	}
}

// targets computes every group's wanted replicas over the eligible nodes;
// ok is false when there are fewer eligible nodes than replicas (nothing
// can be restored then, and nothing should move).
func (n *Node) targets(recs []api.NodeRecord) (parts [][]uint64, meta []uint64, up func(uint64) bool, ok bool) {
	var eligible []ring.Node
	state := map[uint64]string{}
	for _, r := range recs {
		state[r.ID] = r.State
		if r.State == api.NodeUp || r.State == api.NodeSuspect {
			eligible = append(eligible, ring.Node{ID: r.ID})
		}
	}
	up = func(id uint64) bool { return state[id] == api.NodeUp }
	if len(eligible) < n.cfg.Replicas {
		return nil, nil, up, false
	}
	rc := n.cfg.ringConfig()
	pl, err := ring.Place(rc, eligible)
	if err != nil {
		n.log.Error("placement failed", "err", err)
		return nil, nil, up, false
	}
	return pl.Replicas, ring.MetaReplicas(rc, eligible, metaReplicas), up, true
}

// placeOnce runs one round of the driver.
func (n *Node) placeOnce() {
	recs := n.nodeRecords()
	parts, meta, up, ok := n.targets(recs)
	if !ok {
		return
	}
	m := n.view()
	groups := make([]uint64, 0, len(parts)+1)
	groups = append(groups, MetaGroup)
	for g := range parts {
		groups = append(groups, uint64(g))
	}
	moving := 0
	type planned struct {
		group uint64
		gs    groupState
		st    step
	}
	var todo []planned
	holds, complete := map[uint64]bool{}, true
	for _, g := range groups {
		gs, ok := n.groupInfo(g)
		if !ok {
			complete = false
			continue
		}
		for _, id := range append(slices.Clone(gs.voters), gs.learners...) {
			holds[id] = true
		}
		n.recordGroup(m, g, gs)
		target := meta
		if g != MetaGroup {
			target = parts[g]
		}
		if len(gs.learners) > 0 {
			moving++
		}
		if st, ok := planStep(gs, target, up); ok {
			todo = append(todo, planned{g, gs, st})
		}
	}
	// A draining node that holds nothing any more has left.
	for _, r := range recs {
		if complete && r.State == api.NodeDraining && !holds[r.ID] {
			ctx, cancel := context.WithTimeout(n.ctx, n.cfg.RequestTimeout)
			err := n.members.SetNodeState(ctx, r.ID, api.NodeRemoved)
			cancel()
			n.log.Info("decommissioned node holds no replicas: removed", "node", r.ID, "err", err)
		}
	}
	for _, p := range todo {
		if p.st.kind == raftstore.AddLearner {
			if moving >= maxMoving {
				continue
			}
			moving++
		}
		n.log.Info("placement", "group", p.group, "step", p.st.String(), "voters", p.gs.voters, "learners", p.gs.learners)
		if err := n.execStep(p.group, p.gs.leader, p.st); err != nil {
			n.log.Info("placement step not done; retried next round", "group", p.group, "step", p.st.String(), "err", err)
		}
	}
}

// groupInfo asks group's leader for its membership.
func (n *Node) groupInfo(group uint64) (groupState, bool) {
	leader := n.router.LeaderOf(group)
	if leader == 0 {
		return groupState{}, false
	}
	if leader == n.cfg.NodeID {
		st, ok := n.eng.GroupStatus(group)
		if !ok || st.LeaderNode != n.cfg.NodeID {
			return groupState{}, false
		}
		return groupState{voters: st.Nodes, learners: st.Learners, leader: leader}, true
	}
	ctx, cancel := context.WithTimeout(n.ctx, time.Second)
	defer cancel()
	b, err := n.tr.Call(ctx, leader, methodGroupInfo, codec.Encoder(nil).Uvarint(group))
	if err != nil {
		return groupState{}, false
	}
	var gi groupInfoJSON
	if json.Unmarshal(b, &gi) != nil || gi.Leader != leader {
		return groupState{}, false
	}
	return groupState{voters: gi.Voters, learners: gi.Learners, leader: gi.Leader}, true
}

type groupInfoJSON struct {
	Voters   []uint64 `json:"voters"`
	Learners []uint64 `json:"learners"`
	Leader   uint64   `json:"leader"`
	NextID   uint64   `json:"next_id"`
	IDs      []uint64 `json:"ids"` // replica ids of voters and learners
}

// serveGroupInfo answers methodGroupInfo: the membership of a group this
// node leads.
func (n *Node) serveGroupInfo(body []byte) ([]byte, error) {
	d := codec.NewDecoder(body)
	group := d.Uvarint()
	if d.Err() != nil {
		return nil, errMalformed
	}
	st, ok := n.eng.GroupStatus(group)
	if !ok {
		return nil, raftstore.ErrNoGroup
	}
	return json.Marshal(groupInfoJSON{Voters: st.Nodes, Learners: st.Learners, Leader: st.LeaderNode, NextID: st.NextID, IDs: st.MemberIDs})
}

// askAbout lists the nodes to ask who leads group: those this node's
// replica knows, then those the cluster map names, never this node.
func (n *Node) askAbout(group uint64) []uint64 {
	var out []uint64
	add := func(ids []uint64) {
		for _, id := range ids {
			if id != n.cfg.NodeID && !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	add(n.router.GroupNodes(group))
	m := n.view()
	if group == MetaGroup {
		add(m.Meta)
	} else if group < uint64(len(m.Parts)) {
		add(m.Parts[group].Replicas)
		add(m.Parts[group].Learners)
	}
	return out
}

// dropIfRemoved asks group's leader whether the local replica, which knows
// no leader, is still a member; the engine destroys it if the leader's
// newer descriptor shows it was removed (a learner removed while this
// node was down is told by nobody else).
func (n *Node) dropIfRemoved(group, leader uint64) {
	if leader == n.cfg.NodeID {
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, time.Second)
	defer cancel()
	b, err := n.tr.Call(ctx, leader, methodGroupInfo, codec.Encoder(nil).Uvarint(group))
	if err != nil {
		return
	}
	var gi groupInfoJSON
	if json.Unmarshal(b, &gi) != nil || gi.Leader != leader {
		return
	}
	n.eng.DestroyIfRemoved(group, gi.NextID, gi.IDs)
}

// execStep has group's leader carry out st.
func (n *Node) execStep(group, leader uint64, st step) error {
	ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
	defer cancel()
	if leader == n.cfg.NodeID {
		return n.doStep(ctx, group, st)
	}
	body := codec.Encoder(nil).Uvarint(group).Uvarint(uint64(st.kind)).Uvarint(st.node)
	_, err := n.tr.Call(ctx, leader, methodChangeReplicas, body)
	return err
}

// serveChangeReplicas answers methodChangeReplicas.
func (n *Node) serveChangeReplicas(ctx context.Context, body []byte) ([]byte, error) {
	d := codec.NewDecoder(body)
	group, kind, node := d.Uvarint(), d.Uvarint(), d.Uvarint()
	if d.Err() != nil || kind > uint64(raftstore.RemoveReplica) {
		return nil, errMalformed
	}
	return nil, n.doStep(ctx, group, step{raftstore.ChangeKind(kind), node})
}

func (n *Node) doStep(ctx context.Context, group uint64, st step) error {
	if st.kind == 0 {
		n.eng.TransferGroupLeader(group, st.node)
		return nil
	}
	return n.eng.ChangeReplicas(ctx, group, st.kind, st.node)
}

// recordGroup writes group's membership into the partition table when
// the cluster map disagrees with what its leader reports.
func (n *Node) recordGroup(m *control.ClusterMap, group uint64, gs groupState) {
	var args [][]byte
	if group == MetaGroup {
		if slices.Equal(m.Meta, gs.voters) {
			return
		}
		b, _ := json.Marshal(gs.voters)
		args = [][]byte{[]byte(statemachine.CmdMetaGroup), b}
	} else {
		if group >= uint64(len(m.Parts)) {
			return
		}
		p := m.Parts[group]
		if slices.Equal(p.Replicas, gs.voters) && slices.Equal(p.Learners, gs.learners) {
			return
		}
		p.Replicas, p.Learners = gs.voters, gs.learners
		b, _ := json.Marshal(p)
		args = [][]byte{[]byte(statemachine.CmdPartition), b}
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.RequestTimeout)
	defer cancel()
	if reply := n.router.Write(ctx, MetaGroup, args); string(reply) != "+OK\r\n" {
		n.log.Warn("could not record membership in the partition table", "group", group, "reply", string(reply))
	}
}
