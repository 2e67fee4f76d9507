package control

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/statemachine"
)

// The resize policy, run from the placement driver's round on the
// metadata leader. Pending splits are finished first (one reserved and
// not recorded: its proposer failed or was refused), then pending merges
// (merge.go: the driver co-locates their replicas meanwhile), one at a
// time. Then, with a split size (PlacementConfig.SplitSize), the largest
// partitions over it split at the middle slot of their ranges, a batch of
// up to splitBatch on distinct nodes at once; and when
// none does, the two neighbours with the least data, both under a
// quarter of the size, merge (so a merged partition is under half the
// size: it does not split again at once). The sizes are what each
// group's leader reports with its membership (Pebble's estimate of the
// group's data on disk, which lags writes still in memory).
//
// Invariants: at most one merge, one split by load or one batch of splits
// by size runs at once (the driver's round goes on meanwhile); a batch
// holds at most splitBatch splits, no two with a replica on the same node
// (a split rewrites the moved keys on each replica's node, so a node
// does one at a time); a partition that just split or merged, and
// the one a split made, wait splitCooldown rounds before another (sizes
// are estimates that settle after compactions; the cooldown is the
// metadata leader's memory, and starts afresh when leadership moves); a
// partition of one slot never splits (a slot is the smallest unit); a
// partition whose replicas are moving waits; merges by size never take
// the cluster below the partition count it was created with, so leaders
// stay spread over the nodes (a merge asked by hand may).

// splitCooldown is how many rounds a partition waits after a split: the
// keys a split moved leave deletions in the left's files until they are
// compacted, so its estimate falls slowly.
const splitCooldown = 60

// splitBatch bounds the splits by size that run at once.
const splitBatch = 8

// planSplits picks the partitions to split this round: those over size
// that may, largest first, at most max of them and no two with a replica
// on the same node (a larger one whose nodes are taken waits for the
// next batch).
func planSplits(obs []Observed, m *ClusterMap, size uint64, cooling func(group uint64) bool, max int) []uint64 {
	var over []*Observed
	for i := range obs {
		o := &obs[i]
		if o.Group == statemachine.MetaGroup || o.State.Bytes <= size || len(o.State.Learners) > 0 || cooling(o.Group) {
			continue
		}
		if _, merging := m.PendingMerge(int(o.Group)); merging {
			continue
		}
		rec, ok := m.Part(o.Group)
		if !ok || rec.SlotEnd <= rec.SlotStart {
			continue
		}
		over = append(over, o)
	}
	slices.SortStableFunc(over, func(a, b *Observed) int {
		return cmp.Or(cmp.Compare(b.State.Bytes, a.State.Bytes), cmp.Compare(a.Group, b.Group))
	})
	var picked []uint64
	busy := map[uint64]bool{}
	for _, o := range over {
		if len(picked) == max {
			break
		}
		if slices.ContainsFunc(o.State.Voters, func(n uint64) bool { return busy[n] }) {
			continue
		}
		for _, n := range o.State.Voters {
			busy[n] = true
		}
		picked = append(picked, o.Group)
	}
	return picked
}

// PlanSplits is planSplits for the scale simulation (internal/scalesim),
// which runs the driver's split choice over simulated partitions, at most
// SplitBatch at once.
func PlanSplits(obs []Observed, m *ClusterMap, size uint64, cooling func(group uint64) bool) []uint64 {
	return planSplits(obs, m, size, cooling, splitBatch)
}

// SplitBatch is splitBatch, for the scale simulation.
const SplitBatch = splitBatch

// SplitCooldown is how many rounds a partition waits after a split
// (splitCooldown), for the scale simulation.
const SplitCooldown = splitCooldown

