package control

import (
	"testing"
	"time"

	"github.com/kintsu/kintsu/internal/api"
)

// The write rate is smoothed, restarts when a count goes backwards, and
// must pass the limit loadRounds rounds in a row; the hottest partition
// splits at the median slot of its writes.
func TestLoadSplitPolicy(t *testing.T) {
	t0 := time.Unix(1000, 0)
	obs := func(writes ...uint64) []Observed {
		var out []Observed
		for g, w := range writes {
			out = append(out, Observed{Group: uint64(g), State: GroupState{Writes: w}})
		}
		return out
	}
	load := updateLoad(nil, obs(0, 0), t0, 100)
	for i, w := range []uint64{1000, 2000, 3000} {
		load = updateLoad(load, obs(w, uint64(i+1)*10), t0.Add(time.Duration(i+1)*time.Second), 100)
	}
	if s := load[0]; s.rate != 1000 || s.over != 3 {
		t.Fatalf("partition 0: %+v, want 1000/s over the limit 3 rounds", s)
	}
	if s := load[1]; s.rate != 10 || s.over != 0 {
		t.Fatalf("partition 1: %+v, want 10/s, not over", s)
	}
	// A burst is smoothed: one round at 500/s after 0/s counts as 250/s.
	burst := updateLoad(map[uint64]loadSample{0: {writes: 0, at: t0, rate: 1, over: 0}}, obs(500), t0.Add(time.Second), 300)
	if s := burst[0]; s.rate != 250.5 || s.over != 0 {
		t.Fatalf("burst: %+v, want smoothed under the limit", s)
	}
	// A count that went backwards (a restarted leader) restarts the
	// sample and keeps the rate.
	restarted := updateLoad(load, obs(5, 40), t0.Add(4*time.Second), 100)
	if s := restarted[0]; s.rate != 1000 || s.over != 3 || s.writes != 5 {
		t.Fatalf("after a restart: %+v, want the count restarted at 5, the rate kept", s)
	}
	if s := updateLoad(restarted, obs(1005, 50), t0.Add(5*time.Second), 100)[0]; s.rate != 1000 {
		t.Fatalf("the round after a restart: %+v, want 1000/s", s)
	}
	// Counts are each replica's own: a new leader's count, however far
	// from the old one's, is not a rate.
	moved := obs(9_000_000, 40)
	moved[0].State.Leader = 2
	if s := updateLoad(load, moved, t0.Add(4*time.Second), 100)[0]; s.rate != 1000 || s.leader != 2 {
		t.Fatalf("after a leadership move: %+v, want the rate kept, the sample restarted", s)
	}

	m := &ClusterMap{Parts: testParts(2, 1, 2, 3)}
	o := obs(3000, 30)
	o[0].State.HotSlot, o[0].State.HasHot = 1500, true
	none := func(uint64) bool { return false }
	g, at, ok := planLoadSplit(o, m, load, none)
	if !ok || g != 0 || at != 1500 {
		t.Fatalf("load split: %d at %d %v, want partition 0 at its median slot 1500", g, at, ok)
	}
	if _, _, ok := planLoadSplit(o, m, load, func(g uint64) bool { return g == 0 }); ok {
		t.Fatal("a partition cooling down split by load")
	}
	for _, c := range []struct {
		hot  uint16
		has  bool
		want uint16
	}{{0, false, 4096}, {0, true, 1}, {9000, true, 4096}, {77, true, 77}} {
		rec := api.PartitionRecord{SlotStart: 0, SlotEnd: 8191}
		if got := splitSlot(rec, GroupState{HotSlot: c.hot, HasHot: c.has}); got != c.want {
			t.Errorf("splitSlot(hot %d %v) = %d, want %d", c.hot, c.has, got, c.want)
		}
	}
}
