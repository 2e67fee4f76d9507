package control

import (
	"context"
	"math"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/statemachine"
)

// Splits by load (PlacementConfig.SplitLoad, --split-load): each round
// the driver turns the applied-command counts the leaders report into a
// smoothed write rate per partition. A partition whose rate stays over
// the split load for loadRounds rounds in a row splits at the median slot
// of its recent writes (so each half takes about half its writes), one
// split or merge at a time like splits by size; then, if both halves are
// led from one node, the new one's leadership moves to the voter whose
// node leads the fewest partitions, so the two halves are served by two
// nodes.
//
// Hysteresis: the rate is smoothed (half the last rate, half the new
// sample), it must stay over the limit for several rounds, both halves
// then cool down (splitCooldown rounds), and with a split load set only
// partitions under a quarter of it merge (merges are for cold
// partitions), so a range does not split and merge back in turn.

// loadRounds is how many rounds in a row a partition's smoothed write
// rate must pass the split load before it splits.
const loadRounds = 3

// loadSample is what the driver keeps of a partition's write load.
type loadSample struct {
	writes uint64    // the count reported last
	leader uint64    // the node that reported it
	at     time.Time // when it was observed
	rate   float64   // smoothed writes per second, over a few rounds
	over   int       // rounds in a row over the split load
	// slow is the write rate smoothed over about loadTau, what
	// leaderships are moved by (leaderload.go): a few rounds' rate
	// follows every burst and lull of a closed-loop client.
	slow float64
	// primed: a rate has formed (the first one is taken whole).
	primed bool
	// missed counts the rounds in a row the group was not observed (its
	// leader did not answer in time).
	missed int
}

// maxMissed is how many rounds in a row a sample outlives its group not
// being observed: a leader slow to answer under load must not restart
// its smoothing, and a group merged away must not be kept for ever.
const maxMissed = 10

// loadTau is the time constant of a sample's slow rate: a step in load
// shows as 63% of itself after loadTau, 86% after twice that.
const loadTau = 10 * time.Second

// updateLoad folds a round's observations into the samples: a pure
// function of its arguments. Counts are each replica's since it was
// loaded, so a count from another leader than the last, or one that went
// backwards (the leader's replica restarted), restarts the sample and
// keeps its rate. A group not observed this round keeps its sample for
// up to maxMissed rounds.
func updateLoad(prev map[uint64]loadSample, obs []Observed, now time.Time, limit float64) map[uint64]loadSample {
	next := make(map[uint64]loadSample, len(obs))
	for _, o := range obs {
		if o.Group == statemachine.MetaGroup {
			continue
		}
		s, ok := prev[o.Group]
		cur := loadSample{writes: o.State.Writes, leader: o.State.Leader, at: now}
		if ok && (s.leader != o.State.Leader || o.State.Writes < s.writes) {
			cur.rate, cur.over, cur.slow, cur.primed = s.rate, s.over, s.slow, s.primed
		} else if ok && now.After(s.at) {
			dt := now.Sub(s.at)
			inst := float64(o.State.Writes-s.writes) / dt.Seconds()
			cur.rate = (s.rate + inst) / 2
			cur.slow = s.slow + (inst-s.slow)*(1-math.Exp(-dt.Seconds()/loadTau.Seconds()))
			cur.primed = true
			// The first rate: nothing to smooth with.
			if s.rate == 0 && s.over == 0 {
				cur.rate = inst
			}
			if !s.primed {
				cur.slow = inst
			}
			if limit > 0 && cur.rate > limit {
				cur.over = s.over + 1
			}
		}
		next[o.Group] = cur
	}
	for g, s := range prev {
		if _, seen := next[g]; !seen && s.missed < maxMissed {
			s.missed++
			next[g] = s
		}
	}
	return next
}

// planLoadSplit picks the partition to split by load this round and the
// slot to split at, or false: the hottest of those over the limit for
// loadRounds rounds that may split.
func planLoadSplit(obs []Observed, m *ClusterMap, load map[uint64]loadSample, cooling func(uint64) bool) (group uint64, at uint16, ok bool) {
	best := -1.0
	for _, o := range obs {
		s := load[o.Group]
		if o.Group == statemachine.MetaGroup || s.over < loadRounds || s.rate <= best || len(o.State.Learners) > 0 || cooling(o.Group) {
			continue
		}
		rec, found := m.Part(o.Group)
		if !found || rec.SlotEnd <= rec.SlotStart {
			continue
		}
		if _, merging := m.PendingMerge(rec.ID); merging {
			continue
		}
		group, at, ok, best = o.Group, splitSlot(rec, o.State), true, s.rate
	}
	return group, at, ok
}

// splitSlot is where a hot partition splits: at the median slot of its
// recent writes, so each half takes about half of them (past the first
// slot when that one is the median: the first slot's keys stay, the
// rest go); at the middle of its range without samples.
func splitSlot(rec api.PartitionRecord, gs GroupState) uint16 {
	switch {
	case !gs.HasHot || gs.HotSlot < rec.SlotStart || gs.HotSlot > rec.SlotEnd:
		return rec.SlotStart + (rec.SlotEnd-rec.SlotStart+1)/2
	case gs.HotSlot == rec.SlotStart:
		return rec.SlotStart + 1
	default:
		return gs.HotSlot
	}
}

// spreadLeader moves the leadership of a partition split by load off the
// node that leads its left half, to the voter whose node leads the
// fewest partitions in obs, once the new partition has a leader.
func (p *Placement) spreadLeader(ctx context.Context, obs []Observed, left, right uint64) {
	leads := map[uint64]int{}
	var leftLeader uint64
	for _, o := range obs {
		leads[o.State.Leader]++
		if o.Group == left {
			leftLeader = o.State.Leader
		}
	}
	var gs GroupState
	deadline := time.Now().Add(5 * time.Second)
	for {
		var ok bool
		if gs, ok = p.GroupInfo(ctx, right); ok || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	if gs.Leader == 0 || gs.Leader != leftLeader {
		return
	}
	var target uint64
	for _, v := range gs.Voters {
		if v != gs.Leader && (target == 0 || leads[v] < leads[target]) {
			target = v
		}
	}
	if target == 0 {
		return
	}
	// A leader hands over only to a voter that has everything it has
	// (raftstore's transferTo), which under the very write load that
	// split the partition holds only between batches: ask again until
	// the leadership moved, for a few seconds.
	from := gs.Leader
	deadline = time.Now().Add(spreadFor)
	for {
		if err := p.execStep(ctx, right, gs.Leader, Step{Node: target}); err != nil {
			p.cfg.Logger.Info("leadership of a partition split by load not moved", "partition", right, "to", target, "err", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(spreadRetry):
		}
		var ok bool
		if gs, ok = p.GroupInfo(ctx, right); ok && gs.Leader == target {
			p.cfg.Logger.Info("leadership of a partition split by load moved", "partition", right, "from", from, "to", target)
			return
		}
		if !ok || gs.Leader != from || time.Now().After(deadline) {
			// Moved elsewhere, or unknown: the balancers take it from here.
			p.cfg.Logger.Info("leadership of a partition split by load not moved", "partition", right, "to", target, "leader", gs.Leader)
			return
		}
	}
}

// spreadFor bounds the attempts to move a new half's leadership, each
// spreadRetry after the last.
const (
	spreadFor   = 5 * time.Second
	spreadRetry = 200 * time.Millisecond
)