// planMerge picks the neighbours to merge this round: of the pairs of
// adjacent partitions that may (skip: cooling down, or hot), both under a
// quarter of size, the pair
// with the least data; or false. Never below floor partitions (the
// cluster's initial count: merges undo splits, so leaders stay spread),
// and the partitions split by hand raise the floor: a split asked by hand
// must not make the policy merge two other partitions to make up for it.
// Pinned partitions, less one, count as made by hand (a split makes two
// of one, a split of a pinned one one more): an upper bound, so a merge
// never undoes one.
func planMerge(obs []Observed, m *ClusterMap, size uint64, floor int, skip func(group uint64) bool) (left int, ok bool) {
	pinned := 0
	for _, rec := range m.Parts {
		if rec.Pinned {
			pinned++
		}
	}
	if len(m.Parts) <= floor+max(0, pinned-1) || size == 0 {
		return 0, false
	}
	seen := make(map[uint64]*Observed, len(obs))
	for i := range obs {
		seen[obs[i].Group] = &obs[i]
	}
	small := func(id int) (uint64, bool) {
		o := seen[uint64(id)]
		if o == nil || o.State.Bytes >= size/4 || len(o.State.Learners) > 0 || skip(o.Group) {
			return 0, false
		}
		if _, busy := m.PendingSplit(id); busy {
			return 0, false
		}
		if rec, ok := m.Part(uint64(id)); ok && rec.Pinned {
			return 0, false // split by hand: merged only by hand
		}
		return o.State.Bytes, true
	}
	parts := slices.SortedFunc(slices.Values(m.Parts), func(a, b api.PartitionRecord) int { return cmp.Compare(a.SlotStart, b.SlotStart) })
	best := uint64(0)
	for i := 0; i+1 < len(parts); i++ {
		a, b := parts[i], parts[i+1]
		ab, aok := small(a.ID)
		bb, bok := small(b.ID)
		if !aok || !bok || int(a.SlotEnd)+1 != int(b.SlotStart) {
			continue
		}
		if !ok || ab+bb < best {
			left, best, ok = a.ID, ab+bb, true
		}
	}
	return left, ok
}

// runResize returns how a round starts a split or merge: in the
// background, within 30 s; the round starts no other until every one it
// started has ended.
func (p *Placement) runResize(ctx context.Context) func(fn func(context.Context)) {
	return func(fn func(context.Context)) {
		p.resizing.Add(1)
		go func() {
			defer p.resizing.Add(-1)
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			fn(sctx)
		}()
	}
}

// resumeChosen starts a pending merge whose survivor is chosen (its other
// half may be frozen, its keys unavailable), unless a split or merge is
// running; it reports whether it started one. Those go before anything
// else, and even in a round that cannot place replicas.
func (p *Placement) resumeChosen(ctx context.Context, m *ClusterMap) bool {
	if p.resizing.Load() > 0 {
		return false
	}
	for _, in := range m.Merges {
		if in.Chosen {
			p.startMerge(p.runResize(ctx), in.Left, "resumed")
			return true
		}
	}
	return false
}

// startMerge runs a merge of partition id (with its neighbour, or the
// one pending) in the background; why names it in the log.
func (p *Placement) startMerge(run func(fn func(context.Context)), id int, why string) {
	run(func(ctx context.Context) {
		res, err := p.MergePartitions(ctx, id)
		switch {
		case errors.Is(err, ErrMergePending):
			// The replicas are still moving: a later round looks again.
			p.cfg.Logger.Debug("merge waits for its replicas to be co-located", "partition", id, "why", why)
		case err != nil:
			p.cfg.Logger.Warn("merge not done; tried again later", "partition", id, "why", why, "err", err)
		default:
			p.cfg.Logger.Info("partitions merged", "partition", res.Survivor, "absorbed", res.Absorbed, "why", why)
			p.splitDone(uint64(res.Survivor))
		}
	})
}

// startSplit runs a split of partition id at slot at (0: its middle) in
// the background; why names it in the log, and then, if set, runs with
// the new partition.
func (p *Placement) startSplit(run func(fn func(context.Context)), id int, at uint16, manual bool, why string, then func(ctx context.Context, right int)) {
	run(func(ctx context.Context) {
		right, err := SplitPartition(ctx, p.cfg.Write, p.cfg.Map, id, at, manual)
		if err != nil {
			p.cfg.Logger.Warn("split not done; tried again later", "partition", id, "why", why, "err", err)
			return
		}
		p.cfg.Logger.Info("partition split", "partition", id, "why", why, "new_partition", right)
		p.splitDone(uint64(right))
		if then != nil {
			then(ctx, right)
		}
	})
}

