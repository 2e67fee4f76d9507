package raftstore

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Peer message validation: what a peer's message may do (see the package
// doc). Raft trusts its peers: a term near 2^64 overflows when it
// campaigns, a heartbeat committing past the local log or an append whose
// entries are not numbered after its index panics, a read-index request
// without its entry panics. Everything here runs on the loop, before
// Step.

const (
	// MaxTerm is the highest term a peer's message may carry. A term grows
	// by one per election: at one election a millisecond it takes nine
	// thousand years to get here, and it is far enough from 2^64 that
	// raft's term+1 never overflows.
	MaxTerm = 1 << 48
	// MaxTermJump is how far above a replica's own term a peer's message
	// may be. With PreVote and CheckQuorum a group's term grows only when a
	// quorum agrees its leader is gone, about once per election timeout at
	// most (and once per leadership transfer): 65536 terms is days of
	// elections back to back, so only a replica away for that long is
	// refused (it is then replaced like any lost replica, and the WARN
	// says why). A smaller jump would not stop a member from disturbing
	// the group — term+1 from a forged leader forces an election as well —
	// only binding each replica id to its certified node does (admit).
	MaxTermJump = 1 << 16
	// maxMsgEntries bounds the entries of one append (raft cuts appends
	// at MaxSizePerMsg bytes; entries are never empty of overhead).
	maxMsgEntries = 1 << 16
	// maxIndex bounds log indexes, far from overflow as MaxTerm is.
	maxIndex = 1 << 60
	// maxIDGap: a member unknown to a lagging replica was added after its
	// last applied change, one id per added replica.
	maxIDGap = 1 << 16
	// maxEmptyReplicas bounds the replicas created for leaders that have
	// not received their first snapshot yet.
	maxEmptyReplicas = 64
	// warnEvery limits refusal logging per kind; noticeEvery the removal
	// notices sent per replica id; probeEvery and suspectFor the checks a
	// replica makes after being told it was removed.
	warnEvery   = time.Second
	noticeEvery = 200 * time.Millisecond
	probeEvery  = time.Second
	suspectFor  = time.Minute
)

// peerTypes are the message kinds raft exchanges between peers and that
// Kintsu lets through. Local kinds never travel; proposals are not
// forwarded (DisableProposalForwarding); reads are served by the leader
// itself, so read-index requests and answers never travel either; a
// leadership transfer is asked of the leader locally. MsgSnap arrives only
// through the snapshot stream, with its data.
var peerTypes = map[pb.MessageType]bool{
	pb.MsgApp: true, pb.MsgAppResp: true,
	pb.MsgHeartbeat: true, pb.MsgHeartbeatResp: true,
	pb.MsgVote: true, pb.MsgVoteResp: true,
	pb.MsgPreVote: true, pb.MsgPreVoteResp: true,
	pb.MsgTimeoutNow: true,
}

// checkShape returns why m cannot come from a correct peer, judged on m
// alone; "" if it may. snap: m came through the snapshot stream.
func checkShape(m *pb.Message, snap bool) string {
	if m == nil {
		return "no message"
	}
	t := m.GetType()
	if snap != (t == pb.MsgSnap) || !snap && !peerTypes[t] {
		return "a message kind peers do not send this way"
	}
	if m.GetFrom() == 0 || m.GetTo() == 0 || m.GetFrom() == m.GetTo() {
		return "bad replica ids"
	}
	if m.GetTerm() == 0 {
		return "no term"
	}
	if m.GetTerm() > MaxTerm || m.GetLogTerm() > m.GetTerm() {
		return "implausible term"
	}
	if m.GetIndex() > maxIndex || m.GetCommit() > maxIndex || m.GetRejectHint() > maxIndex {
		return "implausible index"
	}
	if m.Snapshot != nil && t != pb.MsgSnap {
		return "a snapshot outside MsgSnap"
	}
	ents := m.GetEntries()
	if len(ents) > 0 && t != pb.MsgApp {
		return "entries outside an append"
	}
	if len(ents) > maxMsgEntries {
		return "too many entries"
	}
	prev := m.GetLogTerm()
	for i, e := range ents {
		// Raft appends entries at their own indexes; a gap or a term going
		// back makes it find a conflict with committed entries and panic.
		if e.GetIndex() != m.GetIndex()+1+uint64(i) || e.GetTerm() < prev || e.GetTerm() > m.GetTerm() {
			return "entries not following the append's index and terms"
		}
		switch e.GetType() {
		case pb.EntryNormal:
		case pb.EntryConfChange:
			if proto.Unmarshal(e.GetData(), &pb.ConfChange{}) != nil {
				return "a malformed conf change"
			}
		case pb.EntryConfChangeV2:
			if proto.Unmarshal(e.GetData(), &pb.ConfChangeV2{}) != nil {
				return "a malformed conf change"
			}
		default:
			return "unknown entry type"
		}
		prev = e.GetTerm()
	}
	if snap {
		md := m.GetSnapshot().GetMetadata()
		if md == nil || md.GetIndex() == 0 || md.GetIndex() > maxIndex || md.GetTerm() == 0 || md.GetTerm() > m.GetTerm() || len(md.GetConfState().GetVoters()) == 0 {
			return "a snapshot without plausible metadata"
		}
	}
	return ""
}

