package raftlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/kintsu/kintsu/internal/dst/simfs"
	"github.com/kintsu/kintsu/internal/durable"
)

func readFile(t *testing.T, fs vfs.FS, name string) []byte {
	t.Helper()
	f, err := fs.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, fi.Size())
	if n, _ := f.ReadAt(b, 0); n != len(b) {
		t.Fatalf("short read of %s", name)
	}
	return b
}

// writeFile replaces name with data, durably.
func writeFile(t *testing.T, fs vfs.FS, name string, data []byte) {
	t.Helper()
	f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(append([]byte(nil), data...)); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := durable.SyncDir(fs, fs.PathDir(name)); err != nil {
		t.Fatal(err)
	}
}

// recordOffsets lists the offsets of the records of a segment.
func recordOffsets(t *testing.T, seq uint32, data []byte) []int {
	t.Helper()
	var offs []int
	for off := 0; off < len(data); {
		h, ok := parseHeader(seq, data[off:])
		if !ok {
			t.Fatalf("segment %d: no header at %d", seq, off)
		}
		offs = append(offs, off)
		off += headerSize + int(h.length)
	}
	return offs
}

// commitN commits n batches to group 1, each appending one entry.
func commitN(t *testing.T, l *Log, n int, sync bool) {
	t.Helper()
	for range n {
		last, _ := l.LastIndex(1)
		b := l.NewBatch()
		b.Append(1, []*pbEntry{ent(last+1, 1, fmt.Appendf(nil, "entry %d", last+1))})
		b.SetHardState(1, hsOf(1, 1, last))
		if err := l.Commit(b, sync); err != nil {
			t.Fatal(err)
		}
	}
}

const seg1 = "raftlog/00000001.log"

func TestCorruptSyncedRecordRefused(t *testing.T) {
	for _, c := range []struct {
		name   string
		record int // which record (0 is the checkpoint)
		at     func(off, next int) int
	}{
		{"payload", 3, func(off, next int) int { return (off + headerSize + next) / 2 }},
		{"length", 3, func(off, next int) int { return off }},
		{"header crc", 3, func(off, next int) int { return off + 13 }},
		{"checkpoint", 0, func(off, next int) int { return off + headerSize }},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := simfs.New(0)
			l := open(t, fs, Options{})
			commitN(t, l, 6, true)
			l.Close()
			data := readFile(t, fs, seg1)
			offs := append(recordOffsets(t, 1, data), len(data))
			data[c.at(offs[c.record], offs[c.record+1])] ^= 0x40
			writeFile(t, fs, seg1, data)
			_, err := Open(fs, "raftlog", Options{Logger: quietLogger()})
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open with a damaged synced record: %v", err)
			}
		})
	}
}

func TestCorruptSealedSegmentRefused(t *testing.T) {
	for _, damage := range []string{"flip", "cut"} {
		t.Run(damage, func(t *testing.T) {
			fs := simfs.New(0)
			l := open(t, fs, Options{SegmentSize: 512})
			commitN(t, l, 40, false) // unsynced, but rotation syncs sealed segments
			if l.Stats().Segments < 3 {
				t.Fatalf("only %d segments", l.Stats().Segments)
			}
			l.Close()
			data := readFile(t, fs, seg1)
			if damage == "flip" {
				data[len(data)-1] ^= 1
			} else {
				data = data[:len(data)-3]
			}
			writeFile(t, fs, seg1, data)
			if _, err := Open(fs, "raftlog", Options{Logger: quietLogger()}); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open with a damaged sealed segment: %v", err)
			}
		})
	}
}

