package raftlog

import (
	"cmp"
	"hash/crc32"
	"io"
	"maps"
	"slices"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// The reads follow raft.Storage: a group the log has never seen is an
// empty log (first index 1, last index 0).

// emptyGroup stands in for a group the log does not hold.
var emptyGroup = &group{}

func (l *Log) groupLocked(id uint64) *group {
	if g := l.mu.st.groups[id]; g != nil {
		return g
	}
	return emptyGroup
}

// HardState returns group's last recorded hard state (empty if none).
func (l *Log) HardState(group uint64) (*pb.HardState, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return nil, ErrClosed
	}
	hs := l.groupLocked(group).hs
	return &pb.HardState{Term: proto.Uint64(hs.term), Vote: proto.Uint64(hs.vote), Commit: proto.Uint64(hs.commit)}, nil
}

// FirstIndex is raft.Storage.FirstIndex: one past the compacted index.
func (l *Log) FirstIndex(group uint64) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return 0, ErrClosed
	}
	return l.groupLocked(group).ci + 1, nil
}

// LastIndex is raft.Storage.LastIndex.
func (l *Log) LastIndex(group uint64) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return 0, ErrClosed
	}
	return l.groupLocked(group).last, nil
}

// Term is raft.Storage.Term: the term of entry i, for i in
// [FirstIndex-1, LastIndex]; ErrCompacted below, ErrUnavailable above.
func (l *Log) Term(group, i uint64) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return 0, ErrClosed
	}
	g := l.groupLocked(group)
	switch {
	case i < g.ci:
		return 0, raft.ErrCompacted
	case i > g.last:
		return 0, raft.ErrUnavailable
	}
	t, ok := g.term(i)
	if !ok {
		return 0, corruptf("group %d has no term for %d", group, i)
	}
	return t, nil
}

// Groups lists the groups the log holds, in ascending order.
func (l *Log) Groups() []uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return sortedGroups(l.mu.st.groups)
}

func sortedGroups(m map[uint64]*group) []uint64 { return slices.Sorted(maps.Keys(m)) }

// Entries is raft.Storage.Entries: entries [lo, hi), as many as fit in
// maxSize bytes (proto size) but always at least one. ErrCompacted if lo
// is compacted, ErrUnavailable if hi is beyond the last index + 1.
// Entries still in the tail cache come from memory; older ones are read
// from their segments (contiguous ones with one read) and checked against
// the crc32c the index holds.
func (l *Log) Entries(group, lo, hi, maxSize uint64) ([]*pb.Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return nil, ErrClosed
	}
	g := l.groupLocked(group)
	switch {
	case lo <= g.ci:
		return nil, raft.ErrCompacted
	case hi > g.last+1:
		return nil, raft.ErrUnavailable
	case lo >= hi:
		return nil, nil
	}
	var out []*pb.Entry
	var size uint64
	full := false
	add := func(e *pb.Entry) bool {
		sz := uint64(proto.Size(e))
		if len(out) > 0 && size+sz > maxSize {
			full = true
			return false
		}
		out = append(out, e)
		size += sz
		return true
	}
	cacheStart := g.last - uint64(len(g.cache)) + 1
	next := lo
	if next < cacheStart {
		end := min(hi, cacheStart)
		if err := l.readLocked(group, g, next, end, maxSize, add); err != nil {
			return nil, err
		}
		if full {
			return out, nil
		}
		next = end
	}
	for ; next < hi; next++ {
		if !add(g.cache[next-cacheStart]) {
			break
		}
	}
	return out, nil
}

// readLocked reads entries [lo, hi) of g from the segments, passing each to
// add until it returns false.
func (l *Log) readLocked(id uint64, g *group, lo, hi, maxSize uint64, add func(*pb.Entry) bool) error {
	if lo <= g.missing {
		return corruptf("group %d entry %d is in no segment", id, lo)
	}
	metas := g.ents[lo-g.present() : hi-g.present()]
	var buf []byte
	for len(metas) > 0 {
		// One read for a run of entries adjacent in one segment, no longer
		// than maxSize (plus the first entry) allows.
		run, n := 1, int(metas[0].size)
		for run < len(metas) && metas[run].seg == metas[0].seg &&
			metas[run].off == metas[run-1].off+metas[run-1].size &&
			uint64(n)+uint64(metas[run].size) <= max(maxSize, uint64(metas[0].size)) {
			n += int(metas[run].size)
			run++
		}
		f := l.segFileLocked(metas[0].seg)
		if f == nil {
			return corruptf("group %d entry %d is in segment %d, which is gone", id, lo, metas[0].seg)
		}
		buf = slices.Grow(buf[:0], n)[:n]
		if k, err := f.ReadAt(buf, int64(metas[0].off)); k < n {
			if err == nil || err == io.EOF {
				err = corruptf("segment %d is shorter than its index says", metas[0].seg)
			}
			return err
		}
		at := 0
		for i, m := range metas[:run] {
			b := buf[at : at+int(m.size)]
			at += int(m.size)
			idx := lo + uint64(i)
			if crc32.Checksum(b, castagnoli) != m.crc {
				return corruptf("group %d entry %d: checksum mismatch in segment %d", id, idx, m.seg)
			}
			e := &pb.Entry{}
			if err := proto.Unmarshal(b, e); err != nil {
				return corruptf("group %d entry %d: %v", id, idx, err)
			}
			if e.GetIndex() != idx || e.GetTerm() != m.term {
				return corruptf("group %d entry %d: read index %d term %d, want term %d", id, idx, e.GetIndex(), e.GetTerm(), m.term)
			}
			if !add(e) {
				return nil
			}
		}
		lo += uint64(run)
		metas = metas[run:]
	}
	return nil
}

