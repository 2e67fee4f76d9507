package control

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/codec"
	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/ring"
	"github.com/kintsu/kintsu/internal/statemachine"
)

// The placement driver turns membership and liveness into replica moves.
// It runs on every node and acts only where the metadata group is led,
// once per heartbeat interval:
//
//  1. The eligible nodes are the members that are up or suspect (a
//     suspect node may only be paused: moving its replicas at once would
//     churn on every hiccup). Dead, draining and removed nodes are not.
//  2. The target of every partition is ring.Place over the eligible nodes
//     (consistent hashing: adding or losing a node moves about R·P/N
//     replicas), and the metadata group's is ring.MetaReplicas.
//  3. For each group, the actual replicas are asked of its leader, and
//     planStep picks at most one step: remove a learner that is not
//     wanted, promote a wanted learner, add a learner on a wanted node
//     that is up, hand leadership away from a replica about to go, or
//     remove a voter that is not wanted once every wanted node votes.
//     A replica is added before one is removed, so a group never has
//     fewer than R voters because of a move.
//  4. At most maxMoving learners are added to a node at once, and at
//     most max(maxMoving, N) in the cluster (DefaultLimits), and each step
//     is one raft conf change that ChangeReplicas applies whole.
//
// Invariants: the plan is recomputed from what raft says each round, so a
// crash of the driver, the source or the target leaves nothing to resume
// but the next round; replica ids come from the group's descriptor and are
// never reused. The partition table in the metadata records each group's
// replicas after raft applied them; it is what routing reads, never what
// decides.

// maxMoving bounds how many replicas a node gains at once.
const maxMoving = 4

// MetaReplicas is how many nodes hold the metadata group.
const MetaReplicas = 5

// GroupState is a group's membership as its leader reports it.
type GroupState struct {
	Voters, Learners []uint64 // node ids
	Leader           uint64
	// Bytes is the leader's estimate of the group's data on disk (0: not
	// reported).
	Bytes uint64
	// Applied is the leader's applied index (a merge picks the group
	// whose log is ahead as its survivor); MergedPlus1 the last group the
	// leader's replica absorbed, plus one (0: none).
	Applied, MergedPlus1 uint64
	// Writes is the count of commands the leader's replica applied since
	// it was loaded; HotSlot the median slot of its recent writes, when
	// HasHot (splits by load, loadpolicy.go).
	Writes  uint64
	HotSlot uint16
	HasHot  bool
}

// Step is one move: a membership change, or (Kind 0) a leadership
// transfer to Node.
type Step struct {
	Kind raftstore.ChangeKind
	Node uint64
}

func (s Step) String() string {
	if s.Kind == 0 {
		return fmt.Sprintf("transfer leadership to node %d", s.Node)
	}
	return fmt.Sprintf("%s node %d", s.Kind, s.Node)
}

// planStep picks the next step moving gs towards target; up says which
// nodes are up (a learner is only added on one). It is pure.
func planStep(gs GroupState, target []uint64, up func(uint64) bool) (Step, bool) {
	for _, l := range gs.Learners {
		if !slices.Contains(target, l) {
			return Step{raftstore.RemoveReplica, l}, true
		}
	}
	if len(gs.Learners) > 0 {
		return Step{raftstore.PromoteLearner, gs.Learners[0]}, true
	}
	for _, t := range target {
		if !slices.Contains(gs.Voters, t) {
			if up(t) {
				return Step{raftstore.AddLearner, t}, true
			}
			return Step{}, false // wait for it; do not shrink meanwhile
		}
	}
	var extra []uint64
	for _, v := range gs.Voters {
		if !slices.Contains(target, v) {
			extra = append(extra, v)
		}
	}
	if len(extra) == 0 {
		return Step{}, false
	}
	// The unreachable go first: they cost availability while they vote.
	slices.SortStableFunc(extra, func(a, b uint64) int {
		switch {
		case !up(a) && up(b):
			return -1
		case up(a) && !up(b):
			return 1
		}
		return 0
	})
	victim := extra[0]
	if victim == gs.Leader {
		for _, t := range target {
			if up(t) {
				return Step{0, t}, true
			}
		}
		return Step{}, false
	}
	return Step{raftstore.RemoveReplica, victim}, true
}

// PlacementEngine is what the driver asks of the replication engine
// (*raftstore.Engine).
type PlacementEngine interface {
	// Leader is the leader the local replica of group knows, 0 if none.
	Leader(group uint64) uint64
	GroupStatus(group uint64) (raftstore.GroupStatus, bool)
	TransferGroupLeader(group, to uint64)
	ChangeReplicas(ctx context.Context, group uint64, kind raftstore.ChangeKind, node uint64) error
}

