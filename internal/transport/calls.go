package transport

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/kintsu/kintsu/internal/codec"
)

// Forwarded requests (route's reads and writes) travel on one long-lived
// stream per peer, many calls to a frame, instead of one gRPC unary call
// each: a unary call costs a new HTTP/2 stream, its headers and goroutine
// hand-offs on both sides, which under cross-partition writes was about a
// tenth of a node's CPU.
//
// Wire (stream "Calls" of kintsu.Peer.v2, both ways a sequence of frames):
//
//	call frame:  repeated (id uvarint, timeout-ms uvarint, method bytes, body bytes)
//	             timeout-ms 0 (and empty method and body) cancels call id
//	reply frame: repeated (id uvarint, code uvarint, payload bytes)
//	             code codeFragment: a piece of id's reply; more follow
//
// code is otherwise a gRPC status code: OK carries the answer (the
// fragments before it, then its payload), any other the error's message.
// A peer that does not serve the stream (an older version) answers
// Unimplemented; Forward then makes unary calls to it for a while.
//
// Invariants:
//   - Every call waits at most until its context ends: for a slot, for
//     the stream to open, and for its reply. A call the caller gave up on
//     is not sent if it was still queued, and is cancelled on the server
//     if it was sent. A broken stream fails every call waiting on it at
//     once (Unavailable), as a broken connection fails a unary call; the
//     caller treats both as "may have been delivered".
//   - A client has at most maxStreamCalls calls in flight per stream (it
//     waits for a slot); the server refuses calls beyond twice that, and
//     ends a stream that keeps sending them. Queued calls are bounded in
//     bytes (maxQueuedCallBytes; past it a call goes as a unary call), and
//     a request larger than bigCall goes as a unary call, so no call waits
//     behind a large one.
//   - A reply larger than fragmentBytes is sent in fragments, one per
//     frame, between the others, so small replies never wait behind a
//     large one. The client bounds a reply's reassembly by MaxFrameBytes.
//   - The server admits a stream as it admits a unary call (cluster id,
//     certificate) and serves each call with the stream's peer identity
//     and its own deadline (at most maxCallTimeout).
//   - A reply is delivered only to the call that still waits for its id;
//     late or unknown ids are dropped.

const (
	// maxCallTimeout bounds one forwarded call on the server.
	maxCallTimeout = 30 * time.Second
	// maxStreamCalls bounds the calls in flight on one stream.
	maxStreamCalls = 4096
	// maxQueuedCallBytes bounds the calls queued for one stream.
	maxQueuedCallBytes = 64 << 20
	// bigCall: a larger request is sent as a unary call.
	bigCall = 256 << 10
	// fragmentBytes: a larger reply is sent in pieces of this size.
	fragmentBytes = 256 << 10
	// codeFragment marks a piece of a reply (not a gRPC code).
	codeFragment = 1000
	// openTimeout bounds opening a stream.
	openTimeout = 2 * time.Second
	// unsupportedFor is how long a peer that refused the stream is called
	// with unary calls before the stream is tried again.
	unsupportedFor = time.Minute
)

// muxReply is one call's outcome as the caller sees it.
type muxReply struct {
	b   []byte
	err error
}

// errNotSent marks a call the stream did not deliver, for sure: Forward
// makes it a unary call instead.
var (
	errNotSent     = errors.New("transport: not sent on the call stream")
	errUnsupported = fmt.Errorf("%w: the peer serves no call stream", errNotSent)
	errQueueFull   = fmt.Errorf("%w: its queue is full", errNotSent)
)

// callMux is the client side of one peer's call stream.
type callMux struct {
	p     *peer
	slots chan struct{} // calls in flight

	mu         sync.Mutex
	unaryUntil time.Time     // the peer refused the stream: unary calls until then
	cs         *callStream   // the open stream; nil if none
	opening    chan struct{} // closed when the open under way ends
	openErr    error         // why the last open failed
	nextID     uint64
}

// callStream is one open call stream and the calls waiting on it.
type callStream struct {
	s      grpc.ClientStream
	cancel context.CancelFunc
	kick   chan struct{}

	mu         sync.Mutex
	queue      []queuedCall       // guarded by mu
	queueBytes int                // guarded by mu
	waiting    map[uint64]*waiter // guarded by mu
	broken     error              // guarded by mu
}

type queuedCall struct {
	id       uint64
	deadline time.Time // zero: a cancel
	method   string
	body     []byte
}

type waiter struct {
	ch    chan muxReply // buffered: one reply
	frags []byte        // the reply's fragments so far
}

// Forward sends a request to node's CallHandler like Call, over the
// peer's call stream (see above).
func (t *Transport) Forward(ctx context.Context, node uint64, method string, body []byte) ([]byte, error) {
	p, err := t.callee(ctx, node)
	if err != nil {
		return nil, err
	}
	if len(body) > bigCall || p.conn.GetState() != connectivity.Ready {
		// A large call would hold up the stream; and opening a stream
		// while the connection is not up would only add a wait.
		return p.unary(ctx, method, body)
	}
	out, err := p.calls.call(ctx, method, body)
	if errors.Is(err, errNotSent) {
		return p.unary(ctx, method, body)
	}
	return out, err
}

