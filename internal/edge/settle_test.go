package edge

import (
	"github.com/kintsu/kintsu/internal/ring"
	"testing"
	"time"
)

// TestLeaderWatchSettles: a partition first seen counts as settled; a
// new leader is settled only movedSettle after this node first saw it.
func TestLeaderWatchSettles(t *testing.T) {
	var w leaderWatch
	t0 := time.Unix(1000, 0)
	if !w.settled(7, 1, t0) {
		t.Fatal("a first look is not settled")
	}
	if w.settled(7, 2, t0) || w.settled(7, 2, t0.Add(movedSettle-time.Millisecond)) {
		t.Fatal("a new leader settled at once")
	}
	if !w.settled(7, 2, t0.Add(movedSettle)) {
		t.Fatal("a leader held for movedSettle is not settled")
	}
	if !w.settled(8, 3, t0) || w.settled(7, 1, t0.Add(2*movedSettle)) {
		t.Fatal("partitions are not watched apart, or a return to an old leader settled at once")
	}
}

// TestPrimedWatchHoldsANewLeaderAtFirstLook: leaders known when the edge
// starts are settled; a leader first looked at later, after leaderships
// moved, must hold first, or a client could be sent around nodes that
// just passed it on.
func TestPrimedWatchHoldsANewLeaderAtFirstLook(t *testing.T) {
	v := newFakeView(1, 4)
	var w leaderWatch
	w.prime(v)
	now := time.Unix(1_700_000_000, 0)
	if !w.settled(0, v.LeaderOf(0), now) {
		t.Fatal("a leader known at start is not settled")
	}
	if w.settled(1, 3, now) {
		t.Fatal("a leader first seen after a move counts as settled at once")
	}
	if !w.settled(1, 3, now.Add(movedSettle)) {
		t.Fatal("the new leader never settles")
	}
}

// TestWatchLearnsMovesBeforeAnyoneAsks: the first leader a node learns
// for a partition is no move (settled at once, as at start); a move the
// watch observed counts from when it was observed, not from the first
// redirect asked after it.
func TestWatchLearnsMovesBeforeAnyoneAsks(t *testing.T) {
	var w leaderWatch
	t0 := time.Unix(1_700_000_000, 0)
	w.observe(7, 0, t0) // nothing known at start
	w.observe(7, 2, t0.Add(time.Second))
	if !w.settled(7, 2, t0.Add(time.Second)) {
		t.Fatal("the first leader learnt is not settled")
	}
	w.observe(7, 0, t0.Add(2*time.Second)) // an election
	w.observe(7, 3, t0.Add(2*time.Second+100*time.Millisecond))
	asked := t0.Add(2*time.Second + 900*time.Millisecond)
	if w.settled(7, 3, asked) {
		t.Fatal("a move observed 0.8 s ago counts as settled")
	}
	if !w.settled(7, 3, t0.Add(3*time.Second+100*time.Millisecond)) {
		t.Fatal("the move never settles from when it was observed")
	}
}

// After the slot table changes (a split), a node redirects nobody by it
// for slotsSettle: the other nodes may still route by the old one.
func TestSlotTableChangeSettles(t *testing.T) {
	var w slotWatch
	now := time.Unix(1000, 0)
	first := ring.EqualSlotTable(2)
	if !w.settled(first, now) {
		t.Fatal("the first table seen is no change")
	}
	if !w.settled(ring.EqualSlotTable(2), now.Add(time.Millisecond)) {
		t.Fatal("an equal table rebuilt counted as a change")
	}
	split := ring.EqualSlotTable(4)
	if w.settled(split, now.Add(time.Second)) || w.settled(split, now.Add(time.Second+slotsSettle-time.Millisecond)) {
		t.Fatal("redirecting by a table just changed")
	}
	if !w.settled(split, now.Add(time.Second+slotsSettle)) {
		t.Fatal("a table held for slotsSettle is not settled")
	}
}