// PlacementConfig is what the placement driver needs from its node.
type PlacementConfig struct {
	NodeID uint64
	// Ring is the cluster's shape (partitions, replicas, virtual nodes).
	Ring ring.Config
	// Every is the driver's period (the heartbeat interval).
	Every time.Duration
	// RequestTimeout bounds a write to the metadata.
	RequestTimeout time.Duration
	Engine         PlacementEngine
	// Caller reaches the leaders of groups this node does not lead.
	Caller Caller
	// LeaderOf is the node believed to lead group, 0 if unknown
	// (route.Router.LeaderOf).
	LeaderOf func(group uint64) uint64
	Write    WriteFunc
	Map      *Map
	// Nodes is the node registry with liveness derived.
	Nodes func() []api.NodeRecord
	// SetNodeState records a membership decision (Members.SetNodeState).
	SetNodeState func(ctx context.Context, id uint64, state string) error
	// SplitSize: a partition whose data passes it splits (splitpolicy.go);
	// 0: never by itself.
	SplitSize uint64
	// SplitLoad: a partition applying more writes per second than this,
	// for loadRounds rounds in a row, splits at the median slot of its
	// recent writes (loadpolicy.go); 0: never by load.
	SplitLoad float64
	// GroupBytes estimates the data of this node's replica of group on
	// disk, reported with the group's membership.
	GroupBytes func(group uint64) uint64
	// Away says whether a node said it is stopping (Balancer.IsAway): no
	// leadership moves there for load. nil: none is.
	Away func(node uint64) bool
	// LeaderLoad turns on moving leaderships for load (leaderload.go):
	// off by default until its rates are smoothed over longer than a
	// round (see docs/decisions.md).
	LeaderLoad bool
	Logger     *slog.Logger
}

// Placement is the placement driver.
type Placement struct {
	cfg PlacementConfig
	// The split policy's state (splitpolicy.go): the splits and merges
	// running (a round starts none while any runs), and the round each
	// partition last split in (the driver's loop alone reads and writes
	// round and splitAt; a split's goroutine hands its new partition over
	// through born).
	resizing atomic.Int32
	round    int
	splitAt  map[uint64]int
	// levelAsked is when the driver last asked the members' levels
	// (levels.go); its loop alone reads and writes it.
	levelAsked time.Time
	born       chan uint64
	// load is each partition's write load as the driver's loop last saw
	// it (loadpolicy.go); that loop alone reads and writes it.
	load map[uint64]loadSample
	// ledAt is when each partition's leadership last moved for load,
	// lastLoadMove when any did, and overload which node has been the
	// overloaded one (leaderload.go); the driver's loop alone reads and
	// writes them.
	ledAt        map[uint64]time.Time
	lastLoadMove time.Time
	overload     overloadWatch
	loadMove     *pendingMove
	// lapsed: a round found this node not the metadata leader since the
	// driver last ran (Run's loop's).
	lapsed bool
	// held are the groups a merge under way holds (merge.go): no step is
	// planned for them.
	heldMu sync.Mutex
	held   map[uint64]int
}

// NewPlacement builds the placement driver; Run runs it.
func NewPlacement(cfg PlacementConfig) *Placement {
	return &Placement{cfg: cfg, splitAt: map[uint64]int{}, ledAt: map[uint64]time.Time{}, born: make(chan uint64, 2*splitBatch+1)}
}

// splitDone hands a new partition to the driver's loop, which lets it
// cool down like its parent. born holds two batches and a merge: a
// batch's last splits may end after the round that drained born and
// before the next batch starts.
func (p *Placement) splitDone(right uint64) {
	select {
	case p.born <- right:
	default:
	}
}

// Run runs the driver every interval until ctx ends; a round does
// something only where this node leads the metadata group.
func (p *Placement) Run(ctx context.Context) {
	t := time.NewTicker(p.cfg.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if p.cfg.Engine.Leader(statemachine.MetaGroup) == p.cfg.NodeID {
			p.placeOnce(ctx)
		} else {
			p.lapsed = true
		}
	}
}

