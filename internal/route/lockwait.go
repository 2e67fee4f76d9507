package route

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/txn"
)

// Lock waits at the participant's leader.
//
// A PREPARE that meets locks held only by older transactions used to go
// back to its coordinator at once, which let go of every lock it held and
// retried after a backoff: under heavy overlap an abort storm, in which a
// released lock went to whichever attempt came back first. Now it waits
// here, on the leader of its partition, in that partition's queue
// (txn.WaitQueue has the rules and the invariants), and is proposed again
// when the holders it met are resolved, oldest waiter first.
//
// Why this is enough to see every release: a lock is released only by a
// RESOLVE entry, and every write to a partition a node leads, local or
// forwarded, passes through propose on that node. A RESOLVE proposed
// elsewhere (the leader moved and came back) is missed: the waiter waits
// out its bound and answers as before. The queue is never an authority:
// each proposal is checked against the lock table when it is applied.
//
// Handoff in one round: the waiters a RESOLVE frees are proposed as soon
// as the RESOLVE is queued, not when it is applied. Proposals of a group
// enter its log in the order they are queued, so theirs land after it;
// if it fails, they meet the lock again and wait for its confirmation.
//
// Identity: a PREPARE's first proposal carries its coordinator's (origin,
// seq); a refused PREPARE's reply is kept under that identity for
// retries, so a proposal after a wait carries a fresh identity of this
// router's. If that proposal certainly did not reach the log, the caller
// is answered with the refusal its own identity holds. If its outcome is
// unknown, the caller gets errWaitUncertain, which its router does not
// retry and its coordinator takes for "maybe prepared": it aborts the
// attempt (the record too, if this PREPARE may have created it) and
// releases every participant.
//
// Bounds: a PREPARE waits at most lockWaitMax and leaves lockWaitReserve
// of its caller's deadline for its last proposal and the answer; a
// partition queues at most lockWaitersPerGroup waiters and a node
// lockWaitersPerNode. Beyond them a PREPARE is answered at once, as
// before the queue existed.
const (
	lockWaitMax         = time.Second
	lockWaitReserve     = 250 * time.Millisecond
	lockWaitMin         = 20 * time.Millisecond
	lockWaitersPerGroup = 1024
	lockWaitersPerNode  = 8192
	// lockPlaceKept is how long a place is kept for a PREPARE whose
	// coordinator is wounding a younger holder (txn.WaitQueue.Reserve):
	// a record read and two writes, with room for a loaded machine.
	lockPlaceKept = 500 * time.Millisecond
)

// lockWaits holds the wait queues of the partitions this node leads.
type lockWaits struct {
	mu     sync.Mutex
	groups map[uint64]*txn.WaitQueue     // guarded by mu
	wakes  map[*txn.Waiter]chan struct{} // guarded by mu; every waiter still served by a request
	where  map[txn.ID][]uint64           // guarded by mu; waiting transaction -> groups it waits (or has a place) in
	kept   map[*txn.Waiter]*time.Timer   // guarded by mu; places kept, and the timer that drops each
	gauge  func(n int)                   // reports the waiter count
	leads  func(group uint64) bool       // whether this node leads group
}

func newLockWaits(gauge func(int), leads func(uint64) bool) *lockWaits {
	return &lockWaits{groups: map[uint64]*txn.WaitQueue{}, wakes: map[*txn.Waiter]chan struct{}{}, where: map[txn.ID][]uint64{},
		kept: map[*txn.Waiter]*time.Timer{}, gauge: gauge, leads: leads}
}

// busy reports whether group has waiters (then newcomers must be checked).
func (lw *lockWaits) busy(group uint64) bool {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	q := lw.groups[group]
	return q != nil && q.Len() > 0
}

// admit queues a newcomer behind older waiters it conflicts with.
func (lw *lockWaits) admit(group uint64, s txn.Share) (*txn.Waiter, chan struct{}) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	q := lw.groups[group]
	if q == nil || lw.full() {
		return nil, nil
	}
	w := q.Admit(s)
	if w == nil {
		return nil, nil
	}
	return w, lw.track(group, w, s.Ref.ID)
}

