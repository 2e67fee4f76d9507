package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// flipByte XORs one byte of path with 0xff, as a rotting disk would.
func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if off >= int64(len(b)) {
		t.Fatalf("%s has %d bytes, cannot flip offset %d", path, len(b), off)
	}
	b[off] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func filesWithSuffix(t *testing.T, dir, suffix string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+suffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestCorruptSSTableFencesAndRefusesStart: a flipped byte in an sstable is
// reported (not a panic, as Pebble's default Fatalf was: a crash loop),
// logged at ERROR with the file and the partitions it holds, recorded, and
// every later start is refused with what to do.
func TestCorruptSSTableFencesAndRefusesStart(t *testing.T) {
	dir := t.TempDir()
	db := openDir(t, dir)
	// Two groups' user data in one sstable.
	fill := func(db *pebble.DB, v byte) {
		for g := uint64(3); g <= 4; g++ {
			for i := range 200 {
				if err := db.Set(DataKey(g, fmt.Appendf(nil, "key-%04d", i)), bytes.Repeat([]byte{v}, 100), pebble.NoSync); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	fill(db, 'a')
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	ssts := filesWithSuffix(t, dir, ".sst")
	if len(ssts) != 1 {
		t.Fatalf("want one sstable, got %v", ssts)
	}
	flipByte(t, ssts[0], 200) // inside the first data block

	var logs bytes.Buffer
	var mu sync.Mutex
	var got []Corruption
	db, err := Open(Options{
		Dir:    dir,
		Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil)),
		OnCorruption: func(c Corruption) {
			mu.Lock()
			got = append(got, c)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	lo, _ := DataSpan(3)
	_, hi := DataSpan(4)
	// A compaction over the damaged table and an overlapping one (what
	// crash-looped the node at every start) reports instead of panicking.
	// Pebble retries a failed manual compaction until its context ends.
	fill(db, 'b')
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_ = db.Compact(ctx, lo, hi, false)
	cancel()
	mu.Lock()
	n := len(got)
	mu.Unlock()
	if n == 0 {
		t.Error("the compaction did not report the corruption")
	}
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	for it.First(); it.Valid(); it.Next() {
	}
	iterErr := it.Error()
	_ = it.Close()
	_ = db.Close()
	if !pebble.IsCorruptionError(iterErr) {
		t.Fatalf("reading the damaged table: err = %v, want a corruption error", iterErr)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) == 0 {
		t.Fatal("OnCorruption was not called")
	}
	if got[0].Path != ssts[0] || got[0].Groups != (GroupRange{First: 3, Last: 4}) {
		t.Errorf("corruption = %+v, want file %s holding partitions 3 to 4", got[0], ssts[0])
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), filepath.Base(ssts[0])) {
		t.Errorf("want an ERROR log naming the file, got:\n%s", logs.String())
	}

	_, err = Open(Options{Dir: dir})
	if !errors.Is(err, ErrCorruptDir) {
		t.Fatalf("restart: err = %v, want refusal", err)
	}
	for _, want := range []string{filepath.Base(ssts[0]), "partitions 3 to 4", "kintsu ctl node remove", "--join"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal does not say %q:\n%v", want, err)
		}
	}
	t.Logf("refusal:\n%v", err)
}

func TestGroupsIn(t *testing.T) {
	for _, tc := range []struct {
		start, end []byte
		want       GroupRange
	}{
		{DataKey(5, []byte("a")), DataKey(9, []byte("z")), GroupRange{First: 5, Last: 9}},
		{LogKey(7, 1), HardStateKey(7), GroupRange{First: 7, Last: 7}},
		{LogKey(7, 1), DataKey(7, nil), GroupRange{All: true}},
		{IdentKey, DataKey(2, nil), GroupRange{All: true}},
		{nil, nil, GroupRange{All: true}},
	} {
		if got := GroupsIn(tc.start, tc.end); got != tc.want {
			t.Errorf("GroupsIn(%x, %x) = %+v, want %+v", tc.start, tc.end, got, tc.want)
		}
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
