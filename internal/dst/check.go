package dst

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"slices"
)

// checker holds what every step must keep true.
type checker struct {
	s       *Sim
	leaders map[[2]uint64]uint64 // (group, term) -> the node that led it
	// entries: (group, index) -> hash of the commands applied there, as the
	// first replica applied them; every other replica must apply the same.
	entries map[[2]uint64]uint64
	cur     map[[2]uint64]*applying // (node, group) -> the entry being applied
	last    map[[3]uint64][2]uint64 // (node, group, replica) -> (commit, applied) this incarnation
	// terms: (node, group) -> the term a replica last published. It was
	// durable when published (a hard state is synced before anything is
	// sent on it), so no restart may bring back a lower one.
	terms map[[3]uint64]uint64 // (node, group, replica)
}

type applying struct {
	index uint64
	h     uint64
}

func newChecker(s *Sim) *checker {
	return &checker{s: s, leaders: map[[2]uint64]uint64{}, entries: map[[2]uint64]uint64{},
		cur: map[[2]uint64]*applying{}, last: map[[3]uint64][2]uint64{}, terms: map[[3]uint64]uint64{}}
}

// restarted forgets what an earlier incarnation of n had applied: a
// restart may apply again what the crash took back.
func (c *checker) restarted(n *node) {
	for _, st := range n.eng.Status() {
		k := [3]uint64{n.id, st.Group, st.ReplicaID}
		if t := c.terms[k]; st.Term < t {
			c.s.fail("group %d on node %d restarted at term %d after it had published term %d: a power loss took back a hard state it had acted on (a forgotten vote)", st.Group, n.id, st.Term, t)
		}
	}
	for k := range c.last {
		if k[0] == n.id {
			delete(c.last, k)
		}
	}
	for k := range c.cur {
		if k[0] == n.id {
			delete(c.cur, k)
		}
	}
}

// applied sees every command a replica applies, in order.
func (c *checker) applied(n *node, group, index uint64, args [][]byte) {
	k := [2]uint64{n.id, group}
	a := c.cur[k]
	if a == nil || a.index != index {
		c.settle(k)
		a = &applying{index: index, h: fnvOffset}
		c.cur[k] = a
	}
	h := fnv.New64a()
	for _, x := range args {
		h.Write(x)
		h.Write([]byte{0})
	}
	a.h = (a.h ^ h.Sum64()) * fnvPrime
}

// settle compares the entry n finished applying with the same entry on
// the other replicas.
func (c *checker) settle(k [2]uint64) {
	a := c.cur[k]
	if a == nil {
		return
	}
	delete(c.cur, k)
	e := [2]uint64{k[1], a.index}
	if prev, ok := c.entries[e]; !ok {
		c.entries[e] = a.h
	} else if prev != a.h {
		c.s.fail("group %d: node %d applied different commands at index %d than another replica", k[1], k[0], a.index)
	}
}

// stepped checks n's replicas after one cycle.
func (c *checker) stepped(n *node) {
	for _, st := range n.eng.Status() {
		c.settle([2]uint64{n.id, st.Group})
		k := [3]uint64{n.id, st.Group, st.ReplicaID}
		if st.Role == "StateLeader" {
			lt := [2]uint64{st.Group, st.Term}
			if other, ok := c.leaders[lt]; ok && other != n.id {
				c.s.fail("group %d: nodes %d and %d both led term %d", st.Group, other, n.id, st.Term)
			}
			c.leaders[lt] = n.id
		}
		if prev, ok := c.last[k]; ok {
			if st.CommitIndex < prev[0] {
				c.s.fail("group %d on node %d: commit index went back from %d to %d", st.Group, n.id, prev[0], st.CommitIndex)
			}
			if st.AppliedIndex < prev[1] {
				c.s.fail("group %d on node %d: applied index went back from %d to %d", st.Group, n.id, prev[1], st.AppliedIndex)
			}
		}
		if st.AppliedIndex > st.CommitIndex {
			c.s.fail("group %d on node %d: applied %d beyond commit %d", st.Group, n.id, st.AppliedIndex, st.CommitIndex)
		}
		c.last[k] = [2]uint64{st.CommitIndex, st.AppliedIndex}
		c.terms[k] = st.Term
	}
}

// final checks the healed cluster: every group has one leader that every
// replica follows, every replica has applied all that is committed, and
// the replicas of a group hold the same data.
func (c *checker) final() {
	s := c.s
	for _, n := range s.nodes {
		if !n.up {
			s.fail("node %d is not up after the heal", n.id)
			return
		}
	}
	for g := uint64(1); g <= uint64(s.shape.Groups); g++ {
		leader, lst, ok := s.leaderOf(g)
		if !ok {
			s.fail("group %d has no leader %v after the heal (liveness)", g, s.opt.HealTime)
			return
		}
		members := s.members(g)
		var ref []byte
		var refNode uint64
		for _, n := range s.nodes {
			st, hosted := n.eng.GroupStatus(g)
			if !hosted {
				if slices.Contains(members, n.id) {
					s.fail("group %d: member node %d holds no replica after the heal", g, n.id)
					return
				}
				continue
			}
			if !slices.Contains(members, n.id) {
				s.fail("group %d: node %d still holds a replica after its removal (liveness); %s", g, n.id, s.statuses(g))
				return
			}
			if st.LeaderNode != leader.id {
				s.fail("group %d: node %d follows %d, not the leader %d, after the heal; %s", g, n.id, st.LeaderNode, leader.id, s.statuses(g))
				return
			}
			if st.AppliedIndex < lst.CommitIndex {
				s.fail("group %d: node %d applied %d of %d after the heal (liveness); %s", g, n.id, st.AppliedIndex, lst.CommitIndex, s.statuses(g))
				return
			}
			dump := c.dump(n, g)
			if ref == nil {
				ref, refNode = dump, n.id
			} else if !bytes.Equal(ref, dump) {
				s.fail("group %d: the data of nodes %d and %d differ after the heal", g, refNode, n.id)
				return
			}
		}
	}
}

// members are the nodes of g's voters and learners, as its leader sees
// them.
func (s *Sim) members(g uint64) []uint64 {
	_, st, ok := s.leaderOf(g)
	if !ok {
		return nil
	}
	return append(slices.Clone(st.Nodes), st.Learners...)
}

// dump returns a replica's user data, in key order.
func (c *checker) dump(n *node, g uint64) []byte {
	var b []byte
	err := n.eng.ScanData(g, nil, func(k, v []byte) bool {
		b = fmt.Appendf(b, "%q=%q\n", k, v)
		return true
	})
	if err != nil {
		c.s.fail("scan group %d on node %d: %v", g, n.id, err)
	}
	return b
}

// statuses describes every replica of g, for a failure's message.
func (s *Sim) statuses(g uint64) string {
	var b []byte
	for _, n := range s.nodes {
		if st, ok := n.eng.GroupStatus(g); ok {
			b = fmt.Appendf(b, "[node %d replica %d %s term %d leader %d commit %d applied %d voters %v learners %v] ",
				n.id, st.ReplicaID, st.Role, st.Term, st.LeaderNode, st.CommitIndex, st.AppliedIndex, st.Nodes, st.Learners)
		}
	}
	return string(b)
}
