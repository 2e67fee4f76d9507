package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kintsu/kintsu/internal/durable"
)

// The durability mark is a second witness of what the node has synced,
// kept outside Pebble so that one damaged or cut-short write-ahead log
// cannot erase both the raft state and the evidence of it. For every
// hosted replica it holds the hard state (term, vote, commit) that a
// synced write made durable. The engine rewrites it a few times a second,
// off its loop; at start a replica whose recovered hard state is behind
// its mark lost synced writes, and the node refuses to start (a term or a
// vote forgotten could make it vote twice; a commit forgotten, lose
// acknowledged entries).
//
// The mark only ever claims what was synced before it was written, so it
// can lag (by one interval) but never lead: a crash between a synced
// write and the next mark loses no evidence that matters, it only narrows
// what the check covers. Written as a new file, synced, renamed over the
// old one and the directory synced, so it is the old mark or the new one.

// MarkFile is the durability mark's name in the data dir.
const MarkFile = "RAFTMARK"

// MarkEntry is one replica's synced hard state.
type MarkEntry struct {
	Group, Replica     uint64
	Term, Vote, Commit uint64
}

const markMagic = "KNTSMRK1"

// maxMarkEntries bounds what ReadMark accepts (a node hosts far fewer).
const maxMarkEntries = 1 << 20

// WriteMark replaces dir's mark with entries, durably.
func WriteMark(fs vfs.FS, dir string, entries []MarkEntry) error {
	b := append([]byte(markMagic), binary.AppendUvarint(nil, uint64(len(entries)))...)
	for _, e := range entries {
		for _, v := range []uint64{e.Group, e.Replica, e.Term, e.Vote, e.Commit} {
			b = binary.AppendUvarint(b, v)
		}
	}
	b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
	return durable.ReplaceFile(fs, dir, MarkFile, b)
}

// ErrMarkUnreadable: the mark exists but does not decode (damaged).
var ErrMarkUnreadable = errors.New("durability mark unreadable")

// ReadMark returns dir's mark; ok is false when there is none.
func ReadMark(fs vfs.FS, dir string) (entries []MarkEntry, ok bool, err error) {
	f, err := fs.Open(fs.PathJoin(dir, MarkFile))
	if err != nil {
		return nil, false, nil
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 64<<20))
	if err != nil {
		return nil, true, err
	}
	if len(b) < len(markMagic)+4 || string(b[:len(markMagic)]) != markMagic ||
		crc32.ChecksumIEEE(b[:len(b)-4]) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return nil, true, ErrMarkUnreadable
	}
	b = b[len(markMagic) : len(b)-4]
	next := func() uint64 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			err = ErrMarkUnreadable
			return 0
		}
		b = b[n:]
		return v
	}
	count := next()
	if count > maxMarkEntries {
		return nil, true, ErrMarkUnreadable
	}
	for range count {
		e := MarkEntry{Group: next(), Replica: next(), Term: next(), Vote: next(), Commit: next()}
		if err != nil {
			return nil, true, err
		}
		entries = append(entries, e)
	}
	return entries, true, nil
}

// Behind says how a recovered hard state (and last log index) falls short
// of its mark, or "" when it does not.
func (m MarkEntry) Behind(term, vote, commit, last uint64) string {
	switch {
	case term < m.Term:
		return fmt.Sprintf("term %d, synced %d", term, m.Term)
	case term == m.Term && m.Vote != 0 && vote != m.Vote:
		return fmt.Sprintf("vote in term %d for %d, synced %d", term, vote, m.Vote)
	case commit < m.Commit:
		return fmt.Sprintf("commit index %d, synced %d", commit, m.Commit)
	case last < m.Commit:
		return fmt.Sprintf("last log index %d, below the synced commit index %d", last, m.Commit)
	}
	return ""
}
