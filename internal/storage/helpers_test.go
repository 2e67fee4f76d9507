package storage

import (
	"flag"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

var seedFlag = flag.Uint64("seed", 0, "seed for randomized tests (0: derive from the clock)")

// testRand returns a seeded generator and logs the seed, so a failing run can
// be replayed with -seed.
func testRand(t testing.TB) (*rand.Rand, uint64) {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -seed=%d)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), seed
}

// openMem opens a database on an in-memory file system; reopening with the
// same fs sees what was committed.
func openMem(t testing.TB, fs vfs.FS) *pebble.DB {
	t.Helper()
	db, err := Open(Options{Dir: "db", FS: fs, CacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func openDir(t testing.TB, dir string) *pebble.DB {
	t.Helper()
	db, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func load(t testing.TB, db *pebble.DB, group uint64) *LogStore {
	t.Helper()
	ls, err := LoadLogStore(db, group, nil, 0)
	if err != nil {
		t.Fatalf("LoadLogStore(group %d): %v", group, err)
	}
	return ls
}

// write runs fn against a fresh batch and commits it.
func write(t testing.TB, db *pebble.DB, opts *pebble.WriteOptions, fn func(b *pebble.Batch) error) {
	t.Helper()
	b := db.NewBatch()
	defer b.Close()
	if err := fn(b); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(opts); err != nil {
		t.Fatal(err)
	}
}

func entry(index, term uint64, data []byte) *pb.Entry {
	return &pb.Entry{Index: new(index), Term: new(term), Type: pb.EntryType_EntryNormal.Enum(), Data: data}
}

// ents makes n entries from first at term, data sized by size(i).
func ents(first, n, term uint64, size func() int) []*pb.Entry {
	out := make([]*pb.Entry, n)
	for i := range out {
		d := make([]byte, size())
		for j := range d {
			d[j] = byte(first + uint64(i) + uint64(j))
		}
		out[i] = entry(first+uint64(i), term, d)
	}
	return out
}

func fixed(n int) func() int { return func() int { return n } }

func sameEntries(a, b []*pb.Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func indexes(es []*pb.Entry) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.GetIndex()
	}
	return out
}
