package raftstore

import (
	"fmt"
	"runtime/debug"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

func (e *Engine) run() {
	defer e.closeOver()
	defer close(e.done)
	defer func() {
		if p := recover(); p != nil {
			e.setFatal(fmt.Errorf("panic in engine loop: %v\n%s", p, debug.Stack()))
		}
		if e.Err() != nil {
			// Fenced by a storage failure: answer every waiter now (their
			// outcome is unknown) instead of at their deadlines, so the
			// node's clients learn at once and the node can exit.
			e.failAllWaiters(ErrStopped)
		}
	}()
	// The tick follows the node's clock, which a fault may speed up or
	// slow down; safety never depends on it (package clock).
	clk := e.cfg.Clock
	ticker := time.NewTicker(clk.Period(e.cfg.TickInterval))
	defer ticker.Stop()
	skewed := clk.Changed()
	retick := func() {
		skewed = clk.Changed()
		ticker.Reset(clk.Period(e.cfg.TickInterval))
	}
	more := false
	e.progress.mark()
	for {
		if !more {
			select {
			case <-e.stop:
				return
			case <-ticker.C:
				e.in.setTick()
			case <-skewed:
				retick()
			case <-e.wake:
			}
		} else {
			// Busy: still take ticks, or heartbeats and election timers
			// would slow down exactly when the node is loaded.
			select {
			case <-e.stop:
				return
			case <-ticker.C:
				e.in.setTick()
			case <-skewed:
				retick()
			default:
			}
		}
		var err error
		more, err = e.cycle()
		if err != nil {
			// A storage failure: the node must not acknowledge anything more.
			e.setFatal(err)
			return
		}
		e.progress.mark()
	}
}

type readyRep struct {
	r  *replica
	rd raft.Ready
}

// cycle runs one pass of the loop. It reports whether some group already
// has more work, so the loop runs again without waiting.
func (e *Engine) cycle() (bool, error) {
	in := e.in.take()
	if in.tick {
		for _, r := range e.replicas {
			r.rn.Tick()
			if r.campaignIn > 0 {
				if r.campaignIn--; r.campaignIn == 0 {
					r.campaignNow()
				}
			}
		}
		e.outSnaps.expire(time.Minute)
		now := e.now()
		e.cuts.expire(now)
		for _, r := range e.replicas {
			e.releaseCuts(r, now)
		}
		e.shedLeadership()
		e.campaignsHeldBack()
		if err := e.compactPinned(); err != nil {
			return false, err
		}
	}
	e.startCycle()
	if in.tick {
		e.recheckRemovals()
	}
	for _, env := range in.msgs {
		e.receive(env)
	}
	for _, s := range in.snaps {
		r := e.admitSnap(s)
		if r == nil {
			s.data.Close()
			continue
		}
		r.pendingSnaps = append(r.pendingSnaps, &s)
		_ = r.rn.Step(s.env.Msg)
		r.stepped(s.env.Msg, e.now())
	}
	for _, st := range in.snapStatus {
		if r := e.byGroup[st.group]; r != nil {
			status := raft.SnapshotFinish
			if st.failed {
				status = raft.SnapshotFailure
			}
			r.rn.ReportSnapshot(st.to, status)
		}
	}
	for _, node := range in.unreachable {
		for _, r := range e.replicas {
			if id := r.desc.ReplicaOn(node); id != 0 && r.isLeader {
				r.rn.ReportUnreachable(id)
			}
		}
	}
	for _, group := range sortedKeys(in.props) {
		props := in.props[group]
		if r := e.byGroup[group]; r != nil {
			e.propose(r, props)
		} else { // destroyed since the proposal was queued
			for _, p := range props {
				e.answer(p.key, result{err: ErrNoGroup})
			}
		}
	}
	for _, group := range sortedKeys(in.reads) {
		reads := in.reads[group]
		if r := e.byGroup[group]; r != nil {
			e.startReads(r, reads)
		} else {
			for _, rq := range reads {
				rq.done(ErrNoGroup)
			}
		}
	}
	for _, fn := range in.fns {
		fn()
	}

	var readies []readyRep
	for _, r := range e.replicas {
		if r.rn.HasReady() {
			readies = append(readies, readyRep{r, r.rn.Ready()})
		}
	}
	if len(in.snaps) > 0 {
		defer e.dropUnacceptedSnaps()
	}
	if len(readies) == 0 {
		// A replica found removed outside the apply (DestroyIfRemoved,
		// a confirmed removal probe) is destroyed now too: a node whose
		// only replica is that idle one has no Ready ever again, and the
		// leader's new replica for it waits on the destruction.
		return false, e.destroyRemoved()
	}
	// A leader's messages go out before the fsync, so its own disk write
	// overlaps the followers' (as etcd does): a leader's term and vote
	// cannot change while it leads, so nothing they announce can be lost,
	// and entries count as committed only once a quorum has persisted them.
	var leaders, others []readyRep
	for _, rr := range readies {
		if rr.rd.SoftState != nil {
			e.handleSoftState(rr.r, rr.rd.SoftState)
		}
		if e.cfg.ReadLeases {
			rr.r.noteConfEntries(rr.rd.Entries)
		}
		if rr.r.isLeader {
			leaders = append(leaders, rr)
		} else {
			others = append(others, rr)
		}
	}
	// Entries committed whose log was fsync'd in an earlier cycle are
	// applied and answered now, without waiting for this cycle's fsync.
	var early, late []readyRep
	for _, rr := range readies {
		if canApplyEarly(rr) {
			early = append(early, rr)
		} else {
			late = append(late, rr)
		}
	}
	if err := e.applyCommitted(early); err != nil {
		return false, err
	}
	e.send(leaders)
	if err := e.persist(readies); err != nil {
		return false, err
	}
	e.send(others)
	if err := e.applyCommitted(late); err != nil {
		return false, err
	}
	for _, rr := range readies {
		rr.r.onReadStates(rr.rd.ReadStates)
		rr.r.releaseReads()
	}
	more := false
	for _, rr := range readies {
		rr.r.rn.Advance(rr.rd)
		rr.r.publishStatus()
		more = more || rr.r.rn.HasReady()
	}
	if err := e.maybeTruncate(readies); err != nil {
		return false, err
	}
	// Splits' new groups first: a removal found this cycle must not
	// destroy the empty replica a split is replacing, and with it the
	// state the split just wrote.
	if len(e.births) > 0 {
		more = true // the new groups' first Ready
		if err := e.materializeSplits(); err != nil {
			return false, err
		}
	}
	if err := e.destroyRemoved(); err != nil {
		return false, err
	}
	return more, nil
}

// canApplyEarly reports whether rr's committed entries are already durable
// in the local log exactly as committed, so they may be applied before this
// cycle's fsync. Being below the durable last index is not enough: this
// Ready's new entries may overwrite a conflicting suffix of the log (a
// deposed leader's entries), and until they are persisted the disk holds
// other entries at those indexes. Raft hands back every unpersisted entry
// in Ready.Entries, so entries below the first of them are on disk as
// committed.
func canApplyEarly(rr readyRep) bool {
	n := len(rr.rd.CommittedEntries)
	if n == 0 || !raft.IsEmptySnap(rr.rd.Snapshot) {
		return false
	}
	last := rr.rd.CommittedEntries[n-1].GetIndex()
	if last > rr.r.log.LastIndexDurable() {
		return false
	}
	return len(rr.rd.Entries) == 0 || rr.rd.Entries[0].GetIndex() > last
}

// propose turns a cycle's proposals for one group into raft entries.
func (e *Engine) propose(r *replica, props []*proposal) {
	if !r.isLeader {
		err := &NotLeaderError{Group: r.group, Leader: r.desc.NodeOf(r.leader)}
		for _, p := range props {
			e.answer(p.key, result{err: err})
		}
		return
	}
	// Once one chunk is refused, later chunks are refused too: accepting
	// them would let a retry of the refused one land after them, breaking
	// the order a pipeline relies on.
	var refused error
	flush := func(batch []*proposal) {
		if refused == nil {
			reqs := make([]*Request, len(batch))
			for i, p := range batch {
				reqs[i] = p.req
			}
			if err := r.rn.Propose(encodeRequests(reqs, e.cfg.Clock.Now().UnixMilli())); err != nil {
				// Dropped (leadership transfer in progress, or the uncommitted
				// log is full): nothing was appended, so the error is clean.
				refused = ErrBusy
				if err == raft.ErrProposalDropped && !r.isLeader {
					refused = ErrNotLeader
				}
			} else {
				e.cfg.Metrics.Proposals.Inc()
				e.cfg.Metrics.ProposedCmds.Add(float64(len(batch)))
				return
			}
		}
		for _, p := range batch {
			e.answer(p.key, result{err: refused})
		}
	}
	// Cut entries of about MaxEntryBytes, but never inside a batch (see
	// Request.Batch): a batch larger than that is one entry of its own.
	start, size := 0, 0
	for i, p := range props {
		size += p.req.Size()
		endsBatch := i+1 == len(props) || p.req.Batch == 0 || props[i+1].req.Batch != p.req.Batch || props[i+1].req.Origin != p.req.Origin
		if size >= e.cfg.MaxEntryBytes && endsBatch {
			flush(props[start : i+1])
			start, size = i+1, 0
		}
	}
	if start < len(props) {
		flush(props[start:])
	}
}

// persist makes every group's Ready durable. Snapshots first: their state
// machines go into Pebble in one synced batch, so that the raft log is
// reset to a snapshot only once Pebble holds it (a crash in between is
// repaired at load, grouplog.go). Then one raft log record holds every
// group's resets, new entries and hard states, with one fsync when raft
// asks for one; entries are never committed unsynced, so the whole log is
// durable (LastIndexDurable, early apply).
func (e *Engine) persist(readies []readyRep) error {
	if err := e.installSnapshots(readies); err != nil {
		return err
	}
	b := e.rlog.NewBatch()
	mustSync := false
	entries := 0
	for _, rr := range readies {
		r, rd := rr.r, rr.rd
		if !raft.IsEmptySnap(rd.Snapshot) {
			md := rd.Snapshot.GetMetadata()
			r.log.ResetTo(b, md.GetIndex(), md.GetTerm())
			// Raft's MustSync does not count a snapshot, but this replica
			// acknowledges it once persisted, and the leader then ignores
			// any later rejection below it: a snapshot lost to a power cut
			// would leave an empty replica the leader never repairs.
			mustSync = true
		}
		for ents := rd.Entries; len(ents) > 0; {
			n := appendChunk(ents)
			r.log.Append(b, ents[:n])
			ents = ents[n:]
			if b.Bytes() >= maxPersistRecord {
				// A record has a size limit: commit this part unsynced;
				// the last part's sync makes it durable with the rest.
				if err := e.rlog.Commit(b, false); err != nil {
					return fmt.Errorf("persist raft state: %w", err)
				}
				b = e.rlog.NewBatch()
			}
		}
		entries += len(rd.Entries)
		if !raft.IsEmptyHardState(rd.HardState) {
			r.log.SetHardState(b, rd.HardState)
		}
		mustSync = mustSync || len(rd.Entries) > 0 || rd.MustSync && !(e.cfg.UnsafeLazyHardState && onlyHardState(rd))
	}
	if b.Len() == 0 && !mustSync {
		return nil
	}
	start := time.Now()
	if err := e.rlog.Commit(b, mustSync); err != nil {
		return fmt.Errorf("persist raft state: %w", err)
	}
	e.noteHardStates(readies, mustSync)
	if mustSync {
		e.cfg.Metrics.FsyncLatency.Observe(time.Since(start).Seconds())
		e.cfg.Metrics.CycleEntries.Observe(float64(entries))
	}
	return nil
}

// maxPersistRecord is the size at which persist cuts a cycle's raft log
// record (raftlog.MaxRecordSize bounds one record).
const maxPersistRecord = 32 << 20

// appendChunk is how many of ents, at least one, fit in about
// maxPersistRecord/4 bytes: the piece of a group's new entries persist
// adds to a record at once.
func appendChunk(ents []*pb.Entry) int {
	size := 0
	for i, ent := range ents {
		size += len(ent.GetData()) + 32
		if size > maxPersistRecord/4 && i > 0 {
			return i
		}
	}
	return len(ents)
}

// installSnapshots writes the state machines of the cycle's accepted
// snapshots into Pebble, each in one ingest (snapstage.go).
func (e *Engine) installSnapshots(readies []readyRep) error {
	installed := false
	for _, rr := range readies {
		if raft.IsEmptySnap(rr.rd.Snapshot) {
			continue
		}
		if err := e.installSnapshot(rr.r, rr.rd.Snapshot); err != nil {
			return err
		}
		installed = true
	}
	if !installed {
		return nil
	}
	// An ingest is durable when it returns; this sync makes every batch
	// committed before it durable too (pebbleSynced).
	if err := e.db.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("install snapshots: %w", err)
	}
	for _, rr := range readies {
		if !raft.IsEmptySnap(rr.rd.Snapshot) {
			rr.r.appliedCommitted() // the installed snapshot is now on disk
			if err := rr.r.loadMarks(e.db, e.now()); err != nil {
				return err
			}
			slots, err := readSlotRange(e.db, rr.r.group)
			if err != nil {
				return err
			}
			rr.r.setSlots(slots)
			e.dropAbsorbed(rr.r)
		}
	}
	e.pebbleSynced()
	return nil
}