// claim turns a place kept for s's transaction into its waiter.
func (lw *lockWaits) claim(group uint64, s txn.Share) (*txn.Waiter, chan struct{}) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	q := lw.groups[group]
	if q == nil {
		return nil, nil
	}
	w := q.Claim(s.Ref.ID)
	if w == nil {
		return nil, nil
	}
	if t := lw.kept[w]; t != nil {
		t.Stop()
		delete(lw.kept, w)
	}
	return w, lw.listen(w) // the place's entry in where is the waiter's now
}

// keepPlace keeps a place for s, whose PREPARE met a younger holder, for
// lockPlaceKept.
func (lw *lockWaits) keepPlace(group uint64, s txn.Share) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if lw.full() {
		return
	}
	q := lw.queue(group)
	if place := q.Reserve(s); place != nil {
		lw.where[s.Ref.ID] = append(lw.where[s.Ref.ID], group)
		lw.keepLocked(group, q, place, s.Ref.ID)
	}
}

// toPlace turns w, whose later try met a younger holder, back into a kept
// place: the request answers its coordinator, which wounds and comes back.
func (lw *lockWaits) toPlace(group uint64, id txn.ID, w *txn.Waiter) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	delete(lw.wakes, w)
	lw.gauge(len(lw.wakes))
	q := lw.groups[group]
	if q == nil || !w.Queued() {
		lw.dropWhere(id, group)
		return
	}
	q.Keep(w)
	lw.keepLocked(group, q, w, id)
}

// keepLocked arms the timer that drops place if no PREPARE claims it;
// mu is held.
func (lw *lockWaits) keepLocked(group uint64, q *txn.WaitQueue, place *txn.Waiter, id txn.ID) {
	var t *time.Timer
	t = time.AfterFunc(lockPlaceKept, func() {
		lw.mu.Lock()
		defer lw.mu.Unlock()
		if lw.kept[place] != t {
			return // claimed meanwhile (and perhaps kept again)
		}
		delete(lw.kept, place)
		if place.Queued() && place.Reserved() {
			lw.wake(q.Leave(place))
		}
		lw.dropWhere(id, group)
		lw.dropIfIdle(group, q)
	})
	lw.kept[place] = t
}

// queue is group's queue, made when missing; mu is held.
func (lw *lockWaits) queue(group uint64) *txn.WaitQueue {
	q := lw.groups[group]
	if q == nil {
		q = txn.NewWaitQueue(lockWaitersPerGroup)
		lw.groups[group] = q
	}
	return q
}

// full reports whether the node holds as many waiters and places as it
// may; mu is held.
func (lw *lockWaits) full() bool { return len(lw.wakes)+len(lw.kept) >= lockWaitersPerNode }

// dropWhere forgets that id waits in group; mu is held.
func (lw *lockWaits) dropWhere(id txn.ID, group uint64) {
	gs := lw.where[id]
	if i := slices.Index(gs, group); i >= 0 {
		gs = slices.Delete(gs, i, i+1)
	}
	if len(gs) == 0 {
		delete(lw.where, id)
	} else {
		lw.where[id] = gs
	}
}

// dropIfIdle forgets group's queue when it is empty and the partition is
// led elsewhere now; mu is held.
func (lw *lockWaits) dropIfIdle(group uint64, q *txn.WaitQueue) {
	if q.Len() == 0 && lw.groups[group] == q && !lw.leads(group) {
		delete(lw.groups, group)
	}
}

// park queues (or queues again) a PREPARE that met holders; ok=false when
// it must not wait.
func (lw *lockWaits) park(group uint64, w *txn.Waiter, s txn.Share, holders []txn.Ref) (*txn.Waiter, chan struct{}, bool) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if w == nil && lw.full() {
		return nil, nil, false
	}
	w2, ok := lw.queue(group).Park(w, s, holders)
	if !ok {
		return w2, lw.wakes[w2], false
	}
	if w == nil {
		return w2, lw.track(group, w2, s.Ref.ID), true
	}
	return w2, lw.wakes[w2], true
}

// track notes a new waiter of id in group and returns its wake-up
// channel; mu is held.
func (lw *lockWaits) track(group uint64, w *txn.Waiter, id txn.ID) chan struct{} {
	lw.where[id] = append(lw.where[id], group)
	return lw.listen(w)
}

