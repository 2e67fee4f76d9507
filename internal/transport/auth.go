package transport

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	grpcpeer "google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/kintsu/kintsu/internal/pki"
)

// Who may talk to this node, and as whom.
//
// Invariants:
//   - With TLS, a peer's node id is the one its verified certificate
//     names (pki.NodeOf), never the one its frames claim: a raft or
//     snapshot frame whose sender differs is refused with the whole
//     stream, and envelopes carry the certificate's id.
//   - Once the node knows its cluster id, every stream and call must carry
//     the same one (clusterIDHeader); a different one is refused and
//     logged at ERROR with both ids; none is refused too, except for the
//     methods a node that does not know the cluster yet must call (the
//     join, OpenMethods).
//   - Without TLS (--insecure) the frame's sender is believed: that mode
//     is for loopback and tests, and says so where it is chosen.

// clusterIDHeader is the gRPC metadata key carrying the sender's cluster
// id (as etcd's X-Etcd-Cluster-ID).
const clusterIDHeader = "kintsu-cluster-id"

// TLS is the transport's TLS material. Server is the peer port's config;
// Client returns the config for dialing node (whose certificate must
// name that node; Client decides what an id it cannot check means).
type TLS struct {
	Server *tls.Config
	Client func(node uint64) *tls.Config
}

// SetTLS makes the transport serve and dial with TLS; call before Serve
// and before the first Send or Call.
func (t *Transport) SetTLS(c TLS) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tls = &c
}

// SetClusterID gives the transport the cluster id to send and to demand.
func (t *Transport) SetClusterID(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.clusterID = id
}

// OpenMethods names the calls accepted without a cluster id.
func (t *Transport) OpenMethods(methods ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.open = map[string]bool{}
	for _, m := range methods {
		t.open[m] = true
	}
}

func (t *Transport) serverCreds() grpc.ServerOption {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tls == nil {
		return grpc.EmptyServerOption{}
	}
	return grpc.Creds(loggedCreds{credentials.NewTLS(t.tls.Server), t, 0})
}

// dialCreds is the credentials for dialing node; called with mu held.
func (t *Transport) dialCreds(node uint64) credentials.TransportCredentials {
	if t.tls == nil {
		return insecure.NewCredentials()
	}
	return loggedCreds{credentials.NewTLS(t.tls.Client(node)), t, node}
}

// loggedCreds logs failed TLS handshakes (rate-limited): gRPC keeps them
// to itself, and a peer refused for its certificate, or a peer whose
// certificate this node refuses, must show in the log of both nodes.
type loggedCreds struct {
	credentials.TransportCredentials
	t    *Transport
	node uint64 // the peer dialed; 0 on the server side
}

func (c loggedCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, info, err := c.TransportCredentials.ServerHandshake(conn)
	if err != nil {
		host, _, _ := net.SplitHostPort(conn.RemoteAddr().String())
		c.t.refusals.log(c.t, "handshake from "+host, "refused a peer connection: TLS handshake failed", "addr", conn.RemoteAddr().String(), "err", err)
	}
	return out, info, err
}

func (c loggedCreds) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, conn)
	if err != nil && ctx.Err() == nil {
		c.t.refusals.log(c.t, fmt.Sprintf("handshake to %d", c.node), "cannot reach a peer: TLS handshake failed", "peer-node", c.node, "addr", authority, "err", err)
	}
	return out, info, err
}

func (c loggedCreds) Clone() credentials.TransportCredentials {
	return loggedCreds{c.TransportCredentials.Clone(), c.t, c.node}
}

// outgoing adds this node's cluster id to ctx, when it knows it.
func (t *Transport) outgoing(ctx context.Context) context.Context {
	t.mu.Lock()
	id := t.clusterID
	t.mu.Unlock()
	if id == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, clusterIDHeader, id)
}

// PeerNode returns the node id a verified peer certificate names, for a
// call or stream served by a transport with TLS. Without TLS it returns
// false: nothing vouches for the caller.
func PeerNode(ctx context.Context) (uint64, bool) {
	p, ok := grpcpeer.FromContext(ctx)
	if !ok {
		return 0, false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return 0, false
	}
	return pki.NodeOf(info.State.VerifiedChains[0][0])
}

