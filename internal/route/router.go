package route

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kintsu/kintsu/internal/clock"
	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/failure"
	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/resp"
	"github.com/kintsu/kintsu/internal/statemachine"
	"github.com/kintsu/kintsu/internal/txn"
)

// attemptTimeout bounds one try at one node, so a paused or partitioned
// node costs a retry, not the whole request deadline.
const attemptTimeout = 1500 * time.Millisecond

// Router sends a command to the leader of its partition.
type Router struct {
	cfg      Config
	eng      *raftstore.Engine
	origin   uint64
	seqs     *seqTracker
	resolver *txn.Resolver // set once by SetResolver, before serving
	waits    *lockWaits    // PREPAREs waiting for older transactions' locks (lockwait.go)
	dropped  atomic.Uint64 // the planted lost-element bug's count of RPUSHes

	mu        sync.Mutex
	hints     map[uint64]uint64       // guarded by mu; group -> node believed to lead
	confirmed map[uint64]confirmation // guarded by mu; see confirm.go
}

// New makes the router of a node.
func New(cfg Config, eng *raftstore.Engine) *Router {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	origin := binary.BigEndian.Uint64(b[:]) | 1 // never 0: 0 means "no dedupe"
	gauge := func(int) {}
	if cfg.Metrics != nil {
		gauge = func(n int) { cfg.Metrics.LockWaiters.Set(float64(n)) }
	}
	leads := func(group uint64) bool { return eng.Leader(group) == cfg.NodeID }
	return &Router{cfg: cfg, eng: eng, origin: origin, seqs: newSeqTracker(), waits: newLockWaits(gauge, leads), hints: map[uint64]uint64{}, confirmed: map[uint64]confirmation{}}
}

// Origin names this router's process in (origin, seq) request ids and
// transaction ids.
func (r *Router) Origin() uint64 { return r.origin }

// SetResolver gives the router the transaction resolver it asks to push
// the locks a command meets. The resolver itself writes through the
// router, so it is set after both exist, before the node serves.
func (r *Router) SetResolver(res *txn.Resolver) { r.resolver = res }

func (r *Router) Hint(group uint64) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hints[group]
}

func (r *Router) SetHint(group, node uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if node == 0 {
		delete(r.hints, group)
	} else {
		r.hints[group] = node
	}
}

// target picks the node to try for group on the given attempt.
func (r *Router) target(group uint64, attempt int) uint64 {
	local := r.eng.Leader(group)
	if local == r.cfg.NodeID {
		return local
	}
	// A hint comes from a node's answer, so it is fresher than what a
	// local follower (perhaps cut off) believes.
	if h := r.Hint(group); h != 0 {
		return h
	}
	if local != 0 {
		return local
	}
	nodes := r.GroupNodes(group)
	if len(nodes) == 0 {
		return 0
	}
	return nodes[attempt%len(nodes)]
}

// noSpaceRetries bounds the retries of a write refused by a leader whose
// disk is almost full: with backoff, about 1.6 s, enough for it to hand
// its leadership over even when an election or the leader balancer gave
// it back meanwhile (it sheds again at its next tick) on a loaded
// machine; the refusal is clean, so retrying is safe. When every replica's
// disk is full, NOSPACE comes after that.
const noSpaceRetries = 14

// backoff waits before the next attempt; false when ctx ended.
func backoff(ctx context.Context, attempt int) bool {
	return clock.Sleep(ctx, time.Duration(5<<min(attempt, 5))*time.Millisecond) // 5ms .. 160ms
}

// Write replicates one write command on group's leader.
func (r *Router) Write(ctx context.Context, group uint64, args [][]byte) ([]byte, error) {
	replies, errs := r.WriteMany(ctx, group, [][][]byte{args})
	return replies[0], errs[0]
}

