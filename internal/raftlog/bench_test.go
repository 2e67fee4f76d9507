package raftlog

import (
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
