package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/kintsu/kintsu/internal/raftstore"
)

// Limits on the wire.
const (
	// MaxFrameBytes bounds one received frame: a raft batch, a snapshot
	// chunk or a forwarded call. It exceeds the largest command a client may
	// send (the RESP reader's limit) plus framing.
	MaxFrameBytes = 128 << 20
	// sendFrameBytes is where the sender cuts raft batches into frames.
	sendFrameBytes = 4 << 20
	// maxQueued and maxQueuedBytes bound the raft messages waiting for one
	// peer (beyond them messages are dropped; raft retransmits).
	maxQueued      = 8192
	maxQueuedBytes = 64 << 20
	// snapshotChunkBytes is the size of the pieces a snapshot is sent in.
	snapshotChunkBytes = 1 << 20
	// backgroundNice is the CPU priority (nice) of the threads that send
	// and receive snapshots: a move takes the CPU the foreground leaves,
	// up to its rate, as RocksDB lowers its compaction threads'.
	backgroundNice = 10
	// snapshotIdle bounds the time a snapshot transfer may make no
	// progress: the sender, a chunk's send (not its wait for the node's
	// rate); the receiver, twice that between chunks. A transfer takes as
	// long as its size and the rate shared with the others need.
	snapshotIdle = time.Minute
)

// ErrUnknownPeer: no address is known for the node.
var ErrUnknownPeer = errors.New("transport: unknown peer")

// errPeerClosed: the peer was closed (its address changed, or the
// transport stopped) while a snapshot was about to be sent.
var errPeerClosed = errors.New("transport: peer closed")

// Handler receives what peers send. raftstore.Engine implements it.
type Handler interface {
	HandleRaft(envs []raftstore.Envelope)
	ReportUnreachable(node uint64)
	// PeerDown: the connection to node, once established, broke — as it
	// does at once when the node's process dies and its kernel closes
	// its sockets.
	PeerDown(node uint64)
	NewSnapshotBuilder(env raftstore.Envelope) (*raftstore.SnapshotBuilder, error)
	ReceiveSnapshot(env raftstore.Envelope, b *raftstore.SnapshotBuilder) error
}

// CallHandler serves a unary call from a peer (request forwarding).
type CallHandler func(ctx context.Context, method string, body []byte) ([]byte, error)

// Transport is a node's peer-to-peer messaging.
type Transport struct {
	nodeID uint64
	log    *slog.Logger

	mu      sync.Mutex
	addrs   map[uint64]string // guarded by mu
	peers   map[uint64]*peer  // guarded by mu
	handler Handler           // set before Serve
	call    CallHandler
	stopped bool
	// cut lists peers this node must not send to (fault injection only:
	// a network partition as seen from this side). Guarded by mu.
	cut map[uint64]bool
	// tls, clusterID and open are the peer authentication (auth.go);
	// guarded by mu.
	tls       *TLS
	clusterID string
	open      map[string]bool
	refusals  refusalLog

	// snapRate paces outgoing snapshots; snapIn holds a place for each
	// snapshot being received (snaprate.go).
	snapRate byteRate
	snapIn   chan struct{}

	srv  *grpc.Server
	stop chan struct{}
	wg   sync.WaitGroup
}

// New creates a transport for nodeID.
func New(nodeID uint64, log *slog.Logger) *Transport {
	t := &Transport{
		nodeID: nodeID,
		log:    log,
		addrs:  map[uint64]string{},
		peers:  map[uint64]*peer{},
		snapIn: make(chan struct{}, maxIncomingSnapshots),
		stop:   make(chan struct{}),
	}
	t.snapRate.set(DefaultSnapshotRate)
	return t
}

// SetPeer records (or changes) the peer address of node.
func (t *Transport) SetPeer(node uint64, addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.addrs[node]; ok && old != addr {
		if p := t.peers[node]; p != nil {
			p.close()
			delete(t.peers, node)
		}
	}
	t.addrs[node] = addr
}

// SetHandlers installs the receivers; call before Serve.
func (t *Transport) SetHandlers(h Handler, call CallHandler) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.handler, t.call = h, call
}