// listen gives w, now served by a request, its wake-up channel; mu is
// held.
func (lw *lockWaits) listen(w *txn.Waiter) chan struct{} {
	ch := make(chan struct{}, 1)
	lw.wakes[w] = ch
	lw.gauge(len(lw.wakes))
	return ch
}

// turn is where a waiter stands: its turn to propose, still waiting, or
// gone (its transaction was resolved while it waited).
type turn int

const (
	turnWait turn = iota
	turnGo
	turnGone
)

// String is how a wait that ended at t is counted (its metric label).
func (t turn) String() string {
	if t == turnGone {
		return "abandoned"
	}
	return "expired"
}

func (lw *lockWaits) turn(w *txn.Waiter) turn {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	switch {
	case !w.Queued():
		return turnGone
	case w.Ready():
		return turnGo
	}
	return turnWait
}

// finish takes w out of the queue: applied (its PREPARE holds the locks
// now) or not (whoever waits behind it may go).
func (lw *lockWaits) finish(group uint64, id txn.ID, w *txn.Waiter, applied bool) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if q := lw.groups[group]; q != nil {
		if applied {
			q.Done(w)
		} else {
			lw.wake(q.Leave(w))
		}
		lw.dropIfIdle(group, q)
	}
	delete(lw.wakes, w)
	lw.dropWhere(id, group)
	lw.gauge(len(lw.wakes))
}

// resolved notes that id's part in group was resolved: the waiters it
// blocked may go, and id's own PREPAREs still waiting here, in any
// partition, are moot (its transaction is decided).
func (lw *lockWaits) resolved(group uint64, id txn.ID) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if q := lw.groups[group]; q != nil {
		ready, gone := q.Resolved(id)
		lw.wake(ready)
		lw.wake([]*txn.Waiter{gone})
	}
	for _, g := range lw.where[id] {
		// The queue may be gone (emptied while its partition is led
		// elsewhere) before the request that waited there has finished.
		if q := lw.groups[g]; q != nil && g != group {
			ready, gone := q.Abandoned(id)
			lw.wake(ready)
			lw.wake([]*txn.Waiter{gone})
		}
	}
}

// releasing wakes the waiters that only ids' RESOLVEs, just queued in
// group's log, stand in the way of (txn.WaitQueue.Releasing).
func (lw *lockWaits) releasing(group uint64, ids []txn.ID) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if q := lw.groups[group]; q != nil && q.Len() > 0 {
		for _, id := range ids {
			lw.wake(q.Releasing(id))
		}
	}
}

// wake tells each waiter's request to look at its turn; mu is held.
func (lw *lockWaits) wake(ws []*txn.Waiter) {
	for _, w := range ws {
		if ch := lw.wakes[w]; ch != nil {
			select {
			case ch <- struct{}{}:
			default: // a wake-up is pending already
			}
		}
	}
}

// lockWaitUntil is how long a PREPARE may wait here, within ctx.
func lockWaitUntil(ctx context.Context) (time.Time, bool) {
	until := time.Now().Add(lockWaitMax)
	if d, ok := ctx.Deadline(); ok && d.Add(-lockWaitReserve).Before(until) {
		until = d.Add(-lockWaitReserve)
	}
	return until, time.Until(until) >= lockWaitMin
}

