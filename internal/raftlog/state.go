package raftlog

import (
	"fmt"

	pb "go.etcd.io/raft/v3/raftpb"
)

// entryMeta locates one entry's marshaled bytes in a segment: 24 bytes per
// retained entry, the index's whole per-entry cost.
type entryMeta struct {
	term uint64
	seg  uint32 // segment sequence number
	off  uint32 // offset of the marshaled entry in the segment file
	size uint32
	crc  uint32 // crc32c of the marshaled entry, checked on every read
}

type hardState struct{ term, vote, commit uint64 }

// group is one raft group's log as the index sees it.
//
// Invariants: ci <= missing <= last; ents holds (missing, last] in order;
// cache holds the newest len(cache) entries, (last-len(cache), last], and
// never reaches below missing. missing > ci only while recovery replays a
// log whose oldest segments were deleted: entries there lived in a deleted
// segment and must be compacted away (or replaced) by a later record, or
// Open fails.
type group struct {
	hs             hardState
	ci, ct         uint64 // compacted through ci; Term(ci) == ct
	last, lastTerm uint64
	missing        uint64
	ents           []entryMeta
	cache          []*pb.Entry
	cacheBytes     int
}

func (g *group) present() uint64 { return g.missing + 1 } // first index held in ents

func (g *group) term(i uint64) (uint64, bool) {
	switch {
	case i == g.ci:
		return g.ct, true
	case i == g.last:
		return g.lastTerm, true
	case i > g.missing && i <= g.last:
		return g.ents[i-g.present()].term, true
	}
	return 0, false
}

// pin is the oldest segment holding an entry the group still needs.
func (g *group) pin() (uint32, bool) {
	if len(g.ents) == 0 {
		return 0, false
	}
	return g.ents[0].seg, true
}

// op is one operation of a batch, as committed and as replayed.
type op struct {
	kind  byte
	group uint64
	first uint64      // opAppend
	ents  []*pb.Entry // opAppend, commit path only
	metas []entryMeta // opAppend
	hs    hardState   // opHardState
	index uint64      // opCompact, opReset
	term  uint64      // opCompact, opReset
}

// state is the whole index: every live group.
type state struct {
	groups       map[uint64]*group
	cacheEntries int
	cacheBytes   int
}

func (s *state) get(id uint64) *group {
	g := s.groups[id]
	if g == nil {
		g = &group{}
		s.groups[id] = g
	}
	return g
}

// apply performs o on the index. Commit validated o already, so an error
// here means the bytes on disk are inconsistent (replay) or a bug.
func (s *state) apply(o *op) error {
	if o.kind == opDrop {
		delete(s.groups, o.group)
		return nil
	}
	g := s.get(o.group)
	switch o.kind {
	case opHardState:
		g.hs = o.hs
	case opAppend:
		return s.appendTo(g, o)
	case opCompact:
		return compact(g, o.index, o.term)
	case opReset:
		if err := checkReset(g.ci, o.index); err != nil {
			return err
		}
		*g = group{hs: g.hs, ci: o.index, ct: o.term, last: o.index, lastTerm: o.term, missing: o.index}
	default:
		return fmt.Errorf("unknown op %q", o.kind)
	}
	return nil
}

