package control

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/raftstore"
)

func TestPlanLeaderMove(t *testing.T) {
	r := []uint64{1, 2, 3}
	lead := func(leaders ...uint64) []partitionLead {
		var out []partitionLead
		for i, l := range leaders {
			out = append(out, partitionLead{group: uint64(i), replicas: r, leader: l})
		}
		return out
	}
	nodes := []uint64{1, 2, 3}
	for _, c := range []struct {
		name    string
		me      uint64
		parts   []partitionLead
		g, to   uint64
		ok      bool
		because string
	}{
		{"balanced", 1, lead(1, 2, 3, 1, 2, 3), 0, 0, false, "2/2/2"},
		{"within one", 1, lead(1, 1, 2, 2, 3), 0, 0, false, "2/2/1"},
		{"two apart", 1, lead(1, 1, 2, 2, 3, 1, 1, 2, 3), 0, 3, true, "4/3/2: node 3 leads two fewer"},
		{"all on one", 1, lead(1, 1, 1, 1), 0, 2, true, "the lowest partition to the lowest loaded node"},
		{"not mine to give", 2, lead(1, 1, 1, 1), 0, 0, false, "node 2 leads nothing"},
		{"unknown leader waits", 1, lead(1, 1, 1, 0), 0, 0, false, "settling"},
		{"least loaded receiver", 1, lead(1, 1, 1, 2, 2), 0, 3, true, "node 3 leads none"},
		{"dead node counts as zero", 1, lead(1, 1, 2, 2), 0, 3, true, "3 leads nothing; the engine refuses if it is down"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g, to, ok := planLeaderMove(c.me, nodes, c.parts)
			if ok != c.ok || ok && (g != c.g || to != c.to) {
				t.Fatalf("got %d -> %d (%v), want %d -> %d (%v): %s", g, to, ok, c.g, c.to, c.ok, c.because)
			}
		})
	}
	// Applying the plan from every node in turn converges to max-min <= 1.
	parts := lead(1, 1, 1, 1, 1, 1, 1, 1)
	for round := 0; round < 20; round++ {
		for _, me := range nodes {
			if g, to, ok := planLeaderMove(me, nodes, parts); ok {
				parts[g].leader = to
			}
		}
	}
	count := map[uint64]int{}
	for _, p := range parts {
		count[p.leader]++
	}
	if count[1] < 2 || count[1] > 3 || count[2] < 2 || count[2] > 3 || count[3] < 2 || count[3] > 3 {
		t.Fatalf("after balancing: %v", count)
	}
}

type balanceEngine struct {
	voters map[uint64][]uint64
	moves  []string
}

func (e *balanceEngine) GroupStatus(group uint64) (raftstore.GroupStatus, bool) {
	v, ok := e.voters[group]
	return raftstore.GroupStatus{Group: group, Nodes: v}, ok
}

func (e *balanceEngine) TransferGroupLeader(group, to uint64) {
	e.moves = append(e.moves, fmt.Sprintf("%d to %d", group, to))
}

// A round hands over one leadership, and where this node hosts a
// replica it counts the voters its replica knows, not the map's replicas:
// a learner cannot lead.
func TestBalanceRound(t *testing.T) {
	eng := &balanceEngine{voters: map[uint64][]uint64{0: {1, 3}}}
	b := NewBalancer(BalanceConfig{
		NodeID: 1, Every: time.Hour, Engine: eng,
		LeaderOf: func(uint64) uint64 { return 1 },
		Map:      NewMap(MapConfig{Saved: func() ([]byte, bool) { return nil, false }}, InitialMap(nil, testParts(4, 1, 2, 3), nil)),
		Nodes: func() []api.NodeRecord {
			return []api.NodeRecord{{ID: 1, State: api.NodeUp}, {ID: 2, State: api.NodeUp}, {ID: 3, State: api.NodeUp}}
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	b.balanceOnce()
	if !slices.Equal(eng.moves, []string{"0 to 3"}) {
		t.Fatalf("moves %q, want partition 0 to node 3 (its only other voter)", eng.moves)
	}
}

// A node that said it is stopping, or that is not up, is never handed a
// leadership, though it leads the fewest; once back, it is again.
func TestBalanceSkipsNodesAwayOrDown(t *testing.T) {
	eng := &balanceEngine{voters: map[uint64][]uint64{}}
	state := map[uint64]string{1: api.NodeUp, 2: api.NodeUp, 3: api.NodeSuspect}
	b := NewBalancer(BalanceConfig{
		NodeID: 1, Every: time.Hour, Engine: eng,
		LeaderOf: func(uint64) uint64 { return 1 },
		Map:      NewMap(MapConfig{Saved: func() ([]byte, bool) { return nil, false }}, InitialMap(nil, testParts(4, 1, 2, 3), nil)),
		Nodes: func() []api.NodeRecord {
			return []api.NodeRecord{{ID: 1, State: state[1]}, {ID: 2, State: state[2]}, {ID: 3, State: state[3]}}
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	b.SetAway(2, true)
	if b.balanceOnce() || len(eng.moves) != 0 {
		t.Fatalf("moved %q to a node away or suspect", eng.moves)
	}
	b.SetAway(2, false)
	if !b.balanceOnce() || len(eng.moves) != 1 || !strings.HasSuffix(eng.moves[0], "to 2") {
		t.Fatalf("moves %q, want one to node 2 once it is back", eng.moves)
	}
}