// call makes one call over the stream, within ctx.
func (m *callMux) call(ctx context.Context, method string, body []byte) ([]byte, error) {
	select {
	case m.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	defer func() { <-m.slots }()
	cs, err := m.stream(ctx)
	if err != nil {
		return nil, err
	}
	id, ch, err := m.enqueue(ctx, cs, method, body)
	if err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		return r.b, r.err
	case <-ctx.Done():
		if cs.forget(id) {
			// Sent even if the call itself was not (it is then dropped
			// from the queue); the server ignores unknown ids.
			cs.cancelLater(id)
		}
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// stream returns the open stream, opening one (or waiting for the open
// under way) within ctx.
func (m *callMux) stream(ctx context.Context) (*callStream, error) {
	for try := 0; ; try++ {
		m.mu.Lock()
		if time.Now().Before(m.unaryUntil) {
			m.mu.Unlock()
			return nil, errUnsupported
		}
		if m.cs != nil {
			cs := m.cs
			m.mu.Unlock()
			return cs, nil
		}
		if m.opening == nil {
			m.opening = make(chan struct{})
			go m.open(m.opening)
		}
		opening := m.opening
		m.mu.Unlock()
		select {
		case <-opening:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		m.mu.Lock()
		cs, err := m.cs, m.openErr
		m.mu.Unlock()
		switch {
		case cs != nil:
			return cs, nil
		case err != nil:
			return nil, err
		case try > 0:
			return nil, status.Error(codes.Unavailable, "call stream broke")
		}
		// Opened, and broke already (an older peer's refusal does that):
		// look again, once.
	}
}

// open starts a call stream with its sender and receiver, then closes
// done. It runs alone: m.opening is set.
func (m *callMux) open(done chan struct{}) {
	p := m.p
	ctx, cancel := context.WithCancel(p.t.outgoing(context.Background()))
	var cs *callStream
	var err error
	timer := time.AfterFunc(openTimeout, cancel) // NewStream waits for the connection
	s, nerr := p.conn.NewStream(ctx, &serviceDesc.Streams[2], "/kintsu.Peer.v2/Calls")
	if !timer.Stop() && nerr == nil {
		nerr = errors.New("opening took too long") // the timer cancelled it
	}
	if nerr != nil {
		cancel()
		err = status.Error(codes.Unavailable, "opening the call stream: "+nerr.Error())
	} else {
		cs = &callStream{s: s, cancel: cancel, kick: make(chan struct{}, 1), waiting: map[uint64]*waiter{}}
		if !p.t.track(2) {
			cancel()
			cs, err = nil, status.Error(codes.Unavailable, "transport stopped")
		} else {
			go m.send(cs)
			go m.receive(cs)
		}
	}
	m.mu.Lock()
	m.cs, m.openErr, m.opening = cs, err, nil
	m.mu.Unlock()
	close(done)
}

// enqueue queues one call on cs and returns where its reply will arrive.
func (m *callMux) enqueue(ctx context.Context, cs *callStream, method string, body []byte) (uint64, chan muxReply, error) {
	deadline, ok := ctx.Deadline()
	if !ok || time.Until(deadline) > maxCallTimeout {
		deadline = time.Now().Add(maxCallTimeout)
	}
	m.mu.Lock()
	m.nextID++
	id := m.nextID
	m.mu.Unlock()
	w := &waiter{ch: make(chan muxReply, 1)}
	cs.mu.Lock()
	switch {
	case cs.broken != nil:
		// It broke since it was handed out; nothing was sent.
		err := cs.broken
		cs.mu.Unlock()
		return 0, nil, err
	case cs.queueBytes+len(method)+len(body) > maxQueuedCallBytes:
		cs.mu.Unlock()
		return 0, nil, errQueueFull
	}
	cs.waiting[id] = w
	cs.queue = append(cs.queue, queuedCall{id: id, deadline: deadline, method: method, body: body})
	cs.queueBytes += len(method) + len(body)
	cs.mu.Unlock()
	cs.wake()
	return id, w.ch, nil
}

func (cs *callStream) wake() {
	select {
	case cs.kick <- struct{}{}:
	default:
	}
}

// cancelLater queues a cancel of call id, which was given up on.
func (cs *callStream) cancelLater(id uint64) {
	cs.mu.Lock()
	if cs.broken == nil {
		cs.queue = append(cs.queue, queuedCall{id: id})
	}
	cs.mu.Unlock()
	cs.wake()
}

// take encodes the queued calls into frames: a call no longer waited
// for or past its deadline is dropped, and each timeout is what is left
// of its deadline now.
func (cs *callStream) take() frames {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	var f frames
	now := time.Now()
	for _, c := range cs.queue {
		if c.deadline.IsZero() {
			f.add(func(e codec.Encoder) codec.Encoder { return e.Uvarint(c.id).Uvarint(0).Bytes(nil).Bytes(nil) })
			continue
		}
		w, ok := cs.waiting[c.id]
		if !ok {
			continue
		}
		left := c.deadline.Sub(now).Milliseconds()
		if left < 1 {
			delete(cs.waiting, c.id)
			w.ch <- muxReply{err: status.Error(codes.DeadlineExceeded, "forwarded call expired before it was sent")}
			continue
		}
		f.add(func(e codec.Encoder) codec.Encoder {
			return e.Uvarint(c.id).Uvarint(uint64(left)).Bytes([]byte(c.method)).Bytes(c.body)
		})
	}
	cs.queue, cs.queueBytes = nil, 0
	return f
}

// send writes queued calls, all that are waiting, in few frames. It
// never fails the stream itself: after a failed send the stream's status
// comes from RecvMsg (receive).
func (m *callMux) send(cs *callStream) {
	defer m.p.t.wg.Done()
	for {
		select {
		case <-m.p.done:
			m.fail(cs, status.Error(codes.Unavailable, "transport closed"))
			return
		case <-cs.s.Context().Done():
			return
		case <-cs.kick:
		}
		if err := cs.take().send(cs.s); err != nil {
			return
		}
	}
}

// receive hands each reply to its waiting call.
func (m *callMux) receive(cs *callStream) {
	defer m.p.t.wg.Done()
	for {
		var f frame // fresh: replies alias it
		if err := cs.s.RecvMsg(&f); err != nil {
			if status.Code(err) == codes.Unimplemented {
				m.mu.Lock()
				m.unaryUntil = time.Now().Add(unsupportedFor)
				m.mu.Unlock()
				// An older peer: the calls sent were not served, and go
				// again as unary calls (errNotSent), as later ones do.
				m.fail(cs, errUnsupported)
				return
			}
			m.fail(cs, status.Error(codes.Unavailable, "call stream broke: "+err.Error()))
			return
		}
		d := codec.NewDecoder(f.b)
		for d.Len() > 0 {
			id, code, payload := d.Uvarint(), d.Uvarint(), d.Bytes()
			if d.Err() != nil {
				m.fail(cs, status.Error(codes.Unavailable, "malformed reply frame"))
				return
			}
			cs.deliver(id, code, payload)
		}
	}
}

// deliver adds one reply item to the call waiting for id, if any.
func (cs *callStream) deliver(id, code uint64, payload []byte) {
	cs.mu.Lock()
	w := cs.waiting[id]
	if w == nil {
		cs.mu.Unlock()
		return
	}
	if code == codeFragment || len(w.frags) > 0 {
		if len(w.frags)+len(payload) > MaxFrameBytes {
			delete(cs.waiting, id)
			cs.mu.Unlock()
			w.ch <- muxReply{err: status.Error(codes.ResourceExhausted, "forwarded reply too large")}
			return
		}
		w.frags = append(w.frags, payload...)
		if code == codeFragment {
			cs.mu.Unlock()
			return
		}
		payload = w.frags
	}
	delete(cs.waiting, id)
	cs.mu.Unlock()
	r := muxReply{b: payload}
	if code != uint64(codes.OK) {
		r = muxReply{err: status.Error(codes.Code(min(code, 1<<31)), string(payload))}
	}
	w.ch <- r
}

// forget stops waiting for id, and reports whether it was still waited
// for.
func (cs *callStream) forget(id uint64) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	_, ok := cs.waiting[id]
	delete(cs.waiting, id)
	return ok
}

// fail ends cs: every waiting call gets err, and the next call opens a
// new stream.
func (m *callMux) fail(cs *callStream, err error) {
	cs.cancel()
	cs.mu.Lock()
	if cs.broken == nil {
		cs.broken = err
	}
	waiting := cs.waiting
	cs.waiting = map[uint64]*waiter{}
	cs.queue, cs.queueBytes = nil, 0
	cs.mu.Unlock()
	for _, w := range waiting {
		w.ch <- muxReply{err: err}
	}
	m.mu.Lock()
	if m.cs == cs {
		m.cs = nil
	}
	m.mu.Unlock()
}

// frames are items (calls or replies) encoded straight into frames of
// about sendFrameBytes: a frame is closed once it reaches that size, so
// it passes it by at most one item.
type frames [][]byte

func (f *frames) add(enc func(codec.Encoder) codec.Encoder) {
	if n := len(*f); n == 0 || len((*f)[n-1]) >= sendFrameBytes {
		*f = append(*f, nil)
	}
	last := &(*f)[len(*f)-1]
	*last = enc(*last)
}

func (f frames) send(s interface{ SendMsg(any) error }) error {
	for _, b := range f {
		if err := s.SendMsg(&frame{b: b}); err != nil {
			return err
		}
	}
	return nil
}
