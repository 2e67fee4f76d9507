package raftstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/proto"

	"github.com/kintsu/kintsu/internal/storage"
)

// Membership changes: a group's replicas move between nodes one raft
// configuration change at a time — add a learner, let it catch up (by
// snapshot), promote it to voter, remove an old replica.
//
// Invariants:
//   - A group's descriptor (replica id -> node) changes only by applying a
//     conf change entry, whose context carries the new descriptor. It is
//     written in the same batch as the applied index, so descriptor, conf
//     state and data agree at every applied index, and a snapshot (a
//     Pebble snapshot of applied state) carries the descriptor of its own
//     index.
//   - Replica ids come from the descriptor's NextID, which only grows: an
//     id is never reused, so a message meant for a removed replica can
//     never be taken for a new one.
//   - A replica is destroyed once the conf change removing it is applied
//     locally, or once the group confirms its removal (validate.go: never
//     on one peer's word). A tombstone records the highest replica id of the group
//     destroyed here; no replica with an id at or below it is created
//     again, so a lagging leader's messages cannot resurrect it.
//   - A node creates a replica of a group it does not host only when a
//     leader sends a heartbeat, an append or a snapshot to a replica id
//     above the tombstone. The new replica starts empty with no voters in
//     its configuration, so it cannot campaign; its state, descriptor
//     included, arrives with the leader's snapshot.
//   - One change at a time: raft refuses a conf change while one is
//     pending, and ChangeReplicas waits until its change is applied. A
//     learner is promoted only once it has nearly every committed entry,
//     and the leader never removes itself (it hands leadership over first),
//     so a change costs no availability.

// ChangeKind is one step of moving a replica.
type ChangeKind int

// The steps, in the order a move takes them.
const (
	AddLearner ChangeKind = iota + 1
	PromoteLearner
	RemoveReplica
)

func (k ChangeKind) String() string {
	switch k {
	case AddLearner:
		return "add-learner"
	case PromoteLearner:
		return "promote"
	case RemoveReplica:
		return "remove"
	}
	return fmt.Sprintf("change(%d)", int(k))
}

// Membership errors. All are safe to retry: nothing was changed.
var (
	// ErrNotCaughtUp: the learner lags too far behind to be promoted.
	ErrNotCaughtUp = errors.New("the learner has not caught up yet")
	// ErrRemoveLeader: the leader does not remove its own replica; move
	// leadership away first.
	ErrRemoveLeader = errors.New("the leader cannot remove its own replica; transfer leadership first")
	// ErrNotMember: the node holds no replica of the group.
	ErrNotMember = errors.New("the node holds no replica of the group")
	// ErrConfPending: another membership change of the group is not
	// applied yet (raft takes one at a time), or the leader is too new to
	// take one.
	ErrConfPending = errors.New("another membership change of the group is in progress")
)

// promoteSlack is how many committed entries a learner may still miss
// when it is promoted: under steady load it always trails a little.
const promoteSlack = 64

// ChangeReplicas applies one membership change to group, whose leader must
// be on this node, and waits until the change is applied here. A change
// already in effect succeeds at once, so a caller that crashed halfway
// can simply repeat its plan.
func (e *Engine) ChangeReplicas(ctx context.Context, group uint64, kind ChangeKind, node uint64) error {
	ch := make(chan changeAnswer, 1)
	e.ProposeChange(group, kind, node, func(done bool, err error) { ch <- changeAnswer{done, err} })
	return e.awaitChange(ctx, group, ch, fmt.Sprintf("%s of node %d in group %d", kind, node, group),
		func(st *GroupStatus) bool { return changeInEffect(st, kind, node) })
}

// changeAnswer is the loop's answer to a proposed membership change.
type changeAnswer struct {
	done bool // already in effect
	err  error
}

// awaitChange waits for the loop's answer on ch, then, if the change was
// proposed, until inEffect shows it in group's status here. what names
// the change in errors.
func (e *Engine) awaitChange(ctx context.Context, group uint64, ch <-chan changeAnswer, what string, inEffect func(*GroupStatus) bool) error {
	var a changeAnswer
	select {
	case a = <-ch:
	case <-ctx.Done():
		return ctx.Err()
	case <-e.done:
		return ErrStopped
	}
	if a.err != nil || a.done {
		return a.err
	}
	tick := time.NewTicker(e.cfg.TickInterval)
	defer tick.Stop()
	for {
		r := e.hosted(group)
		if r == nil {
			return ErrNoGroup
		}
		st := r.status.Load()
		if inEffect(st) {
			return nil
		}
		if !st.ConfPending {
			// Applied without taking effect: raft dropped it for a change
			// that got in first, or leadership moved.
			return fmt.Errorf("%s: %w", what, ErrConfPending)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not applied yet: %w", what, ctx.Err())
		case <-e.done:
			return ErrStopped
		case <-tick.C:
		}
	}
}

