package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/edge"
	"github.com/kintsu/kintsu/internal/ring"
)

// leaderAddr is the client address of the node leading key's partition,
// as node 0 sees it once every partition has a leader.
func (tc *testCluster) leaderAddr(t *testing.T, key string) (string, uint64) {
	t.Helper()
	g := uint64(ring.PartitionOf(ring.Slot([]byte(key)), tc.cfgs[0].Partitions))
	l := tc.nodes[0].router.LeaderOf(g)
	if l == 0 {
		t.Fatalf("partition %d has no leader", g)
	}
	return tc.cfgs[l-1].RESPAddr, l
}

// The topology commands describe exactly the cluster: every slot once,
// each partition's leader as master, its followers as replicas.
func TestClusterTopologyCommands(t *testing.T) {
	tc := startCluster(t, 3, func(c *Config) { c.LeaderBalanceInterval = -1 })
	tc.waitKnown()
	ctx := ctx5(t)
	c := redis.NewClient(&redis.Options{Addr: tc.respAddr(1), Protocol: 2})
	defer c.Close()

	if got := c.ClusterKeySlot(ctx, "foo").Val(); got != 12182 {
		t.Fatalf("CLUSTER KEYSLOT foo = %d, want 12182 as Redis", got)
	}
	myid := c.ClusterMyID(ctx).Val()
	if len(myid) != 40 || myid != edge.NodeName(tc.nodes[1].layout.Ident.ClusterID, 2) {
		t.Fatalf("CLUSTER MYID = %q", myid)
	}

	slots, err := c.ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(slots) != tc.cfgs[0].Partitions {
		t.Fatalf("CLUSTER SLOTS has %d ranges, want one per partition", len(slots))
	}
	next := 0
	for p, s := range slots {
		if s.Start != next || len(s.Nodes) != 3 {
			t.Fatalf("range %d: %+v (want start %d, 3 nodes)", p, s, next)
		}
		next = s.End + 1
		leader := tc.nodes[1].router.LeaderOf(uint64(p))
		if s.Nodes[0].Addr != tc.respAddr(int(leader)-1) || s.Nodes[0].ID != edge.NodeName(tc.nodes[1].layout.Ident.ClusterID, leader) {
			t.Fatalf("range %d master %+v, want node %d at %s", p, s.Nodes[0], leader, tc.respAddr(int(leader)-1))
		}
		var addrs []string
		for _, n := range s.Nodes {
			addrs = append(addrs, n.Addr)
		}
		slices.Sort(addrs)
		want := []string{tc.respAddr(0), tc.respAddr(1), tc.respAddr(2)}
		slices.Sort(want)
		if !slices.Equal(addrs, want) {
			t.Fatalf("range %d nodes %v, want %v", p, addrs, want)
		}
	}
	if next != ring.SlotCount {
		t.Fatalf("CLUSTER SLOTS covers slots up to %d", next)
	}

	shards, err := c.ClusterShards(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(shards) != tc.cfgs[0].Partitions || len(shards[0].Nodes) != 3 || shards[0].Nodes[0].Role != "master" || shards[0].Nodes[1].Role != "replica" || shards[0].Nodes[0].Health != "online" {
		t.Fatalf("CLUSTER SHARDS: %+v", shards)
	}

	nodes, err := c.ClusterNodes(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	covered := 0
	lines := strings.Split(strings.TrimSpace(nodes), "\n")
	if len(lines) != 3 {
		t.Fatalf("CLUSTER NODES has %d lines:\n%s", len(lines), nodes)
	}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 8 || len(f[0]) != 40 || f[3] != "-" || f[7] != "connected" {
			t.Fatalf("CLUSTER NODES line %q", l)
		}
		if strings.Contains(f[2], "myself") != (f[0] == myid) {
			t.Fatalf("myself flag on the wrong line: %q", l)
		}
		for _, r := range f[8:] {
			lo, hi, ok := strings.Cut(r, "-")
			if !ok {
				hi = lo
			}
			a, _ := strconv.Atoi(lo)
			b, _ := strconv.Atoi(hi)
			covered += b - a + 1
		}
	}
	if covered != ring.SlotCount {
		t.Fatalf("CLUSTER NODES assigns %d slots:\n%s", covered, nodes)
	}
	info := c.ClusterInfo(ctx).Val()
	if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
		t.Fatalf("CLUSTER INFO:\n%s", info)
	}
	for _, bad := range [][]any{{"cluster"}, {"cluster", "keyslot"}, {"cluster", "nosuch"}, {"cluster", "addslots", "1"}, {"readonly", "x"}} {
		if err := c.Do(ctx, bad...).Err(); err == nil || !strings.HasPrefix(err.Error(), "ERR ") {
			t.Fatalf("%v: %v, want an ERR", bad, err)
		}
	}
}

