package control

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/kintsu/kintsu/internal/statemachine"
)

// Leaders by load. The leadership balancer (balance.go) evens out how
// many partitions each node leads, but leading is not equal work when a
// few partitions take most of the writes. Each round the placement
// driver, which smooths every partition's write rate anyway
// (loadpolicy.go), sums the rates of the partitions each node leads.
// When the busiest node carries more than leaderImbalance times the mean
// and at least minLeaderLoad writes/s, one of its leaderships moves to a
// voter of that partition: the move that leaves the lower maximum of the
// two nodes' loads (then the less loaded receiver), and only if that
// maximum is at most nine tenths of the busiest node's load now. One move
// a round.
//
// The two balancers do not undo each other: this one moves hot
// leaderships, and the count balancer, when counts differ by two, hands
// over a cold leadership where it has one (planLeaderMove).
//
// Hysteresis: the rates are smoothed over about ten seconds (loadTau; a
// few rounds' rate, in a CI run, moved a third hot leadership onto a node
// that already led one); the same node must be the overloaded one for
// loadPersist before anything moves; a partition whose leadership moved
// for load keeps it for leaderCooldown, and the driver makes at most one
// move for load every loadMoveEvery in the whole cluster (a 10-minute
// chaos run with every fault, paced by rounds only, moved leaderships
// for load some 500 times); a move must
// lower the maximum by a tenth. Rates and cooldowns are the metadata
// leader's memory: a driver that was not the metadata leader for a round
// starts them afresh (maybeResize).

const (
	// leaderImbalance is how far over the mean the busiest node's load
	// must be before a leadership moves for it.
	leaderImbalance = 1.25
	// minLeaderLoad is the load (writes/s) under which a node is never
	// relieved: below it, leading costs too little to be worth a move.
	minLeaderLoad = 200
	// leaderCooldown is how long a partition whose leadership moved for
	// load keeps it.
	leaderCooldown = time.Minute
	// loadMoveEvery is the least time between two moves for load.
	loadMoveEvery = 10 * time.Second
	// loadPersist is how long one node must stay the overloaded one
	// before a leadership moves off it: a burst does not move anything.
	loadPersist = 20 * time.Second
)

// leaderMove is a leadership to hand over for load.
type leaderMove struct {
	group, from, to uint64
}

// hotRate is the write rate (writes/s) from which a partition's
// leadership is moved for load; the count balancer calls the same
// partitions hot and hands them over last (balance.go), so the two agree
// on which leaderships are whose to move.
const hotRate = minLeaderLoad / 4

// planLoadLeaderMove picks the leadership to move for load this round, or
// false: a pure function of the round's observations, the partitions'
// smoothed rates, which nodes may lead (up), and which partitions must
// wait (cooling).
//
// A hot leadership goes to a node that leads fewer partitions than the
// busiest, so the count balancer (which moves one when counts differ by
// two) has no reason to send one back. Where the best receiver leads as
// many or more, the move is made in two rounds: first one of the
// receiver's cold leaderships comes to the busiest node (no load to
// speak of), then the hot one goes.
func planLoadLeaderMove(obs []Observed, load map[uint64]loadSample, up func(uint64) bool, cooling func(group uint64) bool) (leaderMove, bool) {
	return pickLoadMove(obs, load, overloaded(obs, load, up), up, cooling)
}

// pickLoadMove is planLoadLeaderMove given the round's node loads (nl,
// from overloaded over the same observations and up).
func pickLoadMove(obs []Observed, load map[uint64]loadSample, nl nodeLoads, up func(uint64) bool, cooling func(group uint64) bool) (leaderMove, bool) {
	if !nl.over {
		return leaderMove{}, false
	}
	busiest, loads, count := nl.busiest, nl.loads, nl.count
	top := loads[busiest]
	// The candidates, best first: the lowest maximum after the move,
	// then the less loaded receiver, then the lowest partition and node.
	type cand struct {
		mv        leaderMove
		after, to float64
	}
	var cands []cand
	for _, o := range obs {
		r := load[o.Group].slow
		if o.State.Leader != busiest || o.Group == statemachine.MetaGroup || r < hotRate || len(o.State.Learners) > 0 || cooling(o.Group) {
			continue
		}
		for _, v := range o.State.Voters {
			if v == busiest || !up(v) {
				continue
			}
			if after := max(top-r, loads[v]+r); after <= 0.9*top {
				cands = append(cands, cand{leaderMove{group: o.Group, from: busiest, to: v}, after, loads[v] + r})
			}
		}
	}
	slices.SortFunc(cands, func(a, b cand) int {
		return cmp.Or(cmp.Compare(a.after, b.after), cmp.Compare(a.to, b.to), cmp.Compare(a.mv.group, b.mv.group), cmp.Compare(a.mv.to, b.mv.to))
	})
	for _, c := range cands {
		if count[c.mv.to] < count[busiest] {
			return c.mv, true
		}
		// The receiver leads as many: one of its cold leaderships first.
		for _, o := range obs {
			if o.State.Leader == c.mv.to && o.Group != statemachine.MetaGroup && load[o.Group].slow < hotRate &&
				len(o.State.Learners) == 0 && !cooling(o.Group) && slices.Contains(o.State.Voters, busiest) {
				return leaderMove{group: o.Group, from: c.mv.to, to: busiest}, true
			}
		}
	}
	return leaderMove{}, false
}

