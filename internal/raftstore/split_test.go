package raftstore_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/failure"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/ring"
	"github.com/kintsu/kintsu/internal/statemachine"
)

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// readCmd evaluates a read command on node's replica of group.
func readCmd(n *testNode, group uint64, args ...string) (string, error) {
	v, err := kv.Lookup([]byte(args[0])).Read(n.eng.Reader(group), toArgs(args), nil)
	return string(v), err
}

func withSlots(cfg *raftstore.Config) { cfg.KeySlot = ring.Slot }

func splitArgs(right uint64, at, lo, hi uint16) []string {
	var out []string
	for _, a := range raftstore.SplitArgs(right, at, lo, hi) {
		out = append(out, string(a))
	}
	return out
}

// splitKeys are n keys with their slots, and which side of at each lies.
func splitKeys(n int, at uint16) (keys []string, right map[string]bool) {
	right = map[string]bool{}
	for i := range n {
		k := fmt.Sprint("key-", i)
		keys = append(keys, k)
		right[k] = ring.Slot([]byte(k)) >= at
	}
	return keys, right
}

// TestSplitMovesTheRightHalf: a split entry moves exactly the keys of the
// right half (strings and collections) to a new group on every replica,
// which elects a leader and takes writes; a write retried across the
// split is answered once; a replica that was down during the split
// catches up; every replica restarts with both groups; a second split
// with the old range is refused.
func TestSplitMovesTheRightHalf(t *testing.T) {
	c := newCluster(t, 3, 1, withSlots)
	const at = 8192
	keys, right := splitKeys(120, at)
	for _, k := range keys {
		if r, err := c.write(0, 1, "set", k, "v-"+k); err != nil || r != "+OK\r\n" {
			t.Fatalf("set %s: %q %v", k, r, err)
		}
	}
	// A collection on each side, and a counter on the right incremented
	// once under a known (origin, seq).
	var hashL, hashR, counter string
	for i := 0; hashL == "" || hashR == ""; i++ {
		h := fmt.Sprint("hash-", i)
		if ring.Slot([]byte(h)) >= at {
			hashR = cmpOr(hashR, h)
		} else {
			hashL = cmpOr(hashL, h)
		}
	}
	for _, h := range []string{hashL, hashR} {
		if r, err := c.write(0, 1, "hset", h, "f1", "a", "f2", "b"); err != nil || r != ":2\r\n" {
			t.Fatalf("hset %s: %q %v", h, r, err)
		}
	}
	for i := 0; counter == ""; i++ {
		if k := fmt.Sprint("ctr-", i); ring.Slot([]byte(k)) >= at {
			counter = k
		}
	}
	const origin, incrSeq = 9, 1 << 40
	if r, err := c.writeSeq(0, origin, incrSeq, "incr", counter); err != nil || r != ":1\r\n" {
		t.Fatalf("incr: %q %v", r, err)
	}

	// One follower misses the split and the writes after it.
	l := c.leader(0)
	var late *testNode
	for _, n := range c.nodes {
		if n != l {
			late = n
			break
		}
	}
	lateID, lateDir := late.id, late.dir
	c.stop(lateID)

	if r, err := c.write(0, 2, splitArgs(1, at, 0, ring.SlotCount-1)...); err != nil || r != "+OK\r\n" {
		t.Fatalf("split: %q %v", r, err)
	}
	// The same split again (a proposer that lost the answer) says it
	// happened; another split of the old range is refused.
	if r, err := c.write(0, 2, splitArgs(1, at, 0, ring.SlotCount-1)...); err != nil || r != "+OK\r\n" {
		t.Fatalf("the same split again: %q %v, want +OK", r, err)
	}
	if r, err := c.write(0, 2, splitArgs(2, at, 0, ring.SlotCount-1)...); err != nil || !strings.HasPrefix(r, "-ERR split refused") {
		t.Fatalf("second split: %q %v, want a refusal", r, err)
	}
	c.leader(1)
	if r, err := c.write(1, 3, "set", keys[0]+"-after", "x"); err != nil || r != "+OK\r\n" {
		t.Fatalf("write to the new group: %q %v", r, err)
	}
	// The retried increment, sent where its key now lives, is answered
	// from the copied dedupe table, not applied again.
	if r, err := c.writeSeq(1, origin, incrSeq, "incr", counter); err != nil || r != ":1\r\n" {
		t.Fatalf("retried incr after the split: %q %v, want :1", r, err)
	}

	c.restart(lateID, lateDir)
	check := func(n *testNode) {
		t.Helper()
		// The new group can catch up on a node before the old one applies
		// the split there (a restarted node): wait for both. The old
		// group's range tells that it applied the split (the counter
		// absent there alone could be an increment not applied yet); the
		// counter gone, that the split's batch is committed.
		waitFor(t, fmt.Sprintf("node %d to host the new group, apply its write, and apply the split", n.id), 15*time.Second, func() bool {
			old := n.eng.Reader(0)
			return n.eng.HasGroup(1) && localGet(t, n, 1, keys[0]+"-after") == bulk("x") &&
				old.Ranged() && !old.Owns([]byte(counter)) && localGet(t, n, 0, counter) == "$-1\r\n"
		})
		for _, k := range keys {
			want := bulk("v-" + k)
			g, other := uint64(0), uint64(1)
			if right[k] {
				g, other = 1, 0
			}
			if got := localGet(t, n, g, k); got != want {
				t.Fatalf("node %d: %s in group %d = %q, want %q", n.id, k, g, got, want)
			}
			if got := localGet(t, n, other, k); got != "$-1\r\n" {
				t.Fatalf("node %d: %s still in group %d: %q", n.id, k, other, got)
			}
		}
		if got := localGet(t, n, 1, counter); got != bulk("1") {
			t.Fatalf("node %d: counter %q, want 1 (applied once)", n.id, got)
		}
		for _, h := range []struct {
			key   string
			group uint64
		}{{hashL, 0}, {hashR, 1}} {
			v, err := readCmd(n, h.group, "hget", h.key, "f2")
			if err != nil || v != bulk("b") {
				t.Fatalf("node %d: hget %s in group %d = %q %v", n.id, h.key, h.group, v, err)
			}
		}
	}
	for _, n := range c.nodes {
		check(n)
	}

	c.restartAll()
	c.leader(0)
	c.leader(1)
	for _, n := range c.nodes {
		check(n)
	}
	if r, err := c.write(0, 4, "set", "after-restart", "y"); err != nil || r != "+OK\r\n" {
		t.Fatalf("write to the left group after restart: %q %v", r, err)
	}
}