// admit checks a stream's or call's cluster id (method is "" for streams)
// and returns the sender's node id from its certificate (0 without TLS).
func (t *Transport) admit(ctx context.Context, kind, method string) (uint64, error) {
	t.mu.Lock()
	local, open, secure := t.clusterID, t.open[method] && method != "", t.tls != nil
	t.mu.Unlock()
	node, ok := PeerNode(ctx)
	if secure && !ok {
		// The TLS config demands a node certificate; this is a belt.
		return 0, status.Error(codes.Unauthenticated, "peer presented no node certificate")
	}
	if local == "" {
		return node, nil
	}
	if len(method) > 32 { // the peer chose it: keep the log small
		method = method[:32] + "..."
	}
	var remote string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(clusterIDHeader); len(v) == 1 {
			remote = v[0]
		}
	}
	switch {
	case remote == local:
		return node, nil
	case remote == "" && open:
		return node, nil
	case remote == "":
		t.refusals.log(t, kind+" no cluster id", "a peer sent no cluster ID", "kind", kind, "method", method, "local-cluster-id", local, "peer-node", node, "addr", addrOf(ctx))
		return 0, status.Errorf(codes.FailedPrecondition, "cluster ID missing: this node is in cluster %s", local)
	default:
		if len(remote) > 64 { // the peer chose it; keep the log and the limiter small
			remote = remote[:64] + "..."
		}
		t.refusals.log(t, kind+" mismatch "+remote, "cluster ID mismatch: refusing a peer of another cluster",
			"local-cluster-id", local, "remote-cluster-id", remote, "kind", kind, "method", method, "peer-node", node, "addr", addrOf(ctx))
		return 0, status.Errorf(codes.FailedPrecondition, "cluster ID mismatch: local %s, remote %s", local, remote)
	}
}

// checkSender refuses a frame whose sender is not the certificate's node.
func (t *Transport) checkSender(ctx context.Context, kind string, cert, claimed uint64) error {
	if cert == 0 || cert == claimed {
		return nil
	}
	t.refusals.log(t, fmt.Sprintf("%s sender %d as %d", kind, cert, claimed), "refusing a peer whose frames claim another node id",
		"kind", kind, "cert-node", cert, "claimed-node", claimed, "addr", addrOf(ctx))
	return status.Errorf(codes.PermissionDenied, "frame claims node %d but the certificate is node %d's", claimed, cert)
}

func addrOf(ctx context.Context) string {
	if p, ok := grpcpeer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}

// refusalLog logs each kind of refusal at most once per refusalEvery: a
// misconfigured peer retries many times a second, and the log must stay
// readable while it does.
type refusalLog struct {
	mu   sync.Mutex
	last map[string]time.Time
}

const (
	refusalEvery    = 10 * time.Second
	maxRefusalKinds = 1024
)

func (r *refusalLog) log(t *Transport, key, msg string, attrs ...any) {
	r.logAt(t, slog.LevelError, key, msg, attrs...)
}

func (r *refusalLog) logAt(t *Transport, level slog.Level, key, msg string, attrs ...any) {
	now := time.Now()
	r.mu.Lock()
	if r.last == nil || len(r.last) >= maxRefusalKinds {
		r.last = map[string]time.Time{}
	}
	if at, ok := r.last[key]; ok && now.Sub(at) < refusalEvery {
		r.mu.Unlock()
		return
	}
	r.last[key] = now
	r.mu.Unlock()
	t.log.Log(context.Background(), level, msg, attrs...)
}

// LogRefusal logs, at level and at most once per refusalEvery for each
// key, that a peer was refused: for the refusals of call handlers, which a
// refused peer retries many times a second.
func (t *Transport) LogRefusal(level slog.Level, key, msg string, attrs ...any) {
	t.refusals.logAt(t, level, "handler "+key, msg, attrs...)
}
