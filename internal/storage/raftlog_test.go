package storage

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func TestLogStoreEmpty(t *testing.T) {
	db := openMem(t, vfs.NewMem())
	defer db.Close()
	ls := load(t, db, 1)
	if f, _ := ls.FirstIndex(); f != 1 {
		t.Errorf("FirstIndex = %d", f)
	}
	if l, _ := ls.LastIndex(); l != 0 {
		t.Errorf("LastIndex = %d", l)
	}
	if term, err := ls.Term(0); term != 0 || err != nil {
		t.Errorf("Term(0) = %d, %v", term, err)
	}
	if _, err := ls.Term(1); !errors.Is(err, raft.ErrUnavailable) {
		t.Errorf("Term(1) err = %v", err)
	}
	if _, err := ls.Entries(0, 1, math.MaxUint64); !errors.Is(err, raft.ErrCompacted) {
		t.Errorf("Entries(0, 1) err = %v", err)
	}
	hs, cs, err := ls.InitialState()
	if err != nil || !raft.IsEmptyHardState(hs) || cs == nil {
		t.Errorf("InitialState = %v, %v, %v", hs, cs, err)
	}
	if _, err := ls.Snapshot(); !errors.Is(err, raft.ErrSnapshotTemporarilyUnavailable) {
		t.Errorf("Snapshot err = %v", err)
	}
}

func TestLogStoreRejectsBadWrites(t *testing.T) {
	db := openMem(t, vfs.NewMem())
	defer db.Close()
	ls := load(t, db, 1)
	write(t, db, pebble.Sync, func(b *pebble.Batch) error { return ls.Append(b, ents(1, 10, 1, fixed(8))) })
	write(t, db, pebble.Sync, func(b *pebble.Batch) error { return ls.Truncate(b, 4) })

	b := db.NewBatch()
	defer b.Close()
	if err := ls.Append(b, ents(12, 1, 1, fixed(8))); err == nil {
		t.Error("Append leaving a gap after the last index succeeded")
	}
	if err := ls.Append(b, ents(4, 3, 2, fixed(8))); err == nil {
		t.Error("Append at a truncated index succeeded")
	}
	if err := ls.Truncate(b, 11); err == nil {
		t.Error("Truncate beyond the last index succeeded")
	}
	if err := ls.Append(b, nil); err != nil {
		t.Errorf("empty Append: %v", err)
	}
	if err := ls.Truncate(b, 2); err != nil {
		t.Errorf("Truncate below the truncation point should be a no-op, got %v", err)
	}
	if b.Count() != 0 {
		t.Errorf("rejected and no-op writes put %d records in the batch", b.Count())
	}
	if f, _ := ls.FirstIndex(); f != 5 {
		t.Errorf("FirstIndex = %d after rejected writes", f)
	}
	if l, _ := ls.LastIndex(); l != 10 {
		t.Errorf("LastIndex = %d after rejected writes", l)
	}
}

func TestEntriesCallerOwnsSlice(t *testing.T) {
	db := openMem(t, vfs.NewMem())
	defer db.Close()
	ls := load(t, db, 1)
	es := ents(1, 2000, 1, fixed(16)) // older entries come from Pebble
	write(t, db, pebble.Sync, func(b *pebble.Batch) error { return ls.Append(b, es) })
	for _, r := range [][2]uint64{{1, 10}, {1500, 1510}, {970, 990}} {
		got, err := ls.Entries(r[0], r[1], math.MaxUint64)
		if err != nil {
			t.Fatal(err)
		}
		_ = append(got[:1], entry(999999, 9, nil)) // the caller may append
		again, _ := ls.Entries(r[0], r[1], math.MaxUint64)
		if !sameEntries(again, es[r[0]-1:r[1]-1]) {
			t.Errorf("appending to the result of Entries(%d, %d) changed the store: %v", r[0], r[1], indexes(again))
		}
	}
}