// pebbleSynced records that a synced Pebble commit just made every batch
// committed before it durable: each replica's applied state as of its last
// committed batch is now the floor its raft log may be compacted to.
func (e *Engine) pebbleSynced() {
	for _, r := range e.replicas {
		r.durableApplied = r.committed.Index
	}
}

// send coalesces every group's messages per destination node.
func (e *Engine) send(readies []readyRep) {
	perNode := map[uint64][]Envelope{}
	for _, rr := range readies {
		r := rr.r
		for _, m := range rr.rd.Messages {
			node := r.desc.NodeOf(m.GetTo())
			if node == 0 {
				continue
			}
			r.sent(m)
			e.leaseAnswered(r, m)
			env := Envelope{Group: r.group, Msg: m, Lease: e.leaseProtocol()} // sendSnapshot's too
			if m.GetType() == pb.MsgSnap {
				e.sendSnapshot(r, node, env)
				continue
			}
			perNode[node] = append(perNode[node], env)
		}
	}
	for _, node := range sortedKeys(perNode) {
		e.sendEnvelopes(node, perNode[node])
	}
}

// sendEnvelopes hands envs to the transport, each saying whether this
// node runs read leases (Envelope.Lease).
func (e *Engine) sendEnvelopes(node uint64, envs []Envelope) {
	lease := e.leaseProtocol()
	for i := range envs {
		envs[i].Lease = lease
	}
	e.tr.Send(node, envs)
}

