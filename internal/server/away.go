package server

import (
	"context"
	"sync"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/codec"
	"github.com/kintsu/kintsu/internal/control"
	"github.com/kintsu/kintsu/internal/transport"
)

// A stopping node hands its leaderships away; it then leads nothing and
// looks the least loaded, so the other nodes' balancers would hand
// leaderships straight back, and clients would follow them to a node
// about to close (a rolling restart then showed them hundreds of
// refused connections). So it tells its peers first that it is away, and
// once it serves again that it is back (control.Balancer.SetAway). A
// peer of an older build does not know the call; the notice is then lost
// and nothing else changes.

// methodAway: node id, then 1 (stopping) or 0 (serving again).
const methodAway = "away"

// awayNoticeTimeout bounds the notices a stopping node sends.
const awayNoticeTimeout = 500 * time.Millisecond

// serveAway records a peer's notice. An authenticated peer may only speak
// for itself.
func (n *Node) serveAway(ctx context.Context, body []byte) ([]byte, error) {
	d := codec.NewDecoder(body)
	id, flag := d.Uvarint(), d.Byte()
	if d.Done() != nil || id == 0 || flag > 1 {
		return nil, control.ErrMalformed
	}
	if caller, ok := transport.PeerNode(ctx); ok && caller != id || !n.cmap.Current().IsMember(id) {
		// Only for itself, and only a member: the notices it keeps are
		// bounded by the membership (--insecure has no caller identity).
		return nil, control.ErrMalformed
	}
	n.balancer.SetAway(id, flag == 1)
	return nil, nil
}

// tellPeersAway sends this node's notice to every other member at once,
// waiting at most timeout.
func (n *Node) tellPeersAway(ctx context.Context, away bool, timeout time.Duration) {
	flag := byte(0)
	if away {
		flag = 1
	}
	body := codec.Encoder(nil).Uvarint(n.cfg.NodeID).Byte(flag)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, rec := range n.cmap.Current().Nodes {
		if rec.ID == n.cfg.NodeID || rec.State == api.NodeRemoved {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = n.tr.Call(ctx, rec.ID, methodAway, body)
		}()
	}
	wg.Wait()
}
