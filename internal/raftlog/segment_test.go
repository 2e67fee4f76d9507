package raftlog

import (
	"fmt"
	"math"
	"testing"

	"github.com/kintsu/kintsu/internal/dst/simfs"
)

func segFiles(t *testing.T, l *Log) []string {
	t.Helper()
	names, err := l.fs.List(l.dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range names {
		if _, ok := parseSegName(n); ok {
			out = append(out, n)
		}
	}
	return out
}

// appendTo commits n batches of one 200-byte entry to each of groups.
func appendTo(t *testing.T, l *Log, n int, groups ...uint64) {
	t.Helper()
	for range n {
		b := l.NewBatch()
		for _, g := range groups {
			last := mustLast(t, l, g)
			b.Append(g, []*pbEntry{ent(last+1, 1, make([]byte, 200))})
		}
		if err := l.Commit(b, true); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSegmentsDeletedWhenUnpinned: with 2 KiB segments, old segments go
// once every group compacted past them, stay while one group pins them
// (PinnedBy names it), and go when that group compacts or is dropped. An
// idle group's hard state and compaction point survive the deletion of
// the segments that recorded them.
func TestSegmentsDeletedWhenUnpinned(t *testing.T) {
	fs := simfs.New(0)
	opts := Options{SegmentSize: 2 << 10, CacheEntries: 2}
	l := open(t, fs, opts)
	defer func() { l.Close() }()

	// Group 9 is idle after this: its state lives in segment 1 only.
	b := l.NewBatch()
	b.Append(9, []*pbEntry{ent(1, 3, []byte("x")), ent(2, 3, []byte("y"))})
	b.SetHardState(9, hsOf(3, 2, 2))
	b.Compact(9, 1)
	if err := l.Commit(b, true); err != nil {
		t.Fatal(err)
	}
	if err := l.Compact(9, 2); err != nil {
		t.Fatal(err)
	}

	// Groups 1 and 2 write; only group 1 compacts.
	for range 5 {
		appendTo(t, l, 10, 1, 2)
		if err := l.Compact(1, mustLast(t, l, 1)); err != nil {
			t.Fatal(err)
		}
	}
	appendTo(t, l, 1, 1)
	pinned := len(segFiles(t, l))
	if pinned < 5 {
		t.Fatalf("only %d segments after 50 batches of 2 x 200 bytes", pinned)
	}
	p, ok := l.PinnedBy()
	if !ok || p.Group != 2 || p.Segment != 1 || p.Segments != pinned-1 || p.Bytes == 0 {
		t.Fatalf("PinnedBy = %+v %v, want group 2 pinning segment 1 and %d sealed segments", p, ok, pinned-1)
	}

	// Group 2 compacts all but its last 3 entries: the segments before the
	// one holding them go after the next synced commit.
	if err := l.Compact(2, mustLast(t, l, 2)-3); err != nil {
		t.Fatal(err)
	}
	if got := len(segFiles(t, l)); got != pinned {
		t.Fatalf("segments deleted before a synced commit: %d -> %d", pinned, got)
	}
	appendTo(t, l, 1, 1)
	if got := len(segFiles(t, l)); got > 3 {
		t.Fatalf("%d segments left after group 2 compacted", got)
	}
	if p, ok := l.PinnedBy(); ok && p.Group != 2 {
		t.Fatalf("PinnedBy = %+v", p)
	}

	// Group 3 pins, then is dropped.
	appendTo(t, l, 3, 3)
	for range 4 {
		appendTo(t, l, 10, 1)
		if err := l.Compact(1, mustLast(t, l, 1)); err != nil {
			t.Fatal(err)
		}
		if err := l.Compact(2, mustLast(t, l, 2)); err != nil {
			t.Fatal(err)
		}
	}
	appendTo(t, l, 1, 1)
	if p, ok := l.PinnedBy(); !ok || p.Group != 3 {
		t.Fatalf("PinnedBy = %+v %v, want group 3", p, ok)
	}
	before := len(segFiles(t, l))
	if err := l.DropGroup(3); err != nil {
		t.Fatal(err)
	}
	after := len(segFiles(t, l))
	if after >= before || after > 2 {
		t.Fatalf("DropGroup left %d of %d segments", after, before)
	}
	if _, ok := l.PinnedBy(); ok {
		t.Fatal("still pinned after the drop")
	}

	// A crash now: segment 1, which recorded group 9, is long gone.
	if _, err := fs.Stat(seg1); err == nil {
		t.Fatal("segment 1 still there")
	}
	last1, last2 := mustLast(t, l, 1), mustLast(t, l, 2)
	fs = fs.Crash(simfs.CrashOptions{})
	l.Close()
	l = open(t, fs, opts)
	hs, _ := l.HardState(9)
	if hs.GetTerm() != 3 || hs.GetVote() != 2 || hs.GetCommit() != 2 {
		t.Fatalf("group 9 hard state after its segment went: %v", hs)
	}
	if fi, _ := l.FirstIndex(9); fi != 3 || mustLast(t, l, 9) != 2 {
		t.Fatalf("group 9 log after its segment went: first %d last %d", fi, mustLast(t, l, 9))
	}
	if tm, err := l.Term(9, 2); err != nil || tm != 3 {
		t.Fatalf("group 9 Term(2) = %d, %v", tm, err)
	}
	if mustLast(t, l, 1) != last1 || mustLast(t, l, 2) != last2 {
		t.Fatal("groups 1 and 2 lost entries")
	}
	if got := l.Groups(); fmt.Sprint(got) != "[1 2 9]" {
		t.Fatalf("groups %v", got)
	}
}

// TestRecordLargerThanSegment gets a segment of its own.
func TestRecordLargerThanSegment(t *testing.T) {
	fs := simfs.New(0)
	l := open(t, fs, Options{SegmentSize: 1 << 10})
	appendTo(t, l, 1, 1)
	b := l.NewBatch()
	b.Append(1, []*pbEntry{ent(2, 1, make([]byte, 10<<10))})
	if err := l.Commit(b, true); err != nil {
		t.Fatal(err)
	}
	appendTo(t, l, 1, 1)
	if n := len(segFiles(t, l)); n != 3 {
		t.Fatalf("%d segments, want 3", n)
	}
	l.Close()
	l = open(t, fs, Options{})
	defer l.Close()
	if es, err := l.Entries(1, 2, 3, 0); err != nil || len(es[0].GetData()) != 10<<10 {
		t.Fatalf("big entry: %v", err)
	}
}

// TestNoOpCommitWritesNothing: a batch of no-op compactions writes no
// record; with sync it only syncs what earlier commits left unsynced.
func TestNoOpCommitWritesNothing(t *testing.T) {
	fs := simfs.New(0)
	l := open(t, fs, Options{})
	defer l.Close()
	appendTo(t, l, 3, 1)
	if err := l.Compact(1, 2); err != nil {
		t.Fatal(err)
	}
	before := l.Stats().Bytes
	for _, sync := range []bool{false, true} {
		b := l.NewBatch()
		b.Compact(1, 1)
		b.Compact(2, 0)
		if err := l.Commit(b, sync); err != nil {
			t.Fatal(err)
		}
	}
	if after := l.Stats().Bytes; after != before {
		t.Fatalf("no-op commits wrote %d bytes", after-before)
	}
	// The sync made the unsynced compaction durable.
	fs = fs.Crash(simfs.CrashOptions{})
	l2 := open(t, fs, Options{})
	defer l2.Close()
	if fi, _ := l2.FirstIndex(1); fi != 3 {
		t.Fatalf("first index %d after the crash, want 3", fi)
	}
}

// TestPinsListEveryHolder: Pins names every group that holds a sealed
// segment, oldest first, where PinnedBy names only the first.
func TestPinsListEveryHolder(t *testing.T) {
	fs := simfs.New(0)
	l := open(t, fs, Options{SegmentSize: 2 << 10, CacheEntries: 2})
	defer func() { l.Close() }()
	appendTo(t, l, 10, 1, 2) // groups 1 and 2 from segment 1 on
	appendTo(t, l, 10, 3)    // group 3 starts later
	appendTo(t, l, 10, 1)    // seals the segments group 3 wrote in
	ps := l.Pins(0)
	if len(ps) != 3 || ps[0].Group != 1 || ps[1].Group != 2 || ps[2].Group != 3 ||
		ps[0].Segment != 1 || ps[2].Segment <= ps[1].Segment || ps[2].Segments >= ps[0].Segments {
		t.Fatalf("Pins = %+v; want groups 1 and 2 from segment 1, then group 3 later", ps)
	}
	if first := l.Pins(1); len(first) != 1 || first[0] != ps[0] {
		t.Errorf("Pins(1) = %+v, want %+v", first, ps[0])
	}
	if p, ok := l.PinnedBy(); !ok || p != ps[0] {
		t.Errorf("PinnedBy = %+v %v, want %+v", p, ok, ps[0])
	}
	if !l.Has(3) || l.Has(4) {
		t.Error("Has: group 3 has a log, group 4 none")
	}
	if err := l.DropGroup(3); err != nil {
		t.Fatal(err)
	}
	if l.Has(3) {
		t.Error("Has: group 3 was dropped")
	}
}

// TestBatchBytesBoundsTheRecord: Bytes is never below what the record
// takes on disk, so splitting by it keeps records under MaxRecordSize.
func TestBatchBytesBoundsTheRecord(t *testing.T) {
	fs := simfs.New(0)
	l := open(t, fs, Options{SegmentSize: 64 << 20})
	defer func() { l.Close() }()
	appendTo(t, l, 1, 1) // the segment's checkpoint is behind us
	for _, n := range []int{1, 10, 300} {
		b := l.NewBatch()
		for g := uint64(1); g <= 3; g++ {
			last := mustLast(t, l, g)
			var es []*pbEntry
			for i := range n {
				es = append(es, ent(last+1+uint64(i), 2, make([]byte, 17*i%300)))
			}
			b.Append(g, es)
			b.SetHardState(g, hsOf(2, 1, last))
		}
		before := l.Stats().Bytes
		want := b.Bytes()
		if err := l.Commit(b, true); err != nil {
			t.Fatal(err)
		}
		if got := l.Stats().Bytes - before; int64(want) < got || want > 2*int(got)+200 {
			t.Errorf("%d entries a group: Bytes %d, record %d bytes", n, want, got)
		}
	}
	// Integers at their largest encodings: hard states alone (each takes
	// 41 bytes), then resets, appends and compactions of huge indexes.
	for _, all := range []bool{false, true} {
		b := l.NewBatch()
		for g := uint64(math.MaxUint64 - 20); g != 0; g++ {
			b.SetHardState(g, hsOf(math.MaxUint64, math.MaxUint64, math.MaxUint64))
			if all {
				b.Reset(g, math.MaxUint64-2, math.MaxUint64)
				b.Append(g, []*pbEntry{ent(math.MaxUint64-1, math.MaxUint64, nil)})
				b.Compact(g, math.MaxUint64-1)
			}
		}
		before := l.Stats().Bytes
		want := b.Bytes()
		if err := l.Commit(b, true); err != nil {
			t.Fatal(err)
		}
		if got := l.Stats().Bytes - before; int64(want) < got {
			t.Errorf("large integers (all ops %v): Bytes %d, record %d bytes", all, want, got)
		}
	}
	if !IsSegmentName("0000000a.log") || IsSegmentName("000001.log") || IsSegmentName("MANIFEST-000001") {
		t.Error("IsSegmentName")
	}
}