// serviceDesc's name carries the wire format's version: a node speaking
// another version finds no such service, instead of misreading frames.
var serviceDesc = grpc.ServiceDesc{
	ServiceName: "kintsu.Peer.v2",
	HandlerType: (*any)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Call", Handler: handleCall}},
	Streams: []grpc.StreamDesc{
		{StreamName: "Raft", Handler: handleRaft, ClientStreams: true},
		{StreamName: "Snapshot", Handler: handleSnapshot, ClientStreams: true},
		{StreamName: "Calls", Handler: handleCalls, ClientStreams: true, ServerStreams: true},
	},
}

// Serve accepts peers on lis until Stop, at most maxPeerConns at once.
func (t *Transport) Serve(lis net.Listener) {
	t.serve(lis, maxPeerConns, maxConnsPerIP)
}

func (t *Transport) serve(lis net.Listener, maxConns, perIP int) {
	lis = newLimitListener(lis, maxConns, perIP, t)
	t.srv = grpc.NewServer(
		t.serverCreds(),
		grpc.ForceServerCodec(rawCodec{}),
		// Stop waits for running handlers, so none touches the node's
		// storage after it is closed.
		grpc.WaitForHandlers(true),
		grpc.MaxRecvMsgSize(MaxFrameBytes),
		grpc.ConnectionTimeout(handshakeTimeout),
		grpc.MaxConcurrentStreams(maxStreamsPerConn),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 10 * time.Second, Timeout: peerUserTimeout}),
	)
	t.srv.RegisterService(&serviceDesc, t)
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		_ = t.srv.Serve(lis)
	}()
}

// Stop closes every connection and stops serving.
func (t *Transport) Stop() {
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return
	}
	t.stopped = true
	close(t.stop)
	for _, p := range t.peers {
		p.close()
	}
	t.mu.Unlock()
	if t.srv != nil {
		t.srv.Stop()
	}
	t.wg.Wait()
}

func (t *Transport) peer(node uint64) (*peer, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return nil, errors.New("transport stopped")
	}
	if p := t.peers[node]; p != nil {
		return p, nil
	}
	addr, ok := t.addrs[node]
	if !ok {
		return nil, fmt.Errorf("%w: node %d", ErrUnknownPeer, node)
	}
	conn, err := t.dial(node, addr)
	if err != nil {
		return nil, err
	}
	p := &peer{t: t, node: node, addr: addr, conn: conn, kick: make(chan struct{}, 1), done: make(chan struct{})}
	p.calls = callMux{p: p, slots: make(chan struct{}, maxStreamCalls)}
	t.peers[node] = p
	t.wg.Add(2)
	go p.run()
	go p.watch()
	return p, nil
}

// dial makes a client connection to node at addr (gRPC connects it
// lazily, and again whenever it breaks).
func (t *Transport) dial(node uint64, addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr,
		grpc.WithTransportCredentials(t.dialCreds(node)),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{}), grpc.MaxCallRecvMsgSize(MaxFrameBytes)),
		// Peers come back within seconds after a crash; never back off for
		// minutes as gRPC would by default.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: time.Second,
		}),
		// gRPC enforces at least 10s between client pings; raft's own
		// heartbeats detect a dead leader much sooner.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 3 * time.Second, PermitWithoutStream: true}),
	)
}

// track counts n goroutines about to start in the transport's wait
// group, unless the transport is stopped (then it reports false).
func (t *Transport) track(n int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	t.wg.Add(n)
	return true
}

// watch reports the connection to the peer breaking after it was up.
// gRPC notices at once when the peer's socket is closed (a crashed
// process); a silent host is left to raft's election timeout.
func (p *peer) watch() {
	defer p.t.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-p.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	p.conn.Connect()
	up := false
	for {
		st := p.conn.GetState()
		switch st {
		case connectivity.Ready:
			up = true
		case connectivity.Idle, connectivity.TransientFailure:
			if up {
				up = false
				if h, err := p.t.readyHandler(); err == nil {
					h.PeerDown(p.node)
				}
			}
			if st == connectivity.Idle {
				p.conn.Connect() // keep the connection (and so the watch) alive
			}
		case connectivity.Shutdown:
			return
		}
		if !p.conn.WaitForStateChange(ctx, st) {
			return
		}
	}
}

