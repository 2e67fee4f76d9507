package server

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/resp"
)

// Replies for requests that could not be served. CLUSTERDOWN and TRYAGAIN
// mean nothing was applied; UNCERTAIN means it may have been.
const (
	errNoLeader  = "CLUSTERDOWN partition %d has no reachable leader, nothing was applied"
	errBusy      = "TRYAGAIN node overloaded, nothing was applied"
	errUncertain = "UNCERTAIN the write to partition %d may or may not have been applied (%s)"
	errReadFail  = "CLUSTERDOWN partition %d could not serve the read: no reachable leader"
)

// attemptTimeout bounds one try at one node, so a paused or partitioned
// node costs a retry, not the whole request deadline.
const attemptTimeout = 1500 * time.Millisecond

// router sends a command to the leader of its partition.
type router struct {
	n      *Node
	origin uint64
	seqs   *seqTracker

	mu    sync.Mutex
	hints map[uint64]uint64 // guarded by mu; group -> node believed to lead
}

func newRouter(n *Node) *router {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	origin := binary.BigEndian.Uint64(b[:]) | 1 // never 0: 0 means "no dedupe"
	return &router{n: n, origin: origin, seqs: newSeqTracker(), hints: map[uint64]uint64{}}
}

func (r *router) hint(group uint64) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hints[group]
}

func (r *router) setHint(group, node uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if node == 0 {
		delete(r.hints, group)
	} else {
		r.hints[group] = node
	}
}

// target picks the node to try for group on the given attempt.
func (r *router) target(group uint64, attempt int) uint64 {
	local := r.n.eng.Leader(group)
	if local == r.n.cfg.NodeID {
		return local
	}
	// A hint comes from a node's answer, so it is fresher than what a
	// local follower (perhaps cut off) believes.
	if h := r.hint(group); h != 0 {
		return h
	}
	if local != 0 {
		return local
	}
	nodes := r.n.groupNodes(group)
	if len(nodes) == 0 {
		return 0
	}
	return nodes[attempt%len(nodes)]
}

