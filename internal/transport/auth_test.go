package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kintsu/kintsu/internal/pki"
	"github.com/kintsu/kintsu/internal/raftstore"
)

// recorder is a Handler and CallHandler that records what reaches it.
type recorder struct {
	mu    sync.Mutex
	envs  []raftstore.Envelope
	calls []uint64 // the caller's certificate node id per call (0: none)
}

func (r *recorder) HandleRaft(envs []raftstore.Envelope) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.envs = append(r.envs, envs...)
}
func (r *recorder) ReportUnreachable(uint64) {}
func (r *recorder) PeerDown(uint64)          {}
func (r *recorder) NewSnapshotBuilder(raftstore.Envelope) (*raftstore.SnapshotBuilder, error) {
	return nil, errors.New("no snapshots here")
}
func (r *recorder) ReceiveSnapshot(raftstore.Envelope, *raftstore.SnapshotBuilder) error {
	return errors.New("no snapshots here")
}

func (r *recorder) call(ctx context.Context, method string, body []byte) ([]byte, error) {
	id, _ := PeerNode(ctx)
	r.mu.Lock()
	r.calls = append(r.calls, id)
	r.mu.Unlock()
	return append([]byte(method+":"), body...), nil
}

func (r *recorder) seen() ([]raftstore.Envelope, []uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]raftstore.Envelope(nil), r.envs...), append([]uint64(nil), r.calls...)
}

// syncBuf collects log output from the transport's goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testPKI is a cluster CA able to issue node certificates.
type testPKI struct {
	t  *testing.T
	ca *pki.CA
}

func newPKI(t *testing.T) *testPKI {
	ca, err := pki.NewCA(time.Now(), pki.CALifetime)
	if err != nil {
		t.Fatal(err)
	}
	return &testPKI{t, ca}
}