func TestEntriesReturnsAtLeastOne(t *testing.T) {
	db := openMem(t, vfs.NewMem())
	defer db.Close()
	ls := load(t, db, 1)
	es := ents(1, 1500, 1, fixed(100))
	write(t, db, pebble.Sync, func(b *pebble.Batch) error { return ls.Append(b, es) })
	size := func(from, n uint64) (total uint64) {
		for _, e := range es[from-1 : from-1+n] {
			total += uint64(proto.Size(e))
		}
		return total
	}
	for _, lo := range []uint64{1, 400, 1497} { // from Pebble and from the cache
		for _, max := range []uint64{0, 1, size(lo, 1) - 1} {
			got, err := ls.Entries(lo, 1501, max)
			if err != nil || len(got) != 1 || got[0].GetIndex() != lo {
				t.Errorf("Entries(%d, 1501, %d) = %v, %v; want just entry %d", lo, max, indexes(got), err, lo)
			}
		}
		for _, max := range []uint64{size(lo, 3), size(lo, 3) + size(lo+3, 1) - 1} {
			if got, _ := ls.Entries(lo, 1501, max); len(got) != 3 {
				t.Errorf("Entries(%d, 1501, %d) returned %d entries, want 3", lo, max, len(got))
			}
		}
	}
	// A range spanning Pebble and the cache is cut in the right place.
	got, err := ls.Entries(470, 1501, size(470, 100))
	if err != nil || len(got) != 100 || got[0].GetIndex() != 470 || got[99].GetIndex() != 569 {
		t.Errorf("Entries across the cache boundary = %d entries from %v, %v", len(got), indexes(got[:1]), err)
	}
}

func TestInitialStateIsACopy(t *testing.T) {
	db := openMem(t, vfs.NewMem())
	defer db.Close()
	conf := &pb.ConfState{Voters: []uint64{1, 2, 3}}
	ls, err := LoadLogStore(db, 1, conf, 0)
	if err != nil {
		t.Fatal(err)
	}
	hs := &pb.HardState{Term: new(uint64(4)), Vote: new(uint64(2)), Commit: new(uint64(0))}
	write(t, db, pebble.Sync, func(b *pebble.Batch) error { return ls.SetHardState(b, hs) })
	hs.Term = new(uint64(99)) // the caller's message is not retained
	gotHS, gotCS, _ := ls.InitialState()
	if gotHS.GetTerm() != 4 || !proto.Equal(gotCS, conf) {
		t.Fatalf("InitialState = %v, %v", gotHS, gotCS)
	}
	gotHS.Term, gotCS.Voters = new(uint64(7)), nil
	if again, cs, _ := ls.InitialState(); again.GetTerm() != 4 || len(cs.GetVoters()) != 3 {
		t.Error("InitialState returned the store's own messages")
	}
	ls.SetConf(&pb.ConfState{Voters: []uint64{1, 2}, Learners: []uint64{3}})
	if _, cs, _ := ls.InitialState(); len(cs.GetVoters()) != 2 || len(cs.GetLearners()) != 1 {
		t.Errorf("SetConf not reflected: %v", cs)
	}
	if again := load(t, db, 1); again.hs.GetTerm() != 4 || again.hs.GetVote() != 2 {
		t.Errorf("hard state after reload: %v", again.hs)
	}
}

// Entries can be applied before the hard state recording their commit is
// durable; LoadLogStore raises the loaded commit index to the applied index
// and never lowers it.
func TestLoadLogStoreRaisesCommitToApplied(t *testing.T) {
	db := openMem(t, vfs.NewMem())
	defer db.Close()
	ls := load(t, db, 1)
	hs := &pb.HardState{Term: new(uint64(2)), Vote: new(uint64(3)), Commit: new(uint64(30))}
	write(t, db, pebble.Sync, func(b *pebble.Batch) error {
		if err := ls.Append(b, ents(1, 60, 2, fixed(8))); err != nil {
			return err
		}
		return ls.SetHardState(b, hs)
	})
	for _, tc := range []struct{ applied, want uint64 }{{0, 30}, {29, 30}, {30, 30}, {45, 45}, {60, 60}} {
		ls, err := LoadLogStore(db, 1, nil, tc.applied)
		if err != nil {
			t.Fatal(err)
		}
		got, _, _ := ls.InitialState()
		if got.GetCommit() != tc.want || got.GetTerm() != 2 || got.GetVote() != 3 {
			t.Errorf("applied %d: hard state %v, want commit %d, term 2, vote 3", tc.applied, got, tc.want)
		}
	}
	// Only the in-memory answer is raised; the stored record is unchanged.
	if got := load(t, db, 1).hs.GetCommit(); got != 30 {
		t.Errorf("stored commit = %d, want 30", got)
	}
}

