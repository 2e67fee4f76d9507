package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/resp"
	"github.com/kintsu/kintsu/internal/statemachine"
	"github.com/kintsu/kintsu/internal/storage"
)

// benchTransport drops everything: a single-replica group never sends.
type benchTransport struct{}

func (benchTransport) Send(uint64, []raftstore.Envelope) {}
func (benchTransport) SendSnapshot(_ uint64, _ raftstore.Envelope, _ raftstore.SnapshotSource, done func(error)) {
	done(nil)
}

// benchHandoff is a command only this benchmark proposes: applying it lends
// the entry's Writer to the benchmark until the benchmark gives it back.
const benchHandoff = "kintsu.bench.handoff"

// applyPerEntry is how many commands the benchmark applies through one
// lent Writer: enough that lending costs nothing per command, few enough
// that the entry's indexed batch stays the size of a busy apply cycle's.
const applyPerEntry = 1024

// BenchmarkApplyDataSet measures a data partition's state machine applying
// one SET as a node applies it: the command's one lookup and dedupe
// decision (statemachine.Classify), then its apply (statemachine.Apply:
// restore and transaction-lock checks, then the kv evaluation), on a real raftstore.Writer over the apply
// cycle's Pebble indexed batch. The raft cycle around it — proposing,
// logging, decoding the entry, writing the dedupe record, committing — is
// left out (raftstore's BenchmarkApplyEntry and BenchmarkProposeParallel
// cover it), so the figure is what the command's own lookups and
// evaluation cost on the apply path.
//
//	go test ./internal/server -run '^$' -bench ApplyDataSet
func BenchmarkApplyDataSet(b *testing.B) {
	const group = 0 // a data partition
	dir := b.TempDir()
	db, err := storage.Open(storage.Options{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	rlog, err := raftstore.OpenLog(nil, dir, 0, nil)
	if err != nil {
		b.Fatal(err)
	}
	lent := make(chan *raftstore.Writer)
	back := make(chan struct{})
	// quit frees an apply left waiting by a failed benchmark, so the
	// engine can stop.
	quit := make(chan struct{})
	e, err := raftstore.New(raftstore.Config{
		NodeID: 1,
		Apply: func(g uint64, w *raftstore.Writer, spec *command.Spec, args [][]byte, out []byte) ([]byte, error) {
			if string(args[0]) == benchHandoff {
				select {
				case lent <- w:
					select {
					case <-back:
					case <-quit:
					}
				case <-quit:
				}
				return resp.AppendSimple(out, "OK"), nil
			}
			return statemachine.Apply(g, w, spec, args, out)
		},
		Classify: statemachine.Classify,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, db, rlog, benchTransport{})
	if err != nil {
		b.Fatal(err)
	}
	desc := &storage.Descriptor{Group: group, NextID: 2, Replicas: []storage.Replica{{ID: 1, Node: 1}}}
	if err := e.AddReplica(group, &raftstore.Bootstrap{Desc: desc}); err != nil {
		b.Fatal(err)
	}
	e.Start()
	b.Cleanup(func() { close(quit); e.Stop(); db.Close(); rlog.Close() })
	waitFor(b, "the single replica to elect itself", 10*time.Second, func() bool { return e.Leader(group) == 1 })

	// 16 keys, as a busy partition sees a few hot keys rewritten.
	val := bytes.Repeat([]byte("v"), 100)
	cmds := make([][][]byte, 16)
	for i := range cmds {
		cmds[i] = [][]byte{[]byte("set"), fmt.Appendf(nil, "key:%d", i), val}
	}
	ok := resp.AppendSimple(nil, "OK")

	// borrow proposes the handoff command and returns its entry's Writer,
	// and a function that gives it back and waits for the entry's answer.
	borrow := func() (*raftstore.Writer, func()) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		answered := make(chan error, 1)
		go func() {
			_, err := e.Propose(ctx, group, &raftstore.Request{Args: [][]byte{[]byte(benchHandoff)}})
			answered <- err
		}()
		select {
		case w := <-lent:
			return w, func() {
				back <- struct{}{}
				if err := <-answered; err != nil {
					b.Fatalf("handoff entry: %v", err)
				}
				cancel()
			}
		case err := <-answered:
			cancel()
			b.Fatalf("handoff entry answered before it was applied: %v", err)
		case <-ctx.Done():
			b.Fatal("handoff entry not applied within 10s")
		}
		return nil, nil
	}

	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		b.StopTimer()
		w, giveBack := borrow()
		n := min(applyPerEntry, b.N-done)
		b.StartTimer()
		for i := range n {
			args := cmds[(done+i)%len(cmds)]
			// The engine asks before applying whether to keep the reply
			// for retries; a SET is a write, so the answer must be yes.
			spec, keep := statemachine.Classify(group, args)
			if !keep {
				b.Fatal("Classify would not deduplicate a SET")
			}
			// The engine passes no reply buffer: every reply is kept.
			reply, err := statemachine.Apply(group, w, spec, args, nil)
			if err != nil {
				b.Fatal(err)
			}
			if !bytes.Equal(reply, ok) {
				b.Fatalf("SET replied %q", reply)
			}
		}
		b.StopTimer()
		giveBack()
		done += n
	}
}
