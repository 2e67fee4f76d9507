package route

import (
	"bytes"
	"context"
	"slices"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/resp"
	"github.com/kintsu/kintsu/internal/txn"
)

// propose hands requests for group to the local engine, which must lead it.
// Every write a leader accepts, local or forwarded, passes here.
func (r *Router) propose(ctx context.Context, group uint64, reqs []*raftstore.Request) ([][]byte, []error) {
	if r.cfg.UnsafeCASOnPropose {
		return r.proposeCheckingEarly(ctx, group, reqs)
	}
	if r.cfg.UnsafeLostElement {
		return r.proposeDroppingPushes(ctx, group, reqs)
	}
	return r.proposeAll(ctx, group, reqs)
}

// proposeAll is propose without the planted bugs.
func (r *Router) proposeAll(ctx context.Context, group uint64, reqs []*raftstore.Request) ([][]byte, []error) {
	var replies [][]byte
	var errs []error
	if len(reqs) == 1 && txn.IsPrepare(reqs[0].Args) {
		reply, err := r.proposePrepare(ctx, group, reqs[0])
		replies, errs = [][]byte{reply}, []error{err}
	} else {
		// A RESOLVE's waiters are proposed right behind it, before it is
		// applied: log order puts them after it (lockwait.go).
		var releasing []txn.ID
		var at []int // releasing[j] is reqs[at[j]]'s
		for i, req := range reqs {
			if id, ok := txn.ResolveOf(req.Args); ok {
				releasing, at = append(releasing, id), append(at, i)
			}
		}
		var queued func()
		if len(releasing) > 0 {
			queued = func() { r.waits.releasing(group, releasing) }
		}
		replies, errs = r.eng.ProposeManyThen(ctx, group, reqs, queued)
		for j, i := range at {
			if errs[i] == nil {
				r.waits.resolved(group, releasing[j])
			}
		}
	}
	if r.cfg.FaultInjection && slices.ContainsFunc(reqs, func(r *raftstore.Request) bool { return txn.IsPrepare(r.Args) }) {
		r.cfg.Failpoint(api.FailParticipantPrepared)
	}
	return replies, errs
}

// proposeCheckingEarly is a DELIBERATE BUG, planted only with
// UnsafeCASOnPropose (kintsu chaos --plant-bug lost-update): the leader
// compares SET ... IFEQ against its applied state when the command
// arrives and proposes an unconditional SET. Two compare-and-sets from the
// same value that overlap both pass the check and both succeed: a lost
// update. The correct path evaluates the condition when the entry is
// applied, in log order (package kv).
func (r *Router) proposeCheckingEarly(ctx context.Context, group uint64, reqs []*raftstore.Request) ([][]byte, []error) {
	replies := make([][]byte, len(reqs))
	errs := make([]error, len(reqs))
	var send []*raftstore.Request
	var at []int
	for i, req := range reqs {
		if expect, ok := ifeqOnly(req.Args); ok {
			cur, err := kv.Lookup([]byte("get")).Read(r.eng.Reader(group), [][]byte{[]byte("get"), req.Args[1]}, nil)
			if err != nil || !bytes.Equal(cur, resp.AppendBulk(nil, expect)) {
				replies[i] = resp.AppendNull(nil)
				continue
			}
			cp := *req
			cp.Args = req.Args[:3]
			req = &cp
		}
		send = append(send, req)
		at = append(at, i)
	}
	if len(send) > 0 {
		rs, es := r.eng.ProposeMany(ctx, group, send)
		for j, i := range at {
			replies[i], errs[i] = rs[j], es[j]
		}
	}
	return replies, errs
}

// ifeqOnly recognises exactly SET key value IFEQ expect.
func ifeqOnly(args [][]byte) ([]byte, bool) {
	if len(args) != 5 || !bytes.EqualFold(args[0], []byte("set")) || !bytes.EqualFold(args[3], []byte("ifeq")) {
		return nil, false
	}
	return args[4], true
}

// proposeDroppingPushes is a DELIBERATE BUG, planted only with
// UnsafeLostElement (kintsu chaos --plant-bug lost-element): the leader
// answers one single-element RPUSH in sixteen as applied without
// proposing it, so a list loses an element its writer was told it has.
func (r *Router) proposeDroppingPushes(ctx context.Context, group uint64, reqs []*raftstore.Request) ([][]byte, []error) {
	replies := make([][]byte, len(reqs))
	errs := make([]error, len(reqs))
	var send []*raftstore.Request
	var at []int
	for i, req := range reqs {
		if len(req.Args) == 3 && bytes.EqualFold(req.Args[0], []byte("rpush")) && r.dropped.Add(1)%16 == 0 {
			replies[i] = resp.AppendInt(nil, 1)
			continue
		}
		send = append(send, req)
		at = append(at, i)
	}
	if len(send) > 0 {
		rs, es := r.proposeAll(ctx, group, send)
		for j, i := range at {
			replies[i], errs[i] = rs[j], es[j]
		}
	}
	return replies, errs
}
