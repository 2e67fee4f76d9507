package raftlog

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kintsu/kintsu/internal/durable"
)

const tmpSuffix = durable.TmpSuffix

// Open opens the log in dir, creating it if needed. Recovery replays the
// contiguous run of segments that ends at the newest, verifying every
// record; once that run replayed whole (from a checkpoint, with no group
// missing entries), segments older than a gap before it are left-overs
// of a deletion the crash undid, and are removed. A torn tail of the newest
// segment (bytes after its last valid record that no later record claims
// were synced) is cut off with a WARN; any other damage is ErrCorrupt.
// New records always go into a new segment.
func Open(fs vfs.FS, dir string, opts Options) (*Log, error) {
	opts.fill()
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// The directory itself must survive a crash once it holds a synced
	// record: sync the entry that names it (only its parent is assumed to
	// be durable already).
	if err := durable.SyncDir(fs, fs.PathDir(dir)); err != nil {
		return nil, err
	}
	lock, err := fs.Lock(fs.PathJoin(dir, "LOCK"))
	if err != nil {
		return nil, fmt.Errorf("raftlog: lock %s: %w", dir, err)
	}
	l := &Log{fs: fs, dir: dir, opts: opts, logger: opts.Logger, lock: lock}
	l.mu.st = state{groups: map[uint64]*group{}, cacheEntries: opts.CacheEntries, cacheBytes: opts.CacheBytes}
	if err := l.recover(); err != nil {
		for _, s := range l.mu.segs {
			s.f.Close()
		}
		lock.Close()
		return nil, err
	}
	return l, nil
}

