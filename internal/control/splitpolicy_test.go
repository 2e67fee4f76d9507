package control

import (
	"testing"

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
		got, ok := planSplit(c.obs, m, 100, c.cool)
		if ok != c.split || ok && got != c.want {
			t.Errorf("%s: %d %v, want %d %v", c.name, got, ok, c.want, c.split)
		}
	}
	moving := obs(500, 10, 10, 10)
	moving[1].State.Learners = []uint64{4}
	if _, ok := planSplit(moving, m, 100, none); ok {
		t.Error("a partition whose replicas are moving was picked")
	}
}
