package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/launcher"
)

// TestScanWhileLeadersMove pages through the cluster's keys with a small
// COUNT, each page through another node, while leaders move and other
// keys come and go: every key present for the whole walk is returned. A cluster-aware client scanning each
// node, as Redis Cluster clients do, gets each key exactly once.
func TestScanWhileLeadersMove(t *testing.T) {
	c := startCluster(t, 3)
	waitTopology(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := client(c.Nodes()[1].RESPAddr)
	defer cl.Close()
	const n = 3000
	p := cl.Pipeline()
	for i := 0; i < n; i++ {
		p.Set(ctx, fmt.Sprint("stable:", i), i, 0)
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	churned := make(chan int)
	go func() { // keys that come and go during the walk
		i := 0
		defer func() { churned <- i }()
		for ; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			k := fmt.Sprint("churn:", i%200)
			if i%2 == 0 {
				cl.Set(ctx, k, i, 0)
			} else {
				cl.Del(ctx, k)
			}
		}
	}()
	// Each page through another node: the cursor is good on every node.
	var cls []*redis.Client
	for _, nd := range c.Nodes() {
		pc := client(nd.RESPAddr)
		defer pc.Close()
		cls = append(cls, pc)
	}
	seen := map[string]bool{}
	var cursor uint64
	pages := 0
	for {
		keys, next, err := cls[pages%len(cls)].Scan(ctx, cursor, "", 25).Result()
		if err != nil {
			t.Fatalf("SCAN page %d: %v", pages, err)
		}
		for _, k := range keys {
			seen[k] = true
		}
		pages++
		if pages == 20 || pages == 60 {
			moveLeaders(t, c)
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	close(stop)
	t.Logf("%d pages, %d churn writes", pages, <-churned)
	for i := 0; i < n; i++ {
		if !seen[fmt.Sprint("stable:", i)] {
			t.Fatalf("stable:%d, present throughout, was not returned", i)
		}
	}
	if pages < n/50 {
		t.Fatalf("%d pages for %d keys with COUNT 25: the walk did not page", pages, n)
	}

	// Each node's scan covers the partitions it leads when the walk
	// begins: exactly once in all while leadership holds still, so the
	// walks start once every node names the same leaders, and are tried
	// again if leadership moved meanwhile.
	// (ReadOnly: go-redis then says READONLY on every node's connection,
	// which marks it cluster-aware; its own CLUSTER SLOTS marks one.)
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{c.Nodes()[0].RESPAddr}, ReadOnly: true})
	defer cc.Close()
	for attempt := 1; ; attempt++ {
		before := agreedSlots(t, ctx, c)
		count := perNodeScan(t, ctx, cc)
		var bad string
		for i := 0; i < n && bad == ""; i++ {
			if k := fmt.Sprint("stable:", i); count[k] != 1 {
				bad = fmt.Sprintf("scanning each node returned %s %d times", k, count[k])
			}
		}
		if bad == "" {
			return
		}
		if after := agreedSlots(t, ctx, c); after == before || attempt == 5 {
			t.Fatalf("%s (leaders %s)", bad, map[bool]string{true: "held still", false: "moved"}[after == before])
		}
	}
}

// agreedSlots waits until every node answers CLUSTER SLOTS alike and
// returns the answer.
func agreedSlots(t *testing.T, ctx context.Context, c *launcher.Cluster) string {
	t.Helper()
	var last string
	waitFor(t, "every node naming the same leaders", time.Minute, func() bool {
		var first string
		for i, nd := range c.Nodes() {
			cl := client(nd.RESPAddr)
			slots, err := cl.ClusterSlots(ctx).Result()
			cl.Close()
			if err != nil {
				return false
			}
			s := fmt.Sprint(slots)
			if i == 0 {
				first = s
			} else if s != first {
				return false
			}
		}
		last = first
		return true
	})
	return last
}

func perNodeScan(t *testing.T, ctx context.Context, cc *redis.ClusterClient) map[string]int {
	t.Helper()
	var mu sync.Mutex
	count := map[string]int{}
	err := cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		it := node.Scan(ctx, 0, "stable:*", 100).Iterator()
		for it.Next(ctx) {
			mu.Lock()
			count[it.Val()]++
			mu.Unlock()
		}
		return it.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return count
}