// ErrCut: the link to the peer is cut by fault injection.
var ErrCut = errors.New("transport: link cut by fault injection")

// SetCut replaces the set of peers this node cannot send to. It exists for
// fault injection (kintsu chaos): cutting A->B on A and B->A on B is a
// network partition between them; cutting one side is a one-way cut.
func (t *Transport) SetCut(nodes []uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cut = map[uint64]bool{}
	for _, n := range nodes {
		t.cut[n] = true
	}
}

func (t *Transport) isCut(node uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cut[node]
}

// Send implements raftstore.Transport.
func (t *Transport) Send(node uint64, envs []raftstore.Envelope) {
	if t.isCut(node) {
		return
	}
	p, err := t.peer(node)
	if err != nil {
		return
	}
	p.enqueue(envs)
}

// callee returns the peer a call goes to.
func (t *Transport) callee(ctx context.Context, node uint64) (*peer, error) {
	if t.isCut(node) {
		// A cut link looks like an unreachable peer: the call does not
		// return before its deadline would, but it also cannot deliver.
		<-ctx.Done()
		return nil, fmt.Errorf("%w: %v", ErrCut, ctx.Err())
	}
	return t.peer(node)
}

// Call sends a unary request to node's CallHandler.
func (t *Transport) Call(ctx context.Context, node uint64, method string, body []byte) ([]byte, error) {
	p, err := t.callee(ctx, node)
	if err != nil {
		return nil, err
	}
	return p.unary(ctx, method, body)
}

// unary makes one unary call to the peer.
func (p *peer) unary(ctx context.Context, method string, body []byte) ([]byte, error) {
	req := &frame{b: appendPair(nil, []byte(method), body)}
	var out frame
	if err := p.conn.Invoke(p.t.outgoing(ctx), "/kintsu.Peer.v2/Call", req, &out); err != nil {
		return nil, err
	}
	return out.b, nil
}

func handleCall(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
	t := srv.(*Transport)
	var in frame
	if err := dec(&in); err != nil {
		return nil, err
	}
	method, body, err := decodeCall(in.b)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, "malformed call")
	}
	if _, err := t.admit(ctx, "call", method); err != nil {
		return nil, err
	}
	t.mu.Lock()
	call := t.call
	t.mu.Unlock()
	if call == nil {
		return nil, status.Error(codes.Unavailable, "node not ready")
	}
	out, err := call(ctx, method, body)
	if err != nil {
		if _, ok := status.FromError(err); ok {
			return nil, err // the handler chose the code (a refusal)
		}
		return nil, status.Error(codes.Unknown, err.Error())
	}
	return &frame{b: out}, nil
}

// readyHandler returns the installed handler, or a gRPC error a peer
// retries on while this node is still starting.
func (t *Transport) readyHandler() (Handler, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.handler == nil {
		return nil, status.Error(codes.Unavailable, "node not ready")
	}
	return t.handler, nil
}

func handleRaft(srv any, stream grpc.ServerStream) error {
	t := srv.(*Transport)
	node, err := t.admit(stream.Context(), "raft", "")
	if err != nil {
		return err
	}
	h, err := t.readyHandler()
	if err != nil {
		return err
	}
	var f frame
	for {
		if err := stream.RecvMsg(&f); err != nil {
			if errors.Is(err, io.EOF) {
				return stream.SendMsg(&frame{})
			}
			return err
		}
		from, envs, err := decodeEnvelopes(f.b)
		if err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		if err := t.checkSender(stream.Context(), "raft", node, from); err != nil {
			return err
		}
		h.HandleRaft(envs)
	}
}

