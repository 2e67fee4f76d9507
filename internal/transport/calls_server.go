package transport

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kintsu/kintsu/internal/codec"
)

// maxServedCalls bounds the calls one stream has in flight on the server,
// replies not yet sent included. A client waits for a slot at
// maxStreamCalls, so only calls it abandoned (whose cancels are on the
// way) or a misbehaving client come near it.
const maxServedCalls = 2 * maxStreamCalls

// handleCalls serves a peer's call stream (calls.go).
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
	r := &replier{stream: stream, kick: make(chan struct{}, 1), running: map[uint64]context.CancelFunc{}}
	var wg sync.WaitGroup
	sendErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := r.run(ctx)
		sendErr <- err
		cancel() // a failed send ends the stream: stop receiving too
	}()
	defer wg.Wait()
	defer cancel()
	for {
		var f frame // fresh: calls alias it
		if err := stream.RecvMsg(&f); err != nil {
			select {
			case serr := <-sendErr:
				if serr != nil {
					err = serr
				}
			default:
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			// Never pass gRPC's own status through: a client reads
			// Unimplemented as "this peer has no call stream, and served
			// nothing of it".
			return status.Error(codes.Unavailable, "call stream: "+err.Error())
		}
		d := codec.NewDecoder(f.b)
		for d.Len() > 0 {
			id, timeout, method, body := d.Uvarint(), d.Uvarint(), d.Bytes(), d.Bytes()
			if d.Err() != nil {
				return status.Error(codes.InvalidArgument, "malformed call frame")
			}
			if timeout == 0 {
				r.cancelCall(id)
				continue
			}
			cctx, ccancel := context.WithTimeout(ctx, time.Duration(min(timeout, uint64(maxCallTimeout.Milliseconds())))*time.Millisecond)
			switch r.admit(id, ccancel) {
			case refuse:
				ccancel()
				r.add(id, codes.ResourceExhausted, []byte("too many calls in flight"))
				continue
			case flood:
				ccancel()
				return status.Error(codes.ResourceExhausted, "too many calls in flight: closing the stream")
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer ccancel()
				out, err := call(cctx, string(method), body)
				if err == nil {
					r.add(id, codes.OK, out)
					return
				}
				st, ok := status.FromError(err)
				if !ok {
					// Unknown, or DeadlineExceeded / Canceled for a
					// context's end, as a unary call would say.
					st = status.FromContextError(err)
				}
				r.add(id, st.Code(), []byte(st.Message()))
			}()
		}
	}
}

// replier gathers a call stream's replies and writes them: every small
// reply ready, then a fragment of each large one, per round, so a small
// reply waits behind at most a fragment per large one.
type replier struct {
	stream grpc.ServerStream
	kick   chan struct{}

	mu       sync.Mutex
	small    []*reply                      // sent whole; guarded by mu
	big      []*reply                      // sent in fragments; guarded by mu
	inFlight int                           // calls admitted, reply not yet sent; guarded by mu
	running  map[uint64]context.CancelFunc // calls being served, by id; guarded by mu
}

// reply is a call's reply, or what is left to send of it.
type reply struct {
	id   uint64
	code uint64
	rest []byte
}

type admission int

const (
	admitted admission = iota
	refuse             // answer ResourceExhausted
	flood              // end the stream
)

// admit counts a call in; every call, refused or not, is in flight until
// its reply is sent.
func (r *replier) admit(id uint64, cancel context.CancelFunc) admission {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inFlight++
	switch {
	case r.inFlight > 2*maxServedCalls:
		return flood
	case r.inFlight > maxServedCalls:
		return refuse
	}
	r.running[id] = cancel
	return admitted
}

// cancelCall ends call id, which its caller gave up on: it stops serving
// it, or drops its reply if that is not sent yet (a large one may take a
// while).
func (r *replier) cancelCall(id uint64) {
	r.mu.Lock()
	cancel := r.running[id]
	drop := func(q *reply) bool {
		if q.id == id {
			r.inFlight--
			return true
		}
		return false
	}
	r.small = slices.DeleteFunc(r.small, drop)
	r.big = slices.DeleteFunc(r.big, drop)
	r.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// add queues one call's reply.
func (r *replier) add(id uint64, code codes.Code, payload []byte) {
	q := &reply{id: id, code: uint64(code), rest: payload}
	r.mu.Lock()
	delete(r.running, id)
	if len(payload) > fragmentBytes {
		r.big = append(r.big, q)
	} else {
		r.small = append(r.small, q)
	}
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// round encodes what to send next: the small replies, and up to about
// sendFrameBytes of fragments of the large ones, one each in turn. ended
// counts the calls whose last piece is in it.
func (r *replier) round() (f frames, ended int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, q := range r.small {
		f.add(func(e codec.Encoder) codec.Encoder { return e.Uvarint(q.id).Uvarint(q.code).Bytes(q.rest) })
	}
	ended = len(r.small)
	r.small = nil
	budget := sendFrameBytes
	var left []*reply
	for _, q := range r.big {
		if budget <= 0 {
			left = append(left, q)
			continue
		}
		n := min(len(q.rest), fragmentBytes)
		budget -= n
		code := uint64(codeFragment)
		if n == len(q.rest) {
			code = q.code
			ended++
		}
		f.add(func(e codec.Encoder) codec.Encoder { return e.Uvarint(q.id).Uvarint(code).Bytes(q.rest[:n]) })
		if q.rest = q.rest[n:]; code == codeFragment {
			left = append(left, q)
		}
	}
	r.big = left
	return f, ended
}

func (r *replier) pending() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.small) > 0 || len(r.big) > 0
}

func (r *replier) run(ctx context.Context) error {
	for {
		if !r.pending() {
			select {
			case <-ctx.Done():
				return nil
			case <-r.kick:
			}
		}
		f, ended := r.round()
		if err := f.send(r.stream); err != nil {
			return err
		}
		r.mu.Lock()
		r.inFlight -= ended
		r.mu.Unlock()
	}
}
