package server

import (
	"testing"
	"time"
)

// TestClockProbeSeesASkew: a node whose clock is 3 s ahead is seen 3 s
// ahead by its peer's probe (within the round trip), a node in step near
// 0, and both reachable.
func TestClockProbeSeesASkew(t *testing.T) {
	tc := startCluster(t, 3, nil)
	if err := tc.nodes[1].clock.Skew(3*time.Second, 1); err != nil {
		t.Fatal(err)
	}
	tc.nodes[0].probeClocksOnce(ctx5(t))
	got := tc.nodes[0].clocks.snapshot()
	skewed, inStep := got[tc.nodes[1].cfg.NodeID], got[tc.nodes[2].cfg.NodeID]
	if !skewed.reachable || !inStep.reachable {
		t.Fatalf("probes: %+v", got)
	}
	if d := skewed.offset - 3*time.Second; d.Abs() > skewed.rtt+10*time.Millisecond {
		t.Fatalf("the skewed node's offset %v, want 3s ± %v", skewed.offset, skewed.rtt)
	}
	if inStep.offset.Abs() > inStep.rtt+10*time.Millisecond {
		t.Fatalf("the node in step is %v off (round trip %v)", inStep.offset, inStep.rtt)
	}
}

// TestAbandonedCutIsDroppedOnEveryNode: a backup cut the coordinator
// gives up on is dropped on the other nodes over the peer port (with TLS
// and whatever the caller's credentials), not left to pin old data until
// it expires; a peer naming no cut is refused.
func TestAbandonedCutIsDroppedOnEveryNode(t *testing.T) {
	tc := startCluster(t, 3, nil)
	cut, err := tc.nodes[0].admin.Cut(ctx5(t))
	if err != nil {
		t.Fatal(err)
	}
	held := func() int {
		n := 0
		for _, p := range cut.Partitions {
			for _, nd := range tc.nodes[1:] {
				if c, ok := nd.eng.OpenCut(uint64(p.ID), cut.ID); ok {
					c.Close()
					n++
				}
			}
		}
		return n
	}
	if held() == 0 {
		t.Fatal("the other nodes hold none of the cut: the test proves nothing")
	}
	tc.nodes[0].dropCutOnPeers(ctx5(t), cut.ID)
	if n := held(); n != 0 {
		t.Fatalf("the other nodes still hold %d snapshots of the abandoned cut", n)
	}
	if _, err := tc.nodes[1].serveDropCut(nil); err == nil {
		t.Fatal("an empty cut id was accepted")
	}
}