// TestTornTailCut: garbage or a damaged unsynced record at the end of the
// newest segment is cut off with a WARN; the log then works and reopens
// cleanly.
func TestTornTailCut(t *testing.T) {
	for _, c := range []struct {
		name string
		tear func(data []byte, offs []int) []byte
	}{
		{"partial record", func(data []byte, offs []int) []byte { return data[:len(data)-5] }},
		{"garbage", func(data []byte, offs []int) []byte { return append(data, "not a record at all"...) }},
		{"zeros", func(data []byte, offs []int) []byte { return append(data, make([]byte, 100)...) }},
		// The first unsynced record is damaged, and valid unsynced records
		// follow it: they say (synced field) that it was never synced.
		{"damaged unsynced record before valid ones", func(data []byte, offs []int) []byte {
			data[offs[5]+headerSize+2] ^= 0xff
			return data
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := simfs.New(0)
			l := open(t, fs, Options{})
			commitN(t, l, 4, true)  // records 1..4, synced
			commitN(t, l, 3, false) // records 5..7
			l.Close()
			data := readFile(t, fs, seg1)
			offs := recordOffsets(t, 1, data)
			writeFile(t, fs, seg1, c.tear(data, offs))

			warns := &countHandler{}
			l, err := Open(fs, "raftlog", Options{Logger: slog.New(warns)})
			if err != nil {
				t.Fatalf("Open with a torn tail: %v", err)
			}
			if warns.n.Load() != 1 {
				t.Fatalf("%d WARNs, want 1", warns.n.Load())
			}
			last, _ := l.LastIndex(1)
			if last < 4 {
				t.Fatalf("synced entries lost: last index %d", last)
			}
			commitN(t, l, 2, true)
			want := last + 2
			l.Close()

			warns = &countHandler{}
			l, err = Open(fs, "raftlog", Options{Logger: slog.New(warns)})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if warns.n.Load() != 0 {
				t.Fatalf("reopen after the cut: %d WARNs", warns.n.Load())
			}
			es, err := l.Entries(1, 1, want+1, math.MaxUint64)
			if err != nil || uint64(len(es)) != want {
				t.Fatalf("after reopen: %d entries, %v; want %d", len(es), err, want)
			}
			for i, e := range es {
				if e.GetIndex() != uint64(i+1) || string(e.GetData()) != fmt.Sprintf("entry %d", i+1) {
					t.Fatalf("entry %d is %v", i+1, e)
				}
			}
		})
	}
}