// nodeLoads is a round's load per node (overloaded).
type nodeLoads struct {
	busiest uint64
	loads   map[uint64]float64 // summed slow write rates of the partitions each node leads
	count   map[uint64]int     // how many partitions each node leads
	over    bool               // the busiest is over the floor and leaderImbalance times the mean
}

// overloaded sums the slow write rates of the partitions each node that
// may lead leads, and names the busiest node, over when it is over both
// the floor and leaderImbalance times the mean.
func overloaded(obs []Observed, load map[uint64]loadSample, up func(uint64) bool) nodeLoads {
	loads, count := map[uint64]float64{}, map[uint64]int{}
	for _, o := range obs {
		for _, v := range o.State.Voters {
			if up(v) {
				loads[v] += 0
			}
		}
		if o.State.Leader != 0 && o.Group != statemachine.MetaGroup {
			loads[o.State.Leader] += load[o.Group].slow
			count[o.State.Leader]++
		}
	}
	if len(loads) < 2 {
		return nodeLoads{loads: loads, count: count}
	}
	var busiest uint64
	total := 0.0
	for n, l := range loads {
		total += l
		if busiest == 0 || l > loads[busiest] || l == loads[busiest] && n < busiest {
			busiest = n
		}
	}
	top := loads[busiest]
	return nodeLoads{busiest: busiest, loads: loads, count: count, over: top >= minLeaderLoad && top >= leaderImbalance*total/float64(len(loads))}
}

// overloadWatch remembers which node has been the overloaded one, and
// since when.
type overloadWatch struct {
	node  uint64
	since time.Time
}

// persisted folds in a round's verdict and reports whether node busiest
// has been the overloaded one, without a break, for loadPersist.
func (w *overloadWatch) persisted(busiest uint64, over bool, now time.Time) bool {
	switch {
	case !over:
		w.node = 0
		return false
	case busiest != w.node:
		w.node, w.since = busiest, now
	}
	return now.Sub(w.since) >= loadPersist
}

// balanceLeadersByLoad makes the move planLoadLeaderMove picks, if any,
// once the same node has been the overloaded one for loadPersist.
func (p *Placement) balanceLeadersByLoad(ctx context.Context, obs []Observed, up func(uint64) bool) {
	now := time.Now()
	p.checkLoadMove(obs, now)
	mayLead := func(n uint64) bool { return up(n) && (p.cfg.Away == nil || !p.cfg.Away(n)) }
	nl := overloaded(obs, p.load, mayLead)
	if !p.overload.persisted(nl.busiest, nl.over, now) || now.Sub(p.lastLoadMove) < loadMoveEvery {
		return
	}
	cooling := func(g uint64) bool { at, ok := p.ledAt[g]; return ok && now.Sub(at) < leaderCooldown }
	mv, ok := pickLoadMove(obs, p.load, nl, mayLead, cooling)
	if !ok {
		return
	}
	p.ledAt[mv.group], p.lastLoadMove, p.loadMove = now, now, &pendingMove{leaderMove: mv, at: now}
	p.cfg.Logger.Info("moving leadership for load", "partition", mv.group, "from", mv.from, "to", mv.to, "writes_per_s", int(p.load[mv.group].slow))
	if err := p.execStep(ctx, mv.group, mv.from, Step{Node: mv.to}); err != nil {
		delete(p.ledAt, mv.group) // not moved: it may be tried again
		p.lastLoadMove, p.loadMove = time.Time{}, nil
		p.cfg.Logger.Info("leadership not moved for load; tried again later", "partition", mv.group, "err", err)
	}
}

// pendingMove is a leadership handed over for load, not yet seen done.
type pendingMove struct {
	leaderMove
	at time.Time
}

// loadMoveSettle is how long a handed-over leadership may take to show
// at its receiver. Raft gives a transfer an election timeout; one that
// lapsed (the receiver lagged behind a stream of writes) left the
// partition where it was.
const loadMoveSettle = 5 * time.Second

// checkLoadMove forgets a move for load that did not happen, so that its
// partition's cooldown does not hold a move that was never made. The
// pacing stays: a lapsed transfer stalled the partition's writes for an
// election timeout, and trying again at once would repeat that.
func (p *Placement) checkLoadMove(obs []Observed, now time.Time) {
	mv := p.loadMove
	if mv == nil {
		return
	}
	for _, o := range obs {
		if o.Group != mv.group {
			continue
		}
		switch {
		case o.State.Leader == mv.to:
			p.loadMove = nil
		case now.Sub(mv.at) > loadMoveSettle:
			p.cfg.Logger.Info("leadership moved for load did not arrive; it may be moved again", "partition", mv.group, "to", mv.to, "leader", o.State.Leader)
			delete(p.ledAt, mv.group)
			p.loadMove = nil
		}
		return
	}
	p.loadMove = nil // the partition is gone (merged)
}
