package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/control"
	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/ring"
	"github.com/kintsu/kintsu/internal/statemachine"
)

// TestMergeColocatesFirst: on five nodes, two neighbouring partitions
// whose replicas are on different nodes merge only once the placement
// driver has moved the right one's replicas onto the left one's nodes;
// until then the merge answers pending. Afterwards the map has one
// partition less, the absorbed group is gone from every node, and every
// key of both reads back.
func TestMergeColocatesFirst(t *testing.T) {
	if raceDetector {
		t.Skip("five nodes moving replicas and merging: run without -race (.ci/run does)")
	}
	tc := startCluster(t, 5, func(c *Config) { c.HeartbeatInterval = 200 * time.Millisecond })
	tc.waitKnown()
	n := tc.nodes[0]
	members := tc.waitMembership(n, "every group to settle on three voters", 60*time.Second, func(m map[uint64][]uint64) bool {
		for _, v := range m {
			if len(v) != 3 && len(v) != 5 {
				return false
			}
		}
		return true
	})
	m := n.view()
	var left, right api.PartitionRecord
	for _, a := range m.Parts {
		for _, b := range m.Parts {
			if int(a.SlotEnd)+1 == int(b.SlotStart) && !slices.Equal(members[uint64(a.ID)], members[uint64(b.ID)]) && left.Replicas == nil {
				left, right = a, b
			}
		}
	}
	if left.Replicas == nil {
		t.Skipf("every pair of neighbours is already on the same nodes: %v", members)
	}

	ctx := ctx5(t)
	c := redis.NewClient(&redis.Options{Addr: tc.respAddr(0)})
	defer c.Close()
	var keys []string
	for i := 0; len(keys) < 200; i++ {
		k := fmt.Sprint("m:", i)
		if s := ring.Slot([]byte(k)); s >= left.SlotStart && s <= right.SlotEnd {
			keys = append(keys, k)
		}
	}
	pipe := c.Pipeline()
	for _, k := range keys {
		pipe.Set(ctx, k, "v-"+k, 0)
	}
	pipe.HSet(ctx, keys[0]+"-hash", "f", "x")
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}

	pending := 0
	var res api.MergeJSON
	deadline := time.Now().Add(90 * time.Second)
	for {
		mctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var err error
		res, err = n.place.MergePartitions(mctx, left.ID)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("merge of partitions %d and %d: %v (pending %d times)", left.ID, right.ID, err, pending)
		}
		if !errors.Is(err, control.ErrMergePending) {
			// A leader unknown for a moment: asked again.
			t.Logf("merge of partitions %d and %d: %v; asking again", left.ID, right.ID, err)
			waitFor(t, "both partitions' leaders to answer", 10*time.Second, func() bool {
				_, lok := n.place.GroupInfo(n.ctx, uint64(left.ID))
				_, rok := n.place.GroupInfo(n.ctx, uint64(right.ID))
				return lok && rok
			})
			continue
		}
		pending++
		// The driver moves the right partition's replicas onto the left's
		// nodes; ask again once they are there.
		waitFor(t, "the two partitions' replicas to be co-located", 60*time.Second, func() bool {
			l, lok := n.place.GroupInfo(n.ctx, uint64(left.ID))
			r, rok := n.place.GroupInfo(n.ctx, uint64(right.ID))
			return lok && rok && len(l.Learners)+len(r.Learners) == 0 &&
				slices.Equal(slices.Sorted(slices.Values(l.Voters)), slices.Sorted(slices.Values(r.Voters)))
		})
	}
	if pending == 0 {
		t.Fatalf("the merge of partitions on different nodes (%v, %v) was never pending", members[uint64(left.ID)], members[uint64(right.ID)])
	}
	if res.Survivor+res.Absorbed != left.ID+right.ID {
		t.Fatalf("merge answer %+v, want partitions %d and %d", res, left.ID, right.ID)
	}
	for _, node := range tc.nodes {
		waitFor(t, fmt.Sprintf("node %d to drop partition %d and map 7 partitions", node.cfg.NodeID, res.Absorbed), 20*time.Second, func() bool {
			return !node.eng.HasGroup(uint64(res.Absorbed)) && len(node.view().Parts) == 7 && node.view().Slots() != nil
		})
	}
	if p, _ := n.view().Part(uint64(res.Survivor)); p.SlotStart != left.SlotStart || p.SlotEnd != right.SlotEnd {
		t.Fatalf("partition %d after the merge: %+v, want slots %d-%d", res.Survivor, p, left.SlotStart, right.SlotEnd)
	}
	ctx = ctx5(t)
	for _, k := range keys {
		if v, err := c.Get(ctx, k).Result(); err != nil || v != "v-"+k {
			t.Fatalf("%s after the merge: %q %v", k, v, err)
		}
	}
	if v, err := c.HGet(ctx, keys[0]+"-hash", "f").Result(); err != nil || v != "x" {
		t.Fatalf("hash after the merge: %q %v", v, err)
	}
	t.Logf("partitions %d (%v) and %d (%v) merged into %d after %d pending answers", left.ID, members[uint64(left.ID)], right.ID, members[uint64(right.ID)], res.Survivor, pending)
}