func (l *Log) recover() error {
	names, err := l.fs.List(l.dir)
	if err != nil {
		return err
	}
	var seqs []uint32
	for _, name := range names {
		if strings.HasSuffix(name, tmpSuffix) {
			// A torn-tail rewrite that did not finish: the original is intact.
			if err := l.fs.Remove(l.fs.PathJoin(l.dir, name)); err != nil {
				return err
			}
			continue
		}
		if seq, ok := parseSegName(name); ok {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	start := len(seqs) - 1
	for start > 0 && seqs[start-1] == seqs[start]-1 {
		start--
	}
	older, run := seqs[:max(start, 0)], seqs[max(start, 0):]
	r := replay{l: l}
	for i, seq := range run {
		if err := r.segment(seq, i == len(run)-1, len(run) == 1); err != nil {
			return err
		}
	}
	if len(older) > 0 && !r.based {
		// A legitimate run after a gap starts with the synced checkpoint
		// of a segment GC once made the oldest: an empty or damaged file
		// here is a stray, and the older segments may be the real log.
		return corruptf("segments %s..%s precede a gap, and the run after it (%s..%s) holds no checkpoint",
			segName(older[0]), segName(older[len(older)-1]), segName(run[0]), segName(run[len(run)-1]))
	}
	for _, id := range sortedGroups(l.mu.st.groups) {
		if g := l.mu.st.groups[id]; g.missing > g.ci {
			return corruptf("group %d entries (%d, %d] were in deleted segments", id, g.ci, g.missing)
		}
	}
	// Only a run that replayed whole makes the segments before its gap
	// deletions a crash undid; until then they may be all that is left.
	for _, seq := range older {
		l.logger.Warn("raftlog: removing a segment older than the replayed run", "segment", segName(seq))
		if err := l.fs.Remove(l.fs.PathJoin(l.dir, segName(seq))); err != nil {
			return err
		}
	}
	if len(older) > 0 {
		if err := durable.SyncDir(l.fs, l.dir); err != nil {
			return err
		}
	}
	next := uint32(1)
	if len(run) > 0 {
		if run[len(run)-1] == ^uint32(0) {
			return errors.New("raftlog: segment sequence numbers exhausted")
		}
		next = run[len(run)-1] + 1
	}
	return l.createSegmentLocked(next)
}

// replay rebuilds the index from segments, oldest first.
type replay struct {
	l *Log
	// based is set once a checkpoint established the state; records
	// before one are corruption.
	based bool
}

// segment replays one segment; last says it is the newest, only that it is
// the whole run.
func (r *replay) segment(seq uint32, last, only bool) error {
	l := r.l
	name := l.fs.PathJoin(l.dir, segName(seq))
	f, err := l.fs.Open(name)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	size := fi.Size()
	if size > maxSegmentBytes {
		f.Close()
		return corruptf("segment %d is %d bytes", seq, size)
	}
	// The whole segment in memory, once: it is bounded by the file (and
	// by SegmentSize plus one record when this log wrote it).
	data := make([]byte, size)
	if n, err := f.ReadAt(data, 0); n < len(data) {
		f.Close()
		if err == nil || err == io.EOF {
			err = fmt.Errorf("raftlog: short read of segment %d", seq)
		}
		return err
	}
	seg := &segment{seq: seq, f: f, size: size}
	l.mu.segs = append(l.mu.segs, seg)

	off, err := r.records(seq, data)
	if err == nil && off == int64(len(data)) {
		if last {
			// Intact, but perhaps not durable (the process, not the
			// machine, stopped): the next segment must not follow a tail
			// that a power loss could still tear.
			return f.Sync()
		}
		return nil
	}
	if !last {
		if err == nil {
			err = corruptf("segment %d: bad record at offset %d", seq, off)
		}
		return err
	}
	if errors.Is(err, errReplay) {
		// A record that verified but does not fit the log: not a torn
		// write, which could not verify.
		return err
	}
	if at, claimed := scanTail(seq, data, off); claimed > 0 {
		return corruptf("segment %d: bad record at offset %d, but the record at %d says %d bytes were synced", seq, off, at, claimed)
	}
	if off == 0 && only && seq > 1 {
		// GC deleted the segments before this one, which it does only
		// after a synced commit into it, and its checkpoint was synced
		// before that: it holds the whole state, and cutting it would
		// open an empty log.
		return corruptf("segment %d: damaged checkpoint at offset 0, and no older segment holds the state", seq)
	}
	l.logger.Warn("raftlog: dropping the torn tail of the last segment",
		"segment", segName(seq), "valid", off, "dropped", int64(len(data))-off, "cause", err)
	if err := l.rewrite(seg, data[:off]); err != nil {
		return err
	}
	return nil
}

// errReplay marks a checksummed record that contradicts the log.
var errReplay = fmt.Errorf("%w: record contradicts the log", ErrCorrupt)

// records replays data's records and returns the offset after the last
// valid one, with the error that stopped it (nil at the end of data).
func (r *replay) records(seq uint32, data []byte) (int64, error) {
	off := 0
	first := true
	for off < len(data) {
		h, ok := parseHeader(seq, data[off:])
		if !ok {
			return int64(off), corruptf("segment %d: bad header at %d", seq, off)
		}
		if int(h.synced) > off {
			return int64(off), corruptf("segment %d: record at %d claims %d bytes synced", seq, off, h.synced)
		}
		if h.length > MaxRecordSize || int64(h.length) > int64(len(data)-off-headerSize) {
			return int64(off), corruptf("segment %d: record at %d of %d bytes", seq, off, h.length)
		}
		p := data[off+headerSize : off+headerSize+int(h.length)]
		if crc32.Checksum(p, castagnoli) != h.payloadCRC {
			return int64(off), corruptf("segment %d: payload checksum mismatch at %d", seq, off)
		}
		if err := r.record(seq, uint32(off+headerSize), p, first); err != nil {
			return int64(off), fmt.Errorf("%w: segment %d record at %d: %v", errReplay, seq, off, err)
		}
		first = false
		off += headerSize + int(h.length)
	}
	return int64(off), nil
}

// scanTail looks past a bad record at off for a valid record that says
// bytes beyond off were synced: then the bad record had been synced and
// its damage is corruption, not a torn write. A witness must be a whole
// record (plausible length, payload checksum) whose synced field lies in
// (off, its own offset]: a header that verifies by chance in torn bytes,
// or one claiming bytes that follow it were synced, proves nothing. Each
// offset costs one 12-byte checksum.
func scanTail(seq uint32, data []byte, off int64) (at int64, synced uint32) {
	for p := off + 1; p+headerSize <= int64(len(data)); p++ {
		h, ok := parseHeader(seq, data[p:])
		if !ok || int64(h.synced) <= off || int64(h.synced) > p {
			continue
		}
		end := p + headerSize + int64(h.length)
		if h.length > MaxRecordSize || end > int64(len(data)) ||
			crc32.Checksum(data[p+headerSize:end], castagnoli) != h.payloadCRC {
			continue
		}
		return p, h.synced
	}
	return 0, 0
}

// rewrite replaces seg's file with its valid prefix: vfs has no truncate,
// so the prefix goes to a temporary file that is synced and renamed over.
func (l *Log) rewrite(seg *segment, prefix []byte) error {
	name := l.fs.PathJoin(l.dir, segName(seg.seq))
	if err := durable.ReplaceFile(l.fs, l.dir, segName(seg.seq), slices.Clone(prefix)); err != nil {
		return err
	}
	var err error
	seg.f.Close()
	if seg.f, err = l.fs.Open(name); err != nil {
		return err
	}
	seg.size = int64(len(prefix))
	return nil
}

// record replays one verified payload found at segment offset base.
func (r *replay) record(seq uint32, base uint32, p []byte, first bool) error {
	st := &r.l.mu.st
	d := &decoder{b: p}
	kind := d.byte()
	switch {
	case kind == kindCheckpoint && first:
		return r.checkpoint(d)
	case kind == kindCheckpoint:
		return errors.New("checkpoint in the middle of a segment")
	case kind != kindBatch:
		return fmt.Errorf("unknown record kind %d", kind)
	case first:
		return errors.New("segment does not start with a checkpoint")
	}
	n := d.count(2)
	ops := make([]op, 0, n)
	for range n {
		o := op{kind: d.byte(), group: d.uvarint()}
		switch o.kind {
		case opAppend:
			o.first = d.uvarint()
			k := d.count(2)
			o.metas = make([]entryMeta, k)
			for j := range o.metas {
				term := d.uvarint()
				at, sz := d.bytes()
				o.metas[j] = entryMeta{term: term, seg: seq, off: base + uint32(at), size: uint32(sz),
					crc: crc32.Checksum(p[at:at+sz], castagnoli)}
			}
		case opHardState:
			o.hs = hardState{term: d.uvarint(), vote: d.uvarint(), commit: d.uvarint()}
		case opCompact, opReset:
			o.index, o.term = d.uvarint(), d.uvarint()
		case opDrop:
		default:
			if d.err == nil {
				return fmt.Errorf("unknown op %d", o.kind)
			}
		}
		ops = append(ops, o)
	}
	if !d.done() {
		return fmt.Errorf("malformed batch: %v", d.err)
	}
	for i := range ops {
		if err := st.apply(&ops[i]); err != nil {
			return fmt.Errorf("group %d: %v", ops[i].group, err)
		}
	}
	return nil
}

// checkpoint applies the first checkpoint replayed and checks later ones
// against the replay: each is the state the previous segment left.
func (r *replay) checkpoint(d *decoder) error {
	st := &r.l.mu.st
	n := d.count(8)
	cp := make(map[uint64]*group, n)
	for range n {
		id := d.uvarint()
		g := &group{hs: hardState{d.uvarint(), d.uvarint(), d.uvarint()}}
		g.ci, g.ct, g.last, g.lastTerm = d.uvarint(), d.uvarint(), d.uvarint(), d.uvarint()
		if d.err != nil {
			break
		}
		if _, dup := cp[id]; dup || g.ci > g.last || (g.ci == g.last && g.ct != g.lastTerm) || g.lastTerm < g.ct {
			return fmt.Errorf("checkpoint: bad group %d", id)
		}
		g.missing = g.last
		cp[id] = g
	}
	if !d.done() {
		return fmt.Errorf("malformed checkpoint: %v", d.err)
	}
	if !r.based {
		r.based = true
		st.groups = cp
		return nil
	}
	if len(cp) != len(st.groups) {
		return fmt.Errorf("checkpoint holds %d groups, replay %d", len(cp), len(st.groups))
	}
	for id, c := range cp {
		g := st.groups[id]
		if g == nil || g.hs != c.hs || g.ci != c.ci || g.ct != c.ct || g.last != c.last || g.lastTerm != c.lastTerm {
			return fmt.Errorf("checkpoint disagrees with the replay on group %d", id)
		}
	}
	return nil
}
