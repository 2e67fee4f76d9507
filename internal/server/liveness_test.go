package server

import (
	"context"
	"testing"
	"time"

	"github.com/kintsu/kintsu/internal/api"
)

// A stopped node turns suspect, then dead, in every node's status; started
// again it is up.
func TestLivenessFollowsHeartbeats(t *testing.T) {
	tc := startCluster(t, 3, func(c *Config) {
		c.HeartbeatInterval = 100 * time.Millisecond
		c.DeadTimeout = 1500 * time.Millisecond
	})
	stateOf := func(from *Node, id uint64) api.NodeRecord {
		for _, r := range from.Status().Nodes {
			if r.ID == id {
				return r
			}
		}
		t.Fatalf("node %d not in node %d's status", id, from.cfg.NodeID)
		return api.NodeRecord{}
	}
	waitState := func(from *Node, id uint64, want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			r := stateOf(from, id)
			if r.State == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d as node %d sees it: %+v, want %s", id, from.cfg.NodeID, r, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, n := range tc.nodes {
		for id := uint64(1); id <= 3; id++ {
			waitState(n, id, api.NodeUp)
		}
	}
	if r := stateOf(tc.nodes[0], 2); r.LastHeartbeat == "" || r.RESPAddr != tc.cfgs[1].RESPAddr {
		t.Fatalf("an up node's record lacks its heartbeat or address: %+v", r)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tc.nodes[2].Stop(ctx); err != nil {
		t.Fatal(err)
	}
	tc.nodes[2] = nil
	waitState(tc.nodes[0], 3, api.NodeSuspect)
	waitState(tc.nodes[0], 3, api.NodeDead)
	waitState(tc.nodes[1], 3, api.NodeDead)

	cfg := tc.cfgs[2]
	cfg.Listeners = &Listeners{Peer: listenOn(t, cfg.PeerAddr), RESP: listenOn(t, cfg.RESPAddr), HTTP: listenOn(t, cfg.HTTPAddr)}
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tc.nodes[2] = n
	waitState(tc.nodes[0], 3, api.NodeUp)
}
