package dst

import (
	"slices"
	"time"

	"github.com/kintsu/kintsu/internal/raftstore"
)

// The move nemesis moves one replica of a group to a node that holds
// none, as the placement driver does: add the new node as a learner,
// promote it once it caught up, then remove the old one (after moving
// leadership away if it leads). One move at a time; a move interrupted
// by the heal or by its own give-up is resumed by the next one.
type mover struct {
	s      *Sim
	moving bool
}

const moveAttempts = 30

func (s *Sim) move() {
	m := &s.mover
	if m.moving {
		return
	}
	g := uint64(1 + s.rng.IntN(s.shape.Groups))
	_, st, ok := s.leaderOf(g)
	if !ok {
		return
	}
	members := append(slices.Clone(st.Nodes), st.Learners...)
	var spare []uint64
	for _, n := range s.nodes {
		if n.up && !slices.Contains(members, n.id) {
			spare = append(spare, n.id)
		}
	}
	m.moving = true
	s.fault("move")
	switch {
	case len(st.Learners) > 0: // resume: promote, then shrink
		to := st.Learners[0]
		m.change(g, raftstore.PromoteLearner, to, moveAttempts, func() { m.shrink(g, to) })
	case len(st.Nodes) > replicasPerGroup:
		m.shrink(g, 0)
	case len(spare) > 0:
		to := spare[s.rng.IntN(len(spare))]
		m.change(g, raftstore.AddLearner, to, moveAttempts, func() {
			m.change(g, raftstore.PromoteLearner, to, moveAttempts, func() { m.shrink(g, to) })
		})
	default:
		m.moving = false
	}
}

// shrink removes a voter other than keep while the group has too many.
func (m *mover) shrink(g, keep uint64) {
	s := m.s
	_, st, ok := s.leaderOf(g)
	if !ok || len(st.Nodes) <= replicasPerGroup {
		m.moving = false
		return
	}
	var victims []uint64
	for _, id := range st.Nodes {
		if id != keep {
			victims = append(victims, id)
		}
	}
	from := victims[s.rng.IntN(len(victims))]
	m.change(g, raftstore.RemoveReplica, from, moveAttempts, func() { m.moving = false })
}

// change proposes one membership change on the group's leader and calls
// next once it is in effect; it retries while attempts last.
func (m *mover) change(g uint64, kind raftstore.ChangeKind, node uint64, attempts int, next func()) {
	s := m.s
	retry := func() {
		if attempts <= 1 {
			m.moving = false
			return
		}
		s.at(s.between(50*time.Millisecond, 300*time.Millisecond), "move-retry", g, node, func() {
			m.change(g, kind, node, attempts-1, next)
		})
	}
	leader, _, ok := s.leaderOf(g)
	if !ok {
		retry()
		return
	}
	if kind == raftstore.RemoveReplica && leader.id == node {
		// The leader does not remove itself: move leadership first.
		st, _ := leader.eng.GroupStatus(g)
		for _, id := range st.Nodes {
			if id != node {
				leader.eng.TransferGroupLeader(g, id)
				leader.busy = true
				break
			}
		}
		retry()
		return
	}
	leader.eng.ProposeChange(g, kind, node, func(inEffect bool, err error) {
		switch {
		case inEffect:
			s.at(0, "moved", g, node, next)
		case err != nil:
			retry()
		default:
			m.await(g, kind, node, 60, func() { s.at(0, "moved", g, node, next) }, retry)
		}
	})
	leader.busy = true
}

// await polls the leader's status until the change shows, or gives up.
func (m *mover) await(g uint64, kind raftstore.ChangeKind, node uint64, polls int, done, failed func()) {
	s := m.s
	s.at(50*time.Millisecond, "move-poll", g, node, func() {
		if _, st, ok := s.leaderOf(g); ok && raftstore.ChangeInEffect(st, kind, node) {
			done()
			return
		}
		if polls <= 1 {
			failed()
			return
		}
		m.await(g, kind, node, polls-1, done, failed)
	})
}

// leaderOf finds the node that leads g now, by its own account.
func (s *Sim) leaderOf(g uint64) (*node, raftstore.GroupStatus, bool) {
	var best *node
	var bst raftstore.GroupStatus
	for _, n := range s.nodes {
		if !n.up {
			continue
		}
		if st, ok := n.eng.GroupStatus(g); ok && st.Role == "StateLeader" && (best == nil || st.Term > bst.Term) {
			best, bst = n, st
		}
	}
	return best, bst, best != nil
}

// hints plays the control plane's leader hints (internal/control): every
// second each node hears, from each group's leader it can reach, the
// leader's descriptor, and drops a replica the group removed while it
// could not hear of it (Engine.DestroyIfRemoved) — the only way out for a
// replica whose old voters mostly left the group too, so that no
// majority of them can confirm its removal.
func (s *Sim) hints() {
	s.at(time.Second, "hints", 0, 0, func() {
		for g := uint64(1); g <= uint64(s.shape.Groups); g++ {
			leader, st, ok := s.leaderOf(g)
			if !ok {
				continue
			}
			for _, n := range s.nodes {
				if n.up && n != leader && !s.net.cut[[2]uint64{leader.id, n.id}] && n.eng.HasGroup(g) {
					n.eng.DestroyIfRemoved(g, st.NextID, st.MemberIDs)
					n.busy = true
				}
			}
		}
		s.hints()
	})
}
