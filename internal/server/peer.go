package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/codec"
	"github.com/kintsu/kintsu/internal/control"
	"github.com/kintsu/kintsu/internal/transport"
)

// methodKnown is the lost-disk check's peer call (lostdisk.go): node id ->
// 1 if it has announced itself before, 0 if not, 2 if this node cannot
// tell.
const methodKnown = "k"

// methodAsk carries the front end's questions to the other nodes: a
// PUBLISH, a PUBSUB query, a script's body (edge.Server.ServePeer).
const methodAsk = "ask"

// handleCall serves calls from peers: the request path's (forwarded
// writes and reads, leader hints) go to the router, the control plane's
// to its services, the lost-disk check's to knownMember.
//
// A caller authenticated by its certificate must also be a member for
// anything but joining, asking whether it ran before, and reading the
// cluster map (what a joining node does before it is in this node's map):
// a certificate of the cluster's CA lets a node join, not act as one.
func (n *Node) handleCall(ctx context.Context, method string, body []byte) ([]byte, error) {
	if err := n.checkCaller(ctx, method); err != nil {
		return nil, err
	}
	if answer, ok, err := n.router.Serve(ctx, method, body); ok {
		return answer, err
	}
	switch method {
	case control.MethodClusterMap:
		return n.cmap.Serve()
	case control.MethodLevel:
		if n.preLevels.Load() {
			break
		}
		return control.ServeLevel(), nil
	case control.MethodGroupInfo:
		return n.place.ServeGroupInfo(body)
	case control.MethodChangeReplicas:
		return n.place.ServeChangeReplicas(ctx, body)
	case control.MethodRemoveDamaged:
		caller, _ := transport.PeerNode(ctx)
		return control.ServeRemoveDamaged(ctx, n.eng, caller, body)
	case control.MethodJoin:
		if err := checkJoiner(ctx, body); err != nil {
			return nil, err
		}
		return n.members.ServeJoin(ctx, body)
	case methodAsk:
		return n.front.ServePeer(body)
	case methodAway:
		return n.serveAway(ctx, body)
	case methodTime:
		return n.serveTime()
	case methodDropCut:
		return n.serveDropCut(body)
	case methodLoad:
		return json.Marshal(n.localLoad())
	case methodEvents:
		return json.Marshal(n.events.Latest(eventsShown))
	case methodKnown:
		d := codec.NewDecoder(body)
		id := d.Uvarint()
		if d.Err() != nil {
			return nil, control.ErrMalformed
		}
		return codec.Encoder(nil).Uvarint(n.knownMember(id)), nil
	}
	return nil, fmt.Errorf("unknown method %q", method)
}

// checkCaller refuses a call from an authenticated node that is not a
// member by this node's cluster map. Without TLS there is no
// authenticated caller, and nothing to check (--insecure).
func (n *Node) checkCaller(ctx context.Context, method string) error {
	switch method {
	case control.MethodJoin, methodKnown, control.MethodClusterMap:
		return nil
	}
	node, ok := transport.PeerNode(ctx)
	if !ok || n.cmap.Current().IsMember(node) {
		return nil
	}
	// WARN, not ERROR: a node that has just joined is refused until this
	// node's map has its record (about a second), and retries.
	n.tr.LogRefusal(slog.LevelWarn, fmt.Sprint("non-member ", node), "refusing a peer call from a node that is not a member", "peer-node", node, "method", fmt.Sprintf("%.8q", method))
	return status.Errorf(codes.PermissionDenied, "node %d is not a member of this cluster", node)
}

// forEachPeer calls fn for every other member that serves, all at once,
// each with a context ending after timeout, and returns when all have.
func (n *Node) forEachPeer(ctx context.Context, timeout time.Duration, fn func(ctx context.Context, id uint64)) {
	var wg sync.WaitGroup
	for _, rec := range n.registry.Nodes() {
		if rec.ID == n.cfg.NodeID || !api.Serves(rec.State) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			fn(cctx, rec.ID)
		}()
	}
	wg.Wait()
}
