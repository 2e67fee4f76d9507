package server

import (
	"context"
	"fmt"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/statemachine"
)

// Liveness. Every node heartbeats into the cluster metadata every
// HeartbeatInterval: a metadata write that records the node's client and
// admin addresses and the time the metadata leader stamped on the entry,
// so every metadata replica stores the same time. A node's state is
// derived when it is read, from the stored membership state and the age
// of the last heartbeat on the reader's clock:
//
//	removed   an operator removed it for good (stored)
//	draining  it is being decommissioned (stored)
//	up        it heartbeated within suspectAfter
//	suspect   it missed a few heartbeats: perhaps paused or cut off
//	dead      no heartbeat for DeadTimeout: its replicas are to be rebuilt
//
// Invariant: liveness is advice for placement, clients and operators. It
// never decides what is committed or who leads (raft does), so a wrong
// reading — a skewed clock, a slow metadata group — costs at most a
// needless or a late repair, never an acknowledged write.

// suspectAfter is how many heartbeat intervals may pass before a node is
// suspect.
const suspectAfter = 3

// livenessOf derives a node's state at nowMS.
func livenessOf(rec api.NodeRecord, nowMS int64, every, dead time.Duration) string {
	switch rec.State {
	case api.NodeRemoved, api.NodeDraining:
		return rec.State
	}
	if rec.HeartbeatMS == 0 {
		return api.NodeSuspect // not heard from since the cluster began
	}
	age := time.Duration(nowMS-rec.HeartbeatMS) * time.Millisecond
	switch {
	case age >= dead:
		return api.NodeDead
	case age >= suspectAfter*every:
		return api.NodeSuspect
	}
	return api.NodeUp
}

// heartbeat writes this node's heartbeat every HeartbeatInterval until the
// node stops. The first one also announces the node's addresses.
func (n *Node) heartbeat() {
	defer n.bg.Done()
	args := [][]byte{[]byte(statemachine.CmdHeartbeat), fmt.Appendf(nil, "%d", n.cfg.NodeID), []byte(n.cfg.RESPAddr), []byte(n.cfg.HTTPAddr)}
	every := n.cfg.HeartbeatInterval
	t := time.NewTicker(every)
	defer t.Stop()
	warned := false
	for {
		// A heartbeat that cannot land within a few intervals is stale
		// anyway: give up on it and send a fresh one.
		ctx, cancel := context.WithTimeout(n.ctx, min(n.cfg.RequestTimeout, suspectAfter*every))
		reply := n.write(ctx, MetaGroup, args)
		cancel()
		if string(reply) == "-"+statemachine.ErrNodeRemoved+"\r\n" && !warned {
			n.log.Error("this node was removed from the cluster; it serves nothing and should be shut down and its data dir wiped")
			warned = true
		}
		select {
		case <-n.bgStop:
			return
		case <-t.C:
		}
	}
}