// guard is a replica's state for validating its peers' messages.
type guard struct {
	// lastLow is at most raft's last log index: the durable last index at
	// the start of the cycle, lowered by what an append or a snapshot
	// stepped since may have cut off.
	lastLow uint64
	// removedBy holds the nodes that answered this replica's question
	// (one of nonces) saying it was removed; suspectUntil is when it
	// stops asking.
	removedBy    map[uint64]bool
	nonces       []uint64
	suspectUntil time.Time
	lastProbe    time.Time
	// heardLeader is when a message of the leader in its term was last
	// stepped.
	heardLeader time.Time
	// readCtx is the highest read-confirmation context this replica sent
	// in heartbeats while leading in readTerm.
	readCtx, readTerm uint64
}

// peerGuard is the engine's state for validating peers' messages. Loop only.
type peerGuard struct {
	warned     map[string]time.Time
	suppressed map[string]int
	noticed    map[[3]uint64]time.Time // (group, replica id, answer) -> last notice sent
}

// refuse logs a refused message at WARN, once per warnEvery per reason.
func (e *Engine) refuse(env Envelope, why string) {
	g := &e.guard
	if g.warned == nil {
		g.warned, g.suppressed = map[string]time.Time{}, map[string]int{}
	}
	now := e.now()
	if now.Sub(g.warned[why]) < warnEvery {
		g.suppressed[why]++
		return
	}
	g.warned[why] = now
	m := env.Msg
	e.cfg.Logger.Warn("refused a peer's raft message", "reason", why, "partition", env.Group, "node", env.From,
		"type", m.GetType().String(), "from", m.GetFrom(), "to", m.GetTo(), "term", m.GetTerm(),
		"removed_notice", env.Removed, "refused_since_last_warning", g.suppressed[why])
	g.suppressed[why] = 0
}

// startCycle resets what the guards know of the local logs.
func (e *Engine) startCycle() {
	for _, r := range e.replicas {
		r.guard.lastLow = r.log.LastIndexDurable()
	}
}

