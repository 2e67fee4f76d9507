package raftstore

import "slices"

// Write load, for the placement driver's splits by load: every replica
// counts the commands it applies and keeps the slots of the last few
// that named a key. Both follow the log (every replica applies the same
// entries), so the count a new leader reports continues the old one's,
// except after a restart, when it starts from zero (the driver skips a
// sample that went backwards). Only the loop writes them; GroupStatus
// publishes copies.

// slotSamples is how many recent write slots a replica keeps: enough for
// a median that halves the load of a skewed range, small enough to copy
// with every status.
const slotSamples = 64

// writeLoad is a replica's applied-command count and recent write slots.
type writeLoad struct {
	writes uint64
	slots  [slotSamples]uint16
	n      int // samples taken, to slotSamples; next is n % slotSamples
}

func (l *writeLoad) note(slot uint16, keyed bool) {
	l.writes++
	if keyed {
		l.slots[l.n%slotSamples] = slot
		l.n++
	}
}

// HotSlot is the median slot of the group's recent writes, and false if
// it has too few samples to say (a split there halves the write load).
func (s GroupStatus) HotSlot() (uint16, bool) {
	n := min(s.slotN, slotSamples)
	if n < slotSamples/4 {
		return 0, false
	}
	v := slices.Clone(s.slotSamples[:n])
	slices.Sort(v)
	return v[n/2], true
}