// HandleRaft queues raft messages received from a peer.
func (e *Engine) HandleRaft(envs []Envelope) {
	e.in.addMsgs(envs)
	e.notify()
}

// PeerDown tells the engine that the connection to node broke. Followers
// that still follow a leader on node — so heard from it within the
// election timeout: the link broke abruptly, as when the leader's process
// dies and its kernel closes its sockets — elect a new leader at once
// instead of waiting out the election timeout:
//
//   - the lowest surviving voter campaigns as raft does for a leadership
//     transfer (MsgTimeoutNow: no pre-vote, and voters set aside the old
//     leader's lease), so it wins in one round trip if its log is up to
//     date;
//   - the others campaign normally (with pre-vote) one tick apart, in
//     case it could not: staggered, because simultaneous campaigns split
//     the vote and cost a whole election timeout.
//
// Elections never decide safety, so this is safe whatever the cause. A
// false alarm — the link broke but the leader lives — costs one election.
// A follower cut off by a network partition does not get here: the link
// breaks (by keepalive) only long after its election timeout, when it
// follows no leader any more; its pre-votes then cannot disturb anyone.
//
// Read leases (lease.go) hold these campaigns back: a follower that
// answered a lease round less than leaseWait ago waits until then, since
// the leader may still serve reads on a lease counted from before that
// answer. A leader drops its lease when the link to any of its replicas
// breaks.
func (e *Engine) PeerDown(node uint64) {
	e.in.addFunc(func() {
		now := e.mono()
		for _, r := range e.replicas {
			if r.isLeader {
				if r.desc.ReplicaOn(node) != 0 {
					r.lease.drop()
				}
				continue
			}
			if r.leader == 0 || r.desc.NodeOf(r.leader) != node {
				continue
			}
			var others []uint64
			for _, v := range r.applied.Conf.GetVoters() {
				if v != r.leader {
					others = append(others, v)
				}
			}
			slices.Sort(others)
			rank := slices.Index(others, r.id)
			if rank < 0 {
				continue // a learner does not campaign
			}
			r.deadLeader = r.leader
			if until := r.lastLeaseAnswer + e.leaseWait(); e.cfg.ReadLeases && now < until {
				r.campaignAt, r.campaignRank = until, rank
				continue
			}
			r.campaignAfterPeerDown(rank)
		}
	})
	e.notify()
}

