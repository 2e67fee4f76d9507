package storage

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// logHarness drives a LogStore and a raft.MemoryStorage through the same
// operations and compares everything raft can ask of them.
type logHarness struct {
	t     *testing.T
	rng   *rand.Rand
	fs    vfs.FS
	db    *pebble.DB
	group uint64
	ls    *LogStore
	ms    *raft.MemoryStorage
	term  uint64
	hs    *pb.HardState // last hard state written, nil if none
	ops   []string      // recent operations, for failure messages
	stats *logStats
}

// logStats records which code paths a run exercised.
type logStats struct {
	maxCacheLen, maxCacheBytes, maxLogLen int
	pebbleEntries, pebbleTerms            int
	overwrites, truncations, reloads      int
}

func (h *logHarness) fatalf(format string, args ...any) {
	h.t.Helper()
	from := max(0, len(h.ops)-15)
	h.t.Fatalf("%s\nrecent operations:\n  %v", fmt.Sprintf(format, args...), h.ops[from:])
}

func (h *logHarness) note(format string, args ...any) {
	h.ops = append(h.ops, fmt.Sprintf(format, args...))
}

func (h *logHarness) bounds() (first, last uint64) {
	first, _ = h.ms.FirstIndex()
	last, _ = h.ms.LastIndex()
	return first, last
}

// size picks entry sizes for one batch: mostly small, sometimes large
// enough that the byte bound of the cache, not the entry bound, applies.
func (h *logHarness) size() func() int {
	if h.rng.IntN(10) < 2 {
		return func() int { return 1<<10 + h.rng.IntN(24<<10) }
	}
	return func() int { return h.rng.IntN(200) }
}

func (h *logHarness) appendEnts(es []*pb.Entry) {
	h.t.Helper()
	write(h.t, h.db, pebble.NoSync, func(b *pebble.Batch) error { return h.ls.Append(b, es) })
	if err := h.ms.Append(es); err != nil {
		h.fatalf("MemoryStorage.Append: %v", err)
	}
}

func (h *logHarness) step() {
	first, last := h.bounds()
	switch p := h.rng.IntN(100); {
	case p < 45: // append at the end
		n := 1 + h.rng.Uint64N(150)
		if h.rng.IntN(25) == 0 {
			n = defaultCacheEntries + 1 + h.rng.Uint64N(200) // one batch larger than the cache
		}
		if h.rng.IntN(10) == 0 {
			h.term++
		}
		h.note("append [%d, %d] term %d", last+1, last+n, h.term)
		h.appendEnts(ents(last+1, n, h.term, h.size()))
	case p < 60: // a new leader overwrites a suffix
		if last < first {
			return
		}
		at := first + h.rng.Uint64N(last-first+1)
		if h.rng.IntN(3) == 0 { // mostly near the end, as after a short partition
			at = last - min(last-first, h.rng.Uint64N(5))
		}
		h.term++
		n := 1 + h.rng.Uint64N(uint64(h.rng.IntN(2)*200+10))
		h.note("overwrite [%d, %d] term %d (last was %d)", at, at+n-1, h.term, last)
		h.appendEnts(ents(at, n, h.term, h.size()))
		h.stats.overwrites++
	case p < 72: // truncate applied entries, mostly a small prefix
		trunc := first - 1
		idx := trunc + h.rng.Uint64N((last-trunc)/4+1)
		if h.rng.IntN(8) == 0 {
			idx = trunc + h.rng.Uint64N(last-trunc+1)
		}
		h.note("truncate to %d", idx)
		write(h.t, h.db, pebble.NoSync, func(b *pebble.Batch) error { return h.ls.Truncate(b, idx) })
		if idx > trunc {
			if err := h.ms.Compact(idx); err != nil {
				h.fatalf("MemoryStorage.Compact(%d): %v", idx, err)
			}
			h.stats.truncations++
		}
	case p < 84: // reload from disk
		h.note("reload")
		h.ls = load(h.t, h.db, h.group)
		h.stats.reloads++
	case p < 87: // close and reopen the database
		h.note("reopen")
		if err := h.db.Close(); err != nil {
			h.t.Fatal(err)
		}
		h.db = openMem(h.t, h.fs)
		h.ls = load(h.t, h.db, h.group)
	case p < 89: // install a snapshot
		idx := last + h.rng.Uint64N(20)
		if idx < first {
			idx = first
		}
		h.term++
		h.note("reset to %d term %d", idx, h.term)
		write(h.t, h.db, pebble.NoSync, func(b *pebble.Batch) error { return h.ls.ResetTo(b, idx, h.term) })
		md := &pb.SnapshotMetadata{Index: new(idx), Term: new(h.term), ConfState: &pb.ConfState{}}
		if err := h.ms.ApplySnapshot(&pb.Snapshot{Metadata: md}); err != nil {
			h.fatalf("ApplySnapshot: %v", err)
		}
	default: // hard state, written alone
		hs := &pb.HardState{Term: new(h.term), Vote: new(h.rng.Uint64N(5)), Commit: new(h.rng.Uint64N(last + 1))}
		h.note("hard state %v", hs)
		write(h.t, h.db, pebble.NoSync, func(b *pebble.Batch) error { return h.ls.SetHardState(b, hs) })
		h.ms.SetHardState(hs)
		h.hs = hs
	}
}