// admit checks a message addressed to r from a replica r's descriptor
// knows, against r's state; it returns the message to step (a heartbeat's
// commit may be lowered) or why it is refused.
func (e *Engine) admit(r *replica, env Envelope) (*pb.Message, string) {
	m := env.Msg
	if r.desc.NodeOf(m.GetFrom()) != env.From {
		return nil, "the sending node is not the node of the sending replica"
	}
	term := r.rn.BasicStatus().GetTerm()
	if r.applied.Index > 0 && m.GetTerm() > term+MaxTermJump {
		// An empty replica has no term of its own to compare with; MaxTerm
		// still holds.
		return nil, "implausible term"
	}
	if st := r.rn.BasicStatus(); isLeaderMsg(m) && m.GetFrom() != st.Lead {
		// Raft takes any leader message of its term or a later one as
		// coming from the leader: one from a member that does not lead
		// would make this replica commit entries the group never committed.
		// A term has one leader; and while this replica's leader is alive
		// (heard within an election timeout, as CheckQuorum's lease for
		// votes) a newer leader has it vote first, or is new to it only
		// after the lease ran out.
		if m.GetTerm() == term && st.Lead != 0 || m.GetTerm() > term && e.hearsLeader(r) {
			return nil, "a leader's message from a replica that does not lead"
		}
	}
	switch m.GetType() {
	case pb.MsgHeartbeat:
		if m.GetCommit() > r.guard.lastLow {
			// A leader commits on a follower only what it acknowledged;
			// committing past the log would panic raft. Lowering it is
			// harmless: the next heartbeat carries it again.
			c := proto.Clone(m).(*pb.Message)
			c.Commit = new(r.guard.lastLow)
			m = c
		}
	case pb.MsgHeartbeatResp:
		// Its context confirms the leader's pending reads: one it never
		// sent would let a read be served without a quorum.
		if ctx := m.GetContext(); len(ctx) > 0 && (len(ctx) != 8 || m.GetTerm() != r.guard.readTerm || binary.LittleEndian.Uint64(ctx) > r.guard.readCtx) {
			return nil, "confirms reads this leader never asked about"
		}
	case pb.MsgAppResp:
		if !m.GetReject() && m.GetIndex() > r.log.LastIndexDurable() {
			return nil, "acknowledges entries this replica never had"
		}
	case pb.MsgTimeoutNow:
		// It starts an election without pre-vote: only the leader this
		// replica follows may ask, in its own term.
		if lead := r.rn.BasicStatus().Lead; lead == 0 || m.GetFrom() != lead || m.GetTerm() != term {
			return nil, "MsgTimeoutNow not from the current leader"
		}
	}
	return m, ""
}

// sent records the read confirmations r asks for in its heartbeats.
func (r *replica) sent(m *pb.Message) {
	if ctx := m.GetContext(); m.GetType() == pb.MsgHeartbeat && len(ctx) == 8 {
		if m.GetTerm() != r.guard.readTerm {
			r.guard.readTerm, r.guard.readCtx = m.GetTerm(), 0
		}
		r.guard.readCtx = max(r.guard.readCtx, binary.LittleEndian.Uint64(ctx))
	}
}

// stepped records what m may have cut off r's log, and when the leader
// was last heard of.
func (r *replica) stepped(m *pb.Message, now time.Time) {
	if st := r.rn.BasicStatus(); isLeaderMsg(m) && m.GetFrom() == st.Lead && m.GetTerm() == st.GetTerm() {
		r.guard.heardLeader = now
	}
	switch m.GetType() {
	case pb.MsgApp:
		if n := len(m.GetEntries()); n > 0 {
			r.guard.lastLow = min(r.guard.lastLow, m.GetIndex()+uint64(n))
		}
	case pb.MsgSnap:
		r.guard.lastLow = min(r.guard.lastLow, m.GetSnapshot().GetMetadata().GetIndex())
	}
}

// hearsLeader reports whether r leads, or heard its leader within an
// election timeout (CheckQuorum's lease for votes).
func (e *Engine) hearsLeader(r *replica) bool {
	st := r.rn.BasicStatus()
	return st.RaftState == raft.StateLeader ||
		st.Lead != 0 && e.now().Sub(r.guard.heardLeader) < time.Duration(e.cfg.ElectionTicks)*e.cfg.TickInterval
}

// newMember reports whether m's sender may be added to r's descriptor as a
// member added after the last change r applied (see receive): a leader's
// or a candidate's message, from a replica id that cannot be an old one,
// at or above r's term. It never replaces a mapping.
//
// A node holds one replica of a group, so a sender whose node the
// descriptor maps to an older id was removed and added back while r
// lagged: its new id is taken (beside the old one) only while r hears no
// leader. A replica its group still reaches learns the new descriptor
// from the log, and a member must not pass off a second id to disturb it;
// a replica the group no longer reaches (its leader is that new id) would
// otherwise refuse every message of the group for good.
func (e *Engine) newMember(r *replica, env Envelope) bool {
	m := env.Msg
	from := m.GetFrom()
	if m.GetTo() != r.id || env.From == 0 || env.From == e.cfg.NodeID || r.desc.NodeOf(from) != 0 {
		return false
	}
	switch m.GetType() {
	case pb.MsgApp, pb.MsgHeartbeat, pb.MsgVote, pb.MsgPreVote:
	default:
		return false
	}
	if m.GetTerm() < r.rn.BasicStatus().GetTerm() {
		return false
	}
	// A second id on a node the descriptor maps already: only while r
	// hears no leader (see above).
	ok := r.desc.ReplicaOn(env.From) == 0 || !e.hearsLeader(r)
	if r.applied.Index == 0 {
		// Empty: the descriptor is only the creating leader's pair (no
		// NextID); the leader may since have been removed and its node
		// added back, and the new id lead.
		return isLeaderMsg(m) && ok
	}
	if from < r.desc.NextID || from-r.desc.NextID >= maxIDGap {
		return false
	}
	return ok
}

