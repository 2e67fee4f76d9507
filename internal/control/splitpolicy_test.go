package control

import (
	"slices"
	"testing"

	"github.com/kintsu/kintsu/internal/api"

	"github.com/kintsu/kintsu/internal/statemachine"
)

func TestPlanSplit(t *testing.T) {
	parts := testParts(4, 1, 2, 3)
	parts[3].SlotStart = parts[3].SlotEnd // one slot: cannot split (the map is not whole; Part still finds it)
	m := &ClusterMap{Parts: parts}
	obs := func(bytes ...uint64) []Observed {
		out := []Observed{{Group: statemachine.MetaGroup, State: GroupState{Bytes: 1 << 40}}}
		for g, b := range bytes {
			out = append(out, Observed{Group: uint64(g), State: GroupState{Bytes: b}})
		}
		return out
	}
	none := func(uint64) bool { return false }
	for _, c := range []struct {
		name  string
		obs   []Observed
		cool  func(uint64) bool
		want  uint64
		split bool
	}{
		{"all small", obs(10, 20, 30, 40), none, 0, false},
		{"the largest over the size", obs(150, 300, 200, 10), none, 1, true},
		{"one slot never splits", obs(10, 20, 30, 1000), none, 0, false},
		{"cooling down", obs(150, 300, 10, 10), func(g uint64) bool { return g == 1 }, 0, true},
		{"exactly the size stays", obs(100, 100, 100, 100), none, 0, false},
	} {
		got := planSplits(c.obs, m, 100, c.cool, 1)
		if ok := len(got) == 1; ok != c.split || ok && got[0] != c.want {
			t.Errorf("%s: %v, want %d %v", c.name, got, c.want, c.split)
		}
	}
	moving := obs(500, 10, 10, 10)
	moving[1].State.Learners = []uint64{4}
	if got := planSplits(moving, m, 100, none, 1); len(got) > 0 {
		t.Errorf("a partition whose replicas are moving was picked: %v", got)
	}
}

// A batch of splits takes the largest partitions first, never two with a
// replica on the same node, and at most the batch's size.
func TestPlanSplitsBatch(t *testing.T) {
	m := &ClusterMap{Parts: testParts(6)}
	on := func(bytes uint64, voters ...uint64) GroupState { return GroupState{Bytes: bytes, Voters: voters} }
	obs := []Observed{
		{Group: 0, State: on(500, 1, 2, 3)},
		{Group: 1, State: on(400, 3, 4, 5)}, // shares node 3 with 0
		{Group: 2, State: on(300, 4, 5, 6)},
		{Group: 3, State: on(200, 7, 8, 9)},
		{Group: 4, State: on(50, 10, 11, 12)}, // under the size
		{Group: 5, State: on(150, 1, 5, 9)},   // every node taken
	}
	none := func(uint64) bool { return false }
	if got := planSplits(obs, m, 100, none, 8); !slices.Equal(got, []uint64{0, 2, 3}) {
		t.Errorf("batch %v, want [0 2 3]", got)
	}
	if got := planSplits(obs, m, 100, none, 2); !slices.Equal(got, []uint64{0, 2}) {
		t.Errorf("batch of at most 2: %v, want [0 2]", got)
	}
}

// The merge policy picks the neighbours with the least data among those
// both under a quarter of the split size, never below the floor, never a
// partition cooling down, moving replicas, or with a split pending.
func TestPlanMerge(t *testing.T) {
	m := &ClusterMap{Parts: testParts(4, 1, 2, 3)}
	obs := func(bytes ...uint64) []Observed {
		out := []Observed{{Group: statemachine.MetaGroup}}
		for g, b := range bytes {
			out = append(out, Observed{Group: uint64(g), State: GroupState{Bytes: b}})
		}
		return out
	}
	none := func(uint64) bool { return false }
	for _, c := range []struct {
		name  string
		obs   []Observed
		floor int
		cool  func(uint64) bool
		want  int
		merge bool
	}{
		{"the smallest pair", obs(20, 20, 5, 5), 1, none, 2, true},
		{"pairs are neighbours by slot", obs(5, 90, 5, 90), 1, none, 0, false},
		{"a quarter of the size or more stays", obs(25, 25, 25, 25), 1, none, 0, false},
		{"not below the floor", obs(1, 1, 1, 1), 4, none, 0, false},
		{"cooling down", obs(20, 20, 5, 5), 1, func(g uint64) bool { return g == 3 }, 1, true},
		{"unobserved partitions are left out", obs(1, 1), 1, none, 0, true},
	} {
		got, ok := planMerge(c.obs, m, 100, c.floor, c.cool)
		if ok != c.merge || ok && got != c.want {
			t.Errorf("%s: %d %v, want %d %v", c.name, got, ok, c.want, c.merge)
		}
	}
	moving := obs(1, 1, 50, 50)
	moving[1].State.Learners = []uint64{4}
	if _, ok := planMerge(moving, m, 100, 1, none); ok {
		t.Error("a partition whose replicas are moving was picked")
	}
	pinned := &ClusterMap{Parts: testParts(4, 1, 2, 3)}
	pinned.Parts[2].Pinned = true
	if got, ok := planMerge(obs(30, 30, 1, 1), pinned, 100, 1, none); ok && got != 0 {
		t.Errorf("a partition split by hand was merged: %d", got)
	}
	// A split by hand of one of seven initial partitions: eight, the last
	// two pinned. The small others stay apart, since merging two would
	// only make up for the split asked by hand.
	byHand := func(n int) *ClusterMap {
		m := &ClusterMap{Parts: testParts(n, 1, 2, 3)}
		m.Parts[n-2].Pinned, m.Parts[n-1].Pinned = true, true
		return m
	}
	if got, ok := planMerge(obs(1, 1, 50, 50, 50, 50, 50, 50), byHand(8), 100, 7, none); ok {
		t.Errorf("a split by hand made the policy merge partition %d with its neighbour", got)
	}
	// With one more partition (split automatically), two merge.
	if got, ok := planMerge(obs(1, 1, 50, 50, 50, 50, 50, 50, 50), byHand(9), 100, 7, none); !ok || got != 0 {
		t.Errorf("past the floor and the split by hand: %d %v, want partitions 0 and 1 merged", got, ok)
	}
	split := &ClusterMap{Parts: m.Parts, Splits: []api.SplitIntent{{Left: 2}}}
	if got, ok := planMerge(obs(30, 30, 1, 1), split, 100, 1, none); ok && got != 0 {
		t.Errorf("a partition with a split pending was picked: %d", got)
	}
}