func TestLoadLogStoreCorrupt(t *testing.T) {
	for name, corrupt := range map[string]func(b *pebble.Batch) error{
		"hard state":      func(b *pebble.Batch) error { return b.Set(HardStateKey(1), []byte{0xff, 0xff}, nil) },
		"truncated state": func(b *pebble.Batch) error { return b.Set(TruncatedKey(1), []byte{1, 2, 3}, nil) },
		"last entry":      func(b *pebble.Batch) error { return b.Set(LogKey(1, 20), []byte{0xff}, nil) },
		"gap in the tail": func(b *pebble.Batch) error { return b.Delete(LogKey(1, 15), nil) },
	} {
		t.Run(name, func(t *testing.T) {
			db := openMem(t, vfs.NewMem())
			defer db.Close()
			ls := load(t, db, 1)
			write(t, db, pebble.Sync, func(b *pebble.Batch) error { return ls.Append(b, ents(1, 20, 1, fixed(8))) })
			write(t, db, pebble.Sync, corrupt)
			if _, err := LoadLogStore(db, 1, nil, 0); !errors.Is(err, ErrCorrupt) {
				t.Errorf("LoadLogStore: err = %v, want ErrCorrupt", err)
			}
		})
	}
	// Corruption below the cached tail surfaces when it is read.
	db := openMem(t, vfs.NewMem())
	defer db.Close()
	ls := load(t, db, 1)
	write(t, db, pebble.Sync, func(b *pebble.Batch) error { return ls.Append(b, ents(1, 1200, 1, fixed(8))) })
	write(t, db, pebble.Sync, func(b *pebble.Batch) error { return b.Set(LogKey(1, 5), []byte{0xff}, nil) })
	write(t, db, pebble.Sync, func(b *pebble.Batch) error { return b.Delete(LogKey(1, 9), nil) })
	ls = load(t, db, 1)
	for _, check := range []struct {
		what string
		err  error
	}{
		{"Term(5)", func() error { _, err := ls.Term(5); return err }()},
		{"Term(9)", func() error { _, err := ls.Term(9); return err }()},
		{"Entries(1, 10)", func() error { _, err := ls.Entries(1, 10, math.MaxUint64); return err }()},
		{"Entries(6, 12)", func() error { _, err := ls.Entries(6, 12, math.MaxUint64); return err }()},
		{"Entries(9, 10)", func() error { _, err := ls.Entries(9, 10, math.MaxUint64); return err }()},
	} {
		if !errors.Is(check.err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", check.what, check.err)
		}
	}
}

// A replica bootstrapped with WriteInitial restarts from a real directory
// with its log, hard state, applied state and descriptor intact.
func TestWriteInitialAndRestart(t *testing.T) {
	dir := t.TempDir()
	db := openDir(t, dir)
	conf := &pb.ConfState{Voters: []uint64{1, 2, 3}}
	desc := &Descriptor{Group: 5, NextID: 4, Replicas: []Replica{{1, 10}, {2, 20}, {3, 30}}}
	write(t, db, pebble.Sync, func(b *pebble.Batch) error { return WriteInitial(b, 5, 10, 3, conf, desc, 17) })
	ls, err := LoadLogStore(db, 5, conf, 10)
	if err != nil {
		t.Fatal(err)
	}
	if f, _ := ls.FirstIndex(); f != 11 {
		t.Errorf("FirstIndex = %d, want 11", f)
	}
	if term, err := ls.Term(10); term != 3 || err != nil {
		t.Errorf("Term(10) = %d, %v", term, err)
	}
	es := ents(11, 40, 3, fixed(300))
	hs := &pb.HardState{Term: new(uint64(3)), Vote: new(uint64(1)), Commit: new(uint64(30))}
	write(t, db, pebble.Sync, func(b *pebble.Batch) error {
		if err := ls.Append(b, es); err != nil {
			return err
		}
		return ls.SetHardState(b, hs)
	})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openDir(t, dir)
	defer db.Close()
	ls, err = LoadLogStore(db, 5, conf, 10)
	if err != nil {
		t.Fatal(err)
	}
	if f, l := must2(ls.FirstIndex()), must2(ls.LastIndex()); f != 11 || l != 50 {
		t.Errorf("after restart: [%d, %d], want [11, 50]", f, l)
	}
	if got, err := ls.Entries(11, 51, math.MaxUint64); err != nil || !sameEntries(got, es) {
		t.Errorf("entries after restart: %v, %v", indexes(got), err)
	}
	if gotHS, gotCS, _ := ls.InitialState(); !proto.Equal(gotHS, hs) || !proto.Equal(gotCS, conf) {
		t.Errorf("InitialState after restart = %v, %v", gotHS, gotCS)
	}
	b, ok, err := Get(db, AppliedKey(5))
	if err != nil || !ok {
		t.Fatalf("applied state: %v, %v", ok, err)
	}
	as, err := DecodeAppliedState(b)
	if err != nil || as.Index != 10 || as.Term != 3 || as.Keys != 17 || !proto.Equal(as.Conf, conf) {
		t.Errorf("applied state = %+v, %v", as, err)
	}
	b, _, _ = Get(db, DescriptorKey(5))
	if d, err := DecodeDescriptor(b); err != nil || d.NodeOf(3) != 30 || d.NextID != 4 {
		t.Errorf("descriptor = %+v, %v", d, err)
	}
}