// A split is refused alike on every replica while a transaction holds a
// lock in the partition, and for a slot outside its range.
func TestSplitRefusals(t *testing.T) {
	c := newCluster(t, 3, 1, withSlots)
	// A lock on a key that would move refuses the split; one on a key
	// that stays does not stand in its way.
	const at = 8192
	var stays, moves string
	for i := 0; stays == "" || moves == ""; i++ {
		k := fmt.Sprint("k", i)
		if ring.Slot([]byte(k)) >= at {
			moves = cmpOr(moves, k)
		} else {
			stays = cmpOr(stays, k)
		}
	}
	for _, k := range []string{stays, moves} {
		if r, err := c.write(0, 1, "lock", k); err != nil || r != "+OK\r\n" {
			t.Fatalf("lock: %q %v", r, err)
		}
	}
	if r, err := c.write(0, 1, splitArgs(1, at, 0, ring.SlotCount-1)...); err != nil || !strings.Contains(r, "transactions are in progress") {
		t.Fatalf("split under a lock on a key that would move: %q %v", r, err)
	}
	if r, err := c.write(0, 1, "unlock", moves); err != nil || r != "+OK\r\n" {
		t.Fatalf("unlock: %q %v", r, err)
	}
	for _, args := range [][]string{
		splitArgs(1, 0, 0, ring.SlotCount-1),   // at the first slot: nothing left
		splitArgs(1, at, 0, ring.SlotCount+5),  // past the last slot
		splitArgs(0, 100, 0, ring.SlotCount-1), // into itself
		{raftstore.SplitCommand, "1", "x", "0", "1"},
	} {
		if r, err := c.write(0, 1, args...); err != nil || !strings.HasPrefix(r, "-ERR split refused") {
			t.Fatalf("split %q: %q %v, want a refusal", args, r, err)
		}
	}
	for _, n := range c.nodes {
		if n.eng.HasGroup(1) {
			t.Fatalf("node %d hosts group 1 after refused splits", n.id)
		}
	}
	if r, err := c.write(0, 1, splitArgs(1, at, 0, ring.SlotCount-1)...); err != nil || r != "+OK\r\n" {
		t.Fatalf("split with a lock only on a key that stays: %q %v", r, err)
	}
}