// proposePrepare proposes a participant's PREPARE and, while it meets
// only older transactions' locks, waits for them here and proposes it
// again (see the top of this file).
func (r *Router) proposePrepare(ctx context.Context, group uint64, req *raftstore.Request) ([]byte, error) {
	lw := r.waits
	until, canWait := lockWaitUntil(ctx)
	var (
		s       txn.Share
		decoded bool
		w       *txn.Waiter
		wake    chan struct{}
		last    []byte // the refusal the caller's identity holds
	)
	if canWait && lw.busy(group) {
		if s, decoded = txn.ShareOf(req.Args); decoded {
			if w, wake = lw.claim(group, s); w == nil {
				w, wake = lw.admit(group, s)
			}
		}
	}
	for {
		if w != nil {
			t := r.awaitTurn(ctx, w, wake, until)
			if t != turnGo {
				lw.finish(group, s.Ref.ID, w, false)
				r.lockWaitEnded(t.String())
				if last != nil {
					return last, nil
				}
				if ctx.Err() != nil {
					return nil, errors.Join(raftstore.ErrBusy, context.Cause(ctx)) // never proposed
				}
				// Queued behind others and never proposed: one try now.
				w, canWait = nil, false
			}
		}
		reply, err := r.proposeOnce(ctx, group, req, last != nil)
		holders, locked := txn.ParseLocked(reply)
		if err != nil || !locked {
			// Only a PREPARE that succeeded (an array of replies) holds
			// locks; any other answer (a failed watch, a refusal) leaves
			// nothing for those behind it to wait for.
			prepared := err == nil && len(reply) > 0 && reply[0] == '*'
			if w != nil {
				lw.finish(group, s.Ref.ID, w, prepared)
				if prepared {
					r.lockWaitEnded("granted")
				} else {
					r.lockWaitEnded("failed")
				}
			}
			if err != nil && last != nil {
				// A copy under this router's identity failed: its own
				// refusal stands when the copy certainly did not apply;
				// otherwise the coordinator must not take it for a
				// refusal (see "Identity" above).
				if notProposed(err) {
					return last, nil
				}
				return nil, errWaitUncertain
			}
			return reply, err
		}
		last = reply
		if !decoded {
			s, decoded = txn.ShareOf(req.Args)
		}
		ok := false
		if canWait && decoded && time.Until(until) >= lockWaitMin {
			w, wake, ok = lw.park(group, w, s, holders)
		}
		if !ok {
			// A younger holder: its coordinator wounds it and comes back,
			// and younger waiters must not take the lock meanwhile.
			wounds := decoded && slices.ContainsFunc(holders, func(h txn.Ref) bool { return !h.Older(s.Ref) })
			switch {
			case w != nil && wounds:
				lw.toPlace(group, s.Ref.ID, w)
				r.lockWaitEnded("refused")
			case w != nil:
				lw.finish(group, s.Ref.ID, w, false)
				r.lockWaitEnded("refused")
			case wounds && canWait:
				lw.keepPlace(group, s)
			}
			return reply, nil
		}
	}
}

// proposeOnce proposes req, under a fresh identity of this router's when
// its own was used already.
func (r *Router) proposeOnce(ctx context.Context, group uint64, req *raftstore.Request, fresh bool) ([]byte, error) {
	if fresh {
		seq, wm := r.seqs.begin()
		defer r.seqs.end(seq)
		req = &raftstore.Request{Origin: r.origin, Seq: seq, Watermark: wm, Args: req.Args}
	}
	replies, errs := r.eng.ProposeMany(ctx, group, []*raftstore.Request{req})
	return replies[0], errs[0]
}

// errWaitUncertain answers a PREPARE whose proposal after a wait has an
// unknown outcome. It is no refusal the router retries (a retry under the
// caller's identity would only find the first refusal): the coordinator
// takes it for "maybe prepared", aborts the attempt and releases every
// participant, this one included.
var errWaitUncertain = errors.New("a PREPARE proposed again after a lock wait has an unknown outcome")

// notProposed reports whether a proposal's error says it never reached
// the log, as the forwarded-call codes classify it.
func notProposed(err error) bool {
	switch outcomeOf(nil, err).code {
	case codeNotLeader, codeBusy, codeNoSpace, codeNoGroup:
		return true
	}
	return false
}

// awaitTurn waits until w may be proposed, is gone, or until passes.
func (r *Router) awaitTurn(ctx context.Context, w *txn.Waiter, wake chan struct{}, until time.Time) turn {
	timer := time.NewTimer(time.Until(until))
	defer timer.Stop()
	for {
		if t := r.waits.turn(w); t != turnWait {
			return t
		}
		select {
		case <-wake:
		case <-timer.C:
			return r.waits.turn(w)
		case <-ctx.Done():
			return turnWait
		}
	}
}

// lockWaitEnded counts how a wait ended.
func (r *Router) lockWaitEnded(outcome string) {
	if r.cfg.Metrics != nil {
		r.cfg.Metrics.LockWaits.WithLabelValues(outcome).Inc()
	}
}