func (p *testPKI) node(id uint64) *pki.Certs {
	cp, kp, err := p.ca.IssueNode(id, []string{"127.0.0.1"}, time.Now(), pki.CertLifetime)
	if err != nil {
		p.t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(cp, kp)
	if err != nil {
		p.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(p.ca.Cert)
	return &pki.Certs{CA: p.ca.Cert, Pool: pool, Node: pair, NodeID: id}
}

func tlsOf(c *pki.Certs) TLS {
	return TLS{Server: c.PeerServer(), Client: c.PeerClient}
}

const clusterA = "c1a551f1ed000001"

// serveNode starts node 1 of cluster clusterA with TLS (unless certs is
// nil) and returns its address, what reaches it and its log.
func serveNode(t *testing.T, certs *pki.Certs) (string, *recorder, *syncBuf) {
	t.Helper()
	logs := &syncBuf{}
	tr := New(1, slog.New(slog.NewTextHandler(logs, nil)))
	if certs != nil {
		tr.SetTLS(tlsOf(certs))
	}
	tr.SetClusterID(clusterA)
	tr.OpenMethods("j")
	rec := &recorder{}
	tr.SetHandlers(rec, rec.call)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr.Serve(ln)
	t.Cleanup(tr.Stop)
	return ln.Addr().String(), rec, logs
}

// dialer is a transport (as node id, with TLS unless nil) aimed at addr
// as node 1.
func dialer(t *testing.T, id uint64, c *TLS, cluster, addr string) *Transport {
	tr := New(id, slog.New(slog.NewTextHandler(&syncBuf{}, nil)))
	if c != nil {
		tr.SetTLS(*c)
	}
	tr.SetClusterID(cluster)
	tr.SetPeer(1, addr)
	t.Cleanup(tr.Stop)
	return tr
}

func call(tr *Transport, method string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := tr.Call(ctx, 1, method, []byte("x"))
	return err
}

func heartbeat() []raftstore.Envelope {
	return []raftstore.Envelope{{Group: 7, Msg: &pb.Message{Type: pb.MsgHeartbeat.Enum(), To: new(uint64(1)), From: new(uint64(2)), Term: new(uint64(1))}}}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSecurePeersCarryRaftAndCallsAsTheirCertificate(t *testing.T) {
	p := newPKI(t)
	addr, rec, _ := serveNode(t, p.node(1))
	c2 := tlsOf(p.node(2))
	tr := dialer(t, 2, &c2, clusterA, addr)
	if err := call(tr, "x"); err != nil {
		t.Fatal(err)
	}
	tr.Send(1, heartbeat())
	waitFor(t, "the heartbeat", func() bool { envs, _ := rec.seen(); return len(envs) > 0 })
	envs, calls := rec.seen()
	if envs[0].From != 2 || calls[0] != 2 {
		t.Fatalf("envelope from %d, call from %d; want node 2 for both", envs[0].From, calls[0])
	}
}

// On an insecure transport (the old behaviour) a stranger's call and
// frames go through; with TLS they never reach the node.
func TestStrangerWithoutCertificateIsRefused(t *testing.T) {
	p := newPKI(t)
	addr, rec, _ := serveNode(t, p.node(1))
	plain := dialer(t, 99, nil, clusterA, addr)
	if err := call(plain, "x"); err == nil {
		t.Fatal("a plaintext stranger's call was served")
	}
	// TLS, trusting the cluster's CA, but without a certificate.
	noCert := TLS{Client: func(uint64) *tls.Config {
		return &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: p.node(1).Pool}
	}}
	anon := dialer(t, 99, &noCert, clusterA, addr)
	if err := call(anon, "x"); err == nil {
		t.Fatal("a stranger without a certificate was served")
	}
	anon.Send(1, heartbeat())
	plain.Send(1, heartbeat())
	// A legitimate peer's frame after the strangers' shows theirs had time to arrive.
	c2 := tlsOf(p.node(2))
	dialer(t, 2, &c2, clusterA, addr).Send(1, heartbeat())
	waitFor(t, "node 2's heartbeat", func() bool { envs, _ := rec.seen(); return len(envs) > 0 })
	envs, calls := rec.seen()
	for _, e := range envs {
		if e.From != 2 {
			t.Errorf("a frame from %d reached the node", e.From)
		}
	}
	if len(calls) != 0 {
		t.Errorf("%d stranger calls reached the node", len(calls))
	}
}

func TestPeerWithCertificateOfAnotherCAIsRefused(t *testing.T) {
	p := newPKI(t)
	ours := p.node(1)
	addr, rec, logs := serveNode(t, ours)
	other := newPKI(t).node(2)
	// It trusts our CA, so only our check of its certificate stands in the way.
	c := TLS{Client: func(uint64) *tls.Config {
		cfg := other.PeerClient(0)
		cfg.RootCAs = ours.Pool
		return cfg
	}}
	if err := call(dialer(t, 2, &c, clusterA, addr), "x"); err == nil {
		t.Fatal("a peer with a certificate of another CA was served")
	}
	if _, calls := rec.seen(); len(calls) != 0 {
		t.Fatal("its call reached the node")
	}
	// gRPC keeps failed handshakes to itself; the node's log must not.
	waitFor(t, "the refused handshake in the log", func() bool { return strings.Contains(logs.String(), "TLS handshake failed") })
}

func TestClientCertificateCannotCallAsPeer(t *testing.T) {
	p := newPKI(t)
	ours := p.node(1)
	addr, _, _ := serveNode(t, ours)
	cp, kp, err := p.ca.IssueClient("alice", time.Now(), pki.CertLifetime)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(cp, kp)
	if err != nil {
		t.Fatal(err)
	}
	c := TLS{Client: func(uint64) *tls.Config {
		return &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: ours.Pool, Certificates: []tls.Certificate{pair}}
	}}
	if err := call(dialer(t, 2, &c, clusterA, addr), "x"); err == nil {
		t.Fatal("a client certificate was served as a peer")
	}
}

// A member's certificate does not let it speak for another node: node
// 2's certificate sending frames as node 3 is refused, stream and all.
func TestFramesClaimingAnotherNodeAreRefused(t *testing.T) {
	p := newPKI(t)
	addr, rec, logs := serveNode(t, p.node(1))
	c2 := tlsOf(p.node(2))
	liar := dialer(t, 3, &c2, clusterA, addr) // encodes frames as from node 3
	liar.Send(1, heartbeat())
	waitFor(t, "the refusal in the log", func() bool { return strings.Contains(logs.String(), "claim another node id") })
	if envs, _ := rec.seen(); len(envs) != 0 {
		t.Fatalf("%d envelopes claiming node 3 reached the node", len(envs))
	}
	if !strings.Contains(logs.String(), "cert-node=2 claimed-node=3") {
		t.Errorf("the log does not say who claimed what:\n%s", logs)
	}
}

func TestClusterIDMismatchIsRefusedAndLogged(t *testing.T) {
	p := newPKI(t)
	addr, rec, logs := serveNode(t, p.node(1))
	c2 := tlsOf(p.node(2))
	stranger := dialer(t, 2, &c2, "0ther0c1a55", addr)
	err := call(stranger, "x")
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "cluster ID mismatch: local "+clusterA+", remote 0ther0c1a55") {
		t.Fatalf("call from another cluster: %v, want a cluster ID mismatch", err)
	}
	stranger.Send(1, heartbeat())
	// Repeated refusals are logged once (rate-limited).
	_ = call(stranger, "x")
	waitFor(t, "the raft refusal", func() bool { return strings.Contains(logs.String(), "kind=raft") })
	if envs, calls := rec.seen(); len(envs)+len(calls) != 0 {
		t.Fatalf("traffic of another cluster reached the node: %d envelopes, %d calls", len(envs), len(calls))
	}
	out := logs.String()
	if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "local-cluster-id="+clusterA) || !strings.Contains(out, "remote-cluster-id=0ther0c1a55") {
		t.Errorf("the refusal is not logged at ERROR with both ids:\n%s", out)
	}
	if n := strings.Count(out, "kind=call"); n != 1 {
		t.Errorf("two refused calls logged %d times, want once", n)
	}
}