func (s *state) appendTo(g *group, o *op) error {
	n := uint64(len(o.metas))
	if n == 0 {
		return fmt.Errorf("append of no entries at %d", o.first)
	}
	prev, ok := g.term(o.first - 1)
	if err := checkAppend(g.ci, g.last, o.first, n, prev, ok, o.metas[0].term); err != nil {
		return err
	}
	for i := 1; i < len(o.metas); i++ {
		if o.metas[i].term < o.metas[i-1].term {
			return fmt.Errorf("append with decreasing terms at %d", o.first+uint64(i))
		}
	}
	// Keep what precedes first; the suffix from first is replaced.
	if o.first <= g.missing {
		g.missing = o.first - 1
		g.ents = g.ents[:0]
	} else {
		g.ents = g.ents[:o.first-g.present()]
	}
	g.ents = append(g.ents, o.metas...)
	oldLast := g.last
	g.last = o.first + n - 1
	g.lastTerm = o.metas[n-1].term

	cs := oldLast - uint64(len(g.cache)) + 1
	switch {
	case len(g.cache) > 0 && o.first > cs:
		keep := int(o.first - cs)
		for _, e := range g.cache[keep:] {
			g.cacheBytes -= len(e.GetData())
		}
		clear(g.cache[keep:])
		g.cache = g.cache[:keep]
	default:
		g.cache, g.cacheBytes = nil, 0
	}
	if o.ents != nil {
		// A batch larger than the cache caches only its tail.
		from := max(0, len(o.ents)-s.cacheEntries)
		if from > 0 {
			g.cache, g.cacheBytes = nil, 0
		}
		for _, e := range o.ents[from:] {
			g.cache = append(g.cache, e)
			g.cacheBytes += len(e.GetData())
		}
	} else {
		g.cache, g.cacheBytes = nil, 0
	}
	s.trimCache(g)
	return nil
}

// trimCache drops the oldest cached entries beyond the bounds (the newest
// one always stays: it is what a leader sends next).
func (s *state) trimCache(g *group) {
	drop := 0
	for len(g.cache)-drop > s.cacheEntries || (g.cacheBytes > s.cacheBytes && len(g.cache)-drop > 1) {
		g.cacheBytes -= len(g.cache[drop].GetData())
		drop++
	}
	dropCache(g, drop)
}

// dropCache forgets the oldest n cached entries. The array is resliced,
// not copied (append reallocates it once it is full, keeping only the live
// part), and the dropped slots are cleared so the entries can be freed.
func dropCache(g *group, n int) {
	if n > 0 {
		clear(g.cache[:n])
		g.cache = g.cache[n:]
	}
}

// checkAppend is what appending n > 0 entries at first (the first of
// term t0) requires of a log (ci, last] whose entry first-1 has term prev
// (if prevOK). Commit's validate and apply share it (and checkCompact,
// checkReset), so that a batch Commit accepts never fails in apply after
// its record is written, which would fail every later Open.
func checkAppend(ci, last, first, n, prev uint64, prevOK bool, t0 uint64) error {
	if first <= ci || first > last+1 || first+n-1 < first {
		return fmt.Errorf("append [%d, +%d) to a log (%d, %d]", first, n, ci, last)
	}
	if prevOK && prev > t0 {
		return fmt.Errorf("append at %d with term %d after term %d", first, t0, prev)
	}
	return nil
}

// checkCompact: a compaction beyond ci must stay within the log and agree
// with the entry's term (if known).
func checkCompact(last, index, term, t uint64, tOK bool) error {
	if index > last {
		return fmt.Errorf("compact to %d beyond last index %d", index, last)
	}
	if tOK && t != term {
		return fmt.Errorf("compact to %d with term %d, entry has term %d", index, term, t)
	}
	return nil
}

// checkReset: a reset never moves the compaction point backwards (raft
// only applies a snapshot newer than its log's start), and the log after
// it must have room for an entry.
func checkReset(ci, index uint64) error {
	if index < ci {
		return fmt.Errorf("reset to %d below the compacted index %d", index, ci)
	}
	if index == ^uint64(0) {
		return fmt.Errorf("reset to %d leaves no index for an entry", index)
	}
	return nil
}

func compact(g *group, index, term uint64) error {
	if index <= g.ci {
		return nil
	}
	t, ok := g.term(index)
	if err := checkCompact(g.last, index, term, t, ok); err != nil {
		return err
	}
	if index > g.missing {
		drop := index - g.missing
		// Copy when most of the slice is dead, so that a log that is
		// compacted as fast as it grows does not keep its old array alive.
		if rest := g.ents[drop:]; cap(rest) > 2*len(rest)+64 {
			g.ents = append([]entryMeta(nil), rest...)
		} else {
			g.ents = rest
		}
		g.missing = index
	}
	g.ci, g.ct = index, term
	if cs := g.last - uint64(len(g.cache)) + 1; len(g.cache) > 0 && index >= cs {
		drop := int(index - cs + 1)
		for _, e := range g.cache[:drop] {
			g.cacheBytes -= len(e.GetData())
		}
		dropCache(g, drop)
	}
	return nil
}

