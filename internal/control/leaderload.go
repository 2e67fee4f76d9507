package control

import (
	"context"

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
// Hysteresis: the rates are smoothed; a partition whose leadership moved
// for load waits leaderCooldown rounds before it moves again; a move must
// lower the maximum by a tenth.

const (
	// leaderImbalance is how far over the mean the busiest node's load
	// must be before a leadership moves for it.
	leaderImbalance = 1.25
	// minLeaderLoad is the load (writes/s) under which a node is never
	// relieved: below it, leading costs too little to be worth a move.
	minLeaderLoad = 200
	// leaderCooldown is how many rounds a partition whose leadership
	// moved for load keeps it.
	leaderCooldown = 30
)

// leaderMove is a leadership to hand over for load.
type leaderMove struct {
	group, from, to uint64
}

// planLoadLeaderMove picks the leadership to move for load this round, or
// false: a pure function of the round's observations, the partitions'
// smoothed rates, which nodes may lead (up), and which partitions must
// wait (cooling).
func planLoadLeaderMove(obs []Observed, load map[uint64]loadSample, up func(uint64) bool, cooling func(group uint64) bool) (leaderMove, bool) {
	loads := map[uint64]float64{}
	for _, o := range obs {
		for _, v := range o.State.Voters {
			if up(v) {
				loads[v] += 0
			}
		}
		if o.State.Leader != 0 && o.Group != statemachine.MetaGroup {
			loads[o.State.Leader] += load[o.Group].rate
		}
	}
	if len(loads) < 2 {
		return leaderMove{}, false
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
	if top < minLeaderLoad || top < leaderImbalance*total/float64(len(loads)) {
		return leaderMove{}, false
	}
	var best leaderMove
	bestMax, bestTo := 0.9*top, 0.0 // the pick's maximum, and its receiver's load after
	found := false
	for _, o := range obs {
		if o.State.Leader != busiest || o.Group == statemachine.MetaGroup || len(o.State.Learners) > 0 || cooling(o.Group) {
			continue
		}
		r := load[o.Group].rate
		for _, v := range o.State.Voters {
			if v == busiest || !up(v) {
				continue
			}
			after, to := max(top-r, loads[v]+r), loads[v]+r
			better := !found && after <= bestMax || found && (after < bestMax ||
				after == bestMax && (to < bestTo || to == bestTo && (o.Group < best.group || o.Group == best.group && v < best.to)))
			if better {
				best, bestMax, bestTo, found = leaderMove{group: o.Group, from: busiest, to: v}, after, to, true
			}
		}
	}
	return best, found
}

// balanceLeadersByLoad makes the move planLoadLeaderMove picks, if any.
func (p *Placement) balanceLeadersByLoad(ctx context.Context, obs []Observed, up func(uint64) bool) {
	cooling := func(g uint64) bool { at, ok := p.ledAt[g]; return ok && p.round-at < leaderCooldown }
	mv, ok := planLoadLeaderMove(obs, p.load, up, cooling)
	if !ok {
		return
	}
	p.ledAt[mv.group] = p.round
	p.cfg.Logger.Info("moving leadership for load", "partition", mv.group, "from", mv.from, "to", mv.to, "writes_per_s", int(p.load[mv.group].rate))
	if err := p.execStep(ctx, mv.group, mv.from, Step{Node: mv.to}); err != nil {
		p.cfg.Logger.Info("leadership not moved for load; tried again later", "partition", mv.group, "err", err)
	}
}
