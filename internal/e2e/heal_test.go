package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/ring"
)

// TestDeadNodeRebuilt: 4 nodes, R=3; one is killed for good. Within the
// dead timeout plus the copy, every partition has 3 replicas again, none
// on the dead node, and every key is intact.
func TestDeadNodeRebuilt(t *testing.T) {
	c := startCluster(t, 4, "--dead-timeout", "3s", "--heartbeat-interval", "200ms")
	nodes := c.Nodes()
	cl := client(nodes[0].RESPAddr)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := 0; i < 500; i++ {
		if err := cl.Set(ctx, fmt.Sprint("key-", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Kill(4); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	deadline := killed.Add(90 * time.Second)
	for {
		st := status(t, nodes[0].HTTPAddr)
		ok := true
		for _, p := range st.Partitions {
			if len(p.Replicas) != 3 || slices.Contains(p.Replicas, 4) || len(p.Learners) > 0 || p.Leader == 0 {
				ok = false
			}
		}
		dead := false
		for _, n := range st.Nodes {
			dead = dead || n.ID == 4 && n.State == "dead"
		}
		if ok && dead {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replication factor not restored 90s after node 4 died: %+v", st.Partitions)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("every partition had 3 live replicas again %v after kill -9 (dead timeout 3s)", time.Since(killed).Round(10*time.Millisecond))
	for i := 0; i < 500; i++ {
		if got, err := cl.Get(ctx, fmt.Sprint("key-", i)).Int(); err != nil || got != i {
			t.Fatalf("key-%d = %d, %v after re-replication", i, got, err)
		}
	}
}

// TestRollingRestart: every node in turn gets SIGTERM, comes back and is
// ready before the next, under a steady go-redis load: zero failed
// requests.
func TestRollingRestart(t *testing.T) {
	c := startCluster(t, 3)
	waitTopology(t, c)
	nodes := c.Nodes()
	cc := clusterClient(nodes)
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	load := startIncrLoad(ctx, cc, 4, "roll")
	// Each node is stopped only once the load has run a while on the
	// cluster as it is (a few hundred requests), so every restart meets
	// traffic, and so does the cluster after the last one.
	steady := func() {
		t.Helper()
		from := load.ops.Load()
		for load.ops.Load() < from+300 {
			if ctx.Err() != nil {
				t.Fatal("the load stalled")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for _, n := range nodes {
		steady()
		if err := c.Stop(n.ID, 30*time.Second); err != nil {
			t.Errorf("SIGTERM node %d: %v", n.ID, err)
		}
		t.Logf("%s node %d stopped", time.Now().Format("15:04:05.000"), n.ID)
		if err := c.Restart(n.ID); err != nil {
			t.Fatal(err)
		}
		waitReady(t, c)
		t.Logf("%s node %d ready", time.Now().Format("15:04:05.000"), n.ID)
	}
	steady()
	ops, loadErr := load.halt()
	if loadErr != nil {
		t.Fatalf("of %d requests during the rolling restart, %v", ops, loadErr)
	}
	t.Logf("rolling restart of %d nodes: %d requests, none failed", len(nodes), ops)
}

// TestJoinFifthNode: a 5th node joins 4 under a go-redis load. It takes
// the replicas the ring gives it — no more than 1.25·R·P/5 move — and its
// share of leaders, and no request fails.
func TestJoinFifthNode(t *testing.T) {
	c := startCluster(t, 4, "--heartbeat-interval", "200ms", "--leader-balance-interval", "500ms")
	waitTopology(t, c)
	nodes := c.Nodes()
	before := status(t, nodes[0].HTTPAddr)
	cc := clusterClient(nodes)
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	load := startIncrLoad(ctx, cc, 4, "join")

	n5, err := c.AddNode(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitNodeReady(ctx, n5.ID); err != nil {
		t.Fatal(err)
	}
	var ringNodes []ring.Node
	for id := uint64(1); id <= 5; id++ {
		ringNodes = append(ringNodes, ring.Node{ID: id})
	}
	want, err := ring.Place(ring.Config{Partitions: partitions, Replicas: 3}, ringNodes)
	if err != nil {
		t.Fatal(err)
	}
	joined := time.Now()
	var after api.StatusJSON
	for deadline := time.Now().Add(2 * time.Minute); ; {
		after = status(t, nodes[0].HTTPAddr)
		done := len(after.Partitions) == partitions
		for _, p := range after.Partitions {
			got, w := slices.Clone(p.Replicas), slices.Clone(want.Replicas[p.ID])
			slices.Sort(got)
			slices.Sort(w)
			done = done && slices.Equal(got, w) && len(p.Learners) == 0
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the placement did not settle with node 5: %+v", after.Partitions)
		}
		time.Sleep(100 * time.Millisecond)
	}
	moved := 0
	for i, p := range after.Partitions {
		for _, id := range p.Replicas {
			if !slices.Contains(before.Partitions[i].Replicas, id) {
				moved++
			}
		}
	}
	limit := 1.25 * 3 * partitions / 5
	t.Logf("node 5 joined; placement settled %v later; %d replicas moved (bound %.1f)", time.Since(joined).Round(10*time.Millisecond), moved, limit)
	if float64(moved) > limit {
		t.Fatalf("%d replicas moved, more than %.1f", moved, limit)
	}
	for deadline := time.Now().Add(time.Minute); ; {
		led := map[uint64]int{}
		for _, p := range status(t, nodes[0].HTTPAddr).Partitions {
			led[p.Leader]++
		}
		lo, hi := partitions/5, (partitions+4)/5
		ok := true
		for id := uint64(1); id <= 5; id++ {
			ok = ok && led[id] >= lo-1 && led[id] <= hi+1
		}
		if ok {
			t.Logf("leaders per node: %v", led)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leadership not balanced within ±1 of P/N: %v", led)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ops, loadErr := load.halt()
	if loadErr != nil {
		t.Fatalf("of %d requests while node 5 joined, %v", ops, loadErr)
	}
	t.Logf("%d requests while node 5 joined, none failed", ops)
}