// Targets computes every group's wanted replicas over the eligible nodes
// of recs, each partition placed by its range's first slot (ring.PlaceAt;
// from api.LevelFamilies by its family, ring.FamilyPos), so a partition's
// target does not depend on how many others exist; ok is false when there
// are fewer eligible nodes than replicas (nothing can be restored then,
// and nothing should move).
func (p *Placement) Targets(recs []api.NodeRecord, parts []api.PartitionRecord, level int) (targets map[uint64][]uint64, meta []uint64, up func(uint64) bool, ok bool) {
	eligible, up := Eligible(recs)
	if len(eligible) < p.cfg.Ring.Replicas || len(parts) == 0 {
		return nil, nil, up, false
	}
	targets, err := PartitionTargets(p.cfg.Ring, eligible, parts, level >= api.LevelFamilies)
	if err != nil {
		p.cfg.Logger.Error("placement failed", "err", err)
		return nil, nil, up, false
	}
	return targets, ring.MetaReplicas(p.cfg.Ring, eligible, MetaReplicas), up, true
}

// Eligible are the nodes of recs that may hold replicas: up or suspect.
// up reports which nodes are up (a learner is only added on one).
func Eligible(recs []api.NodeRecord) (eligible []ring.Node, up func(uint64) bool) {
	state := make(map[uint64]string, len(recs))
	for _, r := range recs {
		state[r.ID] = r.State
		if r.State == api.NodeUp || r.State == api.NodeSuspect {
			eligible = append(eligible, ring.Node{ID: r.ID})
		}
	}
	return eligible, func(id uint64) bool { return state[id] == api.NodeUp }
}

// PartitionTargets places every partition of parts over nodes by its
// range's first slot, keyed by group id; with families, by its family
// among the rc.Partitions the cluster was created with (ring.FamilyPos).
func PartitionTargets(rc ring.Config, nodes []ring.Node, parts []api.PartitionRecord, families bool) (map[uint64][]uint64, error) {
	starts := make([]uint64, len(parts))
	for i, part := range parts {
		if families {
			starts[i] = ring.FamilyPos(part.SlotStart, rc.Partitions)
		} else {
			starts[i] = ring.SlotPos(part.SlotStart)
		}
	}
	pl, err := ring.PlaceAt(rc, nodes, starts)
	if err != nil {
		return nil, err
	}
	targets := make(map[uint64][]uint64, len(parts))
	for i, part := range parts {
		targets[uint64(part.ID)] = pl.Replicas[i]
	}
	return targets, nil
}

// Observed is one group as a round of the driver saw it: its membership
// as its leader reports it, and where the placement wants it.
type Observed struct {
	Group  uint64
	State  GroupState
	Target []uint64
}

// Planned is a step a round takes on a group.
type Planned struct {
	Group uint64
	State GroupState
	Step  Step
}

// Limits bound the replicas being added at once: a new replica is a
// snapshot to ship and ingest, and too many at once starve the
// foreground. PerNode bounds the learners a node receives at once,
// Total those of the whole cluster.
type Limits struct{ PerNode, Total int }

// DefaultLimits are the driver's limits for a cluster of n eligible
// nodes: maxMoving per node, and maxMoving or one per node in all, so a
// small cluster moves as few replicas at once as it always has and a
// large one repairs a lost node's replicas on many nodes in parallel.
func DefaultLimits(n int) Limits { return Limits{PerNode: maxMoving, Total: max(maxMoving, n)} }

// PlanRound is the pure part of a driver round: at most one step per
// group (planStep), in the order of obs, with no learner added beyond
// lim. Learners already present count against the limits.
func PlanRound(obs []Observed, up func(uint64) bool, lim Limits) []Planned {
	moving, into := 0, map[uint64]int{}
	for _, o := range obs {
		if len(o.State.Learners) > 0 {
			moving++
		}
		for _, l := range o.State.Learners {
			into[l]++
		}
	}
	var out []Planned
	for _, o := range obs {
		st, ok := planStep(o.State, o.Target, up)
		if !ok {
			continue
		}
		if st.Kind == raftstore.AddLearner {
			if moving >= lim.Total || into[st.Node] >= lim.PerNode {
				continue
			}
			moving++
			into[st.Node]++
		}
		out = append(out, Planned{o.Group, o.State, st})
	}
	return out
}

