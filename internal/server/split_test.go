package server

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/control"
	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/ring"
	"github.com/kintsu/kintsu/internal/statemachine"
)

// TestSplitUnderLoad splits a partition, then the partition it made, on
// a running cluster while plain and cluster-aware go-redis clients read
// and write, then merges the three back into one: no request fails,
// every key stays readable where the new map sends it, and every node's
// map and CLUSTER SLOTS show the new partitions.
func TestSplitUnderLoad(t *testing.T) {
	if raceDetector {
		t.Skip("a cluster under client load through two splits: run without -race (.ci/run does)")
	}
	tc := startCluster(t, 3, nil)
	tc.waitKnown()
	ctx := ctx5(t)
	plain := redis.NewClient(&redis.Options{Addr: tc.respAddr(0)})
	defer plain.Close()
	var addrs []string
	for i := range tc.nodes {
		addrs = append(addrs, tc.respAddr(i))
	}
	cluster := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer cluster.Close()

	const preloaded = 600
	pipe := plain.Pipeline()
	for i := range preloaded {
		pipe.Set(ctx, fmt.Sprint("pre:", i), i, 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}

	var (
		stop   = make(chan struct{})
		wg     sync.WaitGroup
		ops    atomic.Int64
		mu     sync.Mutex
		failed []error
		counts sync.Map // key -> increments acknowledged
	)
	load := func(c redis.Cmdable, w int) {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(uint64(w), 7))
		for {
			select {
			case <-stop:
				return
			default:
			}
			k := fmt.Sprint("load:", w, ":", rng.IntN(200))
			rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			var err error
			if rng.IntN(2) == 0 {
				err = c.Incr(rctx, k).Err()
				if err == nil {
					n, _ := counts.LoadOrStore(k, new(atomic.Int64))
					n.(*atomic.Int64).Add(1)
				}
			} else {
				err = c.Get(rctx, fmt.Sprint("pre:", rng.IntN(preloaded))).Err()
			}
			cancel()
			ops.Add(1)
			if err != nil {
				mu.Lock()
				failed = append(failed, err)
				mu.Unlock()
			}
		}
	}
	wg.Add(4)
	go load(plain, 0)
	go load(plain, 1)
	go load(cluster, 2)
	go load(cluster, 3)

	waitOps := func(n int64) {
		start := ops.Load()
		waitFor(t, "load to run", 20*time.Second, func() bool { return ops.Load() >= start+n })
	}
	waitOps(200)
	n := tc.nodes[1] // not necessarily the metadata leader: the steps are routed
	right, err := control.SplitPartition(ctx, n.write, n.cmap, 0, 0, true)
	if err != nil || right != 8 {
		t.Fatalf("split of partition 0: %d %v", right, err)
	}
	waitOps(200)
	again, err := control.SplitPartition(ctx, n.write, n.cmap, right, 0, true)
	if err != nil || again != 9 {
		t.Fatalf("split of partition %d: %d %v", right, again, err)
	}
	for _, node := range tc.nodes {
		waitFor(t, fmt.Sprintf("node %d's map to show 10 partitions", node.cfg.NodeID), 10*time.Second, func() bool {
			return len(node.view().Parts) == 10 && node.view().Slots() != nil
		})
	}
	waitOps(300)

	// The new map, and scripts, transactions and multi-key commands in
	// the new partitions, while the load goes on.
	ctx = ctx5(t) // the load above may have spent the first
	m := tc.nodes[0].view()
	if p, _ := m.Part(0); p.SlotStart != 0 || p.SlotEnd != 1023 {
		t.Errorf("partition 0 after the splits: %+v", p)
	}
	if p, _ := m.Part(8); p.SlotStart != 1024 || p.SlotEnd != 1535 {
		t.Errorf("partition 8: %+v", p)
	}
	if p, _ := m.Part(9); p.SlotStart != 1536 || p.SlotEnd != 2047 {
		t.Errorf("partition 9: %+v", p)
	}
	var k8, k9 string
	for i := 0; k8 == "" || k9 == ""; i++ {
		k := fmt.Sprint("script:", i)
		switch s := ring.Slot([]byte(k)); {
		case s >= 1024 && s <= 1535 && k8 == "":
			k8 = k
		case s >= 1536 && s <= 2047 && k9 == "":
			k9 = k
		}
	}
	for _, k := range []string{k8, k9} {
		if v, err := plain.Eval(ctx, "return redis.call('incr', KEYS[1])", []string{k}).Int(); err != nil || v != 1 {
			t.Fatalf("EVAL INCR %s in a new partition: %d %v", k, v, err)
		}
	}
	if err := plain.MSet(ctx, k8, "a", k9, "b", "other", "c").Err(); err != nil {
		t.Fatalf("MSET across the new partitions: %v", err)
	}
	if vs, err := plain.MGet(ctx, k8, k9, "other").Result(); err != nil || fmt.Sprint(vs) != "[a b c]" {
		t.Fatalf("MGET across the new partitions: %v %v", vs, err)
	}
	slots, err := cluster.ClusterSlots(ctx).Result()
	if err != nil || len(slots) != 10 {
		t.Fatalf("CLUSTER SLOTS: %d ranges %v, want 10", len(slots), err)
	}

	// Merge them back, still under load: 8 with 9, then 0 with the
	// survivor (with three nodes every partition is on all of them, so
	// no replica moves first).
	merge := func(id int) api.MergeJSON {
		t.Helper()
		mctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for {
			res, err := n.place.MergePartitions(mctx, id)
			if err == nil {
				return res
			}
			// Pending while replicas move; refused for a moment while a
			// leader is unknown or a transaction is in flight: asked again.
			if mctx.Err() != nil {
				t.Fatalf("merge of partition %d: %v", id, err)
			}
			waitOps(20)
		}
	}
	first := merge(8)
	if first.Survivor+first.Absorbed != 17 {
		t.Fatalf("merge of partition 8: %+v, want 8 and 9", first)
	}
	waitOps(200)
	second := merge(0)
	if second.Survivor+second.Absorbed != first.Survivor {
		t.Fatalf("merge of partition 0: %+v, want 0 and %d", second, first.Survivor)
	}
	for _, node := range tc.nodes {
		waitFor(t, fmt.Sprintf("node %d's map to show 8 partitions", node.cfg.NodeID), 10*time.Second, func() bool {
			return len(node.view().Parts) == 8 && node.view().Slots() != nil && len(node.view().Merges) == 0
		})
	}
	waitOps(300)
	close(stop)
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d of %d requests failed across the splits and merges, first: %v", len(failed), ops.Load(), failed[0])
	}

	ctx = ctx5(t)
	if p, _ := tc.nodes[0].view().Part(uint64(second.Survivor)); p.SlotStart != 0 || p.SlotEnd != 2047 {
		t.Errorf("partition %d after the merges: %+v, want slots 0-2047", second.Survivor, p)
	}
	for i := range preloaded {
		if v, err := plain.Get(ctx, fmt.Sprint("pre:", i)).Int(); err != nil || v != i {
			t.Fatalf("pre:%d after the splits and merges: %d %v", i, v, err)
		}
	}
	counts.Range(func(k, n any) bool {
		if v, err := plain.Get(ctx, k.(string)).Int64(); err != nil || v != n.(*atomic.Int64).Load() {
			t.Errorf("%s = %d %v, want %d acknowledged increments", k, v, err, n.(*atomic.Int64).Load())
		}
		return true
	})
	if vs, err := plain.MGet(ctx, k8, k9).Result(); err != nil || fmt.Sprint(vs) != "[a b]" {
		t.Fatalf("MGET after the merges: %v %v", vs, err)
	}
	if slots, err := cluster.ClusterSlots(ctx).Result(); err != nil || len(slots) != 8 {
		t.Fatalf("CLUSTER SLOTS after the merges: %d ranges %v, want 8", len(slots), err)
	}
	t.Logf("%d requests, none failed; partitions 8 and 9 split off partition 0, then merged back into partition %d", ops.Load(), second.Survivor)
}

