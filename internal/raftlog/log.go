package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/kintsu/kintsu/internal/durable"
)

// Options configure a Log. The zero value is usable.
type Options struct {
	// SegmentSize is the size at which the active segment is sealed and a
	// new one started (default 64 MiB). A record larger than it gets a
	// segment of its own.
	SegmentSize int64
	// CacheEntries and CacheBytes bound the tail of recent entries each
	// group keeps in memory (defaults 1024 entries, 1 MiB of entry data).
	CacheEntries int
	CacheBytes   int
	// Logger receives the WARN about a torn tail dropped at Open, and
	// failures to remove obsolete segments (default slog.Default()).
	Logger *slog.Logger
}

// ErrClosed is returned by every call on a closed Log.
var ErrClosed = errors.New("raftlog: closed")

type segment struct {
	seq  uint32
	f    vfs.File // read handle; the active segment's is also its write handle
	size int64
	// start is where its first batch goes (after its checkpoint); set for
	// the segments this Log created.
	start int64
}

// Log is a node's raft log: every group's entries and hard state in one
// sequence of segment files. It is safe for concurrent use; one mutex
// serialises everything (a Commit holds it across its write and fsync).
type Log struct {
	fs     vfs.FS
	dir    string
	opts   Options
	logger *slog.Logger
	lock   io.Closer

	mu struct {
		sync.Mutex
		st   state
		segs []*segment // ascending, contiguous; the last is active
		// synced is how many bytes of the active segment are durable.
		synced int64
		// err sticks after a failed write or fsync: what reached the disk
		// is then unknown, and only a restart (Open) may find out.
		err    error
		closed bool
		buf    []byte
	}
}

// Batch collects operations on any number of groups; Commit writes them
// as one record, so that after a crash all or none of them are visible.
// Operations on one group apply in the order they were added. A batch is
// committed once. Entries handed to Append must not be modified afterwards
// (the Log keeps them in its tail cache and Entries returns them).
type Batch struct {
	ops  []op
	size int // Bytes, less the record's fixed part: kept as ops are added
}

// NewBatch returns an empty batch.
func (l *Log) NewBatch() *Batch { return &Batch{} }

// Append adds ents (contiguous indexes) to group's log; any existing
// entries from ents[0]'s index on are replaced, as raft requires.
func (b *Batch) Append(group uint64, ents []*pb.Entry) {
	if len(ents) > 0 {
		b.ops = append(b.ops, op{kind: opAppend, group: group, ents: ents})
		b.size += opBytes + 2*binary.MaxVarintLen64
		for _, e := range ents {
			b.size += 2*binary.MaxVarintLen64 + proto.Size(e) // term, length, entry
		}
	}
}

// SetHardState records group's hard state.
func (b *Batch) SetHardState(group uint64, hs *pb.HardState) {
	b.ops = append(b.ops, op{kind: opHardState, group: group,
		hs: hardState{term: hs.GetTerm(), vote: hs.GetVote(), commit: hs.GetCommit()}})
	b.size += opBytes + 3*binary.MaxVarintLen64
}

// Compact discards group's entries up to and including index (which must
// not be beyond the last index; its term stays known to Term).
func (b *Batch) Compact(group, index uint64) {
	b.ops = append(b.ops, op{kind: opCompact, group: group, index: index})
	b.size += opBytes + 2*binary.MaxVarintLen64
}

// Reset discards group's whole log, which restarts after (index, term):
// what applying a snapshot does. The hard state is kept.
func (b *Batch) Reset(group, index, term uint64) {
	b.ops = append(b.ops, op{kind: opReset, group: group, index: index, term: term})
	b.size += opBytes + 2*binary.MaxVarintLen64
}

// Drop removes group entirely (its replica left the node).
func (b *Batch) Drop(group uint64) {
	b.ops = append(b.ops, op{kind: opDrop, group: group})
	b.size += opBytes
}

// opBytes bounds an operation's kind and group id.
const opBytes = 1 + binary.MaxVarintLen64

// Len is the number of operations in the batch.
func (b *Batch) Len() int { return len(b.ops) }

