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
