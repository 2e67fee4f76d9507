package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestRollingRestartIsInvisible: every node in turn is stopped
// gracefully (SIGTERM) and started again while a go-redis ClusterClient
// keeps writing, each down for two seconds. A stopping node tells its
// peers, so none hands it a leadership back, keeps serving until its
// leaderships have moved, then redirects every request for a moment, so
// the client follows them and no request fails; a node back from its
// restart gets its share of leaderships again within seconds. (Before,
// 120-250 of some 15,000 requests failed with refused connections.)
func TestRollingRestartIsInvisible(t *testing.T) {
	c := startCluster(t, 3)
	waitTopology(t, c)
	nodes := c.Nodes()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var seeds []string
	for _, n := range nodes {
		seeds = append(seeds, n.RESPAddr)
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: seeds, ReadTimeout: 6 * time.Second})
	defer cc.Close()
	load := startIncrLoad(ctx, cc, 8, "roll")
	share := partitions / len(nodes) // each node's share, rounded down
	for _, n := range nodes {
		t.Logf("%s stopping node %d", time.Now().Format("15:04:05.000"), n.ID)
		if err := c.Stop(n.ID, 20*time.Second); err != nil {
			t.Fatalf("stopping node %d: %v", n.ID, err)
		}
		// Down for a while, as a restart that replaces the binary is:
		// the clients must have left it by then.
		downFor := time.NewTimer(2 * time.Second)
		select {
		case <-downFor.C:
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
		t.Logf("%s node %d stopped; starting it again", time.Now().Format("15:04:05.000"), n.ID)
		if err := c.Restart(n.ID); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitNodeReady(ctx, n.ID); err != nil {
			t.Fatal(err)
		}
		back := time.Now()
		other := nodes[0].HTTPAddr
		if n.ID == nodes[0].ID {
			other = nodes[1].HTTPAddr
		}
		waitFor(t, "the restarted node to lead its share again", 60*time.Second, func() bool {
			led := 0
			for _, p := range status(t, other).Partitions {
				if p.Leader == n.ID {
					led++
				}
			}
			return led >= share
		})
		t.Logf("node %d: leads its share (%d) %.1fs after it was ready", n.ID, share, time.Since(back).Seconds())
	}
	ops, err := load.halt()
	if err != nil {
		t.Fatalf("of %d ClusterClient requests during the rolling restart, %v", ops, err)
	}
	if ops == 0 {
		t.Fatal("the load never ran")
	}
	t.Logf("rolling restart of %d nodes: %d ClusterClient requests, none failed", len(nodes), ops)
}