func sameErr(a, b error) bool {
	for _, e := range []error{raft.ErrCompacted, raft.ErrUnavailable} {
		if errors.Is(a, e) != errors.Is(b, e) {
			return false
		}
	}
	return (a == nil) == (b == nil)
}

// check compares every answer raft may ask for.
func (h *logHarness) check(full bool) {
	h.t.Helper()
	ls, ms := h.ls, h.ms
	gf, _ := ls.FirstIndex()
	gl, _ := ls.LastIndex()
	first, last := h.bounds()
	if gf != first || gl != last {
		h.fatalf("bounds: LogStore [%d, %d], MemoryStorage [%d, %d]", gf, gl, first, last)
	}
	h.checkCache()
	h.stats.maxLogLen = max(h.stats.maxLogLen, int(last-first+1))

	lo := first - 1
	if lo >= 2 {
		lo -= 2 // include compacted indexes
	}
	for i := lo; i <= last+2; i++ {
		got, gerr := ls.Term(i)
		want, werr := ms.Term(i)
		if got != want || !sameErr(gerr, werr) {
			h.fatalf("Term(%d) = %d, %v; MemoryStorage: %d, %v (first %d last %d)", i, got, gerr, want, werr, first, last)
		}
		if i >= first && len(ls.cache) > 0 && i < ls.cacheStart() || len(ls.cache) == 0 && i >= first && i < last {
			h.stats.pebbleTerms++
		}
	}

	type rng struct{ lo, hi, max uint64 }
	var ranges []rng
	if full && last >= first {
		ranges = append(ranges, rng{first, last + 1, math.MaxUint64})
	}
	lowest := max(1, first-min(first-1, 3)) // a few compacted indexes too
	sizes := []uint64{0, 1, 50, 300, 4 << 10, 64 << 10, 1 << 20, 8 << 20, math.MaxUint64}
	for range 12 {
		if last < lowest {
			break
		}
		lo := lowest + h.rng.Uint64N(last-lowest+1)
		hi := lo + 1 + h.rng.Uint64N(last-lo+1)
		ranges = append(ranges, rng{lo, hi, sizes[h.rng.IntN(len(sizes))]})
	}
	for _, r := range ranges {
		got, gerr := ls.Entries(r.lo, r.hi, r.max)
		want, werr := ms.Entries(r.lo, r.hi, r.max)
		if !sameErr(gerr, werr) || !sameEntries(got, want) {
			h.fatalf("Entries(%d, %d, %d): LogStore %v %v; MemoryStorage %v %v",
				r.lo, r.hi, r.max, indexes(got), gerr, indexes(want), werr)
		}
		if gerr == nil && len(got) == 0 {
			h.fatalf("Entries(%d, %d, %d) returned nothing; raft needs at least one entry", r.lo, r.hi, r.max)
		}
		if gerr == nil && (len(ls.cache) == 0 || r.lo < ls.cacheStart()) {
			h.stats.pebbleEntries++
		}
	}

	hs, cs, err := ls.InitialState()
	if err != nil || cs == nil {
		h.fatalf("InitialState: %v, conf %v", err, cs)
	}
	if h.hs == nil && proto.Size(hs) != 0 || h.hs != nil && !proto.Equal(hs, h.hs) {
		h.fatalf("hard state %v, want %v", hs, h.hs)
	}
}

