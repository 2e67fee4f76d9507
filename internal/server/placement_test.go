package server

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/api"
)

// membership returns every group's voters as node 'from' learns them from
// the leaders, or false while some group has no answering leader.
func (tc *testCluster) membership(from *Node) (map[uint64][]uint64, bool) {
	out := map[uint64][]uint64{}
	groups := []uint64{MetaGroup}
	for g := 0; g < from.cfg.Partitions; g++ {
		groups = append(groups, uint64(g))
	}
	for _, g := range groups {
		gs, ok := from.place.GroupInfo(from.ctx, g)
		if !ok || len(gs.Learners) > 0 {
			return nil, false
		}
		v := slices.Clone(gs.Voters)
		slices.Sort(v)
		out[g] = v
	}
	return out, true
}

// waitMembership polls until cond holds for the membership seen from node.
func (tc *testCluster) waitMembership(from *Node, what string, timeout time.Duration, cond func(map[uint64][]uint64) bool) map[uint64][]uint64 {
	tc.t.Helper()
	deadline := time.Now().Add(timeout)
	var last map[uint64][]uint64
	for {
		if m, ok := tc.membership(from); ok {
			last = m
			if cond(m) {
				return m
			}
		}
		if time.Now().After(deadline) {
			tc.t.Fatalf("timed out waiting for %s; membership: %v", what, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// setKeys writes k0..k(n-1) = their index.
func setKeys(ctx context.Context, t *testing.T, c *redis.Client, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if err := c.Set(ctx, fmt.Sprint("k", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// checkKeys reads back what setKeys wrote.
func checkKeys(ctx context.Context, t *testing.T, c *redis.Client, n int, when string) {
	t.Helper()
	for i := 0; i < n; i++ {
		if got, err := c.Get(ctx, fmt.Sprint("k", i)).Int(); err != nil || got != i {
			t.Fatalf("k%d = %d, %v %s", i, got, err, when)
		}
	}
}

func placementTune(c *Config) {
	c.HeartbeatInterval = 100 * time.Millisecond
	c.DeadTimeout = 2 * time.Second
	c.Partitions = 16
}

// 4 nodes, R=3: one dies for good. After the dead timeout every group has
// 3 voters again, none on the dead node, and all data is intact. When the
// node comes back it drops what it held and takes its share again.
func TestDeadNodeIsReplaced(t *testing.T) {
	tc := startCluster(t, 4, placementTune)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // spans re-replication
	defer cancel()
	c := redis.NewClient(&redis.Options{Addr: tc.respAddr(0), Protocol: 2})
	defer c.Close()
	setKeys(ctx, t, c, 200)
	stopped := time.Now()
	cfg4 := tc.cfgs[3]
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = tc.nodes[3].eng.TransferLeadership(sctx) // as a crash would, minus the election wait
	cancel()
	tc.nodes[3].closeAll()
	tc.nodes[3] = nil

	threeWithout4 := func(m map[uint64][]uint64) bool {
		for _, v := range m {
			if len(v) != 3 || slices.Contains(v, 4) {
				return false
			}
		}
		return true
	}
	tc.waitMembership(tc.nodes[0], "every group to have 3 voters, none on node 4", 60*time.Second, threeWithout4)
	t.Logf("replication factor restored %v after node 4 stopped (dead timeout %v)", time.Since(stopped).Round(time.Millisecond), tc.cfgs[0].DeadTimeout)
	checkKeys(ctx, t, c, 200, "after re-replication")

	// Node 4 returns with its old data: it is told its replicas were
	// removed, destroys them, and receives its share again.
	cfg4.Listeners = &Listeners{Peer: listenOn(t, cfg4.PeerAddr), RESP: listenOn(t, cfg4.RESPAddr), HTTP: listenOn(t, cfg4.HTTPAddr)}
	n4, err := Start(cfg4)
	if err != nil {
		t.Fatal(err)
	}
	tc.nodes[3] = n4
	tc.waitMembership(tc.nodes[0], "node 4 to hold replicas again", 60*time.Second, func(m map[uint64][]uint64) bool {
		held := 0
		for g, v := range m {
			if g != MetaGroup && len(v) != 3 {
				return false
			}
			if slices.Contains(v, 4) {
				held++
			}
		}
		return held > 0
	})
	// Whatever node 4 hosts now, it is a member of.
	waitFor(t, "node 4 to host only groups it is a member of", 30*time.Second, func() bool {
		for _, st := range n4.eng.Status() {
			if !slices.Contains(append(st.Nodes, st.Learners...), 4) {
				return false
			}
			gs, ok := tc.nodes[0].place.GroupInfo(tc.nodes[0].ctx, st.Group)
			if !ok || !slices.Contains(append(gs.Voters, gs.Learners...), 4) {
				return false
			}
		}
		return true
	})
}

// A 5th node joins under load: it receives about R·P/5 replicas and some
// leaderships, and no request fails.
func TestJoinUnderLoad(t *testing.T) {
	tc := startCluster(t, 4, placementTune)
	before, _ := tc.membership(tc.nodes[0])
	c := redis.NewClient(&redis.Options{Addr: tc.respAddr(1), Protocol: 2})
	defer c.Close()
	var (
		stop   = make(chan struct{})
		wg     sync.WaitGroup
		ops    atomic.Int64
		mu     sync.Mutex
		failed []error
	)
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := c.Incr(ctx, fmt.Sprint("w", w, "-", i%64)).Err()
				cancel()
				ops.Add(1)
				if err != nil {
					mu.Lock()
					failed = append(failed, err)
					mu.Unlock()
				}
			}
		}()
	}

	n5 := tc.joinNode(5, 0)
	after := tc.waitMembership(tc.nodes[0], "the placement to settle with node 5", 90*time.Second, func(m map[uint64][]uint64) bool {
		held := 0
		for _, v := range m {
			if slices.Contains(v, 5) {
				held++
			}
		}
		want, _, _, _ := tc.nodes[0].place.Targets(tc.nodes[0].registry.Nodes(), tc.nodes[0].cmap.Current().Parts, tc.nodes[0].cmap.Current().Level)
		for g, v := range m {
			if g == MetaGroup {
				continue
			}
			w := slices.Clone(want[g])
			slices.Sort(w)
			if !slices.Equal(v, w) {
				return false
			}
		}
		return held > 0
	})
	moved := 0
	for g, v := range after {
		for _, id := range v {
			if !slices.Contains(before[g], id) {
				moved++
			}
		}
	}
	P, R := tc.cfgs[0].Partitions, tc.cfgs[0].Replicas
	limit := 1.25*float64(R*P)/5 + 1 // +1: the metadata group gains its 5th replica
	t.Logf("replicas moved onto node 5: %d (limit %.1f)", moved, limit)
	if float64(moved) > limit {
		t.Fatalf("%d replicas moved, more than %.1f", moved, limit)
	}
	waitFor(t, "node 5 to lead some partitions", 30*time.Second, func() bool {
		led := 0
		for _, st := range n5.eng.Status() {
			if st.LeaderNode == 5 && st.Group != MetaGroup {
				led++
			}
		}
		return led >= P/5-1
	})
	close(stop)
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d of %d requests failed while node 5 joined; first: %v", len(failed), ops.Load(), failed[0])
	}
	t.Logf("%d requests, none failed", ops.Load())
}

func post(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Post(url, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Decommissioning moves a node's replicas away first and removes it once
// it holds none; removing a live node needs force.
func TestDecommissionDrainsThenRemoves(t *testing.T) {
	tc := startCluster(t, 4, placementTune)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // spans re-replication
	defer cancel()
	c := redis.NewClient(&redis.Options{Addr: tc.respAddr(0), Protocol: 2})
	defer c.Close()
	setKeys(ctx, t, c, 100)
	admin := "http://" + tc.cfgs[0].HTTPAddr
	if code := post(t, admin+"/v1/nodes/3/remove"); code != http.StatusConflict {
		t.Fatalf("removing a live node without force: %d, want 409", code)
	}
	if code := post(t, admin+"/v1/nodes/2/decommission"); code != http.StatusOK {
		t.Fatalf("decommission: %d", code)
	}
	tc.waitMembership(tc.nodes[0], "node 2 to hold nothing", 60*time.Second, func(m map[uint64][]uint64) bool {
		for g, v := range m {
			if slices.Contains(v, 2) || g != MetaGroup && len(v) != 3 {
				return false
			}
		}
		return true
	})
	waitFor(t, "node 2 to be removed and to host nothing", 30*time.Second, func() bool {
		rec, _ := tc.nodes[0].nodeRecord(2)
		return rec.State == api.NodeRemoved && len(tc.nodes[1].eng.Status()) == 0
	})
	if code := post(t, admin+"/v1/nodes/2/decommission"); code != http.StatusConflict {
		t.Fatalf("decommissioning a removed node: %d, want 409", code)
	}
	checkKeys(ctx, t, c, 100, "after the decommission")
}

// joinNode starts a node that joins through node via.
func (tc *testCluster) joinNode(id uint64, via int) *Node {
	tc.t.Helper()
	ls := &Listeners{Peer: listen(tc.t), RESP: listen(tc.t), HTTP: listen(tc.t)}
	cfg := tc.cfgs[via]
	cfg.NodeID, cfg.DataDir, cfg.InitialCluster, cfg.Join = id, tc.t.TempDir(), nil, tc.cfgs[via].PeerAddr
	cfg.RESPAddr, cfg.PeerAddr, cfg.HTTPAddr, cfg.Listeners = ls.RESP.Addr().String(), ls.Peer.Addr().String(), ls.HTTP.Addr().String(), ls
	n, err := Start(cfg)
	if err != nil {
		tc.t.Fatal(err)
	}
	tc.nodes, tc.cfgs = append(tc.nodes, n), append(tc.cfgs, cfg)
	return n
}

// Every initial node is replaced in turn (join, then decommission); a node
// that joins afterwards, through a node none of whose initial peers is
// left, still finds the metadata and takes its share — as does a restart.
func TestMembershipOutlivesTheInitialNodes(t *testing.T) {
	tc := startCluster(t, 3, placementTune)
	admin := func(i int) string { return "http://" + tc.cfgs[i].HTTPAddr }
	holds := func(id uint64) func(map[uint64][]uint64) bool {
		return func(m map[uint64][]uint64) bool {
			for g, v := range m {
				if g != MetaGroup && len(v) != 3 {
					return false
				}
				if slices.Contains(v, id) {
					return true
				}
			}
			return false
		}
	}
	for old := uint64(1); old <= 3; old++ {
		newID := old + 3
		tc.joinNode(newID, len(tc.nodes)-1)
		last := tc.nodes[len(tc.nodes)-1]
		tc.waitMembership(last, fmt.Sprintf("node %d to hold replicas", newID), 60*time.Second, holds(newID))
		if code := post(t, admin(len(tc.nodes)-1)+fmt.Sprintf("/v1/nodes/%d/decommission", old)); code != http.StatusOK {
			t.Fatalf("decommission %d: %d", old, code)
		}
		waitFor(t, fmt.Sprintf("node %d to be removed", old), 60*time.Second, func() bool {
			rec, _ := last.nodeRecord(old)
			return rec.State == api.NodeRemoved
		})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = tc.nodes[old-1].Stop(ctx)
		cancel()
		tc.nodes[old-1] = nil
	}
	n7 := tc.joinNode(7, 5)
	tc.waitMembership(n7, "node 7 to hold replicas", 60*time.Second, holds(7))

	// Node 7 restarts: its saved map, not the long-gone initial nodes,
	// leads it back to the metadata.
	cfg := tc.cfgs[6]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if err := n7.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	cfg.Listeners = &Listeners{Peer: listenOn(t, cfg.PeerAddr), RESP: listenOn(t, cfg.RESPAddr), HTTP: listenOn(t, cfg.HTTPAddr)}
	n7, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tc.nodes[6] = n7
	waitFor(t, "node 7 to be ready after its restart", 30*time.Second, n7.Ready)
}
