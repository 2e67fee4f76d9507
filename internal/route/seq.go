package route

import "sync"

// seqTracker hands out sequence numbers for writes from this origin and
// tracks the watermark: the lowest seq not yet answered. Every seq below
// it is finished, so replicas may drop its dedupe record and refuse late
// copies of it.
type seqTracker struct {
	mu   sync.Mutex
	next uint64          // guarded by mu; next seq to hand out
	low  uint64          // guarded by mu; Invariant: every seq < low is done
	done map[uint64]bool // guarded by mu; seqs >= low finished out of order
}

func newSeqTracker() *seqTracker {
	return &seqTracker{next: 1, low: 1, done: map[uint64]bool{}}
}

// begin returns a fresh seq and the current watermark.
func (s *seqTracker) begin() (seq, watermark uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seq = s.next
	s.next++
	return seq, s.low
}

// end marks seq answered (successfully or not: no retry of it will follow).
func (s *seqTracker) end(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq < s.low {
		return
	}
	s.done[seq] = true
	for s.done[s.low] {
		delete(s.done, s.low)
		s.low++
	}
}