// ProposeChange proposes one membership change of group, whose leader
// must be on this node, without waiting: done is called once, on the loop,
// with inEffect when the change is already in effect, or with why it was
// not proposed. Whether a proposed change took effect shows later in
// GroupStatus (ChangeInEffect). done must not block.
func (e *Engine) ProposeChange(group uint64, kind ChangeKind, node uint64, done func(inEffect bool, err error)) {
	e.in.addFunc(func() {
		r := e.byGroup[group]
		if r == nil {
			done(false, ErrNoGroup)
			return
		}
		done(r.proposeChange(kind, node))
	})
	e.notify()
}

// ChangeInEffect reports whether st shows the change done.
func ChangeInEffect(st GroupStatus, kind ChangeKind, node uint64) bool {
	return changeInEffect(&st, kind, node)
}

// changeInEffect reports whether st shows the change done.
func changeInEffect(st *GroupStatus, kind ChangeKind, node uint64) bool {
	voter, learner := slices.Contains(st.Nodes, node), slices.Contains(st.Learners, node)
	switch kind {
	case AddLearner:
		return voter || learner
	case PromoteLearner:
		return voter
	case RemoveReplica:
		return !voter && !learner
	}
	return false
}

// proposeChange proposes kind for node, or reports it already in effect.
// Called on the loop.
func (r *replica) proposeChange(kind ChangeKind, node uint64) (bool, error) {
	if !r.isLeader {
		return false, &NotLeaderError{Group: r.group, Leader: r.desc.NodeOf(r.leader)}
	}
	st := r.status.Load()
	if changeInEffect(st, kind, node) {
		return true, nil
	}
	// Raft silently turns a conf change into an empty entry while another
	// is pending, which includes a new leader's own unapplied tail.
	if r.confPending || r.applied.Index < r.rn.Status().GetCommit() {
		return false, ErrConfPending
	}
	if r.slots.frozen() {
		return false, fmt.Errorf("partition %d is frozen for a merge: its replicas stay", r.group)
	}
	desc := r.desc.Clone()
	id := desc.ReplicaOn(node)
	cc := pb.ConfChangeSingle{}
	switch kind {
	case AddLearner:
		id = desc.NextID
		desc.NextID++
		desc.Replicas = append(desc.Replicas, storage.Replica{ID: id, Node: node})
		cc.Type = pb.ConfChangeAddLearnerNode.Enum()
	case PromoteLearner:
		if id == 0 {
			return false, ErrNotMember
		}
		st := r.rn.Status()
		pr, ok := st.Progress[id]
		if !ok || pr.State != tracker.StateReplicate || !pr.RecentActive || pr.Match == 0 || pr.Match+promoteSlack < st.GetCommit() {
			return false, ErrNotCaughtUp
		}
		cc.Type = pb.ConfChangeAddNode.Enum()
	case RemoveReplica:
		if id == r.id {
			return false, ErrRemoveLeader
		}
		desc.Replicas = slices.DeleteFunc(desc.Replicas, func(x storage.Replica) bool { return x.ID == id })
		cc.Type = pb.ConfChangeRemoveNode.Enum()
	default:
		return false, fmt.Errorf("unknown membership change %d", kind)
	}
	cc.NodeId = new(id)
	v2 := &pb.ConfChangeV2{Changes: []*pb.ConfChangeSingle{&cc}, Context: desc.Encode()}
	if err := r.rn.ProposeConfChange(v2); err != nil {
		return false, err
	}
	// The leader's own progress matches its last entry: ours (or the
	// empty entry raft put in its place). Pending until that is applied.
	r.confPending, r.confIndex = true, r.rn.Status().Progress[r.id].Match
	r.publishStatus()
	return false, nil
}