func (l *Log) segFileLocked(seq uint32) interface {
	ReadAt([]byte, int64) (int, error)
} {
	segs := l.mu.segs
	i, ok := slices.BinarySearchFunc(segs, seq, func(s *segment, seq uint32) int {
		switch {
		case s.seq < seq:
			return -1
		case s.seq > seq:
			return 1
		}
		return 0
	})
	if !ok {
		return nil
	}
	return segs[i].f
}

// Pin names the group that holds the oldest segment back.
type Pin struct {
	Group    uint64
	Segment  uint32 // the oldest segment the group still needs
	Segments int    // sealed segments kept because of it
	Bytes    int64  // their size
}

// PinnedBy reports the group whose oldest retained entry keeps the most
// sealed segments on disk (ok is false when every sealed segment is
// deletable). Segments are deleted oldest first, so one group that never
// compacts keeps every segment written since its oldest entry: the caller
// should compact or snapshot that group, or drop it.
func (l *Log) PinnedBy() (p Pin, ok bool) {
	if ps := l.Pins(1); len(ps) > 0 {
		return ps[0], true
	}
	return Pin{}, false
}

// Pins lists every group holding an entry in a sealed segment, the oldest
// pin first (ties by group id), at most limit of them (all if limit <= 0):
// PinnedBy alone hides the next group behind one that cannot compact yet.
func (l *Log) Pins(limit int) []Pin {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed || len(l.mu.segs) < 2 {
		return nil
	}
	sealed := l.mu.segs[:len(l.mu.segs)-1]
	act := l.mu.segs[len(l.mu.segs)-1].seq
	var out []Pin
	for _, id := range sortedGroups(l.mu.st.groups) {
		s, has := l.mu.st.groups[id].pin()
		if !has || s >= act {
			continue
		}
		p := Pin{Group: id, Segment: s}
		for _, sg := range sealed {
			if sg.seq >= s {
				p.Segments++
				p.Bytes += sg.size
			}
		}
		out = append(out, p)
	}
	slices.SortStableFunc(out, func(a, b Pin) int { return cmp.Compare(a.Segment, b.Segment) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// Has reports whether group has a log here (an empty one counts).
func (l *Log) Has(group uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.mu.st.groups[group]
	return ok
}

// Err is the failure that stopped the log (a write or fsync that failed:
// every later Commit fails with it), or nil.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.err
}

// Stats describe the log's footprint.
type Stats struct {
	Segments int   // segment files, the active one included
	Bytes    int64 // their total size
	Groups   int
	Entries  int // retained entries across groups (24 bytes of index each)
	Cached   int // entries in the tail caches
}

// Stats returns the current footprint.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := Stats{Segments: len(l.mu.segs), Groups: len(l.mu.st.groups)}
	for _, sg := range l.mu.segs {
		s.Bytes += sg.size
	}
	for _, g := range l.mu.st.groups {
		s.Entries += len(g.ents)
		s.Cached += len(g.cache)
	}
	return s
}

// Compact commits a batch that compacts group through index, without
// sync: losing it in a crash only brings back entries raft no longer
// needs. The segments it frees are deleted after the next synced commit.
func (l *Log) Compact(group, index uint64) error {
	b := l.NewBatch()
	b.Compact(group, index)
	return l.Commit(b, false)
}

// DropGroup commits a synced batch that removes group: a replica removed
// from the node must not come back after a crash.
func (l *Log) DropGroup(group uint64) error {
	b := l.NewBatch()
	b.Drop(group)
	return l.Commit(b, true)
}