// checkCache checks the tail cache's invariants (white box).
func (h *logHarness) checkCache() {
	ls := h.ls
	total := 0
	for i, e := range ls.cache {
		total += proto.Size(e)
		if e.GetIndex() != ls.last-uint64(len(ls.cache))+1+uint64(i) {
			h.fatalf("cache is not the contiguous tail ending at %d: entry %d has index %d", ls.last, i, e.GetIndex())
		}
	}
	if total != ls.cacheBytes {
		h.fatalf("cacheBytes %d, entries in the cache total %d", ls.cacheBytes, total)
	}
	if len(ls.cache) > defaultCacheEntries {
		h.fatalf("cache holds %d entries, bound is %d", len(ls.cache), defaultCacheEntries)
	}
	// LoadLogStore may overshoot the byte bound by the oldest entry it loads.
	if len(ls.cache) > 1 && ls.cacheBytes-proto.Size(ls.cache[0]) > defaultCacheBytes {
		h.fatalf("cache holds %d bytes in %d entries, bound is %d", ls.cacheBytes, len(ls.cache), defaultCacheBytes)
	}
	if len(ls.cache) > 0 && ls.cacheStart() <= ls.trunc.Index {
		h.fatalf("cache starts at %d, at or below truncation %d", ls.cacheStart(), ls.trunc.Index)
	}
	h.stats.maxCacheLen = max(h.stats.maxCacheLen, len(ls.cache))
	h.stats.maxCacheBytes = max(h.stats.maxCacheBytes, ls.cacheBytes)
}

func TestLogStoreMatchesMemoryStorage(t *testing.T) {
	rng, _ := testRand(t)
	runs, steps := 3, 150
	if testing.Short() || raceEnabled {
		runs, steps = 1, 120
	}
	stats := &logStats{}
	for run := range runs {
		fs := vfs.NewMem()
		h := &logHarness{
			t: t, rng: rand.New(rand.NewPCG(rng.Uint64(), uint64(run))), fs: fs, db: openMem(t, fs),
			group: 7, ms: raft.NewMemoryStorage(), term: 1, stats: stats,
		}
		// Neighbouring groups share the key space and must stay untouched.
		neighbours := map[uint64][]*pb.Entry{6: ents(1, 30, 1, fixed(20)), 8: ents(1, 30, 2, fixed(20))}
		for g, es := range neighbours {
			write(t, h.db, pebble.Sync, func(b *pebble.Batch) error { return load(t, h.db, g).Append(b, es) })
		}
		h.ls = load(t, h.db, h.group)
		h.check(true)
		// Fill past both cache bounds (1024 entries, then 4 MiB) so every
		// seed reads old entries back from Pebble.
		for range 11 {
			_, last := h.bounds()
			h.note("prefill [%d, %d]", last+1, last+100)
			h.appendEnts(ents(last+1, 100, h.term, func() int { return h.rng.IntN(100) }))
			h.check(false)
		}
		for range 5 {
			_, last := h.bounds()
			h.note("prefill [%d, %d] of 32 KiB", last+1, last+30)
			h.appendEnts(ents(last+1, 30, h.term, fixed(32<<10)))
			h.check(false)
		}
		for s := range steps {
			h.step()
			h.check(s%10 == 0)
		}
		h.note("final reload")
		h.ls = load(t, h.db, h.group)
		h.check(true)
		for g, es := range neighbours {
			got, err := load(t, h.db, g).Entries(1, 31, math.MaxUint64)
			if err != nil || !sameEntries(got, es) {
				t.Fatalf("group %d's log changed: %v, %v", g, indexes(got), err)
			}
		}
		h.db.Close()
	}
	t.Logf("coverage: %+v", *stats)
	// The runs must have exercised what they exist for.
	if stats.maxCacheLen < defaultCacheEntries {
		t.Errorf("the cache never filled to %d entries (max %d)", defaultCacheEntries, stats.maxCacheLen)
	}
	if stats.maxCacheBytes < defaultCacheBytes-(64<<10) {
		t.Errorf("the cache never approached its byte bound (max %d bytes)", stats.maxCacheBytes)
	}
	if stats.maxLogLen <= defaultCacheEntries {
		t.Errorf("the log never outgrew the cache (max %d entries)", stats.maxLogLen)
	}
	if stats.pebbleEntries == 0 || stats.pebbleTerms == 0 || stats.overwrites == 0 || stats.truncations == 0 || stats.reloads == 0 {
		t.Errorf("a path was never exercised: %+v", *stats)
	}
}