// applyConfChange applies a conf change entry: the new configuration to
// raft, the new descriptor (from the entry's context) to r and to b.
func (e *Engine) applyConfChange(b *pebble.Batch, r *replica, ent *pb.Entry) error {
	var cc pb.ConfChangeI
	var context []byte
	var err error
	if ent.GetType() == pb.EntryConfChange {
		var c pb.ConfChange
		err = proto.Unmarshal(ent.GetData(), &c)
		cc, context = &c, c.GetContext()
	} else {
		var c pb.ConfChangeV2
		err = proto.Unmarshal(ent.GetData(), &c)
		cc, context = &c, c.GetContext()
	}
	if err == nil && r.slots.frozen() {
		err = fmt.Errorf("the partition is frozen for a merge into partition %d", r.slots.frozenInto)
	}
	var conf *pb.ConfState
	if err == nil {
		conf, err = applyConf(r, cc)
	}
	if err != nil {
		// Every replica applies the same entry to the same configuration
		// and refuses it alike, so they stay consistent; a bad change
		// must not stop the group (nor, with it, the node).
		e.cfg.Logger.Error("skipping a conf change raft cannot apply", "partition", r.group, "index", ent.GetIndex(), "err", err)
		r.confPending = false
		return nil
	}
	old := r.desc
	r.applied.Conf = conf
	r.log.SetConf(r.applied.Conf)
	defer func() {
		// The leader tells a removed replica at once (best effort: the
		// replica also learns it from the answer to its next message).
		if r.isLeader {
			for _, x := range old.Replicas {
				if r.desc.NodeOf(x.ID) == 0 && x.Node != e.cfg.NodeID {
					e.notifyRemoved(r.group, x.ID, x.Node)
				}
			}
		}
	}()
	if len(context) > 0 {
		desc, err := storage.DecodeDescriptor(context)
		if err != nil || desc.Group != r.group {
			// Every replica applies the same entry: refusing it alike on
			// all keeps them consistent, and the old descriptor still maps
			// every id the old configuration knew.
			e.cfg.Logger.Error("conf change with a malformed descriptor", "partition", r.group, "index", ent.GetIndex())
		} else {
			r.desc = desc
			if err := b.Set(storage.DescriptorKey(r.group), desc.Encode(), nil); err != nil {
				return err
			}
		}
	}
	if !inConf(r.applied.Conf, r.id) {
		r.removed = true
	}
	r.confPending = false
	r.lease.drop() // the voters a lease must hear from changed
	e.cfg.Logger.Info("membership changed", "partition", r.group, "index", ent.GetIndex(), "voters", r.applied.Conf.GetVoters(), "learners", r.applied.Conf.GetLearners(), "nodes", r.desc.Nodes())
	return nil
}

// applyConf applies cc to r's raft configuration. Raft panics on a change
// it cannot make (removing the last voter, say) before it changes
// anything; that panic becomes an error.
func applyConf(r *replica, cc pb.ConfChangeI) (cs *pb.ConfState, err error) {
	defer func() {
		if p := recover(); p != nil {
			cs, err = nil, fmt.Errorf("raft refused the conf change: %v", p)
		}
	}()
	return r.rn.ApplyConfChange(cc), nil
}

func inConf(cs *pb.ConfState, id uint64) bool {
	return slices.Contains(cs.GetVoters(), id) || slices.Contains(cs.GetLearners(), id)
}

// destroyRemoved destroys the replicas whose removal was applied in this
// cycle. Called on the loop at the end of a cycle.
func (e *Engine) destroyRemoved() error {
	var gone []*replica // destroy edits e.replicas: collect first
	for _, r := range e.replicas {
		if r.removed {
			gone = append(gone, r)
		}
	}
	for _, r := range gone {
		if err := e.destroy(r); err != nil {
			return err
		}
	}
	return nil
}

// destroy deletes r's state and writes its tombstone, then forgets r.
func (e *Engine) destroy(r *replica) error {
	if err := e.deleteReplicaState(r.group, r.id); err != nil {
		return err
	}
	e.outSnaps.drop(r.group)
	delete(e.byGroup, r.group)
	e.replicas = slices.DeleteFunc(e.replicas, func(x *replica) bool { return x == r })
	e.publishGroups()
	for _, p := range r.pendingSnaps {
		p.data.Close()
	}
	r.pendingSnaps = nil
	r.failReads(ErrNoGroup)
	// Proposals in flight may still commit through the remaining members:
	// their outcome is unknown here.
	e.failGroupWaiters(r.group, ErrLeaderChanged)
	e.cfg.Logger.Info("replica removed from this node", "partition", r.group, "replica", r.id)
	return nil
}