// Bytes is an upper bound on the size of the batch's record, header
// included: a caller splits a large batch under MaxRecordSize with it.
// It counts every integer at its largest encoding, and costs O(1): the
// bound grows as operations are added.
func (b *Batch) Bytes() int {
	return headerSize + 1 + binary.MaxVarintLen64 + b.size // header, kind, op count
}

func (o *Options) fill() {
	if o.SegmentSize <= 0 {
		o.SegmentSize = 64 << 20
	}
	o.SegmentSize = min(o.SegmentSize, maxSegmentBytes/2)
	if o.CacheEntries <= 0 {
		o.CacheEntries = 1024
	}
	if o.CacheBytes <= 0 {
		o.CacheBytes = 1 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Commit writes b as one record with one write call, and fsyncs it when
// sync is true (a synced commit also makes every earlier commit durable).
// An invalid batch is refused before anything is written; a failed write
// or fsync fails this and every later Commit (reopen to recover); an error
// that left the disk as it was fails this Commit only.
// Obsolete segments are deleted after a synced commit.
func (l *Log) Commit(b *Batch, sync bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	if l.mu.err != nil {
		return l.mu.err
	}
	// A copy: validate fills in the ops, and a refused batch must reach
	// its caller as it was.
	ops := slices.Clone(b.ops)
	shadows := map[uint64]*shadow{}
	for i := range ops {
		o := &ops[i]
		sh := shadows[o.group]
		if sh == nil {
			sh = newShadow(l.mu.st.groups[o.group])
			shadows[o.group] = sh
		}
		if err := validate(&l.mu.st, sh, o); err != nil {
			return err
		}
	}
	groups := len(l.mu.st.groups)
	for _, sh := range shadows {
		switch {
		case sh.exists && !sh.existed:
			groups++
		case sh.existed && !sh.exists:
			groups--
		}
	}
	if groups > len(l.mu.st.groups) && groups > maxCheckpointGroups {
		return fmt.Errorf("raftlog: batch would make %d groups; a checkpoint holds at most %d", groups, maxCheckpointGroups)
	}
	if !slices.ContainsFunc(ops, func(o op) bool { return o.kind != 0 }) {
		// Nothing to record (no-op compactions): no write, and a sync
		// only if an earlier commit left unsynced bytes.
		if act := l.mu.segs[len(l.mu.segs)-1]; sync && l.mu.synced < act.size {
			if err := act.f.Sync(); err != nil {
				l.mu.err = fmt.Errorf("raftlog: log failed, reopen to recover: %w", err)
				return l.mu.err
			}
			l.mu.synced = act.size
			l.gcLocked()
		}
		return nil
	}
	rec, err := l.encodeBatch(ops)
	if err != nil {
		return err
	}
	if err := l.commitLocked(rec, ops, sync); err != nil {
		var r refusal
		if errors.As(err, &r) {
			return r.error
		}
		l.mu.err = fmt.Errorf("raftlog: log failed, reopen to recover: %w", err)
		return l.mu.err
	}
	if sync {
		l.gcLocked()
	}
	return nil
}

// encodeBatch builds the payload of a batch record (after a placeholder
// header) and fills each append op's metas with offsets relative to the
// payload's start.
func (l *Log) encodeBatch(ops []op) ([]byte, error) {
	p := append(l.mu.buf[:0], make([]byte, headerSize)...)
	p = append(p, kindBatch)
	n := 0
	for i := range ops {
		if ops[i].kind != 0 {
			n++
		}
	}
	p = binary.AppendUvarint(p, uint64(n))
	var err error
	for i := range ops {
		o := &ops[i]
		if o.kind == 0 {
			continue
		}
		p = append(p, o.kind)
		p = binary.AppendUvarint(p, o.group)
		switch o.kind {
		case opAppend:
			p = binary.AppendUvarint(p, o.first)
			p = binary.AppendUvarint(p, uint64(len(o.ents)))
			o.metas = make([]entryMeta, len(o.ents))
			for j, e := range o.ents {
				sz := proto.Size(e)
				p = binary.AppendUvarint(p, e.GetTerm())
				p = binary.AppendUvarint(p, uint64(sz))
				at := len(p)
				p, err = proto.MarshalOptions{}.MarshalAppend(p, e)
				if err != nil {
					return nil, err
				}
				if len(p)-at != sz {
					return nil, fmt.Errorf("raftlog: entry %d marshaled to %d bytes, sized %d", e.GetIndex(), len(p)-at, sz)
				}
				o.metas[j] = entryMeta{term: e.GetTerm(), off: uint32(at), size: uint32(sz),
					crc: crc32.Checksum(p[at:], castagnoli)}
				if len(p) > MaxRecordSize+headerSize {
					return nil, fmt.Errorf("raftlog: batch larger than %d bytes", MaxRecordSize)
				}
			}
		case opHardState:
			p = binary.AppendUvarint(p, o.hs.term)
			p = binary.AppendUvarint(p, o.hs.vote)
			p = binary.AppendUvarint(p, o.hs.commit)
		case opCompact, opReset:
			p = binary.AppendUvarint(p, o.index)
			p = binary.AppendUvarint(p, o.term)
		}
	}
	if len(p) > MaxRecordSize+headerSize {
		return nil, fmt.Errorf("raftlog: batch larger than %d bytes", MaxRecordSize)
	}
	return p, nil
}

// refusal is an error of commitLocked that left the log as it was (no
// byte written, nothing unsynced beyond what was): it does not stick.
type refusal struct{ error }

func (r refusal) Unwrap() error { return r.error }

// maxCheckpointGroups bounds the groups of a log so that a checkpoint
// (a kind byte, a count, and 8 uvarints a group) fits in a record; Commit
// refuses a batch that would add groups beyond it. A variable for tests.
var maxCheckpointGroups = (MaxRecordSize - 1 - binary.MaxVarintLen64) / (8 * binary.MaxVarintLen64)

// encodeCheckpoint appends a checkpoint record (header included) of the
// whole index to p. Recovery starts from the first segment's checkpoint;
// later ones are checked against the replay.
func (l *Log) encodeCheckpoint(p []byte, seq uint32) ([]byte, error) {
	if n := len(l.mu.st.groups); n > maxCheckpointGroups {
		return nil, fmt.Errorf("raftlog: %d groups, a checkpoint holds at most %d", n, maxCheckpointGroups)
	}
	at := len(p)
	p = append(p, make([]byte, headerSize)...)
	p = append(p, kindCheckpoint)
	p = binary.AppendUvarint(p, uint64(len(l.mu.st.groups)))
	for _, id := range sortedGroups(l.mu.st.groups) {
		g := l.mu.st.groups[id]
		for _, v := range []uint64{id, g.hs.term, g.hs.vote, g.hs.commit, g.ci, g.ct, g.last, g.lastTerm} {
			p = binary.AppendUvarint(p, v)
		}
	}
	if len(p)-at-headerSize > MaxRecordSize {
		return nil, fmt.Errorf("raftlog: checkpoint of %d bytes exceeds %d", len(p)-at-headerSize, MaxRecordSize)
	}
	putHeader(p[at:at+headerSize], seq, 0, p[at+headerSize:])
	return p, nil
}

// commitLocked writes rec (a batch record with a placeholder header),
// starting a new segment first if the active one is full, then applies
// ops to the index.
func (l *Log) commitLocked(rec []byte, ops []op, sync bool) error {
	act := l.mu.segs[len(l.mu.segs)-1]
	if act.size > act.start && act.size+int64(len(rec)) > l.opts.SegmentSize {
		if err := l.rotateLocked(); err != nil {
			return err
		}
		act = l.mu.segs[len(l.mu.segs)-1]
	}
	base := act.size
	putHeader(rec[:headerSize], act.seq, uint32(l.mu.synced), rec[headerSize:])
	for i := range ops {
		for j := range ops[i].metas {
			m := &ops[i].metas[j]
			m.seg, m.off = act.seq, uint32(base+int64(m.off))
		}
	}
	out := rec
	n := int64(len(out))
	if act.size+n > maxSegmentBytes {
		return refusal{fmt.Errorf("raftlog: segment %d would exceed %d bytes", act.seq, int64(maxSegmentBytes))}
	}
	// vfs.File.Write may scribble on its argument: nothing reads rec after.
	if _, err := act.f.Write(out); err != nil {
		return err
	}
	act.size += n
	if cap(rec) <= 4<<20 {
		l.mu.buf = rec[:0]
	}
	if sync {
		if err := act.f.Sync(); err != nil {
			return err
		}
		l.mu.synced = act.size
	}
	for i := range ops {
		if ops[i].kind == 0 {
			continue
		}
		if err := l.mu.st.apply(&ops[i]); err != nil {
			return fmt.Errorf("raftlog: bug: validated op refused: %w", err)
		}
	}
	return nil
}

// rotateLocked seals the active segment (synced, so that no later segment
// ever follows a torn one) and starts the next.
func (l *Log) rotateLocked() error {
	act := l.mu.segs[len(l.mu.segs)-1]
	if l.mu.synced < act.size {
		if err := act.f.Sync(); err != nil {
			return err
		}
		l.mu.synced = act.size
	}
	if act.seq == ^uint32(0) {
		return refusal{errors.New("raftlog: segment sequence numbers exhausted")}
	}
	return l.createSegmentLocked(act.seq + 1)
}

// createSegmentLocked creates segment seq and syncs the directory before
// anything is written to it: a crash never loses a segment whose records
// were synced. It then writes the segment's checkpoint alone and syncs it,
// so that every later header of the segment vouches for it (synced covers
// it): once GC deletes the older segments the whole state lives in that
// checkpoint, and damage to it must read as corruption, never as a torn
// tail to cut.
func (l *Log) createSegmentLocked(seq uint32) error {
	cp, err := l.encodeCheckpoint(nil, seq)
	if err != nil {
		return refusal{err}
	}
	f, err := l.fs.Create(l.fs.PathJoin(l.dir, segName(seq)), vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if err := durable.SyncDir(l.fs, l.dir); err != nil {
		f.Close()
		return err
	}
	n := int64(len(cp))
	if _, err := f.Write(cp); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	l.mu.segs = append(l.mu.segs, &segment{seq: seq, f: f, size: n, start: n})
	l.mu.synced = n
	return nil
}

// gcLocked deletes the oldest sealed segments that no group needs. It runs
// right after a synced commit, so every record (compactions, drops, the
// active segment's checkpoint) is durable: nothing deleted can be needed
// by a recovery. Only a prefix is ever deleted, so the surviving segments
// stay contiguous.
func (l *Log) gcLocked() {
	segs := l.mu.segs
	if len(segs) < 2 {
		return
	}
	limit := l.oldestPinLocked()
	n := 0
	for n < len(segs)-1 && segs[n].seq < limit {
		s := segs[n]
		if err := l.fs.Remove(l.fs.PathJoin(l.dir, segName(s.seq))); err != nil {
			l.logger.Warn("raftlog: cannot remove an obsolete segment", "segment", segName(s.seq), "err", err)
			break
		}
		s.f.Close()
		n++
	}
	if n == 0 {
		return
	}
	l.mu.segs = append(segs[:0:0], segs[n:]...)
	if err := durable.SyncDir(l.fs, l.dir); err != nil {
		// Harmless: a removed segment that comes back is older than the
		// contiguous run recovery replays, and is removed again then.
		l.logger.Warn("raftlog: cannot sync the directory after removing segments", "err", err)
	}
}

// oldestPinLocked is the oldest segment holding an entry some group still
// needs (the active segment's sequence number if none).
func (l *Log) oldestPinLocked() uint32 {
	limit := l.mu.segs[len(l.mu.segs)-1].seq
	for _, g := range l.mu.st.groups {
		if s, ok := g.pin(); ok && s < limit {
			limit = s
		}
	}
	return limit
}

// Close releases the files and the directory lock. It does not sync:
// unsynced commits may be lost as in a crash.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	l.mu.closed = true
	var first error
	for _, s := range l.mu.segs {
		if err := s.f.Close(); err != nil && first == nil {
			first = err
		}
	}
	if err := l.lock.Close(); err != nil && first == nil {
		first = err
	}
	return first
}