// placeOnce runs one round of the driver: observe every group (I/O),
// plan (PlanRound), act (I/O).
func (p *Placement) placeOnce(ctx context.Context) {
	recs := p.cfg.Nodes()
	m := p.cfg.Map.Current()
	targets, meta, up, ok := p.Targets(recs, m.Parts, m.Level)
	if !ok {
		// Nothing can be placed; a merge whose survivor is chosen (its
		// other half may be frozen) is still finished or aborted.
		p.round++
		p.resumeChosen(ctx, m)
		return
	}
	// A merge reserved: the right partition goes where the left goes,
	// until both are on the same nodes (merge.go).
	for _, in := range m.Merges {
		if t, ok := targets[uint64(in.Left)]; ok {
			targets[uint64(in.Right)] = t
		}
	}
	obs := make([]Observed, 0, len(m.Parts)+1)
	holds, complete := map[uint64]bool{}, true
	observe := func(g uint64, target []uint64) {
		gs, ok := p.GroupInfo(ctx, g)
		if !ok {
			complete = false
			return
		}
		for _, id := range append(slices.Clone(gs.Voters), gs.Learners...) {
			holds[id] = true
		}
		p.recordGroup(ctx, m, g, gs)
		obs = append(obs, Observed{Group: g, State: gs, Target: target})
	}
	observe(statemachine.MetaGroup, meta)
	for _, part := range m.Parts {
		observe(uint64(part.ID), targets[uint64(part.ID)])
	}
	if complete {
		p.maybeRaiseLevel(ctx, m, recs, holds)
	}
	// A draining node that holds nothing any more has left.
	for _, r := range recs {
		if complete && r.State == api.NodeDraining && !holds[r.ID] {
			wctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
			err := p.cfg.SetNodeState(wctx, r.ID, api.NodeRemoved)
			cancel()
			p.cfg.Logger.Info("decommissioned node holds no replicas: removed", "node", r.ID, "err", err)
		}
	}
	for drained := false; !drained; {
		select {
		case right := <-p.born:
			p.splitAt[right] = p.round
		default:
			drained = true
		}
	}
	p.maybeResize(ctx, obs, m)
	obs = slices.DeleteFunc(obs, func(o Observed) bool { return p.isHeld(o.Group) })
	if p.cfg.LeaderLoad {
		p.balanceLeadersByLoad(ctx, obs, up)
	}
	eligible, _ := Eligible(recs)
	for _, t := range PlanRound(obs, up, DefaultLimits(len(eligible))) {
		p.cfg.Logger.Info("placement", "partition", t.Group, "step", t.Step.String(), "voters", t.State.Voters, "learners", t.State.Learners)
		if err := p.execStep(ctx, t.Group, t.State.Leader, t.Step); err != nil {
			p.cfg.Logger.Info("placement step not done; retried next round", "partition", t.Group, "step", t.Step.String(), "err", err)
		}
	}
}

// GroupInfo asks group's leader for its membership; false while group
// has no known leader, or its leader does not answer as one.
func (p *Placement) GroupInfo(ctx context.Context, group uint64) (GroupState, bool) {
	leader := p.cfg.LeaderOf(group)
	if leader == 0 {
		return GroupState{}, false
	}
	if leader == p.cfg.NodeID {
		st, ok := p.cfg.Engine.GroupStatus(group)
		if !ok || st.LeaderNode != p.cfg.NodeID {
			return GroupState{}, false
		}
		gs := GroupState{Voters: st.Nodes, Learners: st.Learners, Leader: leader, Bytes: p.groupBytes(group), Applied: st.AppliedIndex, MergedPlus1: st.MergedPlus1, Writes: st.Writes}
		gs.HotSlot, gs.HasHot = st.HotSlot()
		return gs, true
	}
	gi, ok := askGroupInfo(ctx, p.cfg.Caller, group, leader)
	if !ok {
		return GroupState{}, false
	}
	gs := GroupState{Voters: gi.Voters, Learners: gi.Learners, Leader: gi.Leader, Bytes: gi.Bytes, Applied: gi.Applied, MergedPlus1: gi.MergedPlus1, Writes: gi.Writes}
	if gi.HotSlot != nil {
		gs.HotSlot, gs.HasHot = *gi.HotSlot, true
	}
	return gs, true
}

// groupInfoJSON is MethodGroupInfo's answer.
type groupInfoJSON struct {
	Voters   []uint64 `json:"voters"`
	Learners []uint64 `json:"learners"`
	Leader   uint64   `json:"leader"`
	NextID   uint64   `json:"next_id"`
	IDs      []uint64 `json:"ids"` // replica ids of voters and learners
	// Placed pairs nodes with replica ids: [node, id].
	Placed [][2]uint64 `json:"placed,omitempty"`
	// Settled: see GroupMembers.Settled.
	Settled bool `json:"settled,omitempty"`
	// Bytes: the leader's estimate of the group's data on disk.
	Bytes uint64 `json:"bytes,omitempty"`
	// Applied: the answering replica's applied index (it need not lead).
	Applied uint64 `json:"applied,omitempty"`
	// MergedPlus1: the last group merged into this one, plus one.
	MergedPlus1 uint64 `json:"merged_plus1,omitempty"`
	// Writes and HotSlot: the answering replica's write load (GroupState).
	Writes  uint64  `json:"writes,omitempty"`
	HotSlot *uint16 `json:"hot_slot,omitempty"`
}