func must2(v uint64, err error) uint64 {
	if err != nil {
		panic(err)
	}
	return v
}

// Entries, truncations and hard states written into a batch that is never
// committed leave no trace after the database is reopened.
func TestUncommittedBatchInvisibleAfterReopen(t *testing.T) {
	dir := t.TempDir()
	db := openDir(t, dir)
	ls := load(t, db, 1)
	committed := ents(1, 100, 1, fixed(64))
	hs := &pb.HardState{Term: new(uint64(1)), Commit: new(uint64(60))}
	write(t, db, pebble.Sync, func(b *pebble.Batch) error { return ls.Append(b, committed[:80]) })
	write(t, db, pebble.NoSync, func(b *pebble.Batch) error { return ls.Append(b, committed[80:]) })
	write(t, db, pebble.Sync, func(b *pebble.Batch) error {
		if err := ls.Truncate(b, 10); err != nil {
			return err
		}
		return ls.SetHardState(b, hs)
	})

	// The batch that never commits: a new leader's suffix, more entries, a
	// truncation and a new hard state.
	b := db.NewBatch()
	for _, err := range []error{
		ls.Append(b, ents(90, 30, 2, fixed(64))),
		ls.Append(b, ents(120, 20, 2, fixed(64))),
		ls.Truncate(b, 50),
		ls.SetHardState(b, &pb.HardState{Term: new(uint64(2)), Commit: new(uint64(130))}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if l, _ := ls.LastIndex(); l != 139 {
		t.Fatalf("in-memory view not updated by the uncommitted batch: last %d", l)
	}
	b.Close()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openDir(t, dir)
	defer db.Close()
	ls = load(t, db, 1)
	if f, l := must2(ls.FirstIndex()), must2(ls.LastIndex()); f != 11 || l != 100 {
		t.Fatalf("after reopen: [%d, %d], want [11, 100]", f, l)
	}
	for i := uint64(10); i <= 100; i++ {
		if term, err := ls.Term(i); term != 1 || err != nil {
			t.Fatalf("Term(%d) = %d, %v; want 1", i, term, err)
		}
	}
	if got, err := ls.Entries(11, 101, math.MaxUint64); err != nil || !sameEntries(got, committed[10:]) {
		t.Errorf("entries after reopen: %v, %v", indexes(got), err)
	}
	if got, _, _ := ls.InitialState(); !proto.Equal(got, hs) {
		t.Errorf("hard state after reopen = %v, want %v", got, hs)
	}
}

// After a simulated crash, the log holds every synced commit and every
// commit before it (one WAL orders them all), and unsynced later commits
// either entirely or not at all.
func TestCrashKeepsSyncedPrefix(t *testing.T) {
	rng, seed := testRand(t)
	fs := vfs.NewCrashableMem()
	db := openMem(t, fs)
	defer db.Close()
	ls := load(t, db, 1)
	crash := func(pct int) *LogStore {
		t.Helper()
		clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: rand.New(rand.NewPCG(seed, uint64(pct)))})
		cdb := openMem(t, clone)
		t.Cleanup(func() { cdb.Close() })
		return load(t, cdb, 1)
	}
	all := ents(1, 300, 1, fixed(100))
	write(t, db, pebble.Sync, func(b *pebble.Batch) error { return ls.Append(b, all[:100]) })
	write(t, db, pebble.NoSync, func(b *pebble.Batch) error { return ls.Append(b, all[100:150]) })
	if got := must2(crash(0).LastIndex()); got != 100 {
		t.Errorf("crash with nothing unsynced kept: last %d, want 100", got)
	}
	for range 5 {
		if got := must2(crash(rng.IntN(101)).LastIndex()); got != 100 && got != 150 {
			t.Errorf("crash kept part of a batch: last %d", got)
		}
	}
	write(t, db, pebble.NoSync, func(b *pebble.Batch) error { return ls.Truncate(b, 40) })
	write(t, db, pebble.Sync, func(b *pebble.Batch) error { return ls.Append(b, all[150:200]) })
	c := crash(0)
	if f, l := must2(c.FirstIndex()), must2(c.LastIndex()); f != 41 || l != 200 {
		t.Errorf("after a synced commit the crash state is [%d, %d], want [41, 200]", f, l)
	}
	if got, err := c.Entries(41, 201, math.MaxUint64); err != nil || !sameEntries(got, all[40:200]) {
		t.Errorf("entries after crash: %v, %v", indexes(got), err)
	}
}