// A node that does not know its cluster yet may only ask to join.
func TestOnlyTheJoinGoesWithoutClusterID(t *testing.T) {
	p := newPKI(t)
	addr, rec, _ := serveNode(t, p.node(1))
	c4 := tlsOf(p.node(4))
	joiner := dialer(t, 4, &c4, "", addr)
	if err := call(joiner, "j"); err != nil {
		t.Fatalf("the join call without a cluster id: %v", err)
	}
	if err := call(joiner, "x"); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("another call without a cluster id: %v, want refused", err)
	}
	if _, calls := rec.seen(); len(calls) != 1 || calls[0] != 4 {
		t.Fatalf("calls served: %v, want the join from node 4 only", calls)
	}
}

// Without TLS (--insecure) the transport works as before, cluster id
// checks included.
func TestInsecureTransportStillChecksClusterID(t *testing.T) {
	addr, rec, _ := serveNode(t, nil)
	if err := call(dialer(t, 2, nil, clusterA, addr), "x"); err != nil {
		t.Fatal(err)
	}
	if err := call(dialer(t, 3, nil, "0ther", addr), "x"); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("insecure call of another cluster: %v, want refused", err)
	}
	if _, calls := rec.seen(); len(calls) != 1 || calls[0] != 0 {
		t.Fatalf("calls %v: want one, with no certificate id", calls)
	}
}

type noPairs struct{}

func (noPairs) Iterate(func(k, v []byte) error) error { return nil }

// A snapshot, which replaces a replica's whole state, is refused as
// early as a raft frame when its header claims another node.
func TestSnapshotClaimingAnotherNodeIsRefused(t *testing.T) {
	p := newPKI(t)
	addr, _, logs := serveNode(t, p.node(1))
	c2 := tlsOf(p.node(2))
	liar := dialer(t, 3, &c2, clusterA, addr)
	done := make(chan error, 1)
	env := raftstore.Envelope{Group: 7, Msg: &pb.Message{Type: pb.MsgSnap.Enum(), To: new(uint64(1)), From: new(uint64(3)), Term: new(uint64(1))}}
	liar.SendSnapshot(1, env, noPairs{}, func(err error) { done <- err })
	select {
	case err := <-done:
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("snapshot claiming node 3 with node 2's certificate: %v, want PermissionDenied", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the snapshot neither failed nor finished")
	}
	if !strings.Contains(logs.String(), "kind=snapshot cert-node=2 claimed-node=3") {
		t.Errorf("the refusal is not logged:\n%s", logs)
	}
}
