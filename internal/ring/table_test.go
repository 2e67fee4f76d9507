package ring

import (
	"math/rand/v2"
	"testing"
)

// TestEqualSlotTableIsPartitionOf: the lookup gives PartitionOf's answer
// for every slot, for every valid partition count.
func TestEqualSlotTableIsPartitionOf(t *testing.T) {
	for p := 1; p <= SlotCount; p *= 2 {
		tb := EqualSlotTable(p)
		if tb.Len() != p {
			t.Fatalf("%d partitions: a table of %d ranges", p, tb.Len())
		}
		for s := range SlotCount {
			if got, want := tb.GroupOf(uint16(s)), uint64(PartitionOf(uint16(s), p)); got != want {
				t.Fatalf("%d partitions, slot %d: group %d, want %d", p, s, got, want)
			}
		}
	}
}

// TestSlotTableRefusesGapsAndOverlaps: every table either covers each
// slot exactly once or is refused; ranges in any order.
func TestSlotTableRefusesGapsAndOverlaps(t *testing.T) {
	ok := []SlotRangeOwner{{0, 99, 7}, {100, 100, 3}, {101, SlotCount - 1, 9}}
	tb, err := NewSlotTable(5, []SlotRangeOwner{ok[2], ok[0], ok[1]})
	if err != nil || tb.Version() != 5 || tb.GroupOf(0) != 7 || tb.GroupOf(99) != 7 || tb.GroupOf(100) != 3 ||
		tb.GroupOf(101) != 9 || tb.GroupOf(SlotCount-1) != 9 {
		t.Fatalf("a valid table: %v %+v", err, tb)
	}
	for name, rs := range map[string][]SlotRangeOwner{
		"gap":        {{0, 98, 1}, {100, SlotCount - 1, 2}},
		"overlap":    {{0, 100, 1}, {100, SlotCount - 1, 2}},
		"short":      {{0, 100, 1}},
		"empty":      {{0, SlotCount - 1, 1}, {5, 4, 2}},
		"none":       nil,
		"late start": {{1, SlotCount - 1, 1}},
	} {
		if _, err := NewSlotTable(1, rs); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Random cuts: a table of random ranges maps each slot to its range.
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		var rs []SlotRangeOwner
		for start := 0; start < SlotCount; {
			end := min(start+r.IntN(3000), SlotCount-1)
			rs = append(rs, SlotRangeOwner{uint16(start), uint16(end), uint64(len(rs) + 10)})
			start = end + 1
		}
		tb, err := NewSlotTable(1, rs)
		if err != nil {
			t.Fatal(err)
		}
		for _, rg := range rs {
			for _, s := range []uint16{rg.Start, rg.End, rg.Start + (rg.End-rg.Start)/2} {
				if got := tb.GroupOf(s); got != rg.Group {
					t.Fatalf("slot %d: group %d, want %d", s, got, rg.Group)
				}
			}
		}
	}
}