// WriteMany replicates write commands on group's leader, in order, and
// returns their replies, or per command the typed error (package outcome)
// that says whether it may have been applied. Commands that fail
// retryably are retried with
// their original (origin, seq) until they succeed or ctx ends. Commands
// proposed together form one batch (raftstore.Request.Batch): when one
// meets a transaction's lock it and the rest of the batch are refused,
// the lock is resolved, and they are retried in order.
func (r *Router) WriteMany(ctx context.Context, group uint64, cmds [][][]byte) ([][]byte, []error) {
	reqs := make([]*raftstore.Request, len(cmds))
	for i, args := range cmds {
		seq, wm := r.seqs.begin()
		defer r.seqs.end(seq)
		reqs[i] = &raftstore.Request{Origin: r.origin, Seq: seq, Watermark: wm, Args: args}
	}
	replies := make([][]byte, len(cmds))
	errs := make([]error, len(cmds))
	maybe := make([]bool, len(cmds))  // some attempt may have reached raft
	locked := make([]bool, len(cmds)) // the last attempt was refused for a lock
	pending := make([]int, len(cmds))
	for i := range pending {
		pending[i] = i
	}
	var last outcome
	for attempt := 0; ; attempt++ {
		// Fresh copies: an earlier attempt's requests may still be queued
		// in an engine.
		batch := make([]*raftstore.Request, len(pending))
		for i, idx := range pending {
			cp := *reqs[idx]
			if len(pending) > 1 {
				cp.Batch = reqs[pending[0]].Seq
			}
			batch[i] = &cp
		}
		outs := r.attempt(ctx, group, attempt, len(batch), func(actx context.Context, node uint64) ([]outcome, bool) {
			if node == r.cfg.NodeID {
				replies, errs := r.propose(actx, group, batch)
				outs := make([]outcome, len(batch))
				for i := range outs {
					outs[i] = outcomeOf(replies[i], errs[i])
				}
				return outs, false
			}
			b, err := r.cfg.Transport.Forward(actx, node, methodWrite, encodeWrites(group, batch))
			if err == nil {
				if outs, derr := decodeOutcomes(b, len(batch)); derr == nil {
					return outs, false
				}
			}
			// The call may have been delivered before it failed.
			return repeatOutcome(outcome{code: codeMaybeApplied}, len(batch)), true
		})
		next := pending[:0]
		var holders []txn.Ref
		for i, idx := range pending {
			o := outs[i]
			locked[idx] = false
			switch o.code {
			case codeOK:
				if failure.Loading.Is(o.reply) {
					// A restore holds the partition: refused, and the
					// refusal is kept for retries, so no copy applies.
					errs[idx] = failure.Loading.Err()
					continue
				}
				if txn.IsOp(cmds[idx][0]) {
					replies[idx] = o.reply // the coordinator reads its own signals
					continue
				}
				if hs, ok := txn.ParseLocked(o.reply); ok {
					holders = append(holders, hs...)
				} else if !failure.Blocked.Is(o.reply) {
					if failure.WrongGroup.Is(o.reply) {
						errs[idx] = &failure.WrongGroupError{Group: group}
					} else if sig, _, ok := failure.SignalOf(o.reply); ok {
						errs[idx] = sig.Err() // no other signal is a client's
					} else {
						replies[idx] = o.reply
					}
					continue
				}
				// Refused by the state machine in the log: this copy was
				// not applied, and no earlier one was (it would have been
				// found by deduplication).
				locked[idx], maybe[idx] = true, false
				next = append(next, idx)
				continue
			case codeReadFailed: // an engine error that is not retryable
				errs[idx] = &failure.EngineError{Msg: string(o.reply)}
				continue
			case codeNoSpace:
				// Refused before proposing by a leader whose disk is almost
				// full; it is handing its leadership away, which takes about
				// a round trip, so retry briefly before reporting it.
				if attempt >= noSpaceRetries {
					errs[idx] = noSpaceErr(maybe[idx], group, o.reply)
					continue
				}
			case codeMaybeApplied:
				maybe[idx] = true
			}
			last = o
			next = append(next, idx)
		}
		pending = next
		if len(pending) == 0 {
			return replies, errs
		}
		if len(holders) > 0 && r.pushLocks(ctx, group, holders) {
			continue // the locks are gone: retry at once
		}
		if !backoff(ctx, attempt) {
			for _, idx := range pending {
				switch {
				case maybe[idx]:
					errs[idx] = &failure.UncertainError{Group: group, Reason: "deadline exceeded"}
				case locked[idx]:
					errs[idx] = &failure.LockedError{}
				case last.code == codeBusy:
					errs[idx] = &failure.BusyError{}
				case last.code == codeNoSpace:
					errs[idx] = noSpaceErr(false, group, last.reply)
				default:
					errs[idx] = &failure.NoLeaderError{Group: group}
				}
			}
			return replies, errs
		}
	}
}

// noSpaceErr is a write's failure when a leader refused it for its full
// disk: nothing was applied — unless an earlier attempt may have reached
// the log (maybe), which the refusal of a later copy does not undo.
func noSpaceErr(maybe bool, group uint64, reply []byte) error {
	if maybe {
		return &failure.UncertainError{Group: group, Reason: "the leader's disk is almost full"}
	}
	return &failure.NoSpaceError{Msg: string(reply)}
}

// fillErrs sets every element of errs to err (when not nil).
func fillErrs(errs []error, err error) []error {
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
	}
	return errs
}