// A connection that speaks the cluster protocol is redirected to the
// leader; a plain one is forwarded; READONLY reads from a follower.
func TestClusterRedirects(t *testing.T) {
	tc := startCluster(t, 3, func(c *Config) { c.LeaderBalanceInterval = -1 })
	tc.waitKnown()
	ctx := ctx5(t)
	// One key led by each node, so some node is not its leader.
	key, leaderAddr, other := "", "", -1
	for i := 0; i < 100 && other < 0; i++ {
		k := fmt.Sprint("key-", i)
		addr, l := tc.leaderAddr(t, k)
		key, leaderAddr, other = k, addr, int(l)%3 // the next node, not the leader
	}
	plain := redis.NewClient(&redis.Options{Addr: tc.respAddr(other), PoolSize: 1, Protocol: 2})
	defer plain.Close()
	if err := plain.Set(ctx, key, "v", 0).Err(); err != nil {
		t.Fatalf("a plain client is forwarded: %v", err)
	}
	aware := redis.NewClient(&redis.Options{Addr: tc.respAddr(other), PoolSize: 1, Protocol: 2})
	defer aware.Close()
	if err := aware.ClusterSlots(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	slot := ring.Slot([]byte(key))
	want := fmt.Sprintf("MOVED %d %s", slot, leaderAddr)
	if err := aware.Get(ctx, key).Err(); err == nil || err.Error() != want {
		t.Fatalf("GET on a non-leader after CLUSTER SLOTS: %v, want %s", err, want)
	}
	// A command whose keys span partitions runs where it is sent.
	spread := ring.SpreadKeys("m", 2, tc.cfgs[0].Partitions)
	if err := aware.MSet(ctx, spread[0], "1", spread[1], "2").Err(); err != nil {
		t.Fatalf("cross-partition MSET: %v", err)
	}
	// READONLY: reads of partitions this node follows are served here,
	// writes still go to the leader.
	if err := aware.ReadOnly(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := aware.Get(ctx, key).Result()
		if err == nil && got == "v" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("READONLY GET on a follower: %q, %v", got, err)
		}
		time.Sleep(10 * time.Millisecond) // the follower applies the write a little later
	}
	if err := aware.Set(ctx, key, "w", 0).Err(); err == nil || err.Error() != want {
		t.Fatalf("SET on a READONLY follower: %v, want %s", err, want)
	}
	if err := aware.ReadWrite(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := aware.Get(ctx, key).Err(); err == nil || err.Error() != want {
		t.Fatalf("GET after READWRITE: %v, want %s", err, want)
	}
}

// go-redis's ClusterClient routes by the topology and keeps working while
// every leadership of a node moves away.
func TestGoRedisClusterClientFollowsLeaders(t *testing.T) {
	tc := startCluster(t, 3, func(c *Config) { c.LeaderBalanceInterval = -1 })
	tc.waitKnown()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{tc.respAddr(0)}, Protocol: 2})
	defer cc.Close()
	for i := 0; i < 100; i++ {
		if err := cc.Set(ctx, fmt.Sprint("k", i), i, 0).Err(); err != nil {
			t.Fatalf("SET k%d: %v", i, err)
		}
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		ops  int
		stop = make(chan struct{})
	)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ; i += 4 {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprint("k", i%100)
				err := cc.Incr(ctx, k).Err()
				mu.Lock()
				ops++
				if err != nil {
					errs = append(errs, fmt.Errorf("INCR %s: %w", k, err))
				}
				mu.Unlock()
			}
		}()
	}
	// Every node in turn hands all its leaderships away.
	for _, n := range tc.nodes {
		tctx, tcancel := context.WithTimeout(ctx, 10*time.Second)
		if err := n.eng.TransferLeadership(tctx); err != nil {
			t.Errorf("node %d: transfer leadership: %v", n.cfg.NodeID, err)
		}
		tcancel()
		tc.waitReady()
	}
	close(stop)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d of %d requests failed while leaders moved, first: %v", len(errs), ops, errors.Join(errs[:min(5, len(errs))]...))
	}
	if ops == 0 {
		t.Fatal("no requests ran")
	}
}
