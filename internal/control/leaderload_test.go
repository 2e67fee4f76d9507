package control

import (
	"log/slog"
	"testing"
	"time"

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
			load[uint64(g)] = loadSample{slow: p.rate}
		}
		// The metadata group's load never counts.
		obs = append(obs, Observed{Group: statemachine.MetaGroup, State: GroupState{Voters: voters, Leader: 1}})
		load[statemachine.MetaGroup] = loadSample{slow: 1e6}
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

// The rate leaderships move by follows a step in load over about loadTau,
// a one-round burst barely moves it, and a leadership move keeps it.
func TestSlowRate(t *testing.T) {
	t0 := time.Unix(1000, 0)
	obs := func(w uint64, leader uint64) []Observed {
		return []Observed{{Group: 0, State: GroupState{Writes: w, Leader: leader}}}
	}
	load := updateLoad(nil, obs(0, 1), t0, 0)
	load = updateLoad(load, obs(0, 1), t0.Add(time.Second), 0) // primed at 0/s
	w := uint64(0)
	for i := 2; i <= 11; i++ { // ten seconds at 1000/s
		w += 1000
		load = updateLoad(load, obs(w, 1), t0.Add(time.Duration(i)*time.Second), 0)
	}
	if s := load[0].slow; s < 600 || s > 660 {
		t.Fatalf("after loadTau at 1000/s the slow rate is %.0f, want about 632", s)
	}
	if s := load[0].rate; s < 999 {
		t.Fatalf("the split rate is %.0f, want it to have followed the step", s)
	}
	moved := updateLoad(load, obs(5, 2), t0.Add(12*time.Second), 0)
	if moved[0].slow != load[0].slow {
		t.Fatalf("a leadership move changed the slow rate: %.0f, was %.0f", moved[0].slow, load[0].slow)
	}
	// A round without the group (its leader answered late) keeps the
	// sample, for maxMissed rounds.
	kept := load
	for i := range maxMissed {
		kept = updateLoad(kept, nil, t0.Add(time.Duration(12+i)*time.Second), 0)
		if kept[0].slow != load[0].slow {
			t.Fatalf("round %d without the group: sample %+v", i+1, kept[0])
		}
	}
	if _, ok := updateLoad(kept, nil, t0.Add(time.Minute), 0)[0]; ok {
		t.Fatal("a group unseen for maxMissed rounds kept its sample")
	}
	idle := updateLoad(nil, obs(0, 1), t0, 0)
	idle = updateLoad(idle, obs(0, 1), t0.Add(time.Second), 0)
	idle = updateLoad(idle, obs(1000, 1), t0.Add(2*time.Second), 0)
	if s := idle[0].slow; s > 100 {
		t.Fatalf("one second's burst of 1000/s after idling made the slow rate %.0f, want under 100", s)
	}
}

// A leadership moves for load only once the same node has been the
// overloaded one for loadPersist without a break.
func TestOverloadPersists(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var w overloadWatch
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	for _, c := range []struct {
		sec     int
		busiest uint64
		over    bool
		want    bool
	}{
		{0, 1, true, false},
		{10, 1, true, false},
		{19, 2, true, false}, // another node: starts again
		{30, 2, true, false},
		{39, 2, true, true},
		{40, 2, false, false}, // a break
		{41, 2, true, false},
		{61, 2, true, true},
	} {
		if got := w.persisted(c.busiest, c.over, at(c.sec)); got != c.want {
			t.Fatalf("at %ds (node %d over %v): %v, want %v", c.sec, c.busiest, c.over, got, c.want)
		}
	}
}

// A move for load whose leadership never arrived (raft's transfer lapsed)
// is forgotten after loadMoveSettle: its partition does not cool down
// (the pacing still holds the next move); one that arrived is kept.
func TestLapsedLoadMoveIsForgotten(t *testing.T) {
	t0 := time.Unix(1000, 0)
	obs := func(leader uint64) []Observed {
		return []Observed{{Group: 3, State: GroupState{Voters: []uint64{1, 2, 3}, Leader: leader}}}
	}
	p := &Placement{cfg: PlacementConfig{Logger: slog.New(slog.DiscardHandler)}}
	start := func() {
		p.ledAt = map[uint64]time.Time{3: t0}
		p.lastLoadMove, p.loadMove = t0, &pendingMove{leaderMove: leaderMove{group: 3, from: 1, to: 2}, at: t0}
	}
	start()
	p.checkLoadMove(obs(1), t0.Add(time.Second))
	if p.loadMove == nil || p.ledAt[3] != t0 {
		t.Fatal("a move was forgotten before it had time to arrive")
	}
	p.checkLoadMove(obs(1), t0.Add(loadMoveSettle+time.Second))
	if p.loadMove != nil || p.lastLoadMove != t0 {
		t.Fatal("a lapsed move was not forgotten, or no longer paces the next one")
	}
	if _, cooling := p.ledAt[3]; cooling {
		t.Fatal("a lapsed move's partition still cools down")
	}
	start()
	p.checkLoadMove(obs(2), t0.Add(loadMoveSettle+time.Second))
	if p.loadMove != nil || p.ledAt[3] != t0 || p.lastLoadMove != t0 {
		t.Fatal("a move that arrived was not kept")
	}
}
