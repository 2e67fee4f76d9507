package server

import (
	"context"
	"fmt"

	"github.com/kintsu/kintsu/internal/codec"
	"github.com/kintsu/kintsu/internal/control"
)

// methodKnown is the lost-disk check's peer call (lostdisk.go): node id ->
// 1 if it has announced itself before, 0 if not, 2 if this node cannot
// tell.
const methodKnown = "k"

// handleCall serves calls from peers: the request path's (forwarded
// writes and reads, leader hints) go to the router, the control plane's
// to its services, the lost-disk check's to knownMember.
func (n *Node) handleCall(ctx context.Context, method string, body []byte) ([]byte, error) {
	if answer, ok, err := n.router.Serve(ctx, method, body); ok {
		return answer, err
	}
	switch method {
	case control.MethodClusterMap:
		return n.cmap.Serve()
	case control.MethodGroupInfo:
		return n.place.ServeGroupInfo(body)
	case control.MethodChangeReplicas:
		return n.place.ServeChangeReplicas(ctx, body)
	case control.MethodJoin:
		if err := checkJoiner(ctx, body); err != nil {
			return nil, err
		}
		return n.members.ServeJoin(ctx, body)
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
