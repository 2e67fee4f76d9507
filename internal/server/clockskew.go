package server

import (
	"context"
	"sync"
	"time"

	"github.com/kintsu/kintsu/internal/codec"
)

// Peer clocks, for the metrics and the clock-skew alert: every
// clockProbeEvery a node asks each serving member for its clock (the
// node's own clock, the one read leases and expiry use, so a skew fault
// shows) and estimates the offset as NTP does, assuming the reply took as
// long as the request: offset = theirs - (sent + received) / 2, good to
// half the round trip, which is exported beside it. A peer that does not
// answer within clockProbeTimeout is reported unreachable.

const (
	methodTime        = "time"
	clockProbeEvery   = 10 * time.Second
	clockProbeTimeout = time.Second
)

type peerClock struct {
	offset, rtt time.Duration
	reachable   bool
}

type peerClocks struct {
	mu    sync.Mutex
	peers map[uint64]peerClock // guarded by mu
}

func (p *peerClocks) snapshot() map[uint64]peerClock {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[uint64]peerClock, len(p.peers))
	for id, c := range p.peers {
		out[id] = c
	}
	return out
}

// serveTime answers a peer's clock probe.
func (n *Node) serveTime() ([]byte, error) {
	return codec.Encoder(nil).Uvarint(uint64(n.clock.Now().UnixNano())), nil
}

// probeClocks runs the probes until ctx ends.
func (n *Node) probeClocks(ctx context.Context) {
	t := time.NewTimer(2 * time.Second) // a first reading soon after start
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n.probeClocksOnce(ctx)
		t.Reset(clockProbeEvery)
	}
}

func (n *Node) probeClocksOnce(ctx context.Context) {
	var mu sync.Mutex
	seen := map[uint64]peerClock{}
	n.forEachPeer(ctx, clockProbeTimeout, func(ctx context.Context, id uint64) {
		sent := n.clock.Now()
		b, err := n.tr.Call(ctx, id, methodTime, nil)
		received := n.clock.Now()
		pc := peerClock{}
		if err == nil {
			d := codec.NewDecoder(b)
			theirs := int64(d.Uvarint())
			if d.Err() == nil {
				mid := sent.UnixNano() + received.Sub(sent).Nanoseconds()/2
				pc = peerClock{offset: time.Duration(theirs - mid), rtt: received.Sub(sent), reachable: true}
			}
		}
		mu.Lock()
		seen[id] = pc
		mu.Unlock()
	})
	n.clocks.mu.Lock()
	n.clocks.peers = seen // members gone are dropped
	n.clocks.mu.Unlock()
}
