package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
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
// each: a unary call costs a new HTTP/2 stream, its headers and a
// goroutine hand-off on both sides, which under cross-partition writes was
// about a tenth of a node's CPU.
//
// Wire (stream "Calls" of kintsu.Peer.v2, both ways a sequence of frames):
//
//	call frame:  repeated (id uvarint, timeout-ms uvarint, method bytes, body bytes)
//	reply frame: repeated (id uvarint, code uvarint, payload bytes)
//
// code is a gRPC status code: OK carries the answer, any other the error's
// message. A peer that does not serve the stream (an older version)
// answers Unimplemented, and Forward then uses unary calls for good.
//
// Invariants:
//   - Every call waits at most until its context ends, and a broken
//     stream fails every call waiting on it at once (Unavailable), as a
//     broken connection fails a unary call; the caller treats both as
//     "may have been delivered".
//   - The server admits a stream as it admits a unary call (cluster id,
//     certificate), serves each call with its own deadline (at most
//     maxCallTimeout) and the stream's peer identity, and holds at most
//     maxStreamCalls calls in flight per stream; beyond that it answers
//     ResourceExhausted without serving. Every size read off the wire is
//     bounded (the frame by MaxFrameBytes, each field by the frame).
//   - A reply is delivered only to the call that still waits for its id;
//     late or unknown ids are dropped.

// maxCallTimeout bounds a forwarded call that came without a deadline.
const maxCallTimeout = 30 * time.Second

// maxStreamCalls bounds the calls one stream may have in flight on the
// server.
const maxStreamCalls = 4096

// muxReply is one call's outcome as the caller sees it.
type muxReply struct {
	b   []byte
	err error
}

// callMux is the client side of one peer's call stream.
type callMux struct {
	p *peer

	mu          sync.Mutex
	unsupported bool        // the peer serves no call stream: use unary calls
	cs          *callStream // nil until opened, and after it broke
	nextID      uint64
}

// callStream is one open call stream and the calls waiting on it.
type callStream struct {
	s       grpc.ClientStream
	cancel  context.CancelFunc
	kick    chan struct{}
	mu      sync.Mutex
	queue   [][]byte                 // encoded calls not yet sent; guarded by mu
	waiting map[uint64]chan muxReply // guarded by mu
	broken  error                    // guarded by mu
}

// Forward sends a request to node's CallHandler like Call, over the
// peer's call stream (see above).
func (t *Transport) Forward(ctx context.Context, node uint64, method string, body []byte) ([]byte, error) {
	if t.isCut(node) {
		<-ctx.Done()
		return nil, fmt.Errorf("%w: %v", ErrCut, ctx.Err())
	}
	p, err := t.peer(node)
	if err != nil {
		return nil, err
	}
	if p.conn.GetState() != connectivity.Ready {
		// Opening a stream would wait for the connection without the
		// call's deadline; a unary call waits with it.
		return t.Call(ctx, node, method, body)
	}
	cs, id, ch, err := p.calls.start(ctx, method, body)
	if errors.Is(err, errUnsupported) {
		return t.Call(ctx, node, method, body)
	}
	if err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		if errors.Is(r.err, errUnsupported) {
			// The peer refused the stream, so it served nothing of it.
			return t.Call(ctx, node, method, body)
		}
		return r.b, r.err
	case <-ctx.Done():
		cs.forget(id)
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

var errUnsupported = errors.New("transport: peer serves no call stream")

// start queues one call on the open stream (opening it if needed) and
// returns where its reply will arrive.
func (m *callMux) start(ctx context.Context, method string, body []byte) (*callStream, uint64, chan muxReply, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.unsupported {
		return nil, 0, nil, errUnsupported
	}
	if m.cs == nil {
		cs, err := m.open()
		if err != nil {
			return nil, 0, nil, err
		}
		m.cs = cs
	}
	timeout := uint64(0)
	if d, ok := ctx.Deadline(); ok {
		timeout = uint64(max(time.Until(d).Milliseconds(), 1))
	}
	m.nextID++
	id, ch := m.nextID, make(chan muxReply, 1)
	cs := m.cs
	cs.mu.Lock()
	if cs.broken != nil {
		// It broke since the last call: its receiver is about to clear
		// m.cs. Nothing was sent; say so, and the caller retries.
		err := cs.broken
		cs.mu.Unlock()
		m.cs = nil
		return nil, 0, nil, err
	}
	cs.waiting[id] = ch
	cs.queue = append(cs.queue, codec.Encoder(nil).Uvarint(id).Uvarint(timeout).Bytes([]byte(method)).Bytes(body))
	cs.mu.Unlock()
	select {
	case cs.kick <- struct{}{}:
	default:
	}
	return cs, id, ch, nil
}

// open starts a call stream and its sender and receiver; m.mu is held.
func (m *callMux) open() (*callStream, error) {
	p := m.p
	ctx, cancel := context.WithCancel(p.t.outgoing(context.Background()))
	s, err := p.conn.NewStream(ctx, &serviceDesc.Streams[2], "/kintsu.Peer.v2/Calls")
	if err != nil {
		cancel()
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	cs := &callStream{s: s, cancel: cancel, kick: make(chan struct{}, 1), waiting: map[uint64]chan muxReply{}}
	p.t.wg.Add(2)
	go m.send(cs)
	go m.receive(cs)
	return cs, nil
}

// send writes queued calls, all that are waiting in one frame.
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
		cs.mu.Lock()
		q := cs.queue
		cs.queue = nil
		cs.mu.Unlock()
		if err := sendPacked(cs.s, q); err != nil {
			m.fail(cs, status.Error(codes.Unavailable, "call stream broke: "+err.Error()))
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
				m.unsupported = true
				m.mu.Unlock()
				// An older peer: the calls queued were not served, and go
				// again as unary calls (Forward), as every later one does.
				m.fail(cs, errUnsupported)
				return
			}
			m.fail(cs, status.Error(codes.Unavailable, "call stream broke: "+err.Error()))
			return
		}
		d := codec.NewDecoder(f.b)
		for d.Len() > 0 && d.Err() == nil {
			id, code, payload := d.Uvarint(), codes.Code(d.Uvarint()), d.Bytes()
			if d.Err() != nil {
				break
			}
			r := muxReply{b: payload}
			if code != codes.OK {
				r = muxReply{err: status.Error(code, string(payload))}
			}
			cs.deliver(id, r)
		}
		if d.Err() != nil {
			m.fail(cs, status.Error(codes.Unavailable, "malformed reply frame"))
			return
		}
	}
}