// After a split, the left group refuses every command naming a key of
// the right half — a write, a transaction's share, a read — with the
// WrongGroup signal (nothing applied), on every replica alike, while its
// own keys are served as before. Without this a router with a map from
// before the split would write where nobody reads.
func TestSplitLeftRefusesMovedKeys(t *testing.T) {
	c := newCluster(t, 3, 1, func(cfg *raftstore.Config) {
		cfg.KeySlot = ring.Slot
		cfg.Apply = func(g uint64, w *raftstore.Writer, spec *command.Spec, args [][]byte, out []byte) ([]byte, error) {
			return statemachine.Apply(g, w, spec, args, out)
		}
		cfg.Classify = statemachine.Classify
	})
	const at = 8192
	var left, right string
	for i := 0; left == "" || right == ""; i++ {
		k := fmt.Sprint("k", i)
		if ring.Slot([]byte(k)) >= at {
			right = cmpOr(right, k)
		} else {
			left = cmpOr(left, k)
		}
	}
	for _, k := range []string{left, right} {
		if r, err := c.write(0, 1, "set", k, "v"); err != nil || r != "+OK\r\n" {
			t.Fatalf("set %s: %q %v", k, r, err)
		}
	}
	if r, err := c.write(0, 2, splitArgs(1, at, 0, ring.SlotCount-1)...); err != nil || r != "+OK\r\n" {
		t.Fatalf("split: %q %v", r, err)
	}
	for _, args := range [][]string{
		{"set", right, "w"},
		{"mset", left, "w", right, "w"},
		{"del", right},
	} {
		if r, err := c.write(0, 3, args...); err != nil || !failure.WrongGroup.Is([]byte(r)) {
			t.Fatalf("%q on the left after the split: %q %v, want the WrongGroup signal", args, r, err)
		}
	}
	if r, err := c.write(0, 3, "set", left, "w"); err != nil || r != "+OK\r\n" {
		t.Fatalf("set of a left key after the split: %q %v", r, err)
	}
	l := c.leader(0)
	snap, release := l.eng.Snapshot(0)
	defer release()
	for k, want := range map[string]string{right: "-KINTSU.WRONGGROUP\r\n", left: bulk("w")} {
		got, err := statemachine.Read(snap, 0, command.Lookup([]byte("get")), toArgs([]string{"get", k}))
		if err != nil || string(got) != want {
			t.Fatalf("get %s on the left: %q %v, want %q", k, got, err, want)
		}
	}
	for _, n := range c.nodes {
		waitFor(t, fmt.Sprintf("node %d to hold the right key in group 1 only", n.id), 10*time.Second, func() bool {
			return n.eng.HasGroup(1) && localGet(t, n, 1, right) == bulk("v") && localGet(t, n, 0, right) == "$-1\r\n"
		})
	}
}
