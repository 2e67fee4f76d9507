package raftstore

import (
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/proto"

	"github.com/kintsu/kintsu/internal/storage"
)

// replica is one local member of a raft group. Everything but status is
// owned by the engine loop.
type replica struct {
	group   uint64
	id      uint64 // raft replica id of this member
	desc    *storage.Descriptor
	rn      *raft.RawNode
	log     *groupLog
	applied storage.AppliedState
	// committed is applied as of the last committed batch: what a Pebble
	// snapshot taken now contains. Raft may ask for a snapshot in the
	// middle of applying (ApplyConfChange), when applied is ahead of it.
	committed storage.AppliedState
	// durableApplied is the applied index as of the last synced Pebble
	// commit: the furthest the raft log may be compacted (maybeTruncate).
	durableApplied uint64
	// dedupe is the per-origin deduplication state (see dedupeState).
	dedupe map[uint64]*dedupeState
	// tables are the group's transaction tables as of the cycle's apply
	// batch: their counts, and their records while they are few
	// (txnTable). While no lock is held a plain write skips the lock
	// table's read (Writer.NoLocks).
	tables   txnTables
	leader   uint64 // raft id of the leader, 0 if unknown
	isLeader bool

	// Reads waiting for a read index, by request context id, and reads
	// holding a read index that is not applied yet.
	readSeq      uint64
	readsByCtx   map[uint64][]*readReq
	keys         keyCounter // keycount.go
	readsByIndex []indexedReads

	pendingSnaps []*incomingSnap // snapshot data stepped into raft, not yet installed
	removed      bool            // a conf change removed this replica: destroy it at the end of the cycle
	// campaignIn counts the ticks until this follower campaigns because
	// the connection to deadLeader's node broke (see Engine.PeerDown).
	campaignIn int
	deadLeader uint64
	// confPending: this leader proposed a conf change at confIndex that is
	// not applied yet (raft takes one at a time).
	confPending bool
	confIndex   uint64
	// hold keeps answers and reads back while a consistent cut is open (cut.go).
	hold hold
	// Read leases (lease.go): the leader's lease, when it last issued a
	// round, and the index of the newest conf change in its log; on a
	// follower, when it last answered a lease round (or was loaded), and
	// a PeerDown campaign held back until campaignAt (Mono time).
	lease           leaderLease
	leaseIssued     time.Duration
	lastConfIndex   uint64
	lastLeaseAnswer time.Duration
	campaignAt      time.Duration
	campaignRank    int
	// guard validates peers' messages (validate.go).
	guard guard
	// slots is the group's slot range as its last split recorded it
	// (split.go); unset before any. pubSlots publishes it to readers
	// (setSlots).
	slots    slotRange
	pubSlots atomic.Pointer[slotRange]
	// load is the group's write load as this replica applied it (load.go).
	load writeLoad

	status atomic.Pointer[GroupStatus]
}

type indexedReads struct {
	index uint64
	reads []*readReq
}

// groupStorage is the raft.Storage of a replica: its raft log, plus
// snapshots served from a Pebble snapshot of the applied state.
type groupStorage struct {
	*groupLog
	e *Engine
	r *replica
}

func (g groupStorage) Snapshot() (*pb.Snapshot, error) {
	return g.e.outSnaps.snapshotFor(g.e.db, g.r), nil
}

