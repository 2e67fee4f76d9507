package raftlog

import (
	"math"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/kintsu/kintsu/internal/dst/simfs"
	pb "go.etcd.io/raft/v3/raftpb"
)

// BenchmarkCommit commits, with sync, batches of 64 entries of 100 bytes
// across 8 groups (8 entries and a hard state each), and reports the bytes
// written per entry (framing, checkpoints and the entry's own protobuf
// encoding included).
func BenchmarkCommit(b *testing.B) {
	for _, c := range []struct {
		name string
		fs   func(b *testing.B) (vfs.FS, string)
	}{
		{"simfs", func(b *testing.B) (vfs.FS, string) { return simfs.New(0), "raftlog" }},
		{"disk", func(b *testing.B) (vfs.FS, string) { return vfs.Default, b.TempDir() }},
	} {
		b.Run(c.name, func(b *testing.B) {
			fs, dir := c.fs(b)
			l, err := Open(fs, dir, Options{Logger: quietLogger()})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			const groups, perGroup = 8, 8
			data := make([]byte, 100)
			last := make([]uint64, groups)
			start := l.Stats().Bytes
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				batch := l.NewBatch()
				for g := range uint64(groups) {
					es := make([]*pb.Entry, perGroup)
					for k := range es {
						last[g]++
						es[k] = ent(last[g], 1, data)
					}
					batch.Append(g+1, es)
					batch.SetHardState(g+1, hsOf(1, 1, last[g]))
				}
				if err := l.Commit(batch, true); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			written := l.Stats().Bytes - start
			b.ReportMetric(float64(written)/float64(b.N*groups*perGroup), "B/entry")
			b.ReportMetric(float64(b.N*groups*perGroup)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// benchLog holds 3,000 entries of 128 bytes in group 1, committed 100 per
// batch, with the default cache (1,024 entries).
func benchLog(b *testing.B) *Log {
	l, err := Open(simfs.New(0), "raftlog", Options{Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 128)
	for i := uint64(0); i < 3000; i += 100 {
		es := make([]*pb.Entry, 100)
		for k := range es {
			es[k] = ent(i+uint64(k)+1, 1, data)
		}
		batch := l.NewBatch()
		batch.Append(1, es)
		if err := l.Commit(batch, false); err != nil {
			b.Fatal(err)
		}
	}
	return l
}

// BenchmarkEntriesFromCache reads the 100 newest entries, as a leader does
// for an up-to-date follower.
func BenchmarkEntriesFromCache(b *testing.B) {
	l := benchLog(b)
	defer l.Close()
	b.ReportAllocs()
	for b.Loop() {
		if es, err := l.Entries(1, 2901, 3001, math.MaxUint64); err != nil || len(es) != 100 {
			b.Fatal(len(es), err)
		}
	}
}

// BenchmarkEntriesFromSegment reads 100 entries older than the cache, as
// for a lagging follower: one read from the segment, 100 checksums and
// unmarshals.
func BenchmarkEntriesFromSegment(b *testing.B) {
	l := benchLog(b)
	defer l.Close()
	b.ReportAllocs()
	for b.Loop() {
		if es, err := l.Entries(1, 101, 201, math.MaxUint64); err != nil || len(es) != 100 {
			b.Fatal(len(es), err)
		}
	}
}