// receive steps a peer's message into its replica, creating the replica if
// a leader is adding it here, and handles removal notices, once the
// message passed validation (validate.go). A message from a replica this
// group removed (its id is below NextID but not in the descriptor) is
// answered with a removal notice: a replica cut off when it was removed
// never sees the entry removing it committed, but it keeps campaigning (or
// asks, see suspectRemoved), and so learns it this way. Called on the loop.
func (e *Engine) receive(env Envelope) {
	if env.Removed {
		e.removalNotice(env)
		return
	}
	if why := checkShape(env.Msg, false); why != "" {
		e.refuse(env, why)
		return
	}
	r := e.replicaFor(env)
	if r == nil {
		return
	}
	m := env.Msg
	from := m.GetFrom()
	if e.newMember(r, env) {
		// A member this replica's descriptor does not know yet: one added
		// after the last change it applied (it lags, or waits for its
		// first snapshot while leadership moved). Ids are never reused, so
		// the sender's node is where that replica lives; without it, a
		// lagging replica would refuse the votes of newer members and a
		// group could stay leaderless with a quorum up. The next change it
		// applies brings the whole descriptor.
		d := r.desc.Clone()
		d.Replicas = append(d.Replicas, storage.Replica{ID: from, Node: env.From})
		r.desc = d
	}
	if r.acceptsPeerMsg(m) {
		m, why := e.admit(r, env)
		if why != "" {
			e.refuse(env, why)
			return
		}
		if m.GetType() == pb.MsgTimeoutNow && e.DiskFull() {
			// A node that refuses writes must not take a leadership
			// handed to it (the balancer offers them to whoever leads
			// least): the transfer fails and the leader keeps it.
			return
		}
		_ = r.rn.Step(m) // errors are for messages raft ignores anyway
		r.stepped(m, e.now())
		e.noteLeaseAnswer(r, m, env.Lease)
		return
	}
	if m.GetTo() == r.id && from < r.desc.NextID && r.desc.NodeOf(from) == 0 && env.From != 0 {
		if n := m.GetRejectHint(); m.GetType() == pb.MsgHeartbeatResp && n != 0 {
			if e.noticeAllowed(r.group, from, true) {
				e.answerProbe(r.group, from, env.From, n)
			}
		} else if e.noticeAllowed(r.group, from, false) {
			e.notifyRemoved(r.group, from, env.From)
		}
	}
}

// notifyRemoved tells node that its replica id of group was removed.
func (e *Engine) notifyRemoved(group, id, node uint64) {
	e.sendEnvelopes(node, []Envelope{{Group: group, Removed: true, Msg: &pb.Message{To: new(id)}}})
}

// deleteReplicaState deletes group's replica state and raises its
// tombstone to at least id, in one synced batch, then drops its raft log.
// In that order: a crash in between leaves a raft log with no descriptor,
// which LoadAll drops; the reverse would leave a descriptor without its
// log, which refuses the start.
func (e *Engine) deleteReplicaState(group, id uint64) error {
	b := e.db.NewBatch()
	defer b.Close()
	for _, sp := range storage.ReplicaSpans(group) {
		if err := b.DeleteRange(sp[0], sp[1], nil); err != nil {
			return err
		}
	}
	tomb := max(id, e.tombstone(group))
	if err := b.Set(storage.TombstoneKey(group), binary.BigEndian.AppendUint64(nil, tomb), nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("destroy replica of group %d: %w", group, err)
	}
	e.pebbleSynced()
	if err := e.rlog.DropGroup(group); err != nil {
		return fmt.Errorf("destroy replica of group %d: drop its raft log: %w", group, err)
	}
	return nil
}

