package storage

import (
	"math"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// BenchmarkAppend appends batches of 100 entries of 128 bytes, committed
// without sync, truncating as an engine would so the log stays bounded.
func BenchmarkAppend(b *testing.B) {
	db := openDir(b, b.TempDir())
	defer db.Close()
	ls := load(b, db, 1)
	data := make([]byte, 128)
	next := uint64(1)
	b.ReportAllocs()
	b.SetBytes(100 * 128)
	for b.Loop() {
		b.StopTimer() // building the entries is raft's cost, not the store's
		es := ents(next, 100, 1, func() int { return 0 })
		for _, e := range es {
			e.Data = data
		}
		b.StartTimer()
		batch := db.NewBatch()
		if err := ls.Append(batch, es); err != nil {
			b.Fatal(err)
		}
		if next > 10000 && next%5000 == 1 {
			if err := ls.Truncate(batch, next-5000); err != nil {
				b.Fatal(err)
			}
		}
		if err := batch.Commit(pebble.NoSync); err != nil {
			b.Fatal(err)
		}
		batch.Close()
		next += 100
	}
}

// BenchmarkAppendOne appends one entry per call to a log whose tail cache
// is full, as a group under steady load does each cycle: the cost must
// not grow with the cache (a copy of the whole tail per append did).
func BenchmarkAppendOne(b *testing.B) {
	db := openDir(b, b.TempDir())
	defer db.Close()
	ls := load(b, db, 1)
	es := ents(1, 3*defaultCacheEntries, 1, func() int { return 0 })
	batch := db.NewBatch()
	defer batch.Close()
	for _, e := range es {
		if err := ls.Append(batch, []*pb.Entry{e}); err != nil {
			b.Fatal(err)
		}
		batch.Reset()
	}
	next := uint64(len(es) + 1)
	b.ReportAllocs()
	for b.Loop() {
		e := &pb.Entry{Index: proto.Uint64(next), Term: proto.Uint64(1), Data: make([]byte, 128)}
		if err := ls.Append(batch, []*pb.Entry{e}); err != nil {
			b.Fatal(err)
		}
		batch.Reset()
		next++
	}
}

// BenchmarkEntriesFromCache reads the 100 newest entries, as a leader does
// for an up-to-date follower.
func BenchmarkEntriesFromCache(b *testing.B) {
	db := openMem(b, vfs.NewMem())
	defer db.Close()
	ls := load(b, db, 1)
	write(b, db, pebble.NoSync, func(batch *pebble.Batch) error { return ls.Append(batch, ents(1, 1000, 1, fixed(128))) })
	b.ReportAllocs()
	for b.Loop() {
		es, err := ls.Entries(901, 1001, math.MaxUint64)
		if err != nil || len(es) != 100 {
			b.Fatal(len(es), err)
		}
	}
}

// BenchmarkEntriesFromPebble reads 100 entries older than the cache, as
// for a lagging follower.
func BenchmarkEntriesFromPebble(b *testing.B) {
	db := openMem(b, vfs.NewMem())
	defer db.Close()
	ls := load(b, db, 1)
	write(b, db, pebble.NoSync, func(batch *pebble.Batch) error { return ls.Append(batch, ents(1, 3000, 1, fixed(128))) })
	b.ReportAllocs()
	for b.Loop() {
		es, err := ls.Entries(101, 201, math.MaxUint64)
		if err != nil || len(es) != 100 {
			b.Fatal(len(es), err)
		}
	}
}
