package server

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/control"
)

// TestClusterLevelRisesOnceEveryNodeRuns: a cluster with no level
// recorded (created before levels) and one node answering the level
// call as a build from before levels does: the level stays 0 and splits
// are refused. Once that node "is upgraded", the metadata leader asks
// every member over the peer port, records this build's level, every
// node reports it, and splits work.
func TestClusterLevelRisesOnceEveryNodeRuns(t *testing.T) {
	tc := startCluster(t, 3, func(c *Config) {
		c.Partitions = 2
		c.noLevel = true
		c.preLevels = c.NodeID == 3
	})
	tc.waitKnown()
	n := tc.nodes[0]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := control.SplitPartition(ctx, n.write, n.cmap, 0, 0, true); !errors.Is(err, control.ErrLevel) {
		t.Fatalf("split with a node of an older build: %v, want the level's refusal", err)
	}
	for _, nd := range tc.nodes {
		if lvl := nd.view().Level; lvl != 0 {
			t.Fatalf("node %d sees level %d with a node of an older build", nd.cfg.NodeID, lvl)
		}
	}
	tc.nodes[2].preLevels.Store(false)
	waitFor(t, "every node to see the cluster at this build's level", 45*time.Second, func() bool {
		for _, nd := range tc.nodes {
			if nd.view().Level != api.Level {
				return false
			}
		}
		return true
	})
	if _, err := control.SplitPartition(ctx, n.write, n.cmap, 0, 0, true); err != nil {
		t.Fatalf("split at the level: %v", err)
	}
	if st := n.admin.Status(); st.Level != api.Level || st.ClusterLevel != api.Level {
		t.Fatalf("status: level %d, cluster level %d", st.Level, st.ClusterLevel)
	}
}