// backoff waits before the next attempt; false when ctx ended.
func backoff(ctx context.Context, attempt int) bool {
	d := time.Duration(5<<min(attempt, 5)) * time.Millisecond // 5ms .. 160ms
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// write replicates a write command on group's leader and returns its reply.
func (r *router) write(ctx context.Context, group uint64, args [][]byte) []byte {
	seq, wm := r.seqs.begin()
	defer r.seqs.end(seq)
	req := &raftstore.Request{Origin: r.origin, Seq: seq, Watermark: wm, Args: args}
	maybe := false // some attempt may have reached raft
	for attempt := 0; ; attempt++ {
		o := r.attempt(ctx, group, attempt, func(actx context.Context, node uint64) (outcome, bool) {
			if node == r.n.cfg.NodeID {
				return outcomeOf(r.n.eng.Propose(actx, group, req)), false
			}
			b, err := r.n.tr.Call(actx, node, methodWrite, encodeWrite(group, req))
			if err != nil {
				// The call may have been delivered before it failed.
				return outcome{code: codeMaybeApplied}, true
			}
			o, err := decodeOutcome(b)
			if err != nil {
				return outcome{code: codeMaybeApplied}, true
			}
			return o, false
		})
		switch o.code {
		case codeOK:
			return o.reply
		case codeMaybeApplied:
			maybe = true
		case codeReadFailed: // an engine error that is not retryable
			return resp.AppendError(nil, "ERR "+string(o.reply))
		}
		if !backoff(ctx, attempt) {
			if maybe {
				return resp.AppendError(nil, fmt.Sprintf(errUncertain, group, "deadline exceeded"))
			}
			if o.code == codeBusy {
				return resp.AppendError(nil, errBusy)
			}
			return resp.AppendError(nil, fmt.Sprintf(errNoLeader, group))
		}
	}
}

// read serves a read command on group's leader (or locally when stale
// reads are switched on).
func (r *router) read(ctx context.Context, group uint64, args [][]byte) []byte {
	if r.n.cfg.UnsafeStaleReads && r.n.eng.HasGroup(group) {
		return r.n.localRead(group, args)
	}
	for attempt := 0; ; attempt++ {
		o := r.attempt(ctx, group, attempt, func(actx context.Context, node uint64) (outcome, bool) {
			if node == r.n.cfg.NodeID {
				return r.n.serveRead(actx, group, args), false
			}
			b, err := r.n.tr.Call(actx, node, methodRead, encodeRead(group, args))
			if err != nil {
				return outcome{code: codeReadFailed}, true
			}
			o, err := decodeOutcome(b)
			if err != nil {
				return outcome{code: codeReadFailed}, true
			}
			return o, false
		})
		if o.code == codeOK {
			return o.reply
		}
		if !backoff(ctx, attempt) {
			if o.code == codeBusy {
				return resp.AppendError(nil, errBusy)
			}
			return resp.AppendError(nil, fmt.Sprintf(errReadFail, group))
		}
	}
}

// attempt runs one try against the best-guess leader and updates hints.
// do returns the outcome and whether the node failed to answer.
func (r *router) attempt(ctx context.Context, group uint64, n int, do func(context.Context, uint64) (outcome, bool)) outcome {
	node := r.target(group, n)
	if node == 0 {
		return outcome{code: codeNotLeader}
	}
	actx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	o, unreachable := do(actx, node)
	switch {
	case o.code == codeOK:
		if node != r.n.cfg.NodeID {
			r.setHint(group, node)
			r.n.metrics.Forwarded.Inc()
		}
	case o.code == codeNotLeader && o.hint != 0 && o.hint != node:
		r.setHint(group, o.hint)
	case unreachable, o.code == codeNotLeader, o.code == codeNoGroup, o.code == codeStopped, o.code == codeMaybeApplied:
		// Try another replica next time.
		r.setHint(group, r.nextNode(group, node))
	}
	return o
}

// nextNode is the replica after node in group's list.
func (r *router) nextNode(group, node uint64) uint64 {
	nodes := r.n.groupNodes(group)
	for i, x := range nodes {
		if x == node {
			return nodes[(i+1)%len(nodes)]
		}
	}
	if len(nodes) > 0 {
		return nodes[0]
	}
	return 0
}

// serveRead answers a read on this node, which must lead group.
func (n *Node) serveRead(ctx context.Context, group uint64, args [][]byte) outcome {
	if !n.eng.HasGroup(group) {
		return outcome{code: codeNoGroup}
	}
	if err := n.eng.ReadBarrier(ctx, group); err != nil {
		return outcomeOf(nil, err)
	}
	return outcome{code: codeOK, reply: n.localRead(group, args)}
}

// localRead evaluates a read against the local replica's applied state.
func (n *Node) localRead(group uint64, args [][]byte) []byte {
	if isDBSize(args) {
		return resp.AppendInt(nil, n.eng.KeyCount(group))
	}
	c := kv.Lookup(args[0])
	if c == nil || c.Write || !c.CheckArity(args) {
		return resp.AppendError(nil, "ERR not a read command")
	}
	out, err := c.Read(n.eng.Reader(group), args, nil)
	if err != nil {
		n.log.Error("read failed", "group", group, "err", err)
		return resp.AppendError(nil, "ERR storage failure")
	}
	return out
}

// handleCall serves calls forwarded by peers.
func (n *Node) handleCall(ctx context.Context, method string, body []byte) ([]byte, error) {
	switch method {
	case methodWrite:
		group, req, err := decodeWrite(body)
		if err != nil {
			return nil, err
		}
		if group != MetaGroup && kv.Lookup(req.Args[0]) == nil {
			return nil, errMalformed
		}
		return outcomeOf(n.eng.Propose(ctx, group, req)).encode(), nil
	case methodRead:
		group, args, err := decodeRead(body)
		if err != nil {
			return nil, err
		}
		return n.serveRead(ctx, group, args).encode(), nil
	case methodLeader:
		d := decoder{b: body}
		group := d.uvarint()
		if d.bad {
			return nil, errMalformed
		}
		return binary.AppendUvarint(nil, n.eng.Leader(group)), nil
	}
	return nil, fmt.Errorf("unknown method %q", method)
}
