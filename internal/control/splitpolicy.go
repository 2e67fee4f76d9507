package control

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/kintsu/kintsu/internal/statemachine"
)

// The split policy: pending splits are finished first (one reserved and
// not recorded: its proposer failed or was refused), one at a time. Then
// partitions split by themselves when they grow past
// the split size (PlacementConfig.SplitSize), at the middle slot of their
// range, one at a time in the cluster, from the placement driver's round
// on the metadata leader. The sizes are what each group's leader reports
// with its membership (Pebble's estimate of the group's data on disk,
// which lags writes still in memory).
//
// Invariants: at most one split runs at once (the driver's round goes on
// meanwhile); a partition that just split, and the one it made, wait
// splitCooldown rounds before another (sizes are estimates that settle
// after compactions; the cooldown is the metadata leader's memory, and
// starts afresh when leadership moves); a partition of one slot never splits (a slot is the
// smallest unit); a partition whose replicas are moving waits (the split
// would be refused).

// splitCooldown is how many rounds a partition waits after a split: the
// keys a split moved leave deletions in the left's files until they are
// compacted, so its estimate falls slowly.
const splitCooldown = 60

// planSplit picks the partition to split this round: the largest over
// size among those that may, or false.
func planSplit(obs []Observed, m *ClusterMap, size uint64, cooling func(group uint64) bool) (uint64, bool) {
	var best *Observed
	for i := range obs {
		o := &obs[i]
		if o.Group == statemachine.MetaGroup || o.State.Bytes <= size || len(o.State.Learners) > 0 || cooling(o.Group) {
			continue
		}
		rec, ok := m.Part(o.Group)
		if !ok || rec.SlotEnd <= rec.SlotStart {
			continue
		}
		if best == nil || cmp.Compare(o.State.Bytes, best.State.Bytes) > 0 {
			best = o
		}
	}
	if best == nil {
		return 0, false
	}
	return best.Group, true
}

// maybeSplit starts the split the policy picks, unless one is running.
func (p *Placement) maybeSplit(ctx context.Context, obs []Observed, m *ClusterMap) {
	p.round++
	if p.splitting.Load() {
		return
	}
	if len(m.Splits) > 0 {
		// A split reserved and not recorded: finish it (with its own
		// slot) before any other, whatever the sizes say now.
		in := m.Splits[0]
		p.splitting.Store(true)
		go func() {
			defer p.splitting.Store(false)
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			right, err := SplitPartition(sctx, p.cfg.Write, p.cfg.Map, in.Left, in.At)
			if err != nil {
				p.cfg.Logger.Warn("pending split not finished; tried again later", "partition", in.Left, "new_partition", in.Right, "err", err)
				return
			}
			p.cfg.Logger.Info("pending split finished", "partition", in.Left, "new_partition", right)
		}()
		return
	}
	if p.cfg.SplitSize == 0 {
		return
	}
	cooling := func(g uint64) bool { return p.round-p.splitAt[g] < splitCooldown && p.splitAt[g] != 0 }
	g, ok := planSplit(obs, m, p.cfg.SplitSize, cooling)
	if !ok {
		return
	}
	i := slices.IndexFunc(obs, func(o Observed) bool { return o.Group == g })
	bytes := obs[i].State.Bytes
	p.splitting.Store(true)
	p.splitAt[g] = p.round
	go func() {
		defer p.splitting.Store(false)
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		right, err := SplitPartition(sctx, p.cfg.Write, p.cfg.Map, int(g), 0)
		if err != nil {
			p.cfg.Logger.Warn("automatic split not done; tried again later", "partition", g, "bytes", bytes, "err", err)
			return
		}
		p.cfg.Logger.Info("partition split by size", "partition", g, "bytes", bytes, "split_size", p.cfg.SplitSize, "new_partition", right)
		p.splitDone(uint64(right))
	}()
}
