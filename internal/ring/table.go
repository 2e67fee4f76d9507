package ring

import (
	"fmt"
	"slices"
	"sort"
)

// SlotTable maps slots to the partitions that own them by lookup rather
// than arithmetic: contiguous ranges, sorted, covering every slot once,
// each owned by a partition (a raft group id). Today's tables are the
// equal ranges a cluster is created with (EqualSlotTable); the lookup is
// what lets ranges split and merge later (docs/plans/elastic-partitions.md).
// A table is immutable: a changed map is a new table with a higher
// Version.
type SlotTable struct {
	version uint64
	starts  []uint16 // each range's first slot, ascending; starts[0] == 0
	groups  []uint64 // the partition owning the range starting at starts[i]
}

// SlotRangeOwner is one range of a table: slots Start..End (inclusive)
// owned by Group.
type SlotRangeOwner struct {
	Start, End uint16
	Group      uint64
}

// NewSlotTable builds a table from ranges in any order; it refuses ranges
// that leave a slot unowned or give one to two partitions.
func NewSlotTable(version uint64, ranges []SlotRangeOwner) (*SlotTable, error) {
	rs := append([]SlotRangeOwner(nil), ranges...)
	sort.Slice(rs, func(i, j int) bool { return rs[i].Start < rs[j].Start })
	t := &SlotTable{version: version}
	next := 0 // the first slot not yet owned
	for _, r := range rs {
		switch {
		case r.End < r.Start:
			return nil, fmt.Errorf("ring: slot range %d-%d is empty", r.Start, r.End)
		case int(r.Start) < next:
			return nil, fmt.Errorf("ring: slot %d is owned twice (partition %d's range %d-%d)", r.Start, r.Group, r.Start, r.End)
		case int(r.Start) > next:
			return nil, fmt.Errorf("ring: slots %d-%d are owned by no partition", next, r.Start-1)
		}
		t.starts = append(t.starts, r.Start)
		t.groups = append(t.groups, r.Group)
		next = int(r.End) + 1
	}
	if next != SlotCount {
		return nil, fmt.Errorf("ring: slots %d-%d are owned by no partition", next, SlotCount-1)
	}
	return t, nil
}

// EqualSlotTable is the table of a cluster created with partitions equal
// ranges (PartitionOf's): partition i, group i. partitions must be valid
// (Config.Validate).
func EqualSlotTable(partitions int) *SlotTable {
	rs := make([]SlotRangeOwner, partitions)
	for p := range partitions {
		start, end := SlotRange(p, partitions)
		rs[p] = SlotRangeOwner{Start: start, End: end, Group: uint64(p)}
	}
	t, err := NewSlotTable(0, rs)
	if err != nil {
		panic(err) // equal ranges of a valid count always cover the slots
	}
	return t
}

// GroupOf is the partition owning slot (slot < SlotCount).
func (t *SlotTable) GroupOf(slot uint16) uint64 {
	// The last range starting at or before slot.
	i := sort.Search(len(t.starts), func(i int) bool { return t.starts[i] > slot }) - 1
	return t.groups[i]
}

// Version is the version of the map the table was built from.
func (t *SlotTable) Version() uint64 { return t.version }

// Equal reports whether t and o map every slot to the same partition
// (their versions aside).
func (t *SlotTable) Equal(o *SlotTable) bool {
	if t == o {
		return true
	}
	if t == nil || o == nil {
		return false
	}
	return slices.Equal(t.starts, o.starts) && slices.Equal(t.groups, o.groups)
}

// Len is the number of ranges (partitions).
func (t *SlotTable) Len() int { return len(t.starts) }
