package raftstore

import (
	"context"
	"fmt"
	"github.com/kintsu/kintsu/internal/command"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/storage"
)

// nopTransport drops everything: a single-replica group never sends.
type nopTransport struct{}

func (nopTransport) Send(uint64, []Envelope) {}
func (nopTransport) SendSnapshot(_ uint64, _ Envelope, _ SnapshotSource, done func(error)) {
	done(nil)
}

func benchEngine(b *testing.B) *Engine { return benchEngineMark(b, false) }

// benchEngineMark: with mark, the engine keeps its durability mark
// (mark.go) in the data dir, as a server does.
func benchEngineMark(b *testing.B, mark bool) *Engine {
	dir := b.TempDir()
	markDir := ""
	if mark {
		markDir = dir
	}
	db, err := storage.Open(storage.Options{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	rlog, err := OpenLog(nil, dir, 0, nil)
	if err != nil {
		b.Fatal(err)
	}
	e, err := New(Config{
		NodeID: 1,
		Apply: func(_ uint64, w *Writer, spec *command.Spec, args [][]byte, out []byte) ([]byte, error) {
			return kv.Exec(w, spec, args, out)
		},
		Classify: func(_ uint64, args [][]byte) (*command.Spec, bool) {
			s := command.Lookup(args[0])
			return s, s == nil || s.Is(command.Write)
		},
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		DataDir: markDir,
	}, db, rlog, nopTransport{})
	if err != nil {
		b.Fatal(err)
	}
	desc := &storage.Descriptor{Group: 0, NextID: 2, Replicas: []storage.Replica{{ID: 1, Node: 1}}}
	if err := e.AddReplica(0, &Bootstrap{Desc: desc}); err != nil {
		b.Fatal(err)
	}
	e.Start()
	b.Cleanup(func() { e.Stop(); db.Close(); rlog.Close() })
	for e.Leader(0) != 1 {
		time.Sleep(time.Millisecond) // a single voter elects itself at once
	}
	return e
}

// BenchmarkProposeParallel measures the whole local write path — inbox,
// batching, one synced Pebble commit per cycle, apply with dedupe — with
// 64 concurrent proposers of 100-byte SETs on a single-replica group.
func BenchmarkProposeParallel(b *testing.B) {
	for _, mark := range []bool{false, true} {
		b.Run(fmt.Sprintf("mark=%v", mark), func(b *testing.B) { benchProposeParallel(b, mark) })
	}
}

func benchProposeParallel(b *testing.B, mark bool) {
	e := benchEngineMark(b, mark)
	val := make([]byte, 100)
	var seq atomic.Uint64
	b.SetParallelism(32) // 64 proposers on 2 cores
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s := seq.Add(1)
			req := &Request{Origin: 1, Seq: s, Args: [][]byte{[]byte("set"), fmt.Appendf(nil, "key:%d", s%100000), val}}
			if _, err := e.Propose(context.Background(), 0, req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkApplyEntry measures applying one raft entry of 16 SETs (decode,
// dedupe lookups and records, evaluation) into an indexed batch, without
// committing it.
func BenchmarkApplyEntry(b *testing.B) {
	e := benchEngine(b)
	r := e.byGroup[0]
	val := make([]byte, 100)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		reqs := make([]*Request, 16)
		for j := range reqs {
			s := uint64(i*16 + j + 1)
			reqs[j] = &Request{Origin: 7, Seq: s, Watermark: s, Args: [][]byte{[]byte("set"), fmt.Appendf(nil, "key:%d", j), val}}
		}
		data := encodeRequests(reqs, 0)
		batch := e.db.NewIndexedBatch()
		if _, err := e.applyRequests(batch, r, uint64(i+1), 1, data, nil); err != nil {
			b.Fatal(err)
		}
		batch.Close()
	}
}