func (cs *callStream) deliver(id uint64, r muxReply) {
	cs.mu.Lock()
	ch := cs.waiting[id]
	delete(cs.waiting, id)
	cs.mu.Unlock()
	if ch != nil {
		ch <- r // buffered: never blocks
	}
}

func (cs *callStream) forget(id uint64) {
	cs.mu.Lock()
	delete(cs.waiting, id)
	cs.mu.Unlock()
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
	cs.waiting = map[uint64]chan muxReply{}
	cs.mu.Unlock()
	for _, ch := range waiting {
		ch <- muxReply{err: err}
	}
	m.mu.Lock()
	if m.cs == cs {
		m.cs = nil
	}
	m.mu.Unlock()
}

// handleCalls serves a peer's call stream.
func handleCalls(srv any, stream grpc.ServerStream) error {
	t := srv.(*Transport)
	if _, err := t.admit(stream.Context(), "calls", ""); err != nil {
		return err
	}
	t.mu.Lock()
	call := t.call
	t.mu.Unlock()
	if call == nil {
		return status.Error(codes.Unavailable, "node not ready")
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	r := &replier{stream: stream, kick: make(chan struct{}, 1)}
	var wg sync.WaitGroup
	defer wg.Wait()
	sendErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		sendErr <- r.run(ctx)
	}()
	defer cancel() // stops the replier before the wait above
	for {
		var f frame
		if err := stream.RecvMsg(&f); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		d := codec.NewDecoder(f.b)
		for d.Len() > 0 {
			id, timeout, method, body := d.Uvarint(), d.Uvarint(), d.Bytes(), d.Bytes()
			if d.Err() != nil {
				return status.Error(codes.InvalidArgument, "malformed call frame")
			}
			if !r.admit() {
				r.add(id, status.New(codes.ResourceExhausted, "too many calls in flight"), nil)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer r.done()
				d := maxCallTimeout
				if timeout > 0 && timeout < uint64(maxCallTimeout.Milliseconds()) {
					d = time.Duration(timeout) * time.Millisecond
				}
				cctx, ccancel := context.WithTimeout(ctx, d)
				defer ccancel()
				out, err := call(cctx, string(method), body)
				if err != nil {
					st, ok := status.FromError(err)
					if !ok {
						// Unknown, or DeadlineExceeded / Canceled for a
						// context's end, as a unary call would say.
						st = status.FromContextError(err)
					}
					r.add(id, st, nil)
					return
				}
				r.add(id, nil, out)
			}()
		}
		select {
		case err := <-sendErr:
			return err
		default:
		}
	}
}

// replier gathers a call stream's replies and writes them, all that are
// ready in one frame.
type replier struct {
	stream   grpc.ServerStream
	kick     chan struct{}
	mu       sync.Mutex
	out      [][]byte // encoded replies not yet sent; guarded by mu
	inFlight int      // guarded by mu
}

func (r *replier) admit() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inFlight >= maxStreamCalls {
		return false
	}
	r.inFlight++
	return true
}

func (r *replier) done() {
	r.mu.Lock()
	r.inFlight--
	r.mu.Unlock()
}

// add queues one reply: st nil means success with answer.
func (r *replier) add(id uint64, st *status.Status, answer []byte) {
	enc := codec.Encoder(nil).Uvarint(id)
	if st == nil {
		enc = enc.Uvarint(uint64(codes.OK)).Bytes(answer)
	} else {
		enc = enc.Uvarint(uint64(st.Code())).Bytes([]byte(st.Message()))
	}
	r.mu.Lock()
	r.out = append(r.out, enc)
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *replier) run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.kick:
		}
		r.mu.Lock()
		out := r.out
		r.out = nil
		r.mu.Unlock()
		if err := sendPacked(r.stream, out); err != nil {
			return err
		}
	}
}

// sendPacked sends encoded calls or replies, as many to a frame as fit in
// about sendFrameBytes (one larger than that goes alone), so no frame
// passes the peer's MaxFrameBytes unless one item alone does.
func sendPacked(s interface{ SendMsg(any) error }, items [][]byte) error {
	var b []byte
	for i, it := range items {
		b = append(b, it...)
		if i == len(items)-1 || len(b)+len(items[i+1]) > sendFrameBytes {
			if err := s.SendMsg(&frame{b: b}); err != nil {
				return err
			}
			b = nil
		}
	}
	return nil
}