func (p *Placement) groupBytes(group uint64) uint64 {
	if p.cfg.GroupBytes == nil || group == statemachine.MetaGroup {
		return 0
	}
	return p.cfg.GroupBytes(group)
}

// askGroupInfo asks leader about group; false unless it answers as the
// leader.
func askGroupInfo(ctx context.Context, c Caller, group, leader uint64) (groupInfoJSON, bool) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	b, err := c.Call(ctx, leader, MethodGroupInfo, codec.Encoder(nil).Uvarint(group))
	if err != nil {
		return groupInfoJSON{}, false
	}
	var gi groupInfoJSON
	if json.Unmarshal(b, &gi) != nil || gi.Leader != leader {
		return groupInfoJSON{}, false
	}
	return gi, true
}

// ServeGroupInfo answers MethodGroupInfo: the membership of a group this
// node leads.
func (p *Placement) ServeGroupInfo(body []byte) ([]byte, error) {
	d := codec.NewDecoder(body)
	group := d.Uvarint()
	if d.Err() != nil {
		return nil, ErrMalformed
	}
	st, ok := p.cfg.Engine.GroupStatus(group)
	if !ok {
		return nil, raftstore.ErrNoGroup
	}
	gi := groupInfoJSON{Voters: st.Nodes, Learners: st.Learners, Leader: st.LeaderNode, NextID: st.NextID, IDs: st.MemberIDs, Placed: st.Placed(), Settled: st.Settled(), Bytes: p.groupBytes(group), Applied: st.AppliedIndex, MergedPlus1: st.MergedPlus1, Writes: st.Writes}
	if hot, ok := st.HotSlot(); ok {
		gi.HotSlot = &hot
	}
	return json.Marshal(gi)
}

// execStep has group's leader carry out st.
func (p *Placement) execStep(ctx context.Context, group, leader uint64, st Step) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if leader == p.cfg.NodeID {
		return p.doStep(ctx, group, st)
	}
	body := codec.Encoder(nil).Uvarint(group).Uvarint(uint64(st.Kind)).Uvarint(st.Node)
	_, err := p.cfg.Caller.Call(ctx, leader, MethodChangeReplicas, body)
	return err
}

// ServeChangeReplicas answers MethodChangeReplicas.
func (p *Placement) ServeChangeReplicas(ctx context.Context, body []byte) ([]byte, error) {
	d := codec.NewDecoder(body)
	group, kind, node := d.Uvarint(), d.Uvarint(), d.Uvarint()
	if d.Err() != nil || kind > uint64(raftstore.RemoveReplica) {
		return nil, ErrMalformed
	}
	return nil, p.doStep(ctx, group, Step{raftstore.ChangeKind(kind), node})
}

func (p *Placement) doStep(ctx context.Context, group uint64, st Step) error {
	if st.Kind == 0 {
		p.cfg.Engine.TransferGroupLeader(group, st.Node)
		return nil
	}
	return p.cfg.Engine.ChangeReplicas(ctx, group, st.Kind, st.Node)
}

// recordGroup writes group's membership into the partition table when
// the cluster map disagrees with what its leader reports.
func (p *Placement) recordGroup(ctx context.Context, m *ClusterMap, group uint64, gs GroupState) {
	var args [][]byte
	if group == statemachine.MetaGroup {
		if slices.Equal(m.Meta, gs.Voters) {
			return
		}
		b, _ := json.Marshal(gs.Voters)
		args = [][]byte{[]byte(statemachine.CmdMetaGroup), b}
	} else {
		part, ok := m.Part(group) // a copy: the published map is shared
		if !ok {
			return
		}
		if slices.Equal(part.Replicas, gs.Voters) && slices.Equal(part.Learners, gs.Learners) {
			return
		}
		part.Replicas, part.Learners = gs.Voters, gs.Learners
		b, _ := json.Marshal(part)
		args = [][]byte{[]byte(statemachine.CmdPartition), b}
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
	defer cancel()
	if reply := p.cfg.Write(ctx, statemachine.MetaGroup, args); string(reply) != okReply {
		p.cfg.Logger.Warn("could not record membership in the partition table", "partition", group, "reply", string(reply))
	}
}