// canCreate reports whether a replica may be created for env's leader.
func (e *Engine) canCreate(env Envelope) bool {
	if e.cfg.IsMember != nil && !e.cfg.IsMember(env.From) {
		e.refuse(env, "a leader's message from a node that is not a member")
		return false
	}
	empty := 0
	for _, r := range e.replicas {
		if r.applied.Index == 0 {
			empty++
		}
	}
	if empty >= maxEmptyReplicas {
		e.refuse(env, "too many replicas waiting for their first snapshot")
		return false
	}
	return true
}

// removalNotice handles a peer's word that r was removed. A notice that
// answers r's own question (it carries one of r's recent nonces, which
// only the nodes asked have seen) is evidence (see removalConfirmed); any
// other only makes r ask.
func (e *Engine) removalNotice(env Envelope) {
	r := e.byGroup[env.Group]
	if r == nil || env.Msg == nil || env.Msg.GetTo() != r.id {
		return
	}
	node := env.From
	if node == 0 || node == e.cfg.NodeID || r.desc.ReplicaOn(node) == 0 {
		e.refuse(env, "a removal notice from a node the replica does not know")
		return
	}
	if n := env.Msg.GetRejectHint(); n != 0 && slices.Contains(r.guard.nonces, n) {
		if r.guard.removedBy == nil {
			r.guard.removedBy = map[uint64]bool{}
		}
		r.guard.removedBy[node] = true
	} else if !e.now().Before(r.guard.suspectUntil) {
		e.cfg.Logger.Info("told that this replica was removed from its group: asking the group", "partition", r.group, "replica", r.id, "by_node", node)
	}
	e.suspectRemoved(r)
}

// answerProbe answers a replica's question whether it was removed (see
// suspectRemoved) for a replica id this group removed.
func (e *Engine) answerProbe(group, id, node, nonce uint64) {
	e.sendEnvelopes(node, []Envelope{{Group: group, Removed: true, Msg: &pb.Message{To: new(id), RejectHint: new(nonce)}}})
}

// suspectRemoved makes r check, for suspectFor, whether it was removed.
func (e *Engine) suspectRemoved(r *replica) {
	r.guard.suspectUntil = e.now().Add(suspectFor)
	e.askGroup(r)
}

// askGroup destroys r if the nodes that answered its question are enough,
// and asks the others otherwise (at most once per probeEvery).
func (e *Engine) askGroup(r *replica) {
	if r.removed {
		return
	}
	if e.removalConfirmed(r) {
		e.cfg.Logger.Info("removal of this replica confirmed by the group", "partition", r.group, "replica", r.id, "by_nodes", e.confirmers(r))
		r.removed = true
		return
	}
	now := e.now()
	if now.Sub(r.guard.lastProbe) < probeEvery {
		return
	}
	r.guard.lastProbe = now
	// The question is a heartbeat answer in r's term carrying a fresh
	// nonce in RejectHint, which raft ignores in it: a member that applied
	// r's removal answers with a removal notice carrying the nonce
	// (receive); a leader that still counts r takes it as a sign of life;
	// a follower ignores it. Older versions answer without the nonce,
	// which counts for nothing.
	nonce := 1 + e.rng.Uint64N(maxIndex-1)
	r.guard.nonces = append(r.guard.nonces, nonce)
	if len(r.guard.nonces) > 4 {
		r.guard.nonces = r.guard.nonces[1:]
	}
	term := max(r.rn.BasicStatus().GetTerm(), 1)
	for _, x := range r.desc.Replicas {
		if x.Node == e.cfg.NodeID || x.ID == r.id || r.guard.removedBy[x.Node] {
			continue
		}
		e.sendEnvelopes(x.Node, []Envelope{{Group: r.group, Msg: &pb.Message{Type: pb.MsgHeartbeatResp.Enum(), From: new(r.id), To: new(x.ID), Term: new(term), RejectHint: new(nonce)}}})
	}
}