// TestStaleSegmentBeforeGapRemoved: a segment older than a gap is a
// deletion a crash undid; Open removes it without reading it.
func TestStaleSegmentBeforeGapRemoved(t *testing.T) {
	fs := simfs.New(0)
	l := open(t, fs, Options{SegmentSize: 256})
	for range 30 {
		commitN(t, l, 1, true)
		if err := l.Compact(1, mustLast(t, l, 1)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	names, _ := fs.List("raftlog")
	if names[0] == "00000001.log" {
		t.Fatalf("segment 1 was never deleted: %v", names)
	}
	writeFile(t, fs, seg1, []byte("garbage from long ago"))
	l = open(t, fs, Options{})
	defer l.Close()
	if _, err := fs.Stat(seg1); err == nil {
		t.Fatal("stale segment kept")
	}
	if got := mustLast(t, l, 1); got != 30 {
		t.Fatalf("last index %d", got)
	}
}

func mustLast(t *testing.T, l *Log, group uint64) uint64 {
	t.Helper()
	i, err := l.LastIndex(group)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// TestReadChecksEntryChecksum: bytes damaged after Open are caught on read.
func TestReadChecksEntryChecksum(t *testing.T) {
	fs := simfs.New(0)
	l := open(t, fs, Options{CacheEntries: 1})
	commitN(t, l, 5, true)
	l.Close()
	l = open(t, fs, Options{CacheEntries: 1})
	defer l.Close()
	l.mu.Lock()
	m := l.mu.st.groups[1].ents[1]
	l.mu.Unlock()
	data := readFile(t, fs, seg1)
	data[m.off+m.size-1] ^= 1
	writeFile(t, fs, seg1, data)
	// writeFile made a new file: point the log's handle at it, as if the
	// bytes had rotted under the open handle.
	l.mu.Lock()
	l.mu.segs[0].f.Close()
	l.mu.segs[0].f, _ = fs.Open(seg1)
	l.mu.Unlock()
	if _, err := l.Entries(1, 1, 6, math.MaxUint64); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read of a damaged entry: %v", err)
	}
}

// TestUnfinishedRewriteIgnored: a crash in the middle of cutting a torn
// tail leaves the temporary file; Open removes it and cuts again.
func TestUnfinishedRewriteIgnored(t *testing.T) {
	fs := simfs.New(0)
	l := open(t, fs, Options{})
	commitN(t, l, 3, true)
	l.Close()
	data := readFile(t, fs, seg1)
	writeFile(t, fs, seg1, append(data, "torn"...))
	writeFile(t, fs, seg1+tmpSuffix, data[:10])
	l = open(t, fs, Options{})
	defer l.Close()
	if _, err := fs.Stat(seg1 + tmpSuffix); err == nil {
		t.Fatal("temporary file kept")
	}
	if got := mustLast(t, l, 1); got != 3 {
		t.Fatalf("last index %d, want 3", got)
	}
}

// TestDamagedLoneCheckpointRefused: once GC deleted every older segment,
// the newest segment's checkpoint holds the whole state. A torn write that
// damages it (and the header after it) must not be cut as a torn tail,
// which would open an empty log: Open refuses and rewrites nothing.
func TestDamagedLoneCheckpointRefused(t *testing.T) {
	for _, c := range []struct {
		name       string
		loseHeader bool // the first batch's header is damaged too
	}{
		{"next header intact", false},
		{"next header lost", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := simfs.New(0)
			l := open(t, fs, Options{SegmentSize: 256})
			// Each batch appends an entry and compacts the one before, so
			// the first synced batch of a new segment unpins every older one.
			var name string
			for i := 0; ; i++ {
				if i > 100 {
					t.Fatal("never reached a lone segment holding one batch")
				}
				last := mustLast(t, l, 1)
				b := l.NewBatch()
				b.Append(1, []*pbEntry{ent(last+1, 1, make([]byte, 60))})
				b.Compact(1, last)
				if err := l.Commit(b, true); err != nil {
					t.Fatal(err)
				}
				files := segFiles(t, l)
				if len(files) != 1 || files[0] == "00000001.log" {
					continue
				}
				seq, _ := parseSegName(files[0])
				name = "raftlog/" + files[0]
				if len(recordOffsets(t, seq, readFile(t, fs, name))) == 2 {
					break
				}
			}
			want := mustLast(t, l, 1)
			l.Close()
			seq, _ := parseSegName(name[len("raftlog/"):])
			data := readFile(t, fs, name)
			offs := recordOffsets(t, seq, data)
			data[offs[0]+headerSize+1] ^= 0x10
			if c.loseHeader {
				data[offs[1]+3] ^= 0x10
			}
			writeFile(t, fs, name, data)
			if _, err := Open(fs, "raftlog", Options{Logger: quietLogger()}); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open with the lone segment's checkpoint damaged (last index was %d): %v", want, err)
			}
			if got := readFile(t, fs, name); len(got) != len(data) {
				t.Fatalf("the segment was cut to %d bytes", len(got))
			}
		})
	}
}

