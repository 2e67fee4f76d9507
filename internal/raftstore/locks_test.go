package raftstore_test

import (
	"testing"

	"github.com/kintsu/kintsu/internal/raftstore"
)

// The engine counts a group's lock records so that a plain write skips
// the lock table's read while it is empty; a count that fell to 0 with a
// lock left would let writes through a transaction's lock. It must be
// exact through overwrites, deletes of what is not there, a restart (the
// count is loaded), a snapshot (the count comes with its data) and a
// restore's clear.
func TestLockCountFollowsTheLockTable(t *testing.T) {
	c := newCluster(t, 3, 1, func(cfg *raftstore.Config) { cfg.TruncateAfter, cfg.TruncateKeep = 20, 5 })
	noLocks := func(want bool) {
		t.Helper()
		w := ":0\r\n"
		if want {
			w = ":1\r\n"
		}
		if r, err := c.write(0, 3, "no-locks"); err != nil || r != w {
			t.Fatalf("no-locks on node %d: %q, %v; want %q", c.leader(0).id, r, err, w)
		}
	}
	do := func(args ...string) {
		t.Helper()
		if r, err := c.write(0, 3, args...); err != nil || r != "+OK\r\n" {
			t.Fatalf("%v: %q, %v", args, r, err)
		}
	}
	noLocks(true)
	do("lock", "a")
	noLocks(false)
	do("lock", "a") // an overwrite is not a second record
	do("unlock", "b")
	do("unlock", "a")
	noLocks(true)
	do("unlock", "a") // nor is a delete of what is gone
	do("lock", "a")
	do("unlock", "a")
	noLocks(true)
	do("lock", "k")
	noLocks(false)

	// A restarted node loads the count.
	l := c.leader(0)
	c.stop(l.id)
	c.restart(l.id, l.dir)
	c.moveLeader(t, 0, l.id)
	noLocks(false)

	// A node added later gets the lock with a snapshot (the log was
	// truncated long before), and its count with it.
	for i := range 30 {
		do("set", "x", string(rune('a'+i%26)))
	}
	c.addNode(4)
	c.change(0, raftstore.AddLearner, 4)
	c.change(0, raftstore.PromoteLearner, 4)
	c.moveLeader(t, 0, 4)
	noLocks(false)
	do("clear")
	noLocks(true)
	do("lock", "k")
	do("unlock", "k")
	noLocks(true)
}
