package raftstore_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/kintsu/kintsu/internal/raftstore"
)

// The engine counts a group's lock records so that a plain write skips
// the lock table's read while it is empty; a count that fell to 0 with a
// lock left would let writes through a transaction's lock. It must be
// exact through overwrites, deletes of what is not there, a restart (the
// count is loaded), a snapshot (the count comes with its data) and a
// restore's clear. The records themselves are read from memory while
// they are few (lockTable), so every read must also see exactly what the
// table holds, including past the memory bound and back under it.
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
		seq++
		// One entry may hold 20,000 records: give it time under -race.
		r, err := c.proposeRetryWithin(0, &raftstore.Request{Origin: 3, Seq: seq, Args: toArgs(args)}, 20*time.Second, time.Minute)
		if err != nil || r != "+OK\r\n" {
			t.Fatalf("%v: %q, %v", args, r, err)
		}
	}
	read := func(cmd, k, want string) {
		t.Helper()
		w := "$-1\r\n"
		if want != "" {
			w = fmt.Sprintf("$%d\r\n%s\r\n", len(want), want)
		}
		if r, err := c.write(0, 3, cmd, k); err != nil || r != w {
			t.Fatalf("%s %s on node %d: %q, %v; want %q", cmd, k, c.leader(0).id, r, err, w)
		}
	}
	lockIs := func(k, want string) { t.Helper(); read("get-lock", k, want) }
	partIs := func(k, want string) { t.Helper(); read("get-part", k, want) }
	noLocks(true)
	lockIs("a", "")
	partIs("p1", "")
	do("part", "p1", "one")
	do("part", "p2", "two")
	do("unpart", "p2")
	partIs("p1", "one")
	partIs("p2", "")
	do("lock", "a")
	noLocks(false)
	lockIs("a", "held")
	do("lock", "a", "v2") // an overwrite is not a second record
	lockIs("a", "v2")
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
	restartLeader := func() {
		t.Helper()
		l := c.leader(0)
		c.stop(l.id)
		c.restart(l.id, l.dir)
		c.moveLeader(t, 0, l.id)
	}
	restartLeader()
	noLocks(false)
	lockIs("k", "held")
	lockIs("a", "")
	partIs("p1", "one")
	partIs("p2", "")

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
	lockIs("k", "held")
	partIs("p1", "one")
	do("clear")
	noLocks(true)
	lockIs("k", "")
	partIs("p1", "")
	do("lock", "k")
	do("unlock", "k")
	noLocks(true)

	// Past the memory bound the table is read from disk, and held in
	// memory again once it shrinks (rebuildAt) or empties.
	const many = 20_000 // above mirrorRecords
	do("lock-many", "m", fmt.Sprint(many))
	lockIs("m0", "m0")
	lockIs(fmt.Sprint("m", many-1), fmt.Sprint("m", many-1))
	do("unlock", "m7")
	lockIs("m7", "")
	do("lock", "m7", "again")
	lockIs("m7", "again")
	do("unlock-many", "m", fmt.Sprint(many-1))
	noLocks(false)
	lockIs(fmt.Sprint("m", many-1), fmt.Sprint("m", many-1))
	do("unlock", fmt.Sprint("m", many-1))
	noLocks(true)
	do("lock", "z", "zz")
	lockIs("z", "zz")
	lockIs("m0", "")
	// A restart with many records loads the count, not all of them.
	do("lock-many", "m", fmt.Sprint(many))
	restartLeader()
	noLocks(false)
	lockIs("m5", "m5")
	lockIs("z", "zz")
	do("unlock-many", "m", fmt.Sprint(many))
	do("unlock", "z")
	noLocks(true)
	lockIs("z", "")
}