// peer owns the raft stream to one node.
type peer struct {
	t    *Transport
	node uint64
	addr string
	conn *grpc.ClientConn
	// snapConn carries the snapshots to the peer (snapshotConn), made at
	// the first; guarded by mu.
	snapConn *grpc.ClientConn

	mu         sync.Mutex
	queue      []raftstore.Envelope // guarded by mu
	queueBytes int                  // guarded by mu
	closed     bool

	kick chan struct{}
	done chan struct{}
	once sync.Once

	calls callMux // forwarded calls (calls.go)
}

func (p *peer) close() {
	p.once.Do(func() {
		close(p.done)
		p.conn.Close()
		p.mu.Lock()
		p.closed = true
		snap := p.snapConn
		p.mu.Unlock()
		if snap != nil {
			snap.Close()
		}
	})
}

// snapshotConn is the connection snapshots to the peer travel on: one of
// their own, so that raft messages and forwarded requests never wait
// behind a snapshot's frames in one HTTP/2 connection, nor for a lock of
// that connection held by a snapshot's thread of lower priority.
func (p *peer) snapshotConn() (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errPeerClosed
	}
	if p.snapConn == nil {
		c, err := p.t.dial(p.node, p.addr)
		if err != nil {
			return nil, err
		}
		p.snapConn = c
	}
	return p.snapConn, nil
}

func (p *peer) enqueue(envs []raftstore.Envelope) {
	size := 0
	for _, env := range envs {
		size += msgSize(env)
	}
	p.mu.Lock()
	if len(p.queue)+len(envs) <= maxQueued && p.queueBytes+size <= maxQueuedBytes {
		p.queue = append(p.queue, envs...)
		p.queueBytes += size
	}
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *peer) take() []raftstore.Envelope {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.queue
	p.queue, p.queueBytes = nil, 0
	return q
}

// raftStream is an open Raft stream and the cancel that closes it.
type raftStream struct {
	s      grpc.ClientStream
	cancel context.CancelFunc
}

func (p *peer) openStream() (*raftStream, error) {
	ctx, cancel := context.WithCancel(p.t.outgoing(context.Background()))
	s, err := p.conn.NewStream(ctx, &serviceDesc.Streams[0], "/kintsu.Peer.v2/Raft")
	if err != nil {
		cancel()
		return nil, err
	}
	return &raftStream{s: s, cancel: cancel}, nil
}

func (p *peer) run() {
	defer p.t.wg.Done()
	var rs *raftStream
	defer func() {
		if rs != nil {
			rs.cancel()
		}
	}()
	delay := 50 * time.Millisecond
	// fail drops the stream and what is queued (raft retransmits; stale
	// messages only slow recovery), reports the peer unreachable and backs
	// off. It returns false when the peer is being closed.
	fail := func() bool {
		if rs != nil {
			rs.cancel()
			rs = nil
		}
		p.take()
		if h, err := p.t.readyHandler(); err == nil {
			h.ReportUnreachable(p.node)
		}
		select {
		case <-p.done:
			return false
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
		return true
	}
	for {
		select {
		case <-p.done:
			return
		case <-p.kick:
		}
		for {
			envs := p.take()
			if len(envs) == 0 {
				break
			}
			if rs == nil {
				var err error
				if rs, err = p.openStream(); err != nil {
					if !fail() {
						return
					}
					break
				}
			}
			if err := p.sendBatched(rs.s, envs); err != nil {
				if !fail() {
					return
				}
				break
			}
			delay = 50 * time.Millisecond
		}
	}
}

// sendBatched sends envs in frames of about sendFrameBytes.
func (p *peer) sendBatched(stream grpc.ClientStream, envs []raftstore.Envelope) error {
	start, size := 0, 0
	for i, env := range envs {
		size += msgSize(env)
		if size >= sendFrameBytes || i == len(envs)-1 {
			b, err := encodeEnvelopes(p.t.nodeID, envs[start:i+1])
			if err != nil {
				return err
			}
			if err := stream.SendMsg(&frame{b: b}); err != nil {
				return err
			}
			start, size = i+1, 0
		}
	}
	return nil
}

func msgSize(env raftstore.Envelope) int {
	n := 64
	for _, e := range env.Msg.GetEntries() {
		n += len(e.GetData()) + 16
	}
	return n
}
