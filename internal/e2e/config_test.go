package e2e

import (
	"context"
	"testing"
	"time"
)

// TestConfigSetIsTheClusters: CONFIG SET through one node applies to it
// at once and reaches the other nodes (their next poll), durably.
func TestConfigSetIsTheClusters(t *testing.T) {
	c := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nodes := c.Nodes()
	a := client(nodes[0].RESPAddr)
	defer a.Close()
	if err := a.ConfigSet(ctx, "timeout", "321").Err(); err != nil {
		t.Fatal(err)
	}
	if got := a.ConfigGet(ctx, "timeout").Val()["timeout"]; got != "321" {
		t.Fatalf("the node that took CONFIG SET reports timeout %q", got)
	}
	for _, n := range nodes[1:] {
		b := client(n.RESPAddr)
		waitFor(t, "the setting to reach "+n.RESPAddr, 20*time.Second, func() bool {
			return b.ConfigGet(ctx, "timeout").Val()["timeout"] == "321"
		})
		b.Close()
	}
	if err := a.ConfigSet(ctx, "timeout", "x").Err(); err == nil {
		t.Fatal("CONFIG SET timeout x was accepted")
	}
	if got := a.ConfigGet(ctx, "timeout").Val()["timeout"]; got != "321" {
		t.Fatalf("a refused CONFIG SET changed timeout to %q", got)
	}
}
