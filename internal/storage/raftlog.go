package storage

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Default bounds of the in-memory log tail kept per group. Entries older
// than the tail are read back from Pebble (only lagging followers need them).
const (
	defaultCacheEntries = 1024
	defaultCacheBytes   = 4 << 20
)

// LogStore is one group's raft log and hard state, persisted in Pebble and
// mirrored in memory for the recent tail. It implements raft.Storage.
//
// It is used only from the engine goroutine that drives the group's
// RawNode, so it has no lock.
type LogStore struct {
	db    *pebble.DB
	group uint64

	hs    *pb.HardState
	conf  *pb.ConfState // conf state as of the applied index, for InitialState
	trunc TruncatedState
	// Invariant: last >= trunc.Index; entries (trunc.Index, last] exist on disk.
	last, lastTerm uint64
	// cache holds entries (last-len(cache), last], contiguous.
	cache      []*pb.Entry
	cacheBytes int
}

var _ raft.Storage = (*LogStore)(nil)

// LoadLogStore reads group's log state from db.
//
// applied is the group's applied index. Entries may be applied (and the
// applied index written) before the hard state recording their commit is
// durable — they were committed by a quorum and are in the local log — so
// the loaded commit index is raised to applied if it lags.
func LoadLogStore(db *pebble.DB, group uint64, conf *pb.ConfState, applied uint64) (*LogStore, error) {
	s := &LogStore{db: db, group: group, hs: &pb.HardState{}, conf: pb.EnsureConfState(conf)}
	if b, ok, err := Get(db, HardStateKey(group)); err != nil {
		return nil, err
	} else if ok {
		if err := proto.Unmarshal(b, s.hs); err != nil {
			return nil, fmt.Errorf("%w: hard state of group %d: %v", ErrCorrupt, group, err)
		}
	}
	if s.hs.GetCommit() < applied {
		s.hs.Commit = new(applied)
	}
	if b, ok, err := Get(db, TruncatedKey(group)); err != nil {
		return nil, err
	} else if ok {
		if s.trunc, err = decodeTruncated(b); err != nil {
			return nil, err
		}
	}
	s.last, s.lastTerm = s.trunc.Index, s.trunc.Term
	// Find the last entry by seeking to the end of the group's log span.
	lo, hi := LogSpan(group, s.trunc.Index+1, ^uint64(0))
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	// Load the tail into the cache, newest first, within bounds.
	var tail []*pb.Entry
	bytes := 0
	for ok := it.Last(); ok && len(tail) < defaultCacheEntries && bytes < defaultCacheBytes; ok = it.Prev() {
		e := &pb.Entry{}
		if err := proto.Unmarshal(it.Value(), e); err != nil {
			return nil, fmt.Errorf("%w: log entry of group %d: %v", ErrCorrupt, group, err)
		}
		tail = append(tail, e)
		bytes += len(it.Value())
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	for i, j := 0, len(tail)-1; i < j; i, j = i+1, j-1 {
		tail[i], tail[j] = tail[j], tail[i]
	}
	if n := len(tail); n > 0 {
		s.last, s.lastTerm = tail[n-1].GetIndex(), tail[n-1].GetTerm()
		if tail[0].GetIndex() != s.last-uint64(n)+1 {
			return nil, fmt.Errorf("%w: log of group %d has a gap", ErrCorrupt, group)
		}
	}
	s.cache, s.cacheBytes = tail, bytes
	return s, nil
}

// InitialState implements raft.Storage.
func (s *LogStore) InitialState() (*pb.HardState, *pb.ConfState, error) {
	return proto.Clone(s.hs).(*pb.HardState), proto.Clone(s.conf).(*pb.ConfState), nil
}

// FirstIndex implements raft.Storage.
func (s *LogStore) FirstIndex() (uint64, error) { return s.trunc.Index + 1, nil }

// LastIndex implements raft.Storage.
func (s *LogStore) LastIndex() (uint64, error) { return s.last, nil }

// LastIndexDurable is the last index written by batches already committed
// with Sync. The engine commits every batch that appends entries with Sync
// before touching the LogStore again, so between cycles it equals LastIndex.
func (s *LogStore) LastIndexDurable() uint64 { return s.last }

// Truncated returns the truncated state.
func (s *LogStore) Truncated() TruncatedState { return s.trunc }

func (s *LogStore) cacheStart() uint64 { return s.last - uint64(len(s.cache)) + 1 }

// Term implements raft.Storage.
func (s *LogStore) Term(i uint64) (uint64, error) {
	switch {
	case i == s.trunc.Index:
		return s.trunc.Term, nil
	case i < s.trunc.Index:
		return 0, raft.ErrCompacted
	case i > s.last:
		return 0, raft.ErrUnavailable
	case i == s.last:
		return s.lastTerm, nil
	case len(s.cache) > 0 && i >= s.cacheStart():
		return s.cache[i-s.cacheStart()].GetTerm(), nil
	}
	e, err := s.readEntry(i)
	if err != nil {
		return 0, err
	}
	return e.GetTerm(), nil
}

func (s *LogStore) readEntry(i uint64) (*pb.Entry, error) {
	b, ok, err := Get(s.db, LogKey(s.group, i))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: group %d missing log entry %d", ErrCorrupt, s.group, i)
	}
	e := &pb.Entry{}
	if err := proto.Unmarshal(b, e); err != nil {
		return nil, fmt.Errorf("%w: log entry %d of group %d: %v", ErrCorrupt, i, s.group, err)
	}
	return e, nil
}

