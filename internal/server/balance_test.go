package server

import (
	"fmt"
	"testing"
	"time"
)

// Leadership gathered on one node spreads out again: every node ends up
// leading within one of P/N partitions.
func TestLeadershipRebalances(t *testing.T) {
	tc := startCluster(t, 3, func(c *Config) { c.LeaderBalanceInterval = -1 })
	gatherLeaders(t, tc, 1, 8)
	for _, n := range tc.nodes {
		n.balancer.SetEvery(100 * time.Millisecond)
	}
	deadline := time.Now().Add(30 * time.Second)
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
