package raftstore

import (
	"encoding/binary"
	"slices"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
)

// Read leases (Config.ReadLeases; the design and its argument are in
// docs/designs/2026-12-read-leases.md).
//
// A leader serves a linearizable read from local state, without a quorum
// round, while it holds a lease: proof that no other replica can have
// become leader and committed anything since the lease's round was
// issued. The argument, in short: a lease is earned only from a ReadIndex
// round that EVERY voter answered in the leader's term, and lasts L from
// the round's issue on the leader's Mono clock. Each voter's last contact
// with the leader (and a restarted voter's start) is then after the
// issue, so
//   - a campaign from an election timer starts at least ET of the
//     candidate's time after the issue;
//   - a PeerDown campaign waits W after the voter's last answer to a read
//     round, or after its load (Engine.PeerDown);
//   - MsgTimeoutNow comes only from this leader (validate.go), which drops
//     its lease before a transfer;
//   - a conf change drops the lease when the leader appends it, and no
//     lease is served until it is applied, so the voters asked are the
//     group's voters.
//
// With at most one node's clock off real time, by a rate within [1/ρ, ρ],
// L ≤ min(ET, W)/ρ keeps every lease inside the window no new leader can
// be elected in. Pauses need nothing: Mono runs on while a process is
// stopped, so a resumed leader finds its lease expired.
//
// leaderLease itself is pure (no clock, no raft): the replica feeds it
// times and answers, which keeps it testable exhaustively.

// maxLeaseRounds bounds the rounds a lease tracks; older ones are
// forgotten (they can only earn a lease that is already shorter).
const maxLeaseRounds = 16

// leaseDuration is L: a fifth of the election timeout (ρ = 4 with a
// margin), or the planted bug's ten timeouts.
func (e *Engine) leaseDuration() time.Duration {
	et := time.Duration(e.cfg.ElectionTicks) * e.cfg.TickInterval
	if e.cfg.UnsafeLongLeases {
		return 10 * et
	}
	return et / 5
}

// leaseWait is W, how long after answering a lease round a follower
// holds back a PeerDown campaign: ρ·L, L's worst case in real time.
func (e *Engine) leaseWait() time.Duration {
	return 4 * time.Duration(e.cfg.ElectionTicks) * e.cfg.TickInterval / 5
}

// leaseProtocol is what this node's envelopes say of it (Envelope.Lease):
// its election timeout if it runs read leases, else 0.
func (e *Engine) leaseProtocol() time.Duration {
	if !e.cfg.ReadLeases {
		return 0
	}
	return time.Duration(e.cfg.ElectionTicks) * e.cfg.TickInterval
}

func (e *Engine) mono() time.Duration { return e.cfg.Clock.Mono() }

// leaseVoters is every voter of r's applied configuration, both halves of
// a joint one.
func (r *replica) leaseVoters() []uint64 {
	v, out := r.applied.Conf.GetVoters(), r.applied.Conf.GetVotersOutgoing()
	if len(out) == 0 {
		return v // no joint configuration: read as is, never written
	}
	v = slices.Clone(v)
	for _, o := range out {
		if !slices.Contains(v, o) {
			v = append(v, o)
		}
	}
	return v
}

