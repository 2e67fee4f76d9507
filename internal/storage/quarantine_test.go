package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// fillGroup writes n keys of group's user data, its descriptor and a log
// entry, then flushes them into one sstable of their own.
func fillGroup(t *testing.T, db *pebble.DB, group uint64, n int) {
	t.Helper()
	b := db.NewBatch()
	for i := range n {
		if err := b.Set(DataKey(group, fmt.Appendf(nil, "key-%04d", i)), bytes.Repeat([]byte{'v'}, 100), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
}

// tableFiles returns the live sstables' paths with their key bounds.
func tableFiles(t *testing.T, db *pebble.DB, dir string) map[string][2][]byte {
	t.Helper()
	levels, err := db.SSTables()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][2][]byte{}
	for _, lvl := range levels {
		for _, f := range lvl {
			out[filepath.Join(dir, fmt.Sprintf("%s.sst", f.FileNum))] = [2][]byte{f.Smallest.UserKey, f.Largest.UserKey}
		}
	}
	return out
}

// TestQuarantineExcisesOnlyTheDamagedGroup: a corrupt sstable holding one
// group's data is handed to Isolate (not recorded as a node-wide
// corruption); finishing the quarantine tombstones the replica id,
// removes the group's state and the file without reading it, and the
// other group's data stays readable. Today's code fenced the node.
func TestQuarantineExcisesOnlyTheDamagedGroup(t *testing.T) {
	dir := t.TempDir()
	db := openDir(t, dir)
	fillGroup(t, db, 3, 300)
	fillGroup(t, db, 4, 300)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	var damaged string
	db = openDir(t, dir)
	lo3, hi3 := DataSpan(3)
	for path, b := range tableFiles(t, db, dir) {
		if bytes.Compare(b[0], lo3) >= 0 && bytes.Compare(b[1], hi3) < 0 {
			damaged = path
		}
	}
	_ = db.Close()
	if damaged == "" {
		t.Fatal("no sstable holds only group 3")
	}
	flipByte(t, damaged, 200)

	var mu sync.Mutex
	var isolated []Corruption
	fenced := false
	db, err := Open(Options{
		Dir: dir,
		Isolate: func(c Corruption) bool {
			mu.Lock()
			defer mu.Unlock()
			isolated = append(isolated, c)
			return true
		},
		OnCorruption: func(Corruption) { fenced = true },
	})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = Get(db, DataKey(3, []byte("key-0001")))
	if !pebble.IsCorruptionError(err) {
		t.Fatalf("read of the damaged table: %v", err)
	}
	mu.Lock()
	if len(isolated) == 0 || fenced || isolated[0].Path != damaged || !Isolatable(isolated[0]) {
		t.Fatalf("isolated %+v, fenced %v", isolated, fenced)
	}
	c := isolated[0]
	mu.Unlock()
	if _, err := os.Stat(filepath.Join(dir, CorruptFile)); err == nil {
		t.Fatal("an isolated corruption was recorded as the node's")
	}
	if got := GroupsTouching(c.Start, c.End, []uint64{2, 3, 4}); len(got) != 1 || got[0] != 3 {
		t.Fatalf("groups touching the file: %v", got)
	}

	if err := WriteQuarantine(nil, dir, []Quarantined{{Group: 3, Replica: 7, File: c.Path, Start: c.Start, End: c.End}}); err != nil {
		t.Fatal(err)
	}
	if err := FinishQuarantine(context.Background(), db, nil, dir); err != nil {
		t.Fatal(err)
	}
	if _, ok := tableFiles(t, db, dir)[damaged]; ok {
		t.Fatal("the damaged table is still in the LSM")
	}
	if v, ok, err := Get(db, TombstoneKey(3)); err != nil || !ok || binary.BigEndian.Uint64(v) != 7 {
		t.Fatalf("tombstone: %x %v %v", v, ok, err)
	}
	for i := range 300 {
		if _, ok, err := Get(db, DataKey(3, fmt.Appendf(nil, "key-%04d", i))); err != nil || ok {
			t.Fatalf("group 3 key %d after the quarantine: %v %v", i, ok, err)
		}
		if _, ok, err := Get(db, DataKey(4, fmt.Appendf(nil, "key-%04d", i))); err != nil || !ok {
			t.Fatalf("group 4 key %d after the quarantine: %v %v", i, ok, err)
		}
	}
	// A full compaction meets no damage any more.
	if err := db.Compact(context.Background(), []byte{0}, []byte{0xff}, false); err != nil {
		t.Fatalf("compaction after the quarantine: %v", err)
	}
	_ = db.Close()
	rec, err := ReadQuarantine(nil, dir)
	if err != nil || len(rec) != 1 || !rec[0].Excised {
		t.Fatalf("record: %+v %v", rec, err)
	}
}

// TestQuarantineFinishedAtOpen: a crash after the record was written and
// before anything else leaves the damaged replica's state on disk; the
// next Open finishes the quarantine before returning, so nothing can load
// the replica, and its id is tombstoned.
func TestQuarantineFinishedAtOpen(t *testing.T) {
	dir := t.TempDir()
	db := openDir(t, dir)
	fillGroup(t, db, 3, 50)
	desc := &Descriptor{Group: 3, Replicas: []Replica{{ID: 5, Node: 1}}, NextID: 6}
	if err := db.Set(DescriptorKey(3), desc.Encode(), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	fillGroup(t, db, 4, 50)
	_ = db.Close()
	if err := WriteQuarantine(nil, dir, []Quarantined{{Group: 3, Replica: 5}}); err != nil {
		t.Fatal(err)
	}
	db = openDir(t, dir)
	defer db.Close()
	descs, err := Descriptors(db)
	if err != nil {
		t.Fatal(err)
	}
	if len(descs) != 0 {
		t.Fatalf("the quarantined replica's descriptor survived the restart: %+v", descs)
	}
	if v, ok, _ := Get(db, TombstoneKey(3)); !ok || binary.BigEndian.Uint64(v) != 5 {
		t.Fatalf("tombstone after restart: %x %v", v, ok)
	}
	if _, ok, _ := Get(db, DataKey(4, []byte("key-0001"))); !ok {
		t.Fatal("another group's data was lost")
	}
	if rec, _ := ReadQuarantine(nil, dir); len(rec) != 1 || !rec[0].Excised {
		t.Fatalf("record after restart: %+v", rec)
	}
}

func TestIsolatable(t *testing.T) {
	for _, tc := range []struct {
		start, end []byte
		want       bool
	}{
		{DataKey(5, []byte("a")), DataKey(5, []byte("z")), true},
		{DedupeKey(7, 1, 1), TxnKey(9, TxnLocks, nil), true},
		{AppliedKey(7), DataKey(7, nil), true},
		{DescriptorKey(1), DescriptorKey(9), true},
		{IdentKey, DataKey(2, nil), false},
		{TombstoneKey(3), AppliedKey(3), false},
		{nil, nil, false},
		{DataKey(1, nil), SubPrefix(4, []byte("h"), 9), true},
		{DataKey(1, nil), []byte{0x06}, false},
	} {
		if got := Isolatable(Corruption{Start: tc.start, End: tc.end}); got != tc.want {
			t.Errorf("Isolatable(%x, %x) = %v, want %v", tc.start, tc.end, got, tc.want)
		}
	}
}

// The excise covers every span of each quarantined group and the file's
// whole bounds, merged, so the file sits inside one excised range and
// leaves the LSM without being opened.
func TestExciseSpansCoverFileAndGroups(t *testing.T) {
	start, end := DataKey(3, []byte("m")), DedupeKey(4, 1, 1) // a file spanning two families
	spans := exciseSpans([]Quarantined{
		{Group: 3, Replica: 1, Start: start, End: end},
		{Group: 4, Replica: 2, Start: start, End: end},
	})
	for i := 1; i < len(spans); i++ {
		if bytes.Compare(spans[i-1].End, spans[i].Start) >= 0 {
			t.Fatalf("spans overlap or touch: %x", spans)
		}
	}
	covered := func(k []byte) bool {
		for _, sp := range spans {
			if bytes.Compare(sp.Start, k) <= 0 && bytes.Compare(k, sp.End) < 0 {
				return true
			}
		}
		return false
	}
	inOne := false
	for _, sp := range spans {
		inOne = inOne || bytes.Compare(sp.Start, start) <= 0 && bytes.Compare(end, sp.End) < 0
	}
	if !inOne {
		t.Fatalf("the file's bounds are not inside one excised range: %x", spans)
	}
	for _, g := range []uint64{3, 4} {
		for _, sp := range ReplicaSpans(g) {
			if !covered(sp[0]) || !covered(append(slices.Clone(sp[0]), 0xff, 0xff, 0xff)) {
				t.Errorf("group %d span %x not covered", g, sp)
			}
		}
	}
	if covered(LogKey(5, 1)) || covered(IdentKey) {
		t.Error("the excise reaches beyond the groups and the file")
	}
	// A file across two families may hold any group between: group 9's
	// data and group 1's dedupe table sort inside these bounds.
	if got := GroupsTouching(start, end, []uint64{1, 3, 4, 9}); !slices.Equal(got, []uint64{1, 3, 4, 9}) {
		t.Errorf("groups touching a file from group 3's data to group 4's dedupe: %v", got)
	}
}
