package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/codec"
	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/ring"
	"github.com/kintsu/kintsu/internal/statemachine"
)

func TestPlanStep(t *testing.T) {
	up := func(dead ...uint64) func(uint64) bool {
		return func(id uint64) bool { return !slices.Contains(dead, id) }
	}
	for _, c := range []struct {
		name string
		gs   GroupState
		tgt  []uint64
		up   func(uint64) bool
		want Step
		ok   bool
	}{
		{"in place", GroupState{Voters: []uint64{1, 2, 3}, Leader: 1}, []uint64{3, 2, 1}, up(), Step{}, false},
		{"add the missing one first", GroupState{Voters: []uint64{1, 2, 3}, Leader: 1}, []uint64{1, 2, 4}, up(), Step{raftstore.AddLearner, 4}, true},
		{"promote the learner", GroupState{Voters: []uint64{1, 2, 3}, Learners: []uint64{4}, Leader: 1}, []uint64{1, 2, 4}, up(), Step{raftstore.PromoteLearner, 4}, true},
		{"then remove the extra", GroupState{Voters: []uint64{1, 2, 3, 4}, Leader: 1}, []uint64{1, 2, 4}, up(), Step{raftstore.RemoveReplica, 3}, true},
		{"hand leadership away before removal", GroupState{Voters: []uint64{1, 2, 3, 4}, Leader: 3}, []uint64{1, 2, 4}, up(), Step{0, 1}, true},
		{"dead node replaced", GroupState{Voters: []uint64{1, 2, 4}, Leader: 1}, []uint64{1, 2, 3}, up(4), Step{raftstore.AddLearner, 3}, true},
		{"dead voter removed first", GroupState{Voters: []uint64{1, 2, 3, 4, 5}, Leader: 1}, []uint64{1, 2, 3}, up(5), Step{raftstore.RemoveReplica, 5}, true},
		{"unwanted learner dropped", GroupState{Voters: []uint64{1, 2, 3}, Learners: []uint64{5}, Leader: 1}, []uint64{1, 2, 3}, up(), Step{raftstore.RemoveReplica, 5}, true},
		{"no learner on a node not up", GroupState{Voters: []uint64{1, 2, 3}, Leader: 1}, []uint64{1, 2, 4}, up(4), Step{}, false},
		{"never shrink while a target is missing", GroupState{Voters: []uint64{1, 2, 3, 5}, Leader: 1}, []uint64{1, 2, 4}, up(4), Step{}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := planStep(c.gs, c.tgt, c.up)
			if ok != c.ok || got != c.want {
				t.Fatalf("got %v (%v), want %v (%v)", got, ok, c.want, c.ok)
			}
		})
	}
	// Driving any membership with planStep reaches the target without ever
	// having fewer than R voters.
	gs := GroupState{Voters: []uint64{1, 2, 3}, Leader: 1}
	target := []uint64{4, 5, 6}
	for i := 0; ; i++ {
		st, ok := planStep(gs, target, up())
		if !ok {
			break
		}
		if i > 20 {
			t.Fatal("no convergence")
		}
		switch st.Kind {
		case 0:
			gs.Leader = st.Node
		case raftstore.AddLearner:
			gs.Learners = append(gs.Learners, st.Node)
		case raftstore.PromoteLearner:
			gs.Learners = slices.DeleteFunc(gs.Learners, func(x uint64) bool { return x == st.Node })
			gs.Voters = append(gs.Voters, st.Node)
		case raftstore.RemoveReplica:
			gs.Voters = slices.DeleteFunc(gs.Voters, func(x uint64) bool { return x == st.Node })
		}
		if len(gs.Voters) < 3 {
			t.Fatalf("step %v left %v voters", st, gs.Voters)
		}
	}
	slices.Sort(gs.Voters)
	if !slices.Equal(gs.Voters, target) {
		t.Fatalf("ended at %v", gs.Voters)
	}
}

// placementEngine is the engine as the driver sees it: the groups this
// node leads, and the moves it was asked to make.
type placementEngine struct {
	led    map[uint64]raftstore.GroupStatus
	moves  []string
	leader uint64 // of the metadata group
}

func (e *placementEngine) Leader(group uint64) uint64 {
	if group == statemachine.MetaGroup {
		return e.leader
	}
	return e.led[group].LeaderNode
}

func (e *placementEngine) GroupStatus(group uint64) (raftstore.GroupStatus, bool) {
	st, ok := e.led[group]
	return st, ok
}

func (e *placementEngine) TransferGroupLeader(group, to uint64) {
	e.moves = append(e.moves, fmt.Sprintf("group %d: transfer to %d", group, to))
}

func (e *placementEngine) ChangeReplicas(_ context.Context, group uint64, kind raftstore.ChangeKind, node uint64) error {
	e.moves = append(e.moves, fmt.Sprintf("group %d: %s node %d", group, kind, node))
	return nil
}

