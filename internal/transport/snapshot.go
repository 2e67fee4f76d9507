package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kintsu/kintsu/internal/codec"
	"github.com/kintsu/kintsu/internal/raftstore"
)

// SendSnapshot implements raftstore.Transport: it streams the snapshot's
// header (the raft message) and then its pairs in chunks.
func (t *Transport) SendSnapshot(node uint64, env raftstore.Envelope, src raftstore.SnapshotSource, done func(error)) {
	if t.isCut(node) {
		done(ErrCut)
		return
	}
	p, err := t.peer(node)
	if err != nil {
		done(err)
		return
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		// The transfer runs at the lower priority; done, which takes the
		// engine's locks, at the normal one.
		sent := make(chan error, 1)
		go func() {
			lowerPriority()
			sent <- p.sendSnapshot(env, src)
		}()
		done(<-sent)
	}()
}

func (p *peer) sendSnapshot(env raftstore.Envelope, src raftstore.SnapshotSource) error {
	ctx, cancel := context.WithCancel(p.t.outgoing(context.Background()))
	defer cancel()
	idle := newIdleTimer(snapshotIdle, cancel)
	defer idle.pause()
	go func() {
		select {
		case <-p.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	conn, err := p.snapshotConn()
	if err != nil {
		return err
	}
	stream, err := conn.NewStream(ctx, &serviceDesc.Streams[1], "/kintsu.Peer.v2/Snapshot")
	if err != nil {
		return err
	}
	hdr, err := encodeEnvelopes(p.t.nodeID, []raftstore.Envelope{env})
	if err != nil {
		return err
	}
	if err := stream.SendMsg(&frame{b: hdr}); err != nil {
		return err
	}
	// Each chunk is a buffer of its own (gRPC may hold a sent message),
	// sized once rather than grown pair by pair.
	newChunk := func() []byte { return make([]byte, 0, snapshotChunkBytes+snapshotChunkBytes/8) }
	chunk := newChunk()
	err = src.Iterate(func(k, v []byte) error {
		chunk = appendPair(chunk, k, v)
		if len(chunk) >= snapshotChunkBytes {
			if err := p.send(ctx, stream, idle, chunk); err != nil {
				return err
			}
			chunk = newChunk()
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(chunk) > 0 {
		if err := p.send(ctx, stream, idle, chunk); err != nil {
			return err
		}
	}
	if err := stream.CloseSend(); err != nil {
		return err
	}
	var ack frame
	return stream.RecvMsg(&ack)
}

// send sends one chunk of a snapshot when the node's rate allows.
func (p *peer) send(ctx context.Context, stream grpc.ClientStream, idle *idleTimer, chunk []byte) error {
	idle.pause()
	if err := p.t.snapRate.wait(ctx, len(chunk)); err != nil {
		return err
	}
	idle.touch()
	if err := stream.SendMsg(&frame{b: chunk}); err != nil {
		return err
	}
	idle.touch()
	return nil
}

func handleSnapshot(srv any, stream grpc.ServerStream) error {
	t := srv.(*Transport)
	node, err := t.admit(stream.Context(), "snapshot", "")
	if err != nil {
		return err
	}
	h, err := t.readyHandler()
	if err != nil {
		return err
	}
	var f frame
	if err := stream.RecvMsg(&f); err != nil {
		return err
	}
	from, envs, err := decodeEnvelopes(f.b)
	if err != nil || len(envs) != 1 {
		return status.Error(codes.InvalidArgument, "malformed snapshot header")
	}
	if err := t.checkSender(stream.Context(), "snapshot", node, from); err != nil {
		return err
	}
	env := envs[0]
	select {
	case t.snapIn <- struct{}{}:
		defer func() { <-t.snapIn }()
	default:
		return status.Error(codes.ResourceExhausted, fmt.Sprintf("this node is receiving %d snapshots already", maxIncomingSnapshots))
	}
	b, err := h.NewSnapshotBuilder(env)
	if err != nil {
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	// A sender that stops sending mid-snapshot does not hold a staging
	// place forever: twice the sender's own idle bound without a chunk
	// ends the transfer (returning ends the stream, and so receivePairs).
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	got := make(chan error, 1)
	go func() { got <- receivePairs(stream, b, &last) }()
	tick := time.NewTicker(snapshotIdle / 4)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case err := <-got:
			if err != nil {
				b.Abort()
				return err
			}
			done = true
		case <-tick.C:
			if time.Since(time.Unix(0, last.Load())) > 2*snapshotIdle {
				go func() { <-got; b.Abort() }()
				return status.Error(codes.DeadlineExceeded, "snapshot transfer stalled")
			}
		}
	}
	if err := h.ReceiveSnapshot(env, b); err != nil {
		return status.Error(codes.Unavailable, err.Error())
	}
	return stream.SendMsg(&frame{})
}

// receivePairs stages the pairs of a snapshot stream until its end,
// noting the time of each chunk in last. The chunks are received here
// and staged by a goroutine of lower priority (buildPairs), a chunk at a
// time: waking a goroutine locked to its thread costs a thread switch,
// once per chunk rather than once per network read. It returns only once
// the builder has stopped using b.
func receivePairs(stream grpc.ServerStream, b *raftstore.SnapshotBuilder, last *atomic.Int64) error {
	chunks := make(chan []byte, 1)
	free := make(chan []byte, 2) // staged chunks' buffers, for reuse
	built := make(chan error, 1)
	go func() {
		lowerPriority()
		built <- buildPairs(b, chunks, free)
	}()
	for {
		var f frame
		select {
		case err := <-built: // a malformed chunk ends the transfer at once
			return err
		case f.b = <-free:
		default:
		}
		if err := stream.RecvMsg(&f); err != nil {
			close(chunks)
			berr := <-built
			if errors.Is(err, io.EOF) {
				return berr
			}
			return err
		}
		last.Store(time.Now().UnixNano())
		select {
		case chunks <- f.b:
		case err := <-built:
			return err
		}
	}
}

// buildPairs stages the pairs of each chunk, until chunks is closed or a
// chunk is malformed.
func buildPairs(b *raftstore.SnapshotBuilder, chunks <-chan []byte, free chan<- []byte) error {
	for c := range chunks {
		d := codec.NewDecoder(c)
		for d.Len() > 0 {
			k, v := d.Bytes(), d.Bytes()
			if d.Err() != nil {
				return status.Error(codes.InvalidArgument, fmt.Sprintf("malformed snapshot chunk: %v", errBadFrame))
			}
			if err := b.Add(k, v); err != nil {
				return status.Error(codes.InvalidArgument, err.Error())
			}
		}
		select {
		case free <- c:
		default:
		}
	}
	return nil
}
