package control

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
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
//	up        it heartbeated within SuspectAfter intervals
//	suspect   it missed a few heartbeats: perhaps paused or cut off
//	dead      no heartbeat for DeadTimeout: its replicas are to be rebuilt
//
// Invariant: liveness is advice for placement, clients and operators. It
// never decides what is committed or who leads (raft does), so a wrong
// reading — a skewed clock, a slow metadata group — costs at most a
// needless or a late repair, never an acknowledged write.

// SuspectAfter is how many heartbeat intervals may pass before a node is
// suspect.
const SuspectAfter = 3

// LivenessOf derives a node's state at nowMS (the reader's clock), given
// the heartbeat interval and the dead timeout.
func LivenessOf(rec api.NodeRecord, nowMS int64, every, dead time.Duration) string {
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
	case age >= SuspectAfter*every:
		return api.NodeSuspect
	}
	return api.NodeUp
}

// RegistryConfig is what reading the node registry needs from its node.
type RegistryConfig struct {
	NodeID uint64
	// RESPAddr and HTTPAddr are this node's own: its record shows them
	// before its first heartbeat has applied.
	RESPAddr, HTTPAddr string
	// Every is the heartbeat interval, Dead the dead timeout.
	Every, Dead time.Duration
	// Now is the reader's clock, against which heartbeats are aged.
	Now func() time.Time
	Map *Map
}

// Registry reads the node registry from the cluster map, each node's
// liveness derived on this node's clock.
type Registry struct{ cfg RegistryConfig }

// NewRegistry builds the registry reader.
func NewRegistry(cfg RegistryConfig) *Registry { return &Registry{cfg: cfg} }

// Nodes lists the registry by id, with liveness derived and the last
// heartbeat's time written out. The slice is the caller's.
func (r *Registry) Nodes() []api.NodeRecord {
	out := slices.Clone(r.cfg.Map.Current().Nodes)
	now := r.cfg.Now().UnixMilli()
	for i := range out {
		if out[i].ID == r.cfg.NodeID {
			out[i].RESPAddr, out[i].HTTPAddr = r.cfg.RESPAddr, r.cfg.HTTPAddr
		}
		out[i].State = LivenessOf(out[i], now, r.cfg.Every, r.cfg.Dead)
		if hb := out[i].HeartbeatMS; hb != 0 {
			out[i].LastHeartbeat = time.UnixMilli(hb).UTC().Format(time.RFC3339Nano)
		}
	}
	slices.SortFunc(out, func(a, b api.NodeRecord) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// HeartbeatConfig is what the heartbeat needs from its node.
type HeartbeatConfig struct {
	NodeID uint64
	// RESPAddr and HTTPAddr are announced with every heartbeat.
	RESPAddr, HTTPAddr string
	Every              time.Duration
	// RequestTimeout bounds each heartbeat (and SuspectAfter intervals).
	RequestTimeout time.Duration
	Write          WriteFunc
	Logger         *slog.Logger
	// Removed is called once when the metadata answers that this node was
	// removed from the cluster: the node then stops serving clients.
	Removed func()
}

// Heartbeat keeps this node's heartbeat in the metadata.
type Heartbeat struct{ cfg HeartbeatConfig }

// NewHeartbeat builds the heartbeat loop; Run runs it.
func NewHeartbeat(cfg HeartbeatConfig) *Heartbeat { return &Heartbeat{cfg: cfg} }

// Run writes this node's heartbeat every interval until ctx ends. The
// first one also announces the node's addresses.
func (h *Heartbeat) Run(ctx context.Context) {
	args := [][]byte{[]byte(statemachine.CmdHeartbeat), fmt.Appendf(nil, "%d", h.cfg.NodeID), []byte(h.cfg.RESPAddr), []byte(h.cfg.HTTPAddr)}
	every := h.cfg.Every
	t := time.NewTicker(every)
	defer t.Stop()
	warned := false
	for {
		// A heartbeat that cannot land within a few intervals is stale
		// anyway: give up on it and send a fresh one.
		wctx, cancel := context.WithTimeout(ctx, min(h.cfg.RequestTimeout, SuspectAfter*every))
		reply := h.cfg.Write(wctx, statemachine.MetaGroup, args)
		cancel()
		if string(reply) == "-"+statemachine.ErrNodeRemoved+"\r\n" && !warned {
			h.cfg.Logger.Error("this node was removed from the cluster; it serves nothing and should be shut down and its data dir wiped")
			warned = true
			if h.cfg.Removed != nil {
				h.cfg.Removed()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
