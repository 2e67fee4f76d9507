package raftlog

import (
	"math"
	"reflect"
	"slices"
	"testing"

	"github.com/kintsu/kintsu/internal/dst/simfs"
)

// TestCommitRefusesWhatApplyWould: batches that apply would refuse after
// the write (an append whose indexes overflow, a reset to the last
// possible index or below the compacted index) are refused before anything
// is written; the log keeps working and reopens. A refused batch's ops are
// left as the caller built them.
func TestCommitRefusesWhatApplyWould(t *testing.T) {
	fs := simfs.New(0)
	l := open(t, fs, Options{})
	appendTo(t, l, 5, 1)
	if err := l.Compact(1, 3); err != nil {
		t.Fatal(err)
	}
	b := l.NewBatch()
	b.Reset(2, math.MaxUint64-2, 4)
	if err := l.Commit(b, true); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name  string
		build func(b *Batch)
	}{
		{"reset to the last index", func(b *Batch) { b.Reset(1, math.MaxUint64, 2) }},
		{"reset below the compacted index", func(b *Batch) { b.Reset(1, 2, 2) }},
		{"append past the last index", func(b *Batch) {
			b.Append(2, []*pbEntry{ent(math.MaxUint64-1, 4, nil), ent(math.MaxUint64, 4, nil), ent(0, 4, nil)})
		}},
		{"valid ops, then an append past a gap", func(b *Batch) {
			b.Append(1, []*pbEntry{ent(6, 1, []byte("x"))})
			b.Compact(1, 4)
			b.Compact(1, 1)
			b.Append(1, []*pbEntry{ent(10, 1, nil)})
		}},
	} {
		b := l.NewBatch()
		c.build(b)
		before := slices.Clone(b.ops)
		size := l.Stats().Bytes
		if err := l.Commit(b, true); err == nil {
			t.Fatalf("%s: Commit accepted it", c.name)
		}
		if l.Err() != nil {
			t.Fatalf("%s: the log failed: %v", c.name, l.Err())
		}
		if got := l.Stats().Bytes; got != size {
			t.Fatalf("%s: %d bytes written", c.name, got-size)
		}
		if !reflect.DeepEqual(b.ops, before) {
			t.Fatalf("%s: the refused batch's ops changed: %+v, were %+v", c.name, b.ops, before)
		}
	}

	b = l.NewBatch()
	b.Append(2, []*pbEntry{ent(math.MaxUint64-1, 4, []byte("y")), ent(math.MaxUint64, 4, []byte("z"))})
	if err := l.Commit(b, true); err != nil {
		t.Fatal(err)
	}
	appendTo(t, l, 1, 1)
	l.Close()
	l = open(t, fs, Options{})
	defer l.Close()
	if got := mustLast(t, l, 1); got != 6 {
		t.Fatalf("group 1 last index %d after reopen, want 6", got)
	}
	if got := mustLast(t, l, 2); got != math.MaxUint64 {
		t.Fatalf("group 2 last index %d after reopen", got)
	}
	if fi, _ := l.FirstIndex(1); fi != 4 {
		t.Fatalf("group 1 first index %d after reopen, want 4", fi)
	}
}

// TestTooManyGroupsRefused: a batch that would give the log more groups
// than a checkpoint holds is refused before anything is written, without
// failing the log; one that drops as many as it adds is taken.
func TestTooManyGroupsRefused(t *testing.T) {
	defer func(n int) { maxCheckpointGroups = n }(maxCheckpointGroups)
	maxCheckpointGroups = 3
	fs := simfs.New(0)
	l := open(t, fs, Options{SegmentSize: 256})
	appendTo(t, l, 1, 1, 2, 3)
	size := l.Stats().Bytes
	b := l.NewBatch()
	b.SetHardState(4, hsOf(1, 1, 0))
	if err := l.Commit(b, true); err == nil {
		t.Fatal("a fourth group was accepted")
	}
	if l.Err() != nil || l.Stats().Bytes != size {
		t.Fatalf("the refusal failed the log (%v) or wrote %d bytes", l.Err(), l.Stats().Bytes-size)
	}
	b = l.NewBatch()
	b.Drop(1)
	b.SetHardState(4, hsOf(1, 1, 0))
	if err := l.Commit(b, true); err != nil {
		t.Fatal(err)
	}
	appendTo(t, l, 10, 2, 3, 4) // rotations write checkpoints of 3 groups
	l.Close()
	l = open(t, fs, Options{})
	defer l.Close()
	if got := l.Groups(); !slices.Equal(got, []uint64{2, 3, 4}) {
		t.Fatalf("groups %v after reopen", got)
	}
}

// TestExhaustedSequenceDoesNotStick: a Commit that cannot start a new
// segment (sequence numbers exhausted) wrote nothing: it fails alone, and
// the log keeps serving reads, and does not fail.
func TestExhaustedSequenceDoesNotStick(t *testing.T) {
	fs := simfs.New(0)
	if err := fs.MkdirAll("raftlog", 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, fs, "raftlog/"+segName(math.MaxUint32-1), frame(math.MaxUint32-1, [][]byte{{kindCheckpoint, 0}}))
	l := open(t, fs, Options{SegmentSize: 512})
	defer l.Close()
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		b := l.NewBatch()
		b.Append(1, []*pbEntry{ent(uint64(i+1), 1, make([]byte, 100))})
		err = l.Commit(b, true)
	}
	if err == nil {
		t.Fatal("100 commits of 100 bytes fit one 512-byte segment")
	}
	if l.Err() != nil {
		t.Fatalf("the log failed: %v", l.Err())
	}
	if es, err := l.Entries(1, 1, 2, math.MaxUint64); err != nil || len(es) != 1 {
		t.Fatalf("a read after the refusal: %v %v", es, err)
	}
}