// Entries implements raft.Storage.
func (s *LogStore) Entries(lo, hi, maxSize uint64) ([]*pb.Entry, error) {
	if lo <= s.trunc.Index {
		return nil, raft.ErrCompacted
	}
	if hi > s.last+1 {
		return nil, fmt.Errorf("storage: entries [%d, %d) beyond last index %d", lo, hi, s.last)
	}
	var out []*pb.Entry
	var size uint64
	add := func(e *pb.Entry) bool {
		sz := uint64(proto.Size(e))
		if len(out) > 0 && size+sz > maxSize {
			return false
		}
		out = append(out, e)
		size += sz
		return true
	}
	next := lo
	if len(s.cache) == 0 || lo < s.cacheStart() {
		end := hi
		if len(s.cache) > 0 && s.cacheStart() < end {
			end = s.cacheStart()
		}
		start, stop := LogSpan(s.group, lo, end)
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: stop})
		if err != nil {
			return nil, err
		}
		for ok := it.First(); ok; ok = it.Next() {
			e := &pb.Entry{}
			if err := proto.Unmarshal(it.Value(), e); err != nil {
				it.Close()
				return nil, fmt.Errorf("%w: log entry of group %d: %v", ErrCorrupt, s.group, err)
			}
			if e.GetIndex() != next {
				it.Close()
				return nil, fmt.Errorf("%w: group %d log gap at %d", ErrCorrupt, s.group, next)
			}
			if !add(e) {
				it.Close()
				return out, nil
			}
			next++
		}
		if err := it.Close(); err != nil {
			return nil, err
		}
		if next < end {
			return nil, fmt.Errorf("%w: group %d log missing entries from %d", ErrCorrupt, s.group, next)
		}
	}
	for ; next < hi; next++ {
		if !add(s.cache[next-s.cacheStart()]) {
			break
		}
	}
	return out, nil
}

// Snapshot implements raft.Storage. The engine wraps LogStore to provide
// real snapshots; a bare LogStore has none to offer.
func (s *LogStore) Snapshot() (*pb.Snapshot, error) {
	return nil, raft.ErrSnapshotTemporarilyUnavailable
}

// Append writes entries into b, replacing any conflicting suffix, and
// updates the in-memory view. The caller must commit b (with Sync) before
// the group's RawNode is used again; a failed commit is fatal.
func (s *LogStore) Append(b *pebble.Batch, ents []*pb.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	first := ents[0].GetIndex()
	if first <= s.trunc.Index {
		return fmt.Errorf("storage: group %d append at %d below truncation %d", s.group, first, s.trunc.Index)
	}
	if first > s.last+1 {
		return fmt.Errorf("storage: group %d append at %d leaves a gap after %d", s.group, first, s.last)
	}
	for _, e := range ents {
		v, err := proto.Marshal(e)
		if err != nil {
			return err
		}
		if err := b.Set(LogKey(s.group, e.GetIndex()), v, nil); err != nil {
			return err
		}
	}
	newLast := ents[len(ents)-1].GetIndex()
	if newLast < s.last {
		// Entries past the new end belong to a log that lost; remove them.
		lo, hi := LogSpan(s.group, newLast+1, s.last+1)
		if err := b.DeleteRange(lo, hi, nil); err != nil {
			return err
		}
	}
	// Update the cached tail. The array is reused: Entries hands raft
	// copies of the slice, never the cache's own, so overwriting a
	// replaced suffix in place is safe, and appends cost amortized O(1)
	// instead of a copy of the whole tail each.
	if len(s.cache) > 0 && first >= s.cacheStart() {
		keep := int(first - s.cacheStart())
		for _, e := range s.cache[keep:] {
			s.cacheBytes -= proto.Size(e)
		}
		clear(s.cache[keep:])
		s.cache = s.cache[:keep]
	} else {
		s.cache, s.cacheBytes = nil, 0
	}
	for _, e := range ents {
		s.cache = append(s.cache, e)
		s.cacheBytes += proto.Size(e)
	}
	s.last, s.lastTerm = newLast, ents[len(ents)-1].GetTerm()
	s.trimCache()
	return nil
}

