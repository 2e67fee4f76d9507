package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// serveCalls starts node 1 with TLS, serving calls with h, and returns
// node 2 aimed at it, its call stream already connected.
func serveCalls(t *testing.T, h CallHandler) (*Transport, *Transport) {
	t.Helper()
	p := newPKI(t)
	srv := New(1, slog.New(slog.NewTextHandler(&syncBuf{}, nil)))
	srv.SetTLS(tlsOf(p.node(1)))
	srv.SetClusterID(clusterA)
	srv.SetHandlers(&recorder{}, h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Serve(ln)
	t.Cleanup(srv.Stop)
	c2 := tlsOf(p.node(2))
	cl := dialer(t, 2, &c2, clusterA, ln.Addr().String())
	ready(t, cl)
	return srv, cl
}

// ready makes a unary call, so that the connection is up and Forward
// uses the call stream.
func ready(t *testing.T, cl *Transport) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cl.Call(ctx, 1, "warm", nil); err != nil {
		t.Fatalf("warm-up call: %v", err)
	}
}

// echo answers method:body and records which gRPC method carried it.
type echo struct {
	mu     sync.Mutex
	via    map[string]int
	caller map[uint64]int
}

func (e *echo) call(ctx context.Context, method string, body []byte) ([]byte, error) {
	m, _ := grpc.Method(ctx)
	id, _ := PeerNode(ctx)
	e.mu.Lock()
	if e.via == nil {
		e.via, e.caller = map[string]int{}, map[uint64]int{}
	}
	e.via[m]++
	e.caller[id]++
	e.mu.Unlock()
	return append([]byte(method+":"), body...), nil
}

// Many concurrent forwarded calls go over the one stream, each answered
// with its own reply, as the peer its certificate names.
func TestForwardedCallsShareTheStream(t *testing.T) {
	e := &echo{}
	_, cl := serveCalls(t, e.call)
	const n = 500
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			body := fmt.Appendf(nil, "%d", i)
			out, err := cl.Forward(ctx, 1, "m", body)
			if err == nil && string(out) != "m:"+string(body) {
				err = fmt.Errorf("call %d answered %q", i, out)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.via["/kintsu.Peer.v2/Calls"] != n || e.caller[2] != n+1 {
		t.Fatalf("served via %v, callers %v; want %d on the call stream, all from node 2", e.via, e.caller, n)
	}
}

// A handler's refusal reaches the caller with its code and message; a
// call's deadline reaches the handler.
func TestForwardedCallCarriesErrorsAndDeadline(t *testing.T) {
	var handlerDeadline atomic.Int64
	_, cl := serveCalls(t, func(ctx context.Context, method string, body []byte) ([]byte, error) {
		switch method {
		case "refuse":
			return nil, status.Error(codes.PermissionDenied, "not you")
		case "fail":
			return nil, errors.New("disk on fire")
		case "block":
			d, _ := ctx.Deadline()
			handlerDeadline.Store(int64(time.Until(d)))
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return []byte("ok"), nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cl.Forward(ctx, 1, "refuse", nil); status.Code(err) != codes.PermissionDenied || status.Convert(err).Message() != "not you" {
		t.Fatalf("refused call: %v", err)
	}
	if _, err := cl.Forward(ctx, 1, "fail", nil); status.Code(err) != codes.Unknown || status.Convert(err).Message() != "disk on fire" {
		t.Fatalf("failed call: %v", err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	start := time.Now()
	if _, err := cl.Forward(short, 1, "block", nil); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("blocked call: %v, want DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("a call with a 300ms deadline took %v", took)
	}
	if d := time.Duration(handlerDeadline.Load()); d <= 0 || d > 300*time.Millisecond {
		t.Fatalf("the handler's deadline was %v away, want at most the caller's 300ms", d)
	}
	// The stream still serves after all that.
	if out, err := cl.Forward(ctx, 1, "x", nil); err != nil || string(out) != "ok" {
		t.Fatalf("call after errors: %q, %v", out, err)
	}
}

// A peer that goes away fails the calls waiting on it at once, not at
// their deadlines, and a peer that comes back is called again.
func TestBrokenCallStreamFailsWaitingCalls(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 10)
	srv, cl := serveCalls(t, func(ctx context.Context, method string, body []byte) ([]byte, error) {
		if method == "block" {
			entered <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return []byte("ok"), nil
	})
	defer close(release)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := cl.Forward(ctx, 1, "block", nil)
		done <- err
	}()
	<-entered
	start := time.Now()
	go srv.Stop()
	select {
	case err := <-done:
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("call on a stopped peer: %v, want Unavailable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a call on a stopped peer still waits after 10s")
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("failing took %v", took)
	}
}

// Beyond maxStreamCalls in flight on one stream, calls are refused
// without being served.
func TestCallStreamBoundsCallsInFlight(t *testing.T) {
	release := make(chan struct{})
	var served atomic.Int64
	_, cl := serveCalls(t, func(ctx context.Context, method string, body []byte) ([]byte, error) {
		if method == "warm" {
			return nil, nil
		}
		served.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return []byte("ok"), nil
	})
	const extra = 20
	var wg sync.WaitGroup
	var exhausted, ok atomic.Int64
	for range maxStreamCalls + extra {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := cl.Forward(ctx, 1, "block", nil)
			switch status.Code(err) {
			case codes.ResourceExhausted:
				exhausted.Add(1)
			case codes.OK:
				ok.Add(1)
			default:
				t.Errorf("call: %v", err)
			}
		}()
	}
	waitFor(t, "the refusals", func() bool { return exhausted.Load() == extra })
	close(release)
	wg.Wait()
	if served.Load() != maxStreamCalls || ok.Load() != maxStreamCalls {
		t.Fatalf("served %d, answered %d; want %d each", served.Load(), ok.Load(), maxStreamCalls)
	}
}

// A peer of another cluster gets nothing served over the stream either.
func TestCallStreamOfAnotherClusterIsRefused(t *testing.T) {
	addr, rec, _ := serveNode(t, nil)
	stranger := dialer(t, 3, nil, "0ther", addr)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for range 3 { // the first goes unary while the connection comes up
		if _, err := stranger.Forward(ctx, 1, "x", nil); err == nil {
			t.Fatal("a call of another cluster was served")
		}
	}
	if _, calls := rec.seen(); len(calls) != 0 {
		t.Fatalf("%d calls of another cluster reached the node", len(calls))
	}
}

// A peer that serves no call stream (an older version) is called with
// unary calls instead, the first call included.
func TestForwardFallsBackToUnaryCalls(t *testing.T) {
	tr := New(1, slog.New(slog.NewTextHandler(&syncBuf{}, nil)))
	e := &echo{}
	tr.SetHandlers(&recorder{}, e.call)
	old := serviceDesc
	old.Streams = old.Streams[:2]
	srv := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}))
	srv.RegisterService(&old, tr)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	cl := dialer(t, 2, nil, "", ln.Addr().String())
	ready(t, cl)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := range 3 {
		if out, err := cl.Forward(ctx, 1, "m", []byte("b")); err != nil || string(out) != "m:b" {
			t.Fatalf("call %d to an older peer: %q, %v", i, out, err)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.via["/kintsu.Peer.v2/Call"] != 4 {
		t.Fatalf("served via %v, want 4 unary calls", e.via)
	}
}