func (e *Engine) loadReplica(desc *storage.Descriptor) (*replica, error) {
	id := desc.ReplicaOn(e.cfg.NodeID)
	if id == 0 {
		return nil, fmt.Errorf("node %d is not a member of group %d", e.cfg.NodeID, desc.Group)
	}
	b, ok, err := storage.Get(e.db, storage.AppliedKey(desc.Group))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("group %d has no applied state", desc.Group)
	}
	applied, err := storage.DecodeAppliedState(b)
	if err != nil {
		return nil, err
	}
	if !e.rlog.Has(desc.Group) {
		return nil, fmt.Errorf("%w: the raft log of partition group %d is missing (its state machine is at index %d): "+
			"the raft log directory was lost or replaced", storage.ErrCorrupt, desc.Group, applied.Index)
	}
	ls, repair, err := loadGroupLog(e.rlog, desc.Group, applied)
	if err != nil {
		return nil, err
	}
	if repair != "" {
		e.cfg.Logger.Warn(repair, "partition", desc.Group)
	}
	if e.cfg.UnsafeReapply > 0 {
		plantReapply(ls, &applied, e.cfg.UnsafeReapply)
	}
	if hs, _, err := ls.InitialState(); err != nil {
		return nil, err
	} else if err := checkSavedTerm(desc.Group, hs.GetTerm(), e.cfg.Logger); err != nil {
		return nil, err
	}
	r := &replica{
		group:     desc.Group,
		id:        id,
		desc:      desc,
		log:       ls,
		applied:   applied,
		committed: applied,
		// Pebble flushes what it recovers at Open, so what it holds is
		// durable.
		durableApplied: applied.Index,
		readsByCtx:     map[uint64][]*readReq{},
	}
	if e.cfg.ReadLeases {
		// A replica just loaded forgot the lease rounds it answered
		// before, and which of its entries change the configuration.
		r.lastLeaseAnswer = e.mono()
		r.lastConfIndex, _ = ls.LastIndex()
	}
	if err := r.loadDedupe(e.db); err != nil {
		return nil, err
	}
	r.tables = newTxnTables()
	for _, t := range []byte{storage.TxnLocks, storage.TxnParts, storage.TxnRecords} {
		lo, hi := storage.TxnSpan(r.group, t)
		if err := iterSpan(e.db, lo, hi, func(k, v []byte) error { r.tables.of(t).load(k[len(lo):], v); return nil }); err != nil {
			return nil, err
		}
	}
	if err := r.loadMarks(e.db, e.now()); err != nil {
		return nil, err
	}
	slots, err := readSlotRange(e.db, r.group)
	if err != nil {
		return nil, err
	}
	r.setSlots(slots)
	rn, err := raft.NewRawNode(&raft.Config{
		ID:                        id,
		ElectionTick:              e.cfg.ElectionTicks,
		HeartbeatTick:             e.cfg.HeartbeatTicks,
		Storage:                   groupStorage{groupLog: ls, e: e, r: r},
		Applied:                   applied.Index,
		MaxSizePerMsg:             e.cfg.MaxSizePerMsg,
		MaxCommittedSizePerReady:  4 * e.cfg.MaxSizePerMsg,
		MaxUncommittedEntriesSize: e.cfg.MaxUncommittedBytes,
		MaxInflightMsgs:           e.cfg.MaxInflightMsgs,
		MaxInflightBytes:          uint64(e.cfg.MaxInflightMsgs) * e.cfg.MaxSizePerMsg / 4,
		CheckQuorum:               true,
		PreVote:                   true,
		ReadOnlyOption:            raft.ReadOnlySafe,
		DisableProposalForwarding: true,
		StepDownOnRemoval:         true,
		Logger:                    &raftLogger{l: e.cfg.Logger.With("partition", desc.Group)},
	})
	if err != nil {
		return nil, err
	}
	r.rn = rn
	r.publishStatus()
	return r, nil
}

// acceptsPeerMsg filters what a peer may step into this replica: only
// messages between members of the group, addressed to this replica, of the
// kinds peers exchange. Snapshots come only through the snapshot RPC (with
// their data), proposals never travel (forwarding is off), and local
// message kinds must not come from the network at all.
func (r *replica) acceptsPeerMsg(m *pb.Message) bool {
	switch t := m.GetType(); {
	case raft.IsLocalMsg(t), t == pb.MsgProp, t == pb.MsgSnap:
		return false
	}
	return m.GetTo() == r.id && r.desc.NodeOf(m.GetFrom()) != 0
}

// appliedCommitted records that the batch holding r.applied is committed.
func (r *replica) appliedCommitted() {
	r.committed = r.applied
	r.committed.Conf = proto.Clone(r.applied.Conf).(*pb.ConfState)
}

// publishStatus makes the replica's state visible to other goroutines.
func (r *replica) publishStatus() {
	st := r.rn.BasicStatus()
	gs := &GroupStatus{
		Group:        r.group,
		ReplicaID:    r.id,
		Nodes:        r.voterNodes(),
		Learners:     r.learnerNodes(),
		LeaderNode:   r.desc.NodeOf(st.Lead),
		Term:         st.GetTerm(),
		AppliedIndex: r.applied.Index,
		AppliedTerm:  r.applied.Term,
		Keys:         r.applied.Keys,
		KeysInexact:  r.applied.KeysInexact,
		CommitIndex:  st.GetCommit(),
		Role:         st.RaftState.String(),
		ConfPending:  r.confPending,
		NextID:       r.desc.NextID,
		MemberIDs:    append(slices.Clone(r.applied.Conf.GetVoters()), r.applied.Conf.GetLearners()...),
		Frozen:       r.slots.frozen(),
		MergedPlus1:  r.slots.mergedPlus1,
		Writes:       r.load.writes,
		slotSamples:  r.load.slots,
		slotN:        r.load.n,
		desc:         r.desc,
	}
	r.status.Store(gs)
}

// voterNodes lists the nodes of the group's voters in descriptor order;
// learnerNodes those of its learners.
func (r *replica) voterNodes() []uint64 { return r.nodesWhere(false) }

func (r *replica) learnerNodes() []uint64 { return r.nodesWhere(true) }

func (r *replica) nodesWhere(learner bool) []uint64 {
	var out []uint64
	for _, x := range r.desc.Replicas {
		if slices.Contains(r.applied.Conf.GetLearners(), x.ID) == learner && (learner || slices.Contains(r.applied.Conf.GetVoters(), x.ID)) {
			out = append(out, x.Node)
		}
	}
	return out
}

// campaignNow campaigns unless a leader other than the dead one has been
// heard of meanwhile.
func (r *replica) campaignNow() {
	r.campaignIn = 0
	if r.isLeader || r.leader != 0 && r.leader != r.deadLeader {
		return
	}
	_ = r.rn.Campaign()
}

