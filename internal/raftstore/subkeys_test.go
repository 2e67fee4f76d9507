package raftstore_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/kintsu/kintsu/internal/kv"
)

// collectionsOf lists the collection versions holding sub-keys in group on
// node n, with whether each is orphaned.
func collectionsOf(t *testing.T, n *testNode, group uint64) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	if err := n.eng.ScanCollections(group, nil, func(k []byte, ver uint64, stored []byte, present bool, _ []byte) bool {
		out[fmt.Sprintf("%s@%d", k, ver)] = kv.Orphaned(stored, present, ver)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// A large hash deleted leaves its fields under an orphaned version; the
// scan finds it with one seek per collection, and kintsu.sweep removes
// the fields in bounded entries, only while the version is orphaned. A
// hash created again at the key takes a newer version and never sees
// them. Cuts (backups) carry live sub-keys.
func TestOrphanedSubKeysAreSwept(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	const g = 0
	args := []string{"hset", "h"}
	n := kv.SweepMax + 100
	for i := range n {
		args = append(args, "f"+strconv.Itoa(i), "v")
	}
	if r, err := c.write(g, 1, args...); err != nil || r != fmt.Sprintf(":%d\r\n", n) {
		t.Fatalf("hset: %q, %v", r, err)
	}
	if r, err := c.write(g, 1, "hset", "small", "a", "1"); err != nil || r != ":1\r\n" {
		t.Fatalf("hset small: %q, %v", r, err)
	}
	l := c.leader(g)
	before := collectionsOf(t, l, g)
	if len(before) != 2 {
		t.Fatalf("collections %v", before)
	}
	var ver string
	for name, orphan := range before {
		if orphan {
			t.Fatalf("%s orphaned while live", name)
		}
		if name[0] == 'h' {
			ver = name[2:]
		}
	}
	if r, _ := c.write(g, 1, kv.OpSweep, "h", ver); r != ":0\r\n" {
		t.Fatalf("sweep of a live hash: %q", r)
	}
	if r, err := c.write(g, 1, "del", "h"); err != nil || r != ":1\r\n" {
		t.Fatalf("del: %q, %v", r, err)
	}
	if r, err := c.write(g, 1, "hset", "h", "new", "1"); err != nil || r != ":1\r\n" {
		t.Fatalf("hset again: %q, %v", r, err)
	}
	if r, err := c.write(g, 1, "hgetall", "h"); err != nil || r != "*2\r\n$3\r\nnew\r\n$1\r\n1\r\n" {
		t.Fatalf("hgetall after re-creation: %q, %v", r, err)
	}
	after := collectionsOf(t, l, g)
	if !after["h@"+ver] || len(after) != 3 {
		t.Fatalf("after DEL and re-creation: %v (want h@%s orphaned)", after, ver)
	}
	if r, _ := c.write(g, 1, kv.OpSweep, "h", ver); r != fmt.Sprintf(":%d\r\n", kv.SweepMax) {
		t.Fatalf("first sweep entry: %q", r)
	}
	if r, _ := c.write(g, 1, kv.OpSweep, "h", ver); r != ":100\r\n" {
		t.Fatalf("second sweep entry: %q", r)
	}
	for _, nd := range c.nodes { // every replica applied the same removals
		waitFor(t, "the sweep on every replica", 10*time.Second, func() bool {
			got := collectionsOf(t, nd, g)
			_, left := got["h@"+ver]
			return !left && len(got) == 2
		})
	}
}