// shadow is a group's bounds as a batch under validation would leave them.
// It resolves the term of a compaction inside the batch without touching
// the index.
type shadow struct {
	ci, ct, last uint64
	real         bool        // indexes below pendFirst still come from the index
	existed      bool        // the group was in the index before the batch
	exists       bool        // and is after the batch so far
	pendFrom     uint64      // first index of pend
	pend         []*pb.Entry // entries appended by the batch so far
}

// validate checks o against sh and advances sh, filling in what the record
// needs (the term of a compaction): Commit hands it a copy of the batch's
// ops. It never changes the index.
func validate(s *state, sh *shadow, o *op) error {
	switch o.kind {
	case opDrop:
		*sh = shadow{existed: sh.existed}
	case opHardState:
		sh.exists = true
	case opReset:
		if err := checkReset(sh.ci, o.index); err != nil {
			return fmt.Errorf("raftlog: group %d: %v", o.group, err)
		}
		*sh = shadow{ci: o.index, ct: o.term, last: o.index, existed: sh.existed, exists: true}
	case opAppend:
		first := o.ents[0].GetIndex()
		for i, e := range o.ents {
			if e.GetIndex() != first+uint64(i) {
				return fmt.Errorf("raftlog: group %d append: entry %d has index %d, want %d", o.group, i, e.GetIndex(), first+uint64(i))
			}
			if i > 0 && e.GetTerm() < o.ents[i-1].GetTerm() {
				return fmt.Errorf("raftlog: group %d append: term decreases at index %d", o.group, e.GetIndex())
			}
		}
		prev, ok := sh.termAt(s, o.group, first-1)
		if err := checkAppend(sh.ci, sh.last, first, uint64(len(o.ents)), prev, ok, o.ents[0].GetTerm()); err != nil {
			return fmt.Errorf("raftlog: group %d: %v", o.group, err)
		}
		if len(sh.pend) > 0 && first >= sh.pendFrom {
			sh.pend = append(sh.pend[:first-sh.pendFrom:first-sh.pendFrom], o.ents...)
		} else {
			sh.pendFrom, sh.pend = first, append([]*pb.Entry(nil), o.ents...)
		}
		sh.last = first + uint64(len(o.ents)) - 1
		sh.exists = true
		o.first = first
	case opCompact:
		if o.index <= sh.ci {
			o.kind = 0 // nothing to record
			return nil
		}
		t, ok := sh.termAt(s, o.group, o.index)
		if err := checkCompact(sh.last, o.index, t, t, ok); err != nil {
			return fmt.Errorf("raftlog: group %d: %v", o.group, err)
		}
		if !ok {
			return fmt.Errorf("raftlog: group %d has no term for %d", o.group, o.index)
		}
		o.term = t
		sh.ci, sh.ct = o.index, t
	}
	return nil
}

// termAt is the term of entry i as the batch so far leaves the log.
func (sh *shadow) termAt(s *state, group, i uint64) (uint64, bool) {
	switch {
	case i < sh.ci || i > sh.last:
		return 0, false
	case i == sh.ci:
		return sh.ct, true
	case len(sh.pend) > 0 && i >= sh.pendFrom:
		return sh.pend[i-sh.pendFrom].GetTerm(), true
	case sh.real:
		return s.groups[group].term(i)
	}
	return 0, false
}

func newShadow(g *group) *shadow {
	if g == nil {
		return &shadow{}
	}
	return &shadow{ci: g.ci, ct: g.ct, last: g.last, real: true, existed: true, exists: true}
}