// listSegs lists the segment files in the log directory.
func listSegs(t *testing.T, fs vfs.FS) []string {
	t.Helper()
	names, err := fs.List("raftlog")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range names {
		if IsSegmentName(n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// TestStrayHighSegmentRefused: a stray file named far past the log's
// segments makes a run of its own after a gap. It is not a run start (no
// checkpoint), so Open refuses and deletes none of the real segments.
func TestStrayHighSegmentRefused(t *testing.T) {
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"garbage", []byte("not a segment, but named like one")},
		{"zeros", make([]byte, 64)},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := simfs.New(0)
			l := open(t, fs, Options{SegmentSize: 512})
			commitN(t, l, 20, true)
			l.Close()
			before := listSegs(t, fs)
			if len(before) < 2 {
				t.Fatalf("segments %v", before)
			}
			writeFile(t, fs, "raftlog/00001000.log", c.data)
			if _, err := Open(fs, "raftlog", Options{Logger: quietLogger()}); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open with a stray high-numbered segment: %v", err)
			}
			if got := listSegs(t, fs); !slices.Equal(got, append(before, "00001000.log")) {
				t.Fatalf("segments %v after the refused Open, want %v and the stray", got, before)
			}
			if got := readFile(t, fs, "raftlog/00001000.log"); !bytes.Equal(got, c.data) {
				t.Fatalf("the stray file was rewritten to %d bytes", len(got))
			}
			// Once the stray is gone, the log is whole.
			if err := fs.Remove("raftlog/00001000.log"); err != nil {
				t.Fatal(err)
			}
			l = open(t, fs, Options{})
			defer l.Close()
			if got := mustLast(t, l, 1); got != 20 {
				t.Fatalf("last index %d, want 20", got)
			}
		})
	}
}

// TestLostMiddleSegmentRefused: with a middle segment gone, the segments
// before the gap still hold entries a group needs: Open refuses and
// deletes nothing.
func TestLostMiddleSegmentRefused(t *testing.T) {
	fs := simfs.New(0)
	l := open(t, fs, Options{SegmentSize: 512})
	commitN(t, l, 60, true)
	l.Close()
	segs := listSegs(t, fs)
	if len(segs) < 4 {
		t.Fatalf("segments %v", segs)
	}
	if err := fs.Remove("raftlog/" + segs[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(fs, "raftlog", Options{Logger: quietLogger()}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open with a lost middle segment: %v", err)
	}
	want := append([]string{segs[0]}, segs[2:]...)
	if got := listSegs(t, fs); !slices.Equal(got, want) {
		t.Fatalf("segments %v after the refused Open, want %v", got, want)
	}
}

// TestForgedWitnessIgnored: a torn tail may hold bytes that pass for a
// record header. Only a whole record whose synced field lies between the
// bad record and itself witnesses a sync; anything else is cut as a torn
// tail (one WARN), keeping every synced entry.
func TestForgedWitnessIgnored(t *testing.T) {
	payload := []byte("Bforged payload")
	for _, c := range []struct {
		name  string
		forge func(off, p int) []byte // the header and payload at p; the tail starts at off
	}{
		{"bad payload", func(off, p int) []byte {
			h := make([]byte, headerSize)
			putHeader(h, 1, uint32(off+1), payload)
			return append(h, "Bforged pay1oad"...)
		}},
		{"synced past itself", func(off, p int) []byte {
			h := make([]byte, headerSize)
			putHeader(h, 1, uint32(p+100), payload)
			return append(h, payload...)
		}},
		{"length past the end", func(off, p int) []byte {
			h := make([]byte, headerSize)
			putHeader(h, 1, uint32(off+1), payload)
			binary.LittleEndian.PutUint32(h[0:], 1<<20)
			binary.LittleEndian.PutUint32(h[12:], headerCRC(1, h))
			return append(h, payload...)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := simfs.New(0)
			l := open(t, fs, Options{})
			commitN(t, l, 4, true)
			l.Close()
			data := readFile(t, fs, seg1)
			off := len(data)
			data = append(data, "torn"...)
			data = append(data, c.forge(off, len(data))...)
			writeFile(t, fs, seg1, data)
			warns := &countHandler{}
			l, err := Open(fs, "raftlog", Options{Logger: slog.New(warns)})
			if err != nil {
				t.Fatalf("Open with a forged witness in a torn tail: %v", err)
			}
			defer l.Close()
			if warns.n.Load() != 1 {
				t.Fatalf("%d WARNs, want 1", warns.n.Load())
			}
			if got := mustLast(t, l, 1); got != 4 {
				t.Fatalf("last index %d, want 4", got)
			}
		})
	}
}
