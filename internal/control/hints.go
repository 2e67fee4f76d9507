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
//
// A peer's answer is also what readiness counts as a recent proof that
// the group has a leader with a quorum (see health.go), so a round must
// stay short when peers do not answer: a peer that fails a call is not
// asked again in that round, so each silent peer costs one call timeout
// per round, not one per group.
const hintEvery = time.Second

// hintCallTimeout bounds one "who leads?" call.
const hintCallTimeout = 500 * time.Millisecond

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
	// (route.Router.GroupNodes); SetHint tells the router that a peer
	// just named node as group's leader (route.Router.ConfirmLeader).
	GroupNodes func(group uint64) []uint64
	SetHint    func(group, node uint64)
	// Learner reports whether the local replica of group is a learner:
	// a learner never campaigns, so it never forgets a leader that died,
	// and its groups are asked about too. Nil: none is.
	Learner func(group uint64) bool
	Map     *Map
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
		silent := map[uint64]bool{} // peers that failed a call this round
		for _, g := range groups {
			known := h.cfg.Engine.Leader(g) != 0
			if known && (h.cfg.Learner == nil || !h.cfg.Learner(g)) {
				continue
			}
			for _, node := range h.askAbout(g) {
				if silent[node] {
					continue
				}
				cctx, cancel := context.WithTimeout(ctx, hintCallTimeout)
				b, err := h.cfg.Caller.Call(cctx, node, route.MethodLeader, codec.Encoder(nil).Uvarint(g))
				cancel()
				if err != nil {
					silent[node] = true
				} else {
					d := codec.NewDecoder(b)
					if l := d.Uvarint(); d.Err() == nil && l != 0 {
						h.cfg.SetHint(g, l)
						if !known && h.cfg.Engine.HasGroup(g) {
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
	} else if part, ok := m.Part(group); ok {
		add(part.Replicas)
		add(part.Learners)
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
