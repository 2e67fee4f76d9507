package server

import (
	"fmt"
	"testing"
	"time"
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

// Leadership gathered on one node spreads out again: every node ends up
// leading within one of P/N partitions.
func TestLeadershipRebalances(t *testing.T) {
	tc := startCluster(t, 3, func(c *Config) { c.LeaderBalanceInterval = -1 })
	// Gather every leadership on node 1.
	gather := func() int {
		led := 0
		for _, n := range tc.nodes {
			for g := uint64(0); g < 8; g++ {
				if n.eng.Leader(g) == n.cfg.NodeID && n.cfg.NodeID != 1 {
					n.eng.TransferGroupLeader(g, 1)
				}
			}
		}
		for g := uint64(0); g < 8; g++ {
			if tc.nodes[0].eng.Leader(g) == 1 {
				led++
			}
		}
		return led
	}
	deadline := time.Now().Add(30 * time.Second)
	for gather() != 8 {
		if time.Now().After(deadline) {
			t.Fatalf("could not gather leadership on node 1: %s", leaders(tc))
		}
		time.Sleep(50 * time.Millisecond) // polling a condition, with a deadline
	}
	for _, n := range tc.nodes {
		n.balanceEvery.Store(int64(100 * time.Millisecond))
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		count := map[uint64]int{}
		for g := uint64(0); g < 8; g++ {
			count[tc.nodes[0].router.LeaderOf(g)]++
		}
		if count[0] == 0 && count[1] >= 2 && count[1] <= 3 && count[2] >= 2 && count[2] <= 3 && count[3] >= 2 && count[3] <= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leadership not balanced after 30 s: %s", leaders(tc))
		}
		time.Sleep(50 * time.Millisecond) // polling a condition, with a deadline
	}
}

func leaders(tc *testCluster) string {
	s := ""
	for g := uint64(0); g < 8; g++ {
		s += fmt.Sprintf(" %d:%d", g, tc.nodes[0].router.LeaderOf(g))
	}
	return s
}
