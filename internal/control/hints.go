package control

import (
	"context"
	"slices"
	"time"

	"github.com/kintsu/kintsu/internal/codec"
	"github.com/kintsu/kintsu/internal/route"
	"github.com/kintsu/kintsu/internal/statemachine"
)

// Leader hints. The router learns who leads a partition from the answers
// of the nodes it sends to, so a node that hosts no replica of a group
// would know nothing until a request came. Every hintEvery it asks peers
// who leads the groups whose local replica (if any) knows no leader, so
// routing and readiness know without waiting for a request. A hint is
// advice: a wrong one costs the router a retry.
const hintEvery = time.Second

// HintsEngine is what the hint refresher asks of the replication engine
// (*raftstore.Engine).
type HintsEngine interface {
	// Leader is the leader the local replica of group knows, 0 if none.
	Leader(group uint64) uint64
	HasGroup(group uint64) bool
	// DestroyIfRemoved drops the local replica of group if the leader's
	// descriptor (its next replica id and members) shows it was removed.
	DestroyIfRemoved(group, nextID uint64, memberIDs []uint64)
}

// HintsConfig is what the hint refresher needs from its node.
type HintsConfig struct {
	NodeID uint64
	Engine HintsEngine
	Caller Caller
	// GroupNodes lists the nodes holding group as the router knows them
	// (route.Router.GroupNodes); SetHint tells the router who leads it.
	GroupNodes func(group uint64) []uint64
	SetHint    func(group, node uint64)
	Map        *Map
}

// Hints keeps the router's leader hints fresh.
type Hints struct{ cfg HintsConfig }

// NewHints builds the hint refresher; Run runs it.
func NewHints(cfg HintsConfig) *Hints { return &Hints{cfg: cfg} }

// Run refreshes the hints every hintEvery until ctx ends.
func (h *Hints) Run(ctx context.Context) {
	t := time.NewTicker(hintEvery)
	defer t.Stop()
	for {
		groups := []uint64{statemachine.MetaGroup}
		for _, p := range h.cfg.Map.Current().Parts {
			groups = append(groups, uint64(p.ID))
		}
		for _, g := range groups {
			if h.cfg.Engine.Leader(g) != 0 {
				continue
			}
			for _, node := range h.askAbout(g) {
				cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
				b, err := h.cfg.Caller.Call(cctx, node, route.MethodLeader, codec.Encoder(nil).Uvarint(g))
				cancel()
				if err == nil {
					d := codec.NewDecoder(b)
					if l := d.Uvarint(); d.Err() == nil && l != 0 {
						h.cfg.SetHint(g, l)
						if h.cfg.Engine.HasGroup(g) {
							h.dropIfRemoved(ctx, g, l)
						}
						break
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// askAbout lists the nodes to ask who leads group: those this node's
// replica knows, then those the cluster map names, never this node.
func (h *Hints) askAbout(group uint64) []uint64 {
	var out []uint64
	add := func(ids []uint64) {
		for _, id := range ids {
			if id != h.cfg.NodeID && !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	add(h.cfg.GroupNodes(group))
	m := h.cfg.Map.Current()
	if group == statemachine.MetaGroup {
		add(m.Meta)
	} else if group < uint64(len(m.Parts)) {
		add(m.Parts[group].Replicas)
		add(m.Parts[group].Learners)
	}
	return out
}

// dropIfRemoved asks group's leader whether the local replica, which knows
// no leader, is still a member; the engine destroys it if the leader's
// newer descriptor shows it was removed (a learner removed while this
// node was down is told by nobody else).
func (h *Hints) dropIfRemoved(ctx context.Context, group, leader uint64) {
	if leader == h.cfg.NodeID {
		return
	}
	gi, ok := askGroupInfo(ctx, h.cfg.Caller, group, leader)
	if !ok {
		return
	}
	h.cfg.Engine.DestroyIfRemoved(group, gi.NextID, gi.IDs)
}