func repeatOutcome(o outcome, n int) []outcome {
	out := make([]outcome, n)
	for i := range out {
		out[i] = o
	}
	return out
}

// Read serves one read command on group's leader.
func (r *Router) Read(ctx context.Context, group uint64, args [][]byte) ([]byte, error) {
	replies, errs := r.ReadMany(ctx, group, [][][]byte{args})
	return replies[0], errs[0]
}

// ReadMany serves read commands on group's leader after one ReadIndex (or
// locally when stale reads are switched on). When a read meets a
// transaction's write lock, the lock is resolved and that read and the
// ones after it are served again, so a pipeline's reads never see the
// store go backwards.
func (r *Router) ReadMany(ctx context.Context, group uint64, cmds [][][]byte) ([][]byte, []error) {
	errs := make([]error, len(cmds))
	lim := localCap(ctx)
	if r.cfg.UnsafeStaleReads && r.eng.HasGroup(group) {
		outs, err := r.localReads(group, cmds, lim)
		if err != nil {
			return make([][]byte, len(cmds)), fillErrs(errs, err)
		}
		return splitOutcomes(outs)
	}
	replies := make([][]byte, len(cmds))
	from := 0 // replies[:from] are final
	lockedAt := -1
	for attempt := 0; ; attempt++ {
		rest := cmds[from:]
		forwarded := false
		outs := r.attempt(ctx, group, attempt, len(rest), func(actx context.Context, node uint64) ([]outcome, bool) {
			if node == r.cfg.NodeID {
				return r.serveReads(actx, group, rest, lim), false
			}
			forwarded = true
			b, err := r.cfg.Transport.Forward(actx, node, methodRead, encodeReads(group, rest))
			if err == nil {
				if outs, derr := decodeOutcomes(b, len(rest)); derr == nil {
					return outs, false
				}
			}
			return repeatOutcome(outcome{code: codeReadFailed}, len(rest)), true
		})
		if outs[0].code == codeStorageFailed {
			// The serving replica's storage failed: not a reason to
			// retry it.
			fillErrs(errs[from:], &failure.EngineError{Msg: string(outs[0].reply)})
			return replies, errs
		}
		if served(outs[0].code) {
			lockedAt = -1
			notRun := -1
			var holders []txn.Ref
			for i, o := range outs {
				if o.code == codeNotRun {
					notRun = from + i
					break
				}
				if o.code == codeTooLarge {
					errs[from+i] = &failure.ReplyTooLargeError{Bytes: int(o.hint), Limit: maxForwardReply}
					continue
				}
				if hs, ok := txn.ParseLocked(o.reply); ok {
					holders, lockedAt = hs, from+i
					break
				}
				if failure.WrongGroup.Is(o.reply) {
					errs[from+i] = &failure.WrongGroupError{Group: group}
					continue
				}
				if forwarded {
					lim.budget.Draw(len(o.reply))
					if err := lim.cmd.Spend(len(o.reply)); err != nil {
						errs[from+i] = err
						continue
					}
				}
				replies[from+i] = o.reply
			}
			if lockedAt < 0 && notRun < 0 {
				return replies, errs
			}
			if lockedAt < 0 {
				// The rest did not fit in this round's replies.
				from = notRun
				if forwarded && lim.budget.CanStart() {
					continue
				}
				fillErrs(errs[from:], failure.ErrNotRun)
				return replies, errs
			}
			from = lockedAt
			if r.pushLocks(ctx, group, holders) {
				continue
			}
		}
		if !backoff(ctx, attempt) {
			var err error = &failure.NoLeaderError{Group: group, Read: true}
			switch {
			case lockedAt >= 0:
				err = &failure.LockedError{Read: true}
			case outs[0].code == codeBusy:
				err = &failure.BusyError{}
			}
			for i := from; i < len(replies); i++ {
				errs[i] = err
			}
			return replies, errs
		}
	}
}

// served reports whether an outcome code says the serving node answered
// the read itself (its reply, a refusal for size, or "not this round").
func served(code byte) bool {
	return code == codeOK || code == codeTooLarge || code == codeNotRun
}

// StaleReads serves reads from the local replica, which may lag its
// leader: the opt-in weak consistency of READONLY. A read that meets a
// transaction's lock is served by the leader instead, so even a stale
// read never returns a value no transaction committed.
func (r *Router) StaleReads(ctx context.Context, group uint64, cmds [][][]byte) ([][]byte, []error) {
	outs, err := r.localReads(group, cmds, localCap(ctx))
	if err != nil {
		return make([][]byte, len(cmds)), fillErrs(make([]error, len(cmds)), err)
	}
	for _, o := range outs {
		if _, locked := txn.ParseLocked(o.reply); locked && o.code == codeOK {
			return r.ReadMany(ctx, group, cmds)
		}
	}
	return splitOutcomes(outs)
}