// TestMergeFoundDoneIsRecorded: a merge that went through (frozen and
// absorbed) while its survivor was forgotten in the partition table, as
// when two attempts ran at once and one's freeze was refused, is
// recorded by the next attempt: before, every later attempt waited for
// the absorbed group, gone from every node, and its slots stayed routed
// to it.
func TestMergeFoundDoneIsRecorded(t *testing.T) {
	tc := startCluster(t, 3, func(c *Config) { c.Partitions = 4 })
	tc.waitKnown()
	n := tc.nodes[0]
	ctx := ctx5(t)
	c := redis.NewClient(&redis.Options{Addr: tc.respAddr(0)})
	defer c.Close()
	// Keys of partitions 0 and 1 (slots 0-8191).
	var keys []string
	for i := 0; len(keys) < 50; i++ {
		if k := fmt.Sprint("fd:", i); ring.Slot([]byte(k)) < 8192 {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		if err := c.Set(ctx, k, "v-"+k, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	meta := func(args ...string) string {
		t.Helper()
		var b [][]byte
		for _, a := range args {
			b = append(b, []byte(a))
		}
		return string(n.write(ctx, statemachine.MetaGroup, b))
	}
	if r := meta(statemachine.CmdPartMergeIntent, "0", "1"); r[0] == '-' {
		t.Fatalf("merge intent: %q", r)
	}
	if r := meta(statemachine.CmdPartSurvivor, "0", "0"); r[0] == '-' {
		t.Fatalf("survivor: %q", r)
	}
	// Another attempt freezes partition 1 into 0 and absorbs it...
	frozenAt, nodes, err := raftstore.ParseFreezeReply(n.write(ctx, 1, raftstore.FreezeArgs(0, 4096, 8191)))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "partition 0 to absorb partition 1", 20*time.Second, func() bool {
		r := string(n.write(ctx, 0, raftstore.MergeArgs(1, frozenAt, 4096, 8191, 0, 4095, nodes)))
		return r == "+OK\r\n"
	})
	// ...while the survivor is forgotten.
	if r := meta(statemachine.CmdPartUnchoose, "0"); r[0] == '-' {
		t.Fatalf("unchoose: %q", r)
	}
	var res api.MergeJSON
	waitFor(t, "the merge to be recorded", 30*time.Second, func() bool {
		mctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err = n.place.MergePartitions(mctx, 0)
		return err == nil
	})
	if res.Survivor != 0 || res.Absorbed != 1 {
		t.Fatalf("merge answer %+v, want 1 absorbed into 0", res)
	}
	waitFor(t, "the map to give partition 0 slots 0-8191", 10*time.Second, func() bool {
		p, ok := n.view().Part(0)
		_, other := n.view().Part(1)
		return ok && !other && p.SlotEnd == 8191
	})
	ctx = ctx5(t)
	for _, k := range keys {
		if v, err := c.Get(ctx, k).Result(); err != nil || v != "v-"+k {
			t.Fatalf("%s after the merge: %q %v", k, v, err)
		}
	}
}