// maybeResize starts the split or merge the policy picks, unless one is
// running: a merge whose survivor is chosen first, then a pending split,
// then another pending merge, then a split by size, then by load, then a
// merge of small neighbours.
func (p *Placement) maybeResize(ctx context.Context, obs []Observed, m *ClusterMap) {
	p.round++
	now := time.Now()
	if p.lapsed {
		// Another node held the metadata leadership since this driver
		// last ran: its rates and cooldowns are stale. (Not judged by the
		// time between rounds: a round under load takes longer than a
		// heartbeat, and that must not wipe the rates every round.)
		p.load, p.ledAt, p.overload, p.loadMove, p.lapsed = nil, map[uint64]time.Time{}, overloadWatch{}, nil, false
	}
	// Every partition's write rate, for splits by load and for leaders
	// by load (leaderload.go).
	p.load = updateLoad(p.load, obs, now, p.cfg.SplitLoad)
	if p.resizing.Load() > 0 || m.Level < api.LevelResize {
		// Below the level of splits (a rolling upgrade from a build
		// without them), nothing splits or merges (levels.go).
		return
	}
	run := p.runResize(ctx)
	if p.resumeChosen(ctx, m) {
		return
	}
	if len(m.Splits) > 0 {
		// A split reserved and not recorded: finish it (with its own
		// slot) before any other, whatever the sizes say now. Each round
		// takes the next, so that one refused for long (a backup, a
		// transaction's lock) does not hold up the others.
		in := m.Splits[p.round%len(m.Splits)]
		p.startSplit(run, in.Left, in.At, in.Manual, "pending", nil)
		return
	}
	if len(m.Merges) > 0 {
		// Each round looks at the next one, so that one waiting for its
		// replicas does not hold up the others.
		p.startMerge(run, m.Merges[p.round%len(m.Merges)].Left, "pending")
		return
	}
	cooling := func(g uint64) bool { return p.round-p.splitAt[g] < splitCooldown && p.splitAt[g] != 0 }
	if p.cfg.SplitSize > 0 {
		if gs := planSplits(obs, m, p.cfg.SplitSize, cooling, splitBatch); len(gs) > 0 {
			for _, g := range gs {
				i := slices.IndexFunc(obs, func(o Observed) bool { return o.Group == g })
				p.splitAt[g] = p.round
				p.startSplit(run, int(g), 0, false, fmt.Sprintf("size: %d bytes over %d", obs[i].State.Bytes, p.cfg.SplitSize), nil)
			}
			return
		}
	}
	if p.cfg.SplitLoad > 0 {
		if g, at, ok := planLoadSplit(obs, m, p.load, cooling); ok {
			seen := slices.Clone(obs) // the round edits obs once this returns
			p.splitAt[g] = p.round
			p.startSplit(run, int(g), at, false, fmt.Sprintf("load: %d writes/s over %v", int(p.load[g].rate), p.cfg.SplitLoad),
				func(ctx context.Context, right int) { p.spreadLeader(ctx, seen, g, uint64(right)) })
			return
		}
	}
	// Merges are for small partitions, and with a split load set, cold
	// ones: under a quarter of it.
	skip := func(g uint64) bool {
		return cooling(g) || p.cfg.SplitLoad > 0 && p.load[g].rate >= p.cfg.SplitLoad/4
	}
	if left, ok := planMerge(obs, m, p.cfg.SplitSize, p.cfg.Ring.Partitions, skip); ok {
		p.splitAt[uint64(left)] = p.round
		p.startMerge(run, left, fmt.Sprintf("small: both under %d bytes", p.cfg.SplitSize/4))
	}
}