// One round on the metadata leader, against fakes: node 4 is dead and
// node 5 is draining and holds nothing. Partition 0, led by node 2, still
// counts node 4, so node 2 is asked to add node 3 as a learner; the
// partition table, which says otherwise, is corrected; node 5 is removed.
// Groups already in place are left alone.
func TestPlacementRound(t *testing.T) {
	rc := ring.Config{Partitions: 4, Replicas: 3}
	rc.EnsureDefaults()
	st := func(g uint64, voters ...uint64) raftstore.GroupStatus {
		return raftstore.GroupStatus{Group: g, Nodes: voters, LeaderNode: 1}
	}
	eng := &placementEngine{leader: 1, led: map[uint64]raftstore.GroupStatus{
		statemachine.MetaGroup: st(statemachine.MetaGroup, 1, 2, 3),
		1:                      st(1, 1, 2, 3), 2: st(2, 1, 2, 3), 3: st(3, 1, 2, 3),
	}}
	var calls []string
	peers := &fakePeers{answer: func(node uint64, method string, body []byte) ([]byte, error) {
		calls = append(calls, fmt.Sprintf("%s to %d: %x", method, node, body))
		switch {
		case method == MethodGroupInfo && node == 2:
			return mustMarshal(groupInfoJSON{Voters: []uint64{1, 2, 4}, Leader: 2}), nil
		case method == MethodChangeReplicas && node == 2:
			return nil, nil
		}
		return nil, errors.New("unexpected call")
	}}
	w := &metaWrites{reply: okReply}
	var states []string
	recs := []api.NodeRecord{{ID: 1, State: api.NodeUp}, {ID: 2, State: api.NodeUp}, {ID: 3, State: api.NodeUp}, {ID: 4, State: api.NodeDead}, {ID: 5, State: api.NodeDraining}}
	p := NewPlacement(PlacementConfig{
		NodeID: 1, Ring: rc, Every: time.Hour, RequestTimeout: time.Second,
		Engine: eng, Caller: peers, Write: w.write,
		LeaderOf: func(g uint64) uint64 {
			if g == 0 {
				return 2
			}
			return 1
		},
		Map:   NewMap(MapConfig{Saved: func() ([]byte, bool) { return nil, false }}, atLevel(InitialMap(nil, testParts(4, 1, 2, 3), []uint64{1, 2, 3}))),
		Nodes: func() []api.NodeRecord { return recs },
		SetNodeState: func(_ context.Context, id uint64, state string) error {
			states = append(states, fmt.Sprintf("%d %s", id, state))
			return nil
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if parts, meta, _, ok := p.Targets(recs, testParts(4, 1, 2, 3), api.Level); !ok || !slices.Equal(slices.Sorted(slices.Values(meta)), []uint64{1, 2, 3}) || len(parts) != 4 {
		t.Fatalf("targets over three live nodes: %v %v %v", parts, meta, ok)
	}
	p.placeOnce(context.Background())

	wantCalls := []string{
		fmt.Sprintf("%s to 2: %x", MethodGroupInfo, codec.Encoder(nil).Uvarint(0)),
		fmt.Sprintf("%s to 2: %x", MethodChangeReplicas, codec.Encoder(nil).Uvarint(0).Uvarint(uint64(raftstore.AddLearner)).Uvarint(3)),
	}
	if !slices.Equal(calls, wantCalls) {
		t.Errorf("peer calls:\n%q\nwant\n%q", calls, wantCalls)
	}
	if len(eng.moves) != 0 {
		t.Errorf("groups in place were moved: %q", eng.moves)
	}
	wantPart := string(mustMarshal(api.PartitionRecord{ID: 0, SlotStart: 0, SlotEnd: 4095, Replicas: []uint64{1, 2, 4}}))
	if len(w.got) != 1 || w.got[0] != statemachine.CmdPartition+" "+wantPart {
		t.Errorf("metadata writes %q, want the partition table corrected to %s", w.got, wantPart)
	}
	if !slices.Equal(states, []string{"5 " + api.NodeRemoved}) {
		t.Errorf("state changes %q", states)
	}

	// Fewer live nodes than replicas: nothing moves, nothing is written.
	recs = recs[:2]
	calls, w.got, states = nil, nil, nil
	p.placeOnce(context.Background())
	if calls != nil || w.got != nil || states != nil {
		t.Errorf("with two nodes left: calls %q, writes %q, states %q", calls, w.got, states)
	}
}

// A leader carries out the steps other nodes' drivers send it, and
// refuses a body it cannot read.
func TestServeChangeReplicas(t *testing.T) {
	eng := &placementEngine{}
	p := NewPlacement(PlacementConfig{Engine: eng})
	ctx := context.Background()
	for _, body := range [][]byte{nil, codec.Encoder(nil).Uvarint(1).Uvarint(9).Uvarint(2)} {
		if _, err := p.ServeChangeReplicas(ctx, body); !errors.Is(err, ErrMalformed) {
			t.Errorf("body %x: %v, want malformed", body, err)
		}
	}
	for _, kind := range []uint64{0, uint64(raftstore.RemoveReplica)} {
		if _, err := p.ServeChangeReplicas(ctx, codec.Encoder(nil).Uvarint(1).Uvarint(kind).Uvarint(2)); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"group 1: transfer to 2", fmt.Sprintf("group 1: %s node 2", raftstore.RemoveReplica)}
	if !slices.Equal(eng.moves, want) {
		t.Fatalf("moves %q, want %q", eng.moves, want)
	}
	if _, err := p.ServeGroupInfo(codec.Encoder(nil).Uvarint(7)); !errors.Is(err, raftstore.ErrNoGroup) {
		t.Fatalf("info on a group not hosted: %v", err)
	}
}

// PlanRound adds no learner beyond its limits, counting the learners
// already there, and still takes every other step.
func TestPlanRoundLimits(t *testing.T) {
	up := func(uint64) bool { return true }
	var obs []Observed
	// Six groups want node 9 (one already has it as a learner), two want
	// node 8, and one only needs a leader moved.
	for g := range uint64(6) {
		gs := GroupState{Voters: []uint64{1, 2, 3}, Leader: 1}
		if g == 0 {
			gs.Learners = []uint64{9}
		}
		obs = append(obs, Observed{Group: g, State: gs, Target: []uint64{1, 2, 9}})
	}
	for g := uint64(6); g < 8; g++ {
		obs = append(obs, Observed{Group: g, State: GroupState{Voters: []uint64{1, 2, 3}, Leader: 1}, Target: []uint64{1, 2, 8}})
	}
	obs = append(obs, Observed{Group: 8, State: GroupState{Voters: []uint64{1, 2, 3, 4}, Leader: 4}, Target: []uint64{1, 2, 3}})

	count := func(ps []Planned) (adds map[uint64]int, others int) {
		adds = map[uint64]int{}
		for _, p := range ps {
			if p.Step.Kind == raftstore.AddLearner {
				adds[p.Step.Node]++
			} else {
				others++
			}
		}
		return adds, others
	}
	adds, others := count(PlanRound(obs, up, Limits{PerNode: 3, Total: 10}))
	if adds[9] != 2 || adds[8] != 2 || others != 2 {
		t.Fatalf("per node 3: adds %v and %d other steps; want 2 more on node 9 (one is there), 2 on node 8, a promotion and a transfer", adds, others)
	}
	adds, others = count(PlanRound(obs, up, Limits{PerNode: 3, Total: 2}))
	if adds[9]+adds[8] != 1 || others != 2 {
		t.Fatalf("total 2: adds %v and %d other steps; want one add (one group already moving)", adds, others)
	}
}

// atLevel is m at this build's level, so a round asks no node its level.
func atLevel(m *ClusterMap) *ClusterMap {
	m.Level = api.Level
	return m
}

// From api.LevelFamilies a split's halves are placed alike (by their
// family, ring.FamilyPos), so the right half, born on its parent's
// replicas, has nowhere to move; below it each half is placed by its own
// first slot. Many partitions a node, so that the load cap parts few
// halves (here one: six nodes' 64 tokens each leave one over the cap).
func TestTargetsPlaceSplitHalvesByFamily(t *testing.T) {
	var recs []api.NodeRecord
	for id := uint64(1); id <= 6; id++ {
		recs = append(recs, api.NodeRecord{ID: id, State: api.NodeUp})
	}
	rc := ring.Config{Partitions: 64, Replicas: 3}
	rc.EnsureDefaults()
	p := NewPlacement(PlacementConfig{Ring: rc, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	// The first 8 of the 64 initial partitions split at their middle.
	parts := testParts(64)
	for i := range 8 {
		r := &parts[i]
		mid := r.SlotStart + (r.SlotEnd-r.SlotStart+1)/2
		parts = append(parts, api.PartitionRecord{ID: 64 + i, SlotStart: mid, SlotEnd: r.SlotEnd})
		r.SlotEnd = mid - 1
	}
	slices.SortFunc(parts, func(a, b api.PartitionRecord) int { return int(a.SlotStart) - int(b.SlotStart) })
	set := func(ids []uint64) []uint64 { return slices.Sorted(slices.Values(ids)) } // leaderships are not moves
	fam, _, _, ok := p.Targets(recs, parts, api.LevelFamilies)
	if !ok {
		t.Fatal("no targets")
	}
	own, _, _, _ := p.Targets(recs, parts, api.LevelFamilies-1)
	famDiffer, ownDiffer := 0, 0
	for i := range 8 {
		left, right := uint64(i), uint64(64+i)
		if !slices.Equal(set(fam[left]), set(fam[right])) {
			famDiffer++
			t.Logf("by family, partition %d is placed on %v and its right half on %v", left, fam[left], fam[right])
		}
		if !slices.Equal(set(own[left]), set(own[right])) {
			ownDiffer++
		}
	}
	t.Logf("halves placed apart: %d of 8 by family, %d by slot", famDiffer, ownDiffer)
	if famDiffer > 1 || ownDiffer < 4 {
		t.Errorf("halves placed apart: %d of 8 by family, %d by slot", famDiffer, ownDiffer)
	}
}