func (s *LogStore) trimCache() {
	drop := 0
	for len(s.cache)-drop > defaultCacheEntries || (s.cacheBytes > defaultCacheBytes && len(s.cache)-drop > 1) {
		s.cacheBytes -= proto.Size(s.cache[drop])
		drop++
	}
	s.dropCache(drop)
}

// dropCache forgets the oldest n cached entries by reslicing; the slots
// are cleared so the entries can be collected, and the next append that
// outgrows the array copies only the live tail.
func (s *LogStore) dropCache(n int) {
	clear(s.cache[:n])
	s.cache = s.cache[n:]
}

// SetHardState writes hs into b.
func (s *LogStore) SetHardState(b *pebble.Batch, hs *pb.HardState) error {
	v, err := proto.Marshal(hs)
	if err != nil {
		return err
	}
	s.hs = proto.Clone(hs).(*pb.HardState)
	return b.Set(HardStateKey(s.group), v, nil)
}

// SetConf records the conf state as of the applied index (it is returned by
// InitialState after a restart).
func (s *LogStore) SetConf(cs *pb.ConfState) { s.conf = proto.Clone(cs).(*pb.ConfState) }

// Truncate removes log entries up to and including index from b. index
// must be applied; the caller commits b.
func (s *LogStore) Truncate(b *pebble.Batch, index uint64) error {
	if index <= s.trunc.Index {
		return nil
	}
	if index > s.last {
		return fmt.Errorf("storage: group %d truncate to %d beyond last %d", s.group, index, s.last)
	}
	term, err := s.Term(index)
	if err != nil {
		return err
	}
	lo, hi := LogSpan(s.group, s.trunc.Index+1, index+1)
	if err := b.DeleteRange(lo, hi, nil); err != nil {
		return err
	}
	s.trunc = TruncatedState{Index: index, Term: term}
	if err := b.Set(TruncatedKey(s.group), s.trunc.encode(), nil); err != nil {
		return err
	}
	if len(s.cache) > 0 && index >= s.cacheStart() {
		drop := int(index - s.cacheStart() + 1)
		for _, e := range s.cache[:drop] {
			s.cacheBytes -= proto.Size(e)
		}
		s.dropCache(drop)
	}
	return nil
}

// ResetTo discards the whole log and restarts it after a snapshot at
// (index, term), writing into b.
func (s *LogStore) ResetTo(b *pebble.Batch, index, term uint64) error {
	lo, hi := LogSpan(s.group, 0, ^uint64(0))
	if err := b.DeleteRange(lo, hi, nil); err != nil {
		return err
	}
	s.trunc = TruncatedState{Index: index, Term: term}
	if err := b.Set(TruncatedKey(s.group), s.trunc.encode(), nil); err != nil {
		return err
	}
	s.last, s.lastTerm = index, term
	s.cache, s.cacheBytes = nil, 0
	return nil
}

// WriteInitial writes the state of a freshly bootstrapped replica whose log
// starts after (index, term) with configuration conf.
func WriteInitial(b *pebble.Batch, group, index, term uint64, conf *pb.ConfState, desc *Descriptor, keys int64) error {
	ts := TruncatedState{Index: index, Term: term}
	hs, err := proto.Marshal(&pb.HardState{Term: new(term), Commit: new(index)})
	if err != nil {
		return err
	}
	as := AppliedState{Index: index, Term: term, Keys: keys, Conf: conf}
	for _, kv := range [][2][]byte{
		{TruncatedKey(group), ts.encode()},
		{HardStateKey(group), hs},
		{AppliedKey(group), as.Encode()},
		{DescriptorKey(group), desc.Encode()},
	} {
		if err := b.Set(kv[0], kv[1], nil); err != nil {
			return err
		}
	}
	return nil
}
