package raftstore

import (
	"fmt"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/kintsu/kintsu/internal/storage"
)

// BenchmarkSnapshotStaging: the receiving side of a replica move on the
// real disk: 64 MiB of 4 KiB values staged into sstables and synced, as a
// snapshot's pairs arrive (b.SetBytes: MB/s is the staging rate).
func BenchmarkSnapshotStaging(b *testing.B) {
	e := benchEngine(b)
	const group, n = 7, 16384
	desc := &storage.Descriptor{Group: group, Replicas: []storage.Replica{{ID: 1, Node: 2}, {ID: 5, Node: 1}}, NextID: 6}
	env := Envelope{Group: group, Msg: &pb.Message{Type: new(pb.MsgSnap), To: new(uint64(5)), From: new(uint64(1))}}
	v := make([]byte, 4096)
	for i := range v {
		v[i] = byte(i * 7)
	}
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = storage.DataKey(group, fmt.Appendf(nil, "k%08d", i))
	}
	b.SetBytes(n * int64(len(v)))
	for b.Loop() {
		bld, err := e.NewSnapshotBuilder(env)
		if err != nil {
			b.Fatal(err)
		}
		if err := bld.Add(storage.DescriptorKey(group), desc.Encode()); err != nil {
			b.Fatal(err)
		}
		for _, k := range keys {
			if err := bld.Add(k, v); err != nil {
				b.Fatal(err)
			}
		}
		if err := bld.finish(); err != nil {
			b.Fatal(err)
		}
		bld.Abort()
	}
}

// BenchmarkSnapshotSource: the sending side of a replica move, without
// the network: a group's 64 MiB of 4 KiB values read from a Pebble
// snapshot, pair by pair, as the transport reads them.
func BenchmarkSnapshotSource(b *testing.B) {
	e := benchEngine(b)
	const group, n = 7, 16384
	desc := &storage.Descriptor{Group: group, Replicas: []storage.Replica{{ID: 1, Node: 1}}, NextID: 2}
	wb := e.db.NewBatch()
	_ = wb.Set(storage.DescriptorKey(group), desc.Encode(), nil)
	v := make([]byte, 4096)
	for i := range v {
		v[i] = byte(i * 7)
	}
	for i := range n {
		_ = wb.Set(storage.DataKey(group, fmt.Appendf(nil, "k%08d", i)), v, nil)
	}
	if err := wb.Commit(nil); err != nil {
		b.Fatal(err)
	}
	if err := e.db.Flush(); err != nil {
		b.Fatal(err)
	}
	snap := e.db.NewSnapshot()
	defer snap.Close()
	b.SetBytes(n * int64(len(v)))
	var chunk []byte
	for b.Loop() {
		err := snapSource{snap: snap, group: group}.Iterate(func(k, v []byte) error {
			chunk = append(append(chunk, k...), v...)
			if len(chunk) >= 1<<20 {
				chunk = chunk[:0]
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
