package server

import (
	"context"
	"flag"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/ring"
)

// TestSplitByLoad: with --split-load, a partition whose writes stay over
// the limit splits at the median slot of its writes, and the new half is
// led from another node than the old one, while the writers see no
// failed request.
func TestSplitByLoad(t *testing.T) {
	if raceDetector {
		t.Skip("a write load over a partition's split load: run without -race (.ci/run does)")
	}
	tc := startCluster(t, 3, func(c *Config) {
		c.Partitions = 2
		c.SplitLoad = 150
		c.HeartbeatInterval = 200 * time.Millisecond
	})
	tc.waitKnown()
	// The hot keys: slots 1000 to 1999, in partition 0 (slots 0-8191).
	var hot []string
	for i := 0; len(hot) < 400; i++ {
		k := fmt.Sprint("hot:", i)
		if s := ring.Slot([]byte(k)); s >= 1000 && s < 2000 {
			hot = append(hot, k)
		}
	}
	w := startWriters(tc, hot, 4)
	defer w.stop()
	n := tc.nodes[0]
	waitFor(t, "partition 0 to split by load", 60*time.Second, func() bool { return len(n.view().Parts) > 2 })
	m := n.view()
	p0, _ := m.Part(0)
	if p0.SlotEnd < 1000 || p0.SlotEnd >= 1999 {
		t.Fatalf("partition 0 after the split by load: slots %d-%d, want a cut inside the hot slots 1000-1999", p0.SlotStart, p0.SlotEnd)
	}
	right := m.Slots().GroupOf(p0.SlotEnd + 1)
	waitFor(t, "the two halves to be led from two nodes", 20*time.Second, func() bool {
		l, r := n.router.LeaderOf(0), n.router.LeaderOf(uint64(right))
		return l != 0 && r != 0 && l != r
	})
	start := w.ops.Load()
	waitFor(t, "writes to go on after the split", 20*time.Second, func() bool { return w.ops.Load() > start+200 })
	w.check(t)
	t.Logf("partition 0 split at slot %d by load; %d writes, none failed; leaders on nodes %d and %d", p0.SlotEnd+1, w.ops.Load(), n.router.LeaderOf(0), n.router.LeaderOf(uint64(right)))
}

var leaderLoadTest = flag.Bool("leader-load", false, "run TestLeadersFollowLoad (--leader-load is experimental)")

// TestLeadersFollowLoad: with the count balancer off and every leadership
// gathered on node 1, writes to three partitions make the placement
// driver move their leaderships for load until the three are led from
// three nodes; the writers see no failed request.
func TestLeadersFollowLoad(t *testing.T) {
	if raceDetector {
		t.Skip("a write load over the leaders' load floor: run without -race")
	}
	if !*leaderLoadTest {
		t.Skip("moves for load are experimental (--leader-load) and not yet steady: run with -leader-load")
	}
	tc := startCluster(t, 3, func(c *Config) {
		c.Partitions = 8
		c.LeaderLoad = true
		c.LeaderBalanceInterval = -1
		c.HeartbeatInterval = 200 * time.Millisecond
	})
	tc.waitKnown()
	gatherLeaders(t, tc, 1, 8)
	// Keys of partitions 0, 1 and 2 (2,048 slots each).
	var hot []string
	per := map[uint16]int{}
	for i := 0; len(hot) < 600; i++ {
		k := fmt.Sprint("lead:", i)
		if p := ring.Slot([]byte(k)) / 2048; p < 3 && per[p] < 200 {
			per[p]++
			hot = append(hot, k)
		}
	}
	w := startWriters(tc, hot, 6)
	defer w.stop()
	n := tc.nodes[0]
	waitFor(t, "the three written partitions to be led from three nodes", 120*time.Second, func() bool {
		seen := map[uint64]bool{}
		for g := uint64(0); g < 3; g++ {
			seen[n.router.LeaderOf(g)] = true
		}
		return len(seen) == 3 && !seen[0]
	})
	w.check(t)
	t.Logf("%d writes, none failed; partitions 0, 1, 2 led from nodes %d, %d, %d", w.ops.Load(), n.router.LeaderOf(0), n.router.LeaderOf(1), n.router.LeaderOf(2))
}

// writers are go-redis ClusterClient workers setting keys in turn until
// stopped, counting what they sent and what failed.
type writers struct {
	cluster     *redis.ClusterClient
	done        chan struct{}
	wg          sync.WaitGroup
	ops, failed atomic.Int64
	first       atomic.Value
}

func startWriters(tc *testCluster, keys []string, workers int) *writers {
	var addrs []string
	for i := range tc.nodes {
		addrs = append(addrs, tc.respAddr(i))
	}
	w := &writers{cluster: redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs}), done: make(chan struct{})}
	for n := range workers {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for i := n; ; i += workers {
				select {
				case <-w.done:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := w.cluster.Set(ctx, keys[i%len(keys)], i, 0).Err()
				cancel()
				w.ops.Add(1)
				if err != nil {
					w.failed.Add(1)
					w.first.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	return w
}

func (w *writers) stop() {
	close(w.done)
	w.wg.Wait()
	_ = w.cluster.Close()
}

// check fails the test if a write failed.
func (w *writers) check(t *testing.T) {
	t.Helper()
	if f := w.failed.Load(); f > 0 {
		t.Fatalf("%d of %d writes failed, first: %v", f, w.ops.Load(), w.first.Load())
	}
}

// gatherLeaders moves the leaderships of partitions 0 to parts-1 to node
// to, and waits until it leads them all.
func gatherLeaders(t *testing.T, tc *testCluster, to uint64, parts uint64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("every leadership on node %d", to), 30*time.Second, func() bool {
		led := uint64(0)
		for _, n := range tc.nodes {
			for g := range parts {
				if n.eng.Leader(g) == n.cfg.NodeID && n.cfg.NodeID != to {
					n.eng.TransferGroupLeader(g, to)
				}
				if n.cfg.NodeID == to && n.eng.Leader(g) == to {
					led++
				}
			}
		}
		return led == parts
	})
}
