package raftstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kintsu/kintsu/internal/failure"
	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/ring"
)

func strs(args [][]byte) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = string(a)
	}
	return out
}

// TestMergeAbsorbsTheFrozenGroup: after a split, the right group is
// frozen and merged back into the left on every replica. Once frozen it
// refuses writes (WrongGroup) and membership changes; the merge is
// refused while the survivor's log is behind the freeze, then applied;
// every key (strings and collections) is in the survivor, the frozen
// group is gone from every node, a write retried across the merge is
// answered once, the same merge again says it happened, and all of it
// holds after every node restarts.
func TestMergeAbsorbsTheFrozenGroup(t *testing.T) {
	c := newCluster(t, 3, 1, withSlots)
	const at = 8192
	if r, err := c.write(0, 1, splitArgs(1, at, 0, ring.SlotCount-1)...); err != nil || r != "+OK\r\n" {
		t.Fatalf("split: %q %v", r, err)
	}
	c.leader(1)
	keys, right := splitKeys(60, at)
	for _, k := range keys {
		g := uint64(0)
		if right[k] {
			g = 1
		}
		if r, err := c.write(g, 1, "set", k, "v-"+k); err != nil || r != "+OK\r\n" {
			t.Fatalf("set %s in %d: %q %v", k, g, r, err)
		}
	}
	var hashR, counter string
	for i := 0; hashR == "" || counter == ""; i++ {
		if h := fmt.Sprint("hash-", i); hashR == "" && ring.Slot([]byte(h)) >= at {
			hashR = h
		}
		if k := fmt.Sprint("ctr-", i); counter == "" && ring.Slot([]byte(k)) >= at {
			counter = k
		}
	}
	if r, err := c.write(1, 1, "hset", hashR, "f1", "a", "f2", "b"); err != nil || r != ":2\r\n" {
		t.Fatalf("hset: %q %v", r, err)
	}
	const origin, incrSeq = 9, 1 << 40
	if r, err := c.writeSeq(1, origin, incrSeq, "incr", counter); err != nil || r != ":1\r\n" {
		t.Fatalf("incr: %q %v", r, err)
	}
	// The right group's log runs ahead of the left's.
	for i := range 20 {
		if r, err := c.write(1, 1, "set", counter+"-pad", fmt.Sprint(i)); err != nil || r != "+OK\r\n" {
			t.Fatalf("pad: %q %v", r, err)
		}
	}

	reply, err := c.write(1, 2, strs(raftstore.FreezeArgs(0, at, ring.SlotCount-1))...)
	if err != nil {
		t.Fatal(err)
	}
	frozenAt, nodes, err := raftstore.ParseFreezeReply([]byte(reply))
	if err != nil || len(nodes) != 3 {
		t.Fatalf("freeze: %q: %d %v %v", reply, frozenAt, nodes, err)
	}
	if again, err := c.write(1, 2, strs(raftstore.FreezeArgs(0, at, ring.SlotCount-1))...); err != nil || again != reply {
		t.Fatalf("the same freeze again: %q %v, want %q", again, err, reply)
	}
	if r, err := c.write(1, 3, "set", counter, "x"); err != nil || !failure.WrongGroup.Is([]byte(r)) {
		t.Fatalf("write to the frozen group: %q %v, want the WrongGroup signal", r, err)
	}
	if r, err := c.write(1, 3, splitArgs(5, at+10, at, ring.SlotCount-1)...); err != nil || !strings.HasPrefix(r, "-") {
		t.Fatalf("split of the frozen group: %q %v, want a refusal", r, err)
	}
	l1 := c.leader(1)
	var other uint64
	for _, nd := range nodes {
		if nd != l1.id {
			other = nd
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	err = l1.eng.ChangeReplicas(ctx, 1, raftstore.RemoveReplica, other)
	cancel()
	if err == nil || !strings.Contains(err.Error(), "frozen") {
		t.Fatalf("membership change of the frozen group: %v, want a refusal", err)
	}
	for _, n := range c.nodes {
		waitFor(t, fmt.Sprintf("node %d to apply the freeze", n.id), 10*time.Second, func() bool {
			st, ok := n.eng.GroupStatus(1)
			return ok && st.AppliedIndex >= frozenAt
		})
	}

	merge := strs(raftstore.MergeArgs(1, frozenAt, at, ring.SlotCount-1, 0, at-1, nodes))
	refused := 0
	for {
		r, err := c.write(0, 4, merge...)
		if err != nil {
			t.Fatal(err)
		}
		if r == "+OK\r\n" {
			break
		}
		if !strings.Contains(r, "is behind the frozen one's") || refused > 100 {
			t.Fatalf("merge: %q", r)
		}
		refused++
	}
	if refused == 0 {
		t.Fatalf("the merge was never refused for the survivor's log behind the freeze")
	}
	if r, err := c.write(0, 4, merge...); err != nil || r != "+OK\r\n" {
		t.Fatalf("the same merge again: %q %v, want +OK", r, err)
	}
	if r, err := c.writeSeq(0, origin, incrSeq, "incr", counter); err != nil || r != ":1\r\n" {
		t.Fatalf("retried incr after the merge: %q %v, want :1 (answered from the merged dedupe table)", r, err)
	}
	if r, err := c.write(0, 5, "set", keys[0]+"-after", "y"); err != nil || r != "+OK\r\n" {
		t.Fatalf("write after the merge: %q %v", r, err)
	}

	check := func(n *testNode) {
		t.Helper()
		waitFor(t, fmt.Sprintf("node %d to apply the merge and drop group 1", n.id), 15*time.Second, func() bool {
			return !n.eng.HasGroup(1) && localGet(t, n, 0, keys[0]+"-after") == bulk("y")
		})
		for _, k := range keys {
			if got := localGet(t, n, 0, k); got != bulk("v-"+k) {
				t.Fatalf("node %d: %s = %q after the merge", n.id, k, got)
			}
		}
		if got := localGet(t, n, 0, counter); got != bulk("1") {
			t.Fatalf("node %d: counter %q, want 1", n.id, got)
		}
		if v, err := readCmd(n, 0, "hget", hashR, "f2"); err != nil || v != bulk("b") {
			t.Fatalf("node %d: hget %s = %q %v", n.id, hashR, v, err)
		}
	}
	for _, n := range c.nodes {
		check(n)
	}
	c.restartAll()
	c.leader(0)
	for _, n := range c.nodes {
		check(n)
	}
	if r, err := c.write(0, 6, "set", counter, "z"); err != nil || r != "+OK\r\n" {
		t.Fatalf("write of a formerly right key after restart: %q %v", r, err)
	}
}

// A freeze is refused while a transaction holds a lock in the partition;
// a merge is refused for ranges that are not adjacent and for replicas on
// other nodes.
func TestMergeRefusals(t *testing.T) {
	c := newCluster(t, 3, 1, withSlots)
	const at = 8192
	if r, err := c.write(0, 1, splitArgs(1, at, 0, ring.SlotCount-1)...); err != nil || r != "+OK\r\n" {
		t.Fatalf("split: %q %v", r, err)
	}
	var k string
	for i := 0; k == ""; i++ {
		if x := fmt.Sprint("k", i); ring.Slot([]byte(x)) >= at {
			k = x
		}
	}
	if r, err := c.write(1, 1, "lock", k); err != nil || r != "+OK\r\n" {
		t.Fatalf("lock: %q %v", r, err)
	}
	if r, err := c.write(1, 1, strs(raftstore.FreezeArgs(0, at, ring.SlotCount-1))...); err != nil || !strings.Contains(r, "transactions are in progress") {
		t.Fatalf("freeze under a lock: %q %v", r, err)
	}
	if r, err := c.write(1, 1, "unlock", k); err != nil || r != "+OK\r\n" {
		t.Fatalf("unlock: %q %v", r, err)
	}
	for _, args := range [][][]byte{
		raftstore.FreezeArgs(1, at, ring.SlotCount-1), // into itself
		raftstore.FreezeArgs(0, at+1, ring.SlotCount-1),
		{[]byte(raftstore.FreezeCommand), []byte("0"), []byte("x"), []byte("1")},
	} {
		if r, err := c.write(1, 1, strs(args)...); err != nil || !strings.HasPrefix(r, "-ERR merge refused") {
			t.Fatalf("freeze %q: %q %v, want a refusal", args, r, err)
		}
	}
	reply, err := c.write(1, 2, strs(raftstore.FreezeArgs(0, at, ring.SlotCount-1))...)
	frozenAt, nodes, perr := raftstore.ParseFreezeReply([]byte(reply))
	if err != nil || perr != nil {
		t.Fatalf("freeze: %q %v %v", reply, err, perr)
	}
	for _, args := range [][][]byte{
		raftstore.MergeArgs(1, frozenAt, at+1, ring.SlotCount-1, 0, at-1, nodes),           // not adjacent
		raftstore.MergeArgs(1, frozenAt, at, ring.SlotCount-1, 0, at-1, []uint64{1, 2, 7}), // other nodes
		raftstore.MergeArgs(1, frozenAt, at, ring.SlotCount-1, 0, 100, nodes),              // not the survivor's range
	} {
		if r, err := c.write(0, 3, strs(args)...); err != nil || !strings.HasPrefix(r, "-ERR merge refused") {
			t.Fatalf("merge %q: %q %v, want a refusal", args, r, err)
		}
	}
	for _, n := range c.nodes {
		if !n.eng.HasGroup(1) {
			t.Fatalf("node %d lost group 1 after refused merges", n.id)
		}
	}
	// An abort in the survivor's log refuses that merge for good; then
	// the frozen group thaws and takes writes again.
	if r, err := c.write(0, 4, strs(raftstore.AbortMergeArgs(1, frozenAt))...); err != nil || r != ":0\r\n" {
		t.Fatalf("abort: %q %v", r, err)
	}
	merge := raftstore.MergeArgs(1, frozenAt, at, ring.SlotCount-1, 0, at-1, nodes)
	for range 64 { // past the freeze's index, whatever the gap
		r, err := c.write(0, 5, strs(merge)...)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(r, "was aborted") {
			break
		}
		if !strings.Contains(r, "is behind") {
			t.Fatalf("merge after its abort: %q, want a refusal", r)
		}
	}
	if r, err := c.write(1, 6, strs(raftstore.ThawArgs(0, frozenAt))...); err != nil || r != "+OK\r\n" {
		t.Fatalf("thaw: %q %v", r, err)
	}
	if r, err := c.write(1, 7, "set", k, "after-thaw"); err != nil || r != "+OK\r\n" {
		t.Fatalf("write to the thawed group: %q %v", r, err)
	}
}