// recheckRemovals keeps suspected replicas asking, on ticks.
func (e *Engine) recheckRemovals() {
	now := e.now()
	for _, r := range e.replicas {
		if now.Before(r.guard.suspectUntil) {
			e.askGroup(r)
		}
	}
}

// removalConfirmed: the nodes of a majority of the voters r knows, asked
// by r, said each that they applied r's removal. They are members (they
// know r's id and that it is below NextID), a frame injected by anyone
// else cannot carry the nonce, and a majority cannot all be wrong unless
// most of the group is. A replica that knows no voters is empty: it holds
// no data, and the nodes of its descriptor (the leader that created it)
// suffice.
func (e *Engine) removalConfirmed(r *replica) bool {
	voters := r.applied.Conf.GetVoters()
	if len(voters) == 0 {
		n, of := 0, 0
		for _, x := range r.desc.Replicas {
			if x.Node != e.cfg.NodeID {
				of++
				if r.guard.removedBy[x.Node] {
					n++
				}
			}
		}
		return n > 0 && 2*n > of
	}
	n := 0
	for _, v := range voters {
		if v != r.id && r.guard.removedBy[r.desc.NodeOf(v)] {
			n++
		}
	}
	return 2*n > len(voters)
}

func (e *Engine) confirmers(r *replica) []uint64 {
	var out []uint64
	for n := range r.guard.removedBy {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// noticeAllowed rate-limits removal notices per replica id (answers to
// its questions apart): one is enough, and a flood of messages from a
// removed id must not become a flood of notices.
func (e *Engine) noticeAllowed(group, id uint64, answer bool) bool {
	g := &e.guard
	if g.noticed == nil {
		g.noticed = map[[3]uint64]time.Time{}
	}
	k, now := [3]uint64{group, id, 0}, e.now()
	if answer {
		k[2] = 1
	}
	if now.Sub(g.noticed[k]) < noticeEvery {
		return false
	}
	if len(g.noticed) > 4096 {
		clear(g.noticed) // bounded: at worst a few extra notices
	}
	g.noticed[k] = now
	return true
}

// checkSavedTerm refuses a replica whose saved term is implausible: older
// versions took any term from the network and saved it, and raft panics
// when it campaigns from there. Lowering it is not safe (the replica may
// have voted in a term below it), so the replica must be rebuilt from its
// peers.
func checkSavedTerm(group, term uint64, logger *slog.Logger) error {
	if term <= MaxTerm {
		return nil
	}
	logger.Error("saved raft term is implausible: a forged or corrupt message set it; this replica must be rebuilt from its peers", "partition", group, "term", term, "max", uint64(MaxTerm))
	return fmt.Errorf("group %d: saved raft term %d is above %d (set by a forged or corrupt peer message): this replica cannot vote safely; remove this node's replica of the group, or the node, and let it be rebuilt from its peers", group, term, uint64(MaxTerm))
}

// admitSnap returns the replica a received snapshot goes to, nil if it is
// refused.
func (e *Engine) admitSnap(s incomingSnap) *replica {
	env := s.env
	if why := checkShape(env.Msg, true); why != "" {
		e.refuse(env, why)
		return nil
	}
	r := e.replicaFor(env)
	if r == nil || env.Msg.GetTo() != r.id {
		return nil
	}
	if _, why := e.admit(r, env); why != "" {
		e.refuse(env, why)
		return nil
	}
	// The descriptor in the data must keep this replica on this node: a
	// restart takes a replica its descriptor does not place here for
	// removed, and deletes it.
	cs := env.Msg.GetSnapshot().GetMetadata().GetConfState()
	if s.desc.NodeOf(r.id) != e.cfg.NodeID || !inConf(cs, r.id) {
		e.refuse(env, "a snapshot that does not keep this replica")
		return nil
	}
	return r
}