// attempt runs one try of n commands against the best-guess leader and
// updates the leader hint from the answer. do returns one outcome per
// command and whether the node failed to answer at all.
func (r *Router) attempt(ctx context.Context, group uint64, attempt, n int, do func(context.Context, uint64) ([]outcome, bool)) []outcome {
	node := r.target(group, attempt)
	if node == 0 {
		return repeatOutcome(outcome{code: codeNotLeader}, n)
	}
	actx, cancel := context.WithTimeout(ctx, failure.AttemptTime(ctx, attemptTimeout))
	defer cancel()
	outs, unreachable := do(actx, node)
	o := outs[0]
	switch {
	case o.code == codeOK:
		if node != r.cfg.NodeID {
			r.ConfirmLeader(group, node)
			r.cfg.Metrics.Forwarded.Add(float64(n))
		}
	case o.code == codeNotLeader && o.hint != 0 && o.hint != node:
		r.SetHint(group, o.hint)
	case unreachable, o.code == codeNotLeader, o.code == codeNoGroup, o.code == codeMaybeApplied:
		// Try another replica next time.
		r.SetHint(group, r.nextNode(group, node))
	}
	return outs
}

// nextNode is the replica after node in group's list.
func (r *Router) nextNode(group, node uint64) uint64 {
	nodes := r.GroupNodes(group)
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

// serveReads answers reads on this node, which must lead group: one
// ReadIndex covers them all. lim bounds the replies built (replies.go).
func (r *Router) serveReads(ctx context.Context, group uint64, cmds [][][]byte, lim readCap) []outcome {
	if !r.eng.HasGroup(group) {
		return repeatOutcome(outcome{code: codeNoGroup}, len(cmds))
	}
	for {
		// A backup's cut that opens between the barrier and the reads could
		// let them show writes it holds back: then read again, behind it
		// (raftstore.Engine.CutGen).
		gen := r.eng.CutGen(group)
		if err := r.eng.ReadBarrier(ctx, group); err != nil {
			return repeatOutcome(outcomeOf(nil, err), len(cmds))
		}
		outs, err := r.localReads(group, cmds, lim)
		if errors.Is(err, raftstore.ErrNoGroup) {
			return repeatOutcome(outcome{code: codeNoGroup}, len(cmds))
		}
		if err != nil {
			return repeatOutcome(outcome{code: codeStorageFailed, reply: []byte(err.Error())}, len(cmds))
		}
		if r.eng.CutGen(group) == gen {
			return outs
		}
	}
}

// localReads evaluates reads against the local replica's applied state,
// as far as lim lets them. A storage failure fails them all: the replica
// cannot be trusted to answer the rest.
func (r *Router) localReads(group uint64, cmds [][][]byte, lim readCap) ([]outcome, error) {
	return capReads(len(cmds), lim, func(i int) ([]byte, error) { return r.localRead(group, cmds[i], lim.loadLimit()) })
}

// localRead evaluates one read against the local replica's applied state.
// A read that meets a transaction's write lock answers the lock's holders
// instead (see txn.Blocked); the router resolves them and reads again.
func (r *Router) localRead(group uint64, args [][]byte, limit int) ([]byte, error) {
	// The one lookup of a read on the node that serves it.
	spec := command.Lookup(args[0])
	if statemachine.IsKeyCount(args) {
		n, err := r.eng.KeyCount(group)
		if errors.Is(err, raftstore.ErrNoGroup) {
			return nil, err // the replica left meanwhile: asked again elsewhere
		}
		if err != nil {
			r.cfg.Logger.Error("read failed", "partition", group, "err", err)
			return nil, &failure.EngineError{Msg: "storage failure"}
		}
		return resp.AppendInt(nil, n), nil
	}
	// One frozen view: a multi-key read, or a lock check and the read
	// after it, must not see an entry applied halfway through.
	snap, release := r.eng.Snapshot(group)
	defer release()
	rd := &cappedReader{Reader: snap, left: limit}
	out, err := statemachine.Read(rd, group, spec, args)
	if errors.Is(err, errReplyCap) {
		return nil, &failure.ReplyTooLargeError{Bytes: rd.read, Limit: limit}
	}
	if err != nil {
		r.cfg.Logger.Error("read failed", "partition", group, "err", err)
		return nil, &failure.EngineError{Msg: "storage failure"}
	}
	return out, nil
}