// campaignAfterPeerDown starts PeerDown's campaign for the voter of that
// rank among the dead leader's followers.
func (r *replica) campaignAfterPeerDown(rank int) {
	r.campaignAt = 0
	r.campaignIn = rank
	if rank == 0 {
		term := r.rn.BasicStatus().GetTerm()
		_ = r.rn.Step(&pb.Message{Type: pb.MsgTimeoutNow.Enum(), From: new(r.leader), To: new(r.id), Term: new(term)})
	}
}

// campaignsHeldBack starts the PeerDown campaigns whose lease wait is
// over, if the replica still follows the leader found dead.
func (e *Engine) campaignsHeldBack() {
	now := e.mono()
	for _, r := range e.replicas {
		if r.campaignAt == 0 || now < r.campaignAt {
			continue
		}
		if r.isLeader || r.leader != r.deadLeader || r.leader == 0 {
			r.campaignAt = 0 // a leader was elected meanwhile, or raft's own timer took over
			continue
		}
		r.campaignAfterPeerDown(r.campaignRank)
	}
}

// ReportUnreachable tells the leaders of this node that node could not be
// reached, so raft stops pipelining to it until it answers again.
func (e *Engine) ReportUnreachable(node uint64) {
	e.in.addUnreachable(node)
	e.notify()
}

// dropUnacceptedSnaps frees staged snapshots raft did not accept: raft
// takes a snapshot in Step and hands it back in the same cycle's Ready, so
// whatever is still staged afterwards was refused.
func (e *Engine) dropUnacceptedSnaps() {
	for _, r := range e.replicas {
		for _, p := range r.pendingSnaps {
			p.data.Close()
		}
		r.pendingSnaps = nil
	}
}