// handleSoftState reacts to a role or leader change.
func (e *Engine) handleSoftState(r *replica, ss *raft.SoftState) {
	wasLeader := r.isLeader
	if ss.Lead != r.leader {
		e.cfg.Metrics.LeaderChanges.Inc()
	}
	if !e.cfg.UnsafeLongLeases {
		r.lease.drop() // a lease is earned anew in every role and term
	}
	r.leader = ss.Lead
	r.isLeader = ss.RaftState == raft.StateLeader
	if r.isLeader && !wasLeader {
		e.cfg.Metrics.LeadersHeld.Inc()
		// An event operators look for (the console lists it); one per
		// election won, not per message.
		e.cfg.Logger.Info("became leader", "partition", r.group, "term", r.rn.BasicStatus().GetTerm())
	}
	if wasLeader && !r.isLeader {
		e.cfg.Metrics.LeadersHeld.Dec()
		// Proposals in flight may still commit under the new leader; their
		// proposers retry with the same (origin, seq), which is safe.
		e.failGroupWaiters(r.group, ErrLeaderChanged)
		r.failReads(&NotLeaderError{Group: r.group, Leader: r.desc.NodeOf(ss.Lead)})
		r.confPending = false // ChangeReplicas sees it and gives up; the next leader decides
	}
	if ss.RaftState == raft.StateCandidate || ss.RaftState == raft.StatePreCandidate {
		e.cfg.Metrics.Elections.Inc()
	}
}

func (r *replica) failReads(err error) {
	for _, ctx := range sortedKeys(r.readsByCtx) {
		for _, rq := range r.readsByCtx[ctx] {
			rq.done(err)
		}
		delete(r.readsByCtx, ctx)
	}
	for _, ir := range r.readsByIndex {
		for _, rq := range ir.reads {
			rq.done(err)
		}
	}
	r.readsByIndex = nil
	for _, rq := range r.hold.reads {
		rq.done(err)
	}
	r.hold.reads = nil
}

// startReads serves a cycle's reads on the lease, or issues one ReadIndex
// for them.
func (e *Engine) startReads(r *replica, reads []*readReq) {
	if e.cfg.UnsafeLongLeases && e.mono() < r.lease.until {
		// The planted bug: a lease that outlives its leader.
		r.readsByIndex = append(r.readsByIndex, indexedReads{index: r.applied.Index, reads: reads})
		r.releaseReads()
		return
	}
	if !r.isLeader {
		err := &NotLeaderError{Group: r.group, Leader: r.desc.NodeOf(r.leader)}
		for _, rq := range reads {
			rq.done(err)
		}
		return
	}
	if e.serveOnLease(r, reads) {
		return
	}
	e.issueRound(r, reads)
}

// onReadStates records read indexes granted by the quorum.
func (r *replica) onReadStates(states []raft.ReadState) {
	for _, rs := range states {
		ctx, ok := parseReadCtx(rs.RequestCtx)
		if !ok {
			continue
		}
		reads := r.readsByCtx[ctx]
		delete(r.readsByCtx, ctx)
		if len(reads) > 0 {
			r.readsByIndex = append(r.readsByIndex, indexedReads{index: rs.Index, reads: reads})
		}
	}
}

// releaseReads answers reads whose read index is applied.
func (r *replica) releaseReads() {
	keep := r.readsByIndex[:0]
	for _, ir := range r.readsByIndex {
		if ir.index <= r.applied.Index {
			if r.hold.active() {
				// Served now, the read could see state after an open cut.
				r.hold.reads = append(r.hold.reads, ir.reads...)
				continue
			}
			for _, rq := range ir.reads {
				rq.done(nil)
			}
			continue
		}
		keep = append(keep, ir)
	}
	r.readsByIndex = keep
}

// transferTo hands leadership to the replica on node, if it is active and
// fully caught up (see Engine.TransferGroupLeader).
func (r *replica) transferTo(node uint64) {
	id := r.desc.ReplicaOn(node)
	if !r.isLeader || id == 0 || id == r.id {
		return
	}
	last := r.rn.Status().Progress[r.id].Match
	ok := false
	r.rn.WithProgress(func(pid uint64, typ raft.ProgressType, pr tracker.Progress) {
		ok = ok || pid == id && typ == raft.ProgressTypePeer && pr.RecentActive && !pr.IsLearner && pr.Match >= last
	})
	if ok {
		r.lease.drop() // the transferee campaigns without waiting out leases
		r.rn.TransferLeader(id)
	}
}

// transferAway hands leadership to the most up-to-date follower that is
// recently active (a stopped node keeps its old match index).
func (r *replica) transferAway() {
	if !r.isLeader {
		return
	}
	var best, bestMatch uint64
	r.rn.WithProgress(func(id uint64, typ raft.ProgressType, pr tracker.Progress) {
		if id != r.id && typ == raft.ProgressTypePeer && pr.RecentActive && !pr.IsLearner && pr.Match >= bestMatch {
			best, bestMatch = id, pr.Match
		}
	})
	if best != 0 {
		r.lease.drop() // the transferee campaigns without waiting out leases
		r.rn.TransferLeader(best)
	}
}