// TestSplitBySize: with a small --split-size, partitions that grow past
// it split by themselves, one at a time, until none is over it, and every
// key written stays readable.
func TestSplitBySize(t *testing.T) {
	if raceDetector {
		t.Skip("writes and splits about a megabyte several times over: run without -race (.ci/run does)")
	}
	const splitSize = 96 << 10
	tc := startCluster(t, 3, func(c *Config) {
		c.Partitions = 2
		c.SplitSize = splitSize
		c.HeartbeatInterval = 200 * time.Millisecond
	})
	tc.waitKnown()
	ctx := ctx5(t)
	c := redis.NewClient(&redis.Options{Addr: tc.respAddr(0)})
	defer c.Close()
	// Random values: Pebble compresses, and the sizes are what is on disk.
	rng := rand.New(rand.NewPCG(1, 2))
	values := make([]string, 800) // about 800 KiB: several times the split size
	for i := range values {
		b := make([]byte, 1024)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		values[i] = string(b)
	}
	pipe := c.Pipeline()
	for i, v := range values {
		pipe.Set(ctx, fmt.Sprint("big:", i), v, 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	// Sizes are Pebble's estimates of what is on disk: flush what is
	// still in memory, again as splits move keys.
	var flushed time.Time
	waitFor(t, "partitions to split down to the split size", 60*time.Second, func() bool {
		if time.Since(flushed) > 200*time.Millisecond { // not on every poll: a flush writes files
			flushed = time.Now()
			for _, n := range tc.nodes {
				if err := n.db.Flush(); err != nil {
					t.Fatal(err)
				}
			}
		}
		n := tc.nodes[0]
		parts := n.view().Parts
		if len(parts) < 4 {
			return false
		}
		for _, p := range parts {
			if n.eng.HasGroup(uint64(p.ID)) && n.groupBytes(uint64(p.ID)) > 2*splitSize {
				return false
			}
		}
		return true
	})
	ctx = ctx5(t) // the waits above may have spent the first
	for i := range values {
		if v, err := c.Get(ctx, fmt.Sprint("big:", i)).Result(); err != nil || v != values[i] {
			t.Fatalf("big:%d after the splits: %d bytes, %v", i, len(v), err)
		}
	}
	t.Logf("%d partitions after the splits", len(tc.nodes[0].view().Parts))
}

// TestInterruptedSplitIsFinished: a split reserved, and even made in the
// partition, but never recorded (its proposer died) is finished by the
// placement driver: the records follow, and the moved keys are served.
func TestInterruptedSplitIsFinished(t *testing.T) {
	tc := startCluster(t, 3, func(c *Config) { c.HeartbeatInterval = 200 * time.Millisecond })
	tc.waitKnown()
	ctx := ctx5(t)
	c := redis.NewClient(&redis.Options{Addr: tc.respAddr(0)})
	defer c.Close()
	var key string
	for i := 0; key == ""; i++ {
		if k := fmt.Sprint("k", i); ring.Slot([]byte(k)) >= 15000 {
			key = k
		}
	}
	if err := c.Set(ctx, key, "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	n := tc.nodes[1]
	reply := n.write(ctx, MetaGroup, [][]byte{[]byte(statemachine.CmdPartReserve), []byte("7"), []byte("15000")})
	right, lo, hi, err := statemachine.ParseReserveReply(reply)
	if err != nil || right != 8 || lo != 14336 || hi != 16383 {
		t.Fatalf("reserve: %d %d-%d %v", right, lo, hi, err)
	}
	if r := n.write(ctx, 7, raftstore.SplitArgs(uint64(right), 15000, lo, hi)); string(r) != "+OK\r\n" {
		t.Fatalf("split entry: %q", r)
	}
	// The proposer "dies" here: nothing records the split.
	waitFor(t, "the driver to record the split", 20*time.Second, func() bool {
		m := tc.nodes[0].view()
		p, ok := m.Part(8)
		return ok && p.SlotStart == 15000 && p.SlotEnd == 16383 && len(m.Splits) == 0
	})
	if p, _ := tc.nodes[0].view().Part(7); p.SlotEnd != 14999 {
		t.Fatalf("partition 7 after the split: %+v", p)
	}
	ctx = ctx5(t)
	if v, err := c.Get(ctx, key).Result(); err != nil || v != "v" {
		t.Fatalf("the moved key: %q %v", v, err)
	}
}