// tombstone returns the highest replica id of group destroyed here.
func (e *Engine) tombstone(group uint64) uint64 {
	b, ok, err := storage.Get(e.db, storage.TombstoneKey(group))
	if err != nil || !ok || len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// replicaFor returns the replica a peer's message for a group not hosted
// here should go to, creating an empty one if the message is a leader's
// and addressed to a replica id never destroyed here; nil otherwise.
// Called on the loop.
func (e *Engine) replicaFor(env Envelope) *replica {
	m := env.Msg
	if r := e.byGroup[env.Group]; r != nil {
		if !isLeaderMsg(m) || m.GetTo() <= r.id {
			return r
		}
		// A leader adds this node again under a new id: the replica here
		// may be an old one whose removal it never heard of (a learner, or
		// one cut off) — or the message is wrong. It checks with the group
		// (suspectRemoved); once it is destroyed, the leader's next
		// message creates the new one.
		e.refuse(env, "a leader's message for a newer replica of a hosted group: checking whether the local one was removed")
		e.suspectRemoved(r)
		return nil
	}
	if !isLeaderMsg(m) || e.condemned(env.Group) {
		// A condemned group's damaged state is being removed: nothing is
		// created over it (quarantine.go).
		return nil
	}
	if env.From == 0 || env.From == e.cfg.NodeID || m.GetTo() == 0 || m.GetFrom() == 0 || m.GetFrom() == m.GetTo() || m.GetTo() <= e.tombstone(env.Group) {
		return nil
	}
	if !e.canCreate(env) {
		return nil
	}
	desc := &storage.Descriptor{Group: env.Group, Replicas: []storage.Replica{{ID: m.GetTo(), Node: e.cfg.NodeID}, {ID: m.GetFrom(), Node: env.From}}}
	// The raft log first (see createGroupLog), then the descriptor.
	if err := createGroupLog(e.rlog, env.Group, 0, 0, &pb.HardState{}); err != nil {
		e.setFatal(err)
		return nil
	}
	b := e.db.NewBatch()
	defer b.Close()
	empty := storage.AppliedState{Conf: &pb.ConfState{}}
	if err := b.Set(storage.DescriptorKey(env.Group), desc.Encode(), nil); err != nil {
		return nil
	}
	if err := b.Set(storage.AppliedKey(env.Group), empty.Encode(), nil); err != nil {
		return nil
	}
	if err := b.Commit(pebble.Sync); err != nil {
		e.setFatal(fmt.Errorf("create replica of group %d: %w", env.Group, err))
		return nil
	}
	e.pebbleSynced()
	r, err := e.loadReplica(desc)
	if err != nil {
		e.cfg.Logger.Error("cannot create replica", "partition", env.Group, "err", err)
		return nil
	}
	e.host(r)
	e.cfg.Logger.Info("replica created for a leader that added this node", "partition", env.Group, "replica", m.GetTo(), "leader_node", env.From)
	return r
}

// DestroyIfRemoved destroys the local replica of group if a member whose
// descriptor is newer than the replica (nextID above its id) does not list
// it among memberIDs: it was removed while it could not hear of it — a
// learner, or a replica cut off or down at the time — and nobody will
// tell it otherwise. A member with an older descriptor proves nothing.
func (e *Engine) DestroyIfRemoved(group, nextID uint64, memberIDs []uint64) {
	e.in.addFunc(func() {
		r := e.byGroup[group]
		if r == nil || r.id >= nextID || slices.Contains(memberIDs, r.id) {
			return
		}
		e.cfg.Logger.Info("the group no longer lists this replica: removing it", "partition", group, "replica", r.id, "next_id", nextID)
		r.removed = true
	})
	e.notify()
}

// isLeaderMsg reports whether m is one only a leader sends.
func isLeaderMsg(m *pb.Message) bool {
	switch m.GetType() {
	case pb.MsgApp, pb.MsgHeartbeat, pb.MsgSnap:
		return true
	}
	return false
}

// LoadAll loads every replica with state on disk that is not loaded yet
// (those added by membership changes). Call before Start.
// A group condemned while loading (CondemnAtLoad) whose load fails on
// corruption is skipped (quarantine.go).
func (e *Engine) LoadAll() error {
	descs, err := storage.Descriptors(e.db)
	// Each read that meets another damaged file adds its bounds, until
	// the read goes around all of them (or meets damage not isolated).
	for tried := 0; err != nil && pebble.IsCorruptionError(err); {
		_, damaged := e.condemnedGroups()
		if len(damaged) == tried {
			break
		}
		tried = len(damaged)
		descs, err = storage.DescriptorsOutside(e.db, damaged)
	}
	if err != nil {
		return err
	}
	read := map[uint64]bool{}
	for _, d := range descs {
		read[d.Group] = true
		if e.byGroup[d.Group] != nil {
			continue
		}
		id := d.ReplicaOn(e.cfg.NodeID)
		if id != 0 && e.condemned(d.Group) {
			// Loaded anyway, it would only be taken out at the first
			// cycle; a failed load is what condemned it.
			e.skippedAtLoad(d.Group, id)
			continue
		}
		if id == 0 {
			// The node crashed after applying its own removal and before
			// destroying the replica: finish. Every id below NextID that
			// is not in the descriptor was removed.
			if err := e.deleteReplicaState(d.Group, d.NextID-1); err != nil {
				return err
			}
			continue
		}
		r, err := e.loadReplica(d)
		if err != nil {
			if e.damagedAtLoad(d.Group, err) {
				e.skippedAtLoad(d.Group, id)
				continue
			}
			return fmt.Errorf("load group %d: %w", d.Group, err)
		}
		e.host(r)
	}
	condemned, _ := e.condemnedGroups()
	for _, g := range condemned {
		if !read[g] {
			e.skippedAtLoad(g, ReplicaUnknown)
		}
	}
	if len(condemned) > 0 {
		e.Condemn(nil) // the first cycle takes out any loaded before the damage was met
	}
	if err := e.dropMerged(); err != nil {
		return err
	}
	return e.dropOrphanLogs()
}
