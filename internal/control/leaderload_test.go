package control

import (
	"testing"

	"github.com/kintsu/kintsu/internal/statemachine"
)

// The busiest node hands over the leadership that leaves the lowest
// maximum, only when it is over the mean by a quarter and past the floor,
// and only if the maximum falls by a tenth; cooling partitions and down
// nodes are left out; repeated rounds spread hot leaders over the nodes
// and then stop.
func TestLoadLeaderPolicy(t *testing.T) {
	voters := []uint64{1, 2, 3}
	type part struct {
		leader uint64
		rate   float64
	}
	round := func(parts []part) ([]Observed, map[uint64]loadSample) {
		var obs []Observed
		load := map[uint64]loadSample{}
		for g, p := range parts {
			obs = append(obs, Observed{Group: uint64(g), State: GroupState{Voters: voters, Leader: p.leader}})
			load[uint64(g)] = loadSample{rate: p.rate}
		}
		// The metadata group's load never counts.
		obs = append(obs, Observed{Group: statemachine.MetaGroup, State: GroupState{Voters: voters, Leader: 1}})
		load[statemachine.MetaGroup] = loadSample{rate: 1e6}
		return obs, load
	}
	allUp := func(uint64) bool { return true }
	never := func(uint64) bool { return false }
	for _, c := range []struct {
		name   string
		parts  []part
		up     func(uint64) bool
		cool   func(uint64) bool
		want   leaderMove
		wantOK bool
	}{
		{"idle", []part{{1, 50}, {1, 50}, {2, 0}}, allUp, never, leaderMove{}, false},
		{"even", []part{{1, 1000}, {2, 1000}, {3, 1000}}, allUp, never, leaderMove{}, false},
		{"two hot on one node", []part{{1, 1000}, {1, 1000}, {2, 10}, {3, 10}}, allUp, never, leaderMove{group: 0, from: 1, to: 2}, true},
		{"the move that helps most", []part{{1, 1000}, {1, 300}, {2, 600}, {3, 10}}, allUp, never, leaderMove{group: 1, from: 1, to: 3}, true},
		{"one hot partition cannot be split by moving it", []part{{1, 3000}, {2, 10}, {3, 10}}, allUp, never, leaderMove{}, false},
		{"down nodes take nothing", []part{{1, 1000}, {1, 1000}, {2, 10}, {3, 10}}, func(n uint64) bool { return n != 2 }, never, leaderMove{group: 0, from: 1, to: 3}, true},
		{"cooling partitions stay", []part{{1, 1000}, {1, 1000}, {2, 10}, {3, 10}}, allUp, func(g uint64) bool { return g == 0 }, leaderMove{group: 1, from: 1, to: 2}, true},
		{"a receiver leading as many gives a cold one first", []part{{1, 1000}, {1, 1000}, {2, 10}, {2, 10}, {3, 10}, {3, 10}}, allUp, never, leaderMove{group: 2, from: 2, to: 1}, true},
		{"lukewarm partitions are the count balancer's", []part{{1, 40}, {1, 40}, {1, 40}, {1, 40}, {1, 40}, {1, 40}}, allUp, never, leaderMove{}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			obs, load := round(c.parts)
			got, ok := planLoadLeaderMove(obs, load, c.up, c.cool)
			if ok != c.wantOK || ok && got != c.want {
				t.Fatalf("got %+v (%v), want %+v (%v)", got, ok, c.want, c.wantOK)
			}
		})
	}
	// Six hot partitions all led from node 1: rounds of moves end with
	// two on each node, and then nothing moves.
	parts := []part{{1, 900}, {1, 900}, {1, 900}, {1, 900}, {1, 900}, {1, 900}}
	moves := 0
	for range 20 {
		obs, load := round(parts)
		mv, ok := planLoadLeaderMove(obs, load, allUp, never)
		if !ok {
			break
		}
		parts[mv.group].leader = mv.to
		moves++
	}
	count := map[uint64]int{}
	for _, p := range parts {
		count[p.leader]++
	}
	if count[1] != 2 || count[2] != 2 || count[3] != 2 || moves != 4 {
		t.Fatalf("after %d moves the leaders are %v", moves, count)
	}
}

// The count balancer hands over a cold leadership before a hot one, so it
// does not undo what the driver placed by load.
func TestPlanLeaderMovePrefersCold(t *testing.T) {
	r := []uint64{1, 2, 3}
	parts := []partitionLead{
		{group: 0, replicas: r, leader: 1, hot: true},
		{group: 1, replicas: r, leader: 1, hot: true},
		{group: 2, replicas: r, leader: 1},
		{group: 3, replicas: r, leader: 2},
	}
	g, to, ok := planLeaderMove(1, []uint64{1, 2, 3}, parts)
	if !ok || g != 2 || to != 3 {
		t.Fatalf("got %d -> %d (%v), want the cold partition 2 to node 3", g, to, ok)
	}
	parts[2].hot = true
	if g, _, ok := planLeaderMove(1, []uint64{1, 2, 3}, parts); !ok || g != 0 {
		t.Fatalf("all hot: got partition %d (%v), want 0", g, ok)
	}
}