// readCtx encodes a read round's request context: the replica's read
// sequence. (Raft puts its own counter in the heartbeats that confirm it:
// see leaderLease.)
func readCtx(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// parseReadCtx decodes a read round's request context.
func parseReadCtx(ctx []byte) (seq uint64, ok bool) {
	if len(ctx) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(ctx), true
}

// serveOnLease answers reads from r's local state if its lease holds:
// they wait only for the apply to reach the commit index. It reports
// false if they need a round. A lease past half its life is renewed.
func (e *Engine) serveOnLease(r *replica, reads []*readReq) bool {
	if !e.cfg.ReadLeases || !r.isLeader {
		return false
	}
	st := r.rn.BasicStatus()
	if st.LeadTransferee != 0 {
		r.lease.drop() // raft is handing leadership over
		return false
	}
	now := e.mono()
	commit := st.GetCommit()
	if r.confPending || r.applied.Index < r.lastConfIndex || !r.lease.valid(st.GetTerm(), now) {
		return false
	}
	if t, err := r.log.Term(commit); err != nil || t != st.GetTerm() {
		return false // no entry of its own term committed yet: its commit may lag
	}
	r.readsByIndex = append(r.readsByIndex, indexedReads{index: commit, reads: reads})
	e.cfg.Metrics.LeaseReads.Add(float64(len(reads)))
	// Usually applied already: answer now, not at the group's next Ready.
	r.releaseReads()
	if r.lease.left(st.GetTerm(), now) < e.leaseDuration()/2 && now-r.leaseIssued >= e.leaseDuration()/4 {
		e.issueRound(r, nil)
	}
	return true
}

// issueRound starts a ReadIndex round for reads (none: a lease renewal).
func (e *Engine) issueRound(r *replica, reads []*readReq) {
	r.readSeq++
	if len(reads) > 0 {
		r.readsByCtx[r.readSeq] = append(r.readsByCtx[r.readSeq], reads...)
	}
	if e.cfg.ReadLeases {
		now := e.mono()
		r.leaseIssued = now
		r.lease.issue(r.rn.BasicStatus().GetTerm(), now, r.leaseVoters(), r.id, e.leaseDuration())
	}
	r.rn.ReadIndex(readCtx(r.readSeq))
	e.cfg.Metrics.ReadRounds.Inc()
}

// noteLeaseAnswer records a voter's answer to r's read rounds: raft's
// heartbeat context, the number of ReadIndex requests of the term the
// answer covers (little-endian, as raft writes it).
//
// Only an answer from a node that runs leases with the same election
// timeout counts (Envelope.Lease): any other voter would not hold back
// its campaigns, and the lease would not be safe.
func (e *Engine) noteLeaseAnswer(r *replica, m *pb.Message, lease time.Duration) {
	if !e.cfg.ReadLeases || !r.isLeader || m.GetType() != pb.MsgHeartbeatResp || len(m.GetContext()) != 8 || lease != e.leaseProtocol() {
		return
	}
	pos := binary.LittleEndian.Uint64(m.GetContext())
	r.lease.answer(m.GetTerm(), m.GetFrom(), pos, r.leaseVoters(), r.id, e.leaseDuration())
}

// leaseAnswered records, on a follower, that it answers a read round (a
// heartbeat with a context): its leader may hold a lease counted from
// before this answer, so PeerDown campaigns wait leaseWait from now.
func (e *Engine) leaseAnswered(r *replica, m *pb.Message) {
	if e.cfg.ReadLeases && m.GetType() == pb.MsgHeartbeatResp && len(m.GetContext()) > 0 {
		r.lastLeaseAnswer = e.mono()
	}
}

// noteConfEntries drops r's lease when its log gains a conf change: the
// voters a lease must hear from change, and none is served until the
// change is applied.
func (r *replica) noteConfEntries(ents []*pb.Entry) {
	for _, ent := range ents {
		if t := ent.GetType(); t == pb.EntryConfChange || t == pb.EntryConfChangeV2 {
			r.lastConfIndex = max(r.lastConfIndex, ent.GetIndex())
			r.lease.drop()
		}
	}
}

// leaderLease is pure: the replica feeds it times and answers.
//
// Raft (v3.7) confirms ReadIndex requests by position: the n-th request
// of a leader's term is confirmed by a heartbeat whose context says n or
// more, sent after the request was added, and a voter's answer echoes
// that context. The lease counts the replica's own ReadIndex calls of the
// term the same way; it counts every call, while raft skips none but
// those of a lone voter, so its positions are never below raft's: an
// answer that completes a round here was sent after that round's
// request (a mismatch only delays a lease).
//
// Every round it keeps was issued in term and after the last drop: both
// clear the rounds.
type leaderLease struct {
	term   uint64        // the term of the requests counted, and of the lease
	until  time.Duration // Mono time the lease expires; valid while now < until
	rounds []leaseRound
	// The term's request count and each voter's highest answer in it.
	pos  uint64
	acks map[uint64]uint64
}

type leaseRound struct {
	pos    uint64
	issued time.Duration
}

// issue records a ReadIndex request of term made at now. voters are the
// group's voters, self the leader's replica id: a group whose only voter
// is the leader earns at once.
func (l *leaderLease) issue(term uint64, now time.Duration, voters []uint64, self uint64, dur time.Duration) {
	if term != l.term {
		l.term, l.pos, l.acks, l.until = term, 0, map[uint64]uint64{}, 0
		l.rounds = l.rounds[:0]
	}
	l.pos++
	if len(l.rounds) == maxLeaseRounds {
		l.rounds = slices.Delete(l.rounds, 0, 1)
	}
	l.rounds = append(l.rounds, leaseRound{pos: l.pos, issued: now})
	l.complete(voters, self, dur)
}

// answer records that voter from answered requests up to position pos in
// term. It reports whether the lease was extended.
func (l *leaderLease) answer(term, from, pos uint64, voters []uint64, self uint64, dur time.Duration) bool {
	if term != l.term || from == self || !slices.Contains(voters, from) {
		return false
	}
	l.acks[from] = max(l.acks[from], pos)
	return l.complete(voters, self, dur)
}

// complete earns the lease from the newest round every voter answered,
// and forgets it and every older round.
func (l *leaderLease) complete(voters []uint64, self uint64, dur time.Duration) bool {
	if !slices.Contains(voters, self) {
		return false // a leader that is not a voter (being removed) earns nothing
	}
	done := ^uint64(0)
	for _, v := range voters {
		if v != self {
			done = min(done, l.acks[v])
		}
	}
	last := -1
	for i, rd := range l.rounds {
		if rd.pos <= done {
			last = i
		}
	}
	if last < 0 {
		return false
	}
	rd := l.rounds[last]
	l.rounds = slices.Delete(l.rounds, 0, last+1)
	extended := rd.issued+dur > l.until
	l.until = max(l.until, rd.issued+dur)
	return extended
}

// valid reports whether a read in term may be served on the lease at now.
func (l *leaderLease) valid(term uint64, now time.Duration) bool {
	return l.until > 0 && l.term == term && now < l.until
}

// left is how long the lease still holds at now (0 if it does not).
func (l *leaderLease) left(term uint64, now time.Duration) time.Duration {
	if !l.valid(term, now) {
		return 0
	}
	return l.until - now
}

// drop ends the lease and voids every round in flight. Answers need no
// reset: positions only grow, so an answer from before the drop cannot
// cover a round issued after it.
func (l *leaderLease) drop() {
	l.until = 0
	l.rounds = l.rounds[:0]
}
