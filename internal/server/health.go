package server

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/control"
)

// The node's health: facts gathered from what the node already holds
// (the engine's published status and loop stamp, the router's confirmed
// leaders, the registry) and judged by control.Judge. Gathering makes no
// network call and holds no lock across I/O, so the probes answer at once
// even when every peer is silent.
//
// Removal: when the metadata answers a heartbeat that this node was
// removed, the node stops accepting clients and closes their connections
// (a removed node's replicas are gone or going, so whatever it answered
// would be a forward at best and a stale read at worst), and its /readyz
// says so for good. Its admin API keeps answering so an operator sees why.

// Floors of the health bounds; both scale with the election timeout.
const (
	// minStallAfter is how long the engine loop may go without a cycle:
	// an idle loop cycles every tick, a busy one far more often.
	minStallAfter = 5 * time.Second
	// minQuorumWindow is how old a confirmed leader may be: the hint
	// refresher confirms every partition not led in sight about once a
	// second, so a few rounds may be missed.
	minQuorumWindow = 3 * time.Second
)

// nodeHealth is the node's health state beyond what it gathers.
type nodeHealth struct {
	removed  atomic.Bool
	stopping atomic.Bool
	// stallAfter overrides the stall bound when non-zero (tests).
	stallAfter atomic.Int64
}

// Health judges the node now.
func (n *Node) Health() api.Health { return control.Judge(n.healthFacts(time.Now())) }

// Ready reports whether the node can serve clients (see Health).
func (n *Node) Ready() bool { return n.Health().Ready() }

func (n *Node) healthFacts(now time.Time) control.HealthFacts {
	election := n.cfg.TickInterval * time.Duration(n.cfg.ElectionTicks)
	f := control.HealthFacts{
		Now:          now,
		EngineErr:    n.eng.Err(),
		LastCycle:    n.eng.LastCycle(),
		DiskFull:     n.eng.DiskFullReason(),
		StallAfter:   max(minStallAfter, 10*election),
		Removed:      n.health.removed.Load(),
		Stopping:     n.health.stopping.Load(),
		QuorumWindow: max(minQuorumWindow, 10*election),
		Rebuilding:   n.quar.Rebuilding(),
	}
	if d := n.health.stallAfter.Load(); d != 0 {
		f.StallAfter = time.Duration(d)
	}
	if n.ownState() == api.NodeRemoved {
		f.Removed = true
	}
	for _, p := range n.view().Parts {
		g := uint64(p.ID)
		pf := control.PartFacts{ID: p.ID}
		if !n.isLearner(g) {
			pf.LocalLeader = n.eng.Leader(g)
		}
		pf.Confirmed, pf.ConfirmedAt = n.router.Confirmed(g)
		f.Parts = append(f.Parts, pf)
	}
	return f
}

// isLearner reports whether this node's replica of group is a learner,
// whose known leader is no evidence (see control.Judge).
func (n *Node) isLearner(group uint64) bool {
	st, ok := n.eng.GroupStatus(group)
	return ok && slices.Contains(st.Learners, n.cfg.NodeID)
}

// ownState is this node's state in the registry, "" if it has no record.
func (n *Node) ownState() string {
	for _, rec := range n.cmap.Current().Nodes {
		if rec.ID == n.cfg.NodeID {
			return rec.State
		}
	}
	return ""
}

// markRemoved takes a removed node off the client path: no new clients,
// and the open connections closed. Called by the heartbeat when the
// metadata refuses it as removed; once is enough, and removal is final.
func (n *Node) markRemoved() {
	if n.health.removed.Swap(true) {
		return
	}
	n.log.Error("closing the client port: this node was removed from the cluster")
	n.front.Retire(2 * time.Second)
}
