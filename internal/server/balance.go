package server

import (
	"math/rand/v2"
	"time"

	"github.com/kintsu/kintsu/internal/api"
)

// Leadership balance. Elections after failures and restarts leave some
// nodes leading many partitions and others few, and a leader does all of a
// partition's work (proposals, ReadIndex, fsync first). Each node
// periodically hands one of its leaderships to a replica node that leads at
// least two fewer partitions, so in steady state every node leads within
// one of P/N partitions. Each node only gives its own leaderships away, one
// per round, and only to a fully caught-up replica (raftstore
// TransferGroupLeader), so moves never pile up on one partition and a
// hand-over holds proposals up only briefly.

// defaultBalanceEvery is how often a node considers one move.
const defaultBalanceEvery = 5 * time.Second

// partitionLead is one partition's replicas and believed leader.
type partitionLead struct {
	group    uint64
	replicas []uint64
	leader   uint64 // 0: unknown
}

// planLeaderMove picks the leadership node me should hand over now, if
// any: of the partitions it leads, the one whose least-loaded replica
// leads at least two fewer partitions than me (the least loaded such
// replica, then the lowest partition). Nothing moves while some partition
// has no known leader: the cluster is still settling.
func planLeaderMove(me uint64, nodes []uint64, parts []partitionLead) (group, to uint64, ok bool) {
	count := map[uint64]int{}
	for _, id := range nodes {
		count[id] = 0
	}
	for _, p := range parts {
		if p.leader == 0 {
			return 0, 0, false
		}
		count[p.leader]++
	}
	for _, p := range parts {
		if p.leader != me {
			continue
		}
		for _, r := range p.replicas {
			if r == me || count[me]-count[r] < 2 {
				continue
			}
			if !ok || count[r] < count[to] || count[r] == count[to] && p.group < group {
				group, to, ok = p.group, r, true
			}
		}
	}
	return group, to, ok
}

// balanceLeaders runs until the node stops, one possible move a round.
func (n *Node) balanceLeaders() {
	defer n.bg.Done()
	for {
		every := time.Duration(n.balanceEvery.Load())
		if every <= 0 {
			every = time.Second // disabled: look again later
		}
		// Jitter keeps nodes from deciding on the same stale counts at once.
		t := time.NewTimer(time.Duration(float64(every) * (0.8 + 0.4*rand.Float64())))
		select {
		case <-n.bgStop:
			t.Stop()
			return
		case <-t.C:
		}
		if n.balanceEvery.Load() <= 0 {
			continue
		}
		m := n.view()
		var nodes []uint64
		for _, rec := range n.nodeRecords() {
			if rec.State == api.NodeUp {
				nodes = append(nodes, rec.ID)
			}
		}
		parts := make([]partitionLead, 0, len(m.Parts))
		for _, p := range m.Parts {
			g := uint64(p.ID)
			st, ok := n.eng.GroupStatus(g)
			reps := p.Replicas
			if ok {
				reps = st.Nodes // voters only: a learner cannot lead
			}
			parts = append(parts, partitionLead{group: g, replicas: reps, leader: n.router.LeaderOf(g)})
		}
		if g, to, ok := planLeaderMove(n.cfg.NodeID, nodes, parts); ok {
			n.log.Info("moving leadership to balance load", "group", g, "to", to)
			n.eng.TransferGroupLeader(g, to)
		}
	}
}
