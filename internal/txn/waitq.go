package txn

import (
	"slices"
)

// WaitQueue orders the PREPAREs that wait on one partition's leader for
// locks held by older transactions, so that a released lock goes to the
// oldest transaction that wants it instead of to whichever attempt is
// retried first. It is pure and not safe for concurrent use: the router
// that owns it holds a mutex, proposes, and delivers the wake-ups.
//
// The queue is an ordering hint, never an authority: it is not
// replicated, a new leader starts with none, and every PREPARE it lets
// through is still checked against the lock table when its entry is
// applied. So a queue that is lost, stale or wrong costs time, never
// correctness.
//
// # Rules
//
//   - A PREPARE waits only for transactions older than itself (wound-wait:
//     an older one that meets a younger one wounds it instead). Park
//     refuses a PREPARE that met any younger holder, so its coordinator
//     wounds that holder as before.
//   - A waiter is blocked by the holders its PREPARE met and by every
//     older waiter that wants one of its keys (either writing); a
//     newcomer (Admit) that conflicts with an older waiter waits behind it
//     even when the key is free at that instant, so nobody slips in
//     between a release and the oldest waiter's proposal.
//   - A PREPARE that met a younger holder gets a place kept for it
//     (Reserve) while its coordinator wounds that holder: younger waiters
//     wanting its keys wait behind the place, and the PREPARE takes it
//     when it comes back (Claim). A place is never ready by itself.
//   - A waiter is ready when nothing blocks it. A blocker stops blocking
//     when its part here is resolved (Resolved), or, for a waiter, when
//     it leaves without having locked anything here (Leave). A waiter
//     whose PREPARE then applies (Done) keeps blocking until its own
//     resolution.
//
// # Invariants (checked by waitq_test.go)
//
//   - Every blocker of a waiter is older than it: the wait-for graph only
//     points to older transactions, so it has no cycle (no deadlock), and
//     the oldest waiter is blocked by lock holders alone. (A kept place
//     has no blockers and is not ready: it waits for its PREPARE to come
//     back, or for its owner to drop it.)
//   - A waiter is made ready only when no older waiter that conflicts
//     with it is queued: the waiters proposed after a release are the
//     oldest ones for each of its keys. (A waiter already ready is not
//     held back by an older one that parks after it: its proposal may be
//     in flight. Should it win the lock, the older one meets it and
//     wounds it.)
type WaitQueue struct {
	waiters   map[ID]*Waiter
	byKey     map[string][]*Waiter
	blockedBy map[ID][]*Waiter // blocker -> waiters it blocks
	recent    map[ID]struct{}  // recently resolved here: a late park must not wait for them
	ring      []ID
	next      int
	max       int
}

// Waiter is one waiting PREPARE.
type Waiter struct {
	share    Share
	blockers map[ID]struct{}
	skips    []ID // resolved holders it did not wait for (see Park)
	ready    bool // nothing blocks it; its proposal is (about to be) in flight
	queued   bool
	reserved bool // a place kept for a PREPARE that is wounding its way back (Reserve)
}

// skipped reports whether w skipped id before, and notes that it does now.
func (w *Waiter) skipped(id ID) bool {
	if slices.Contains(w.skips, id) {
		return true
	}
	w.skips = append(w.skips, id)
	return false
}

// Ready reports whether the waiter may be proposed now.
func (w *Waiter) Ready() bool { return w.ready }

// Queued reports whether the waiter is still in its queue.
func (w *Waiter) Queued() bool { return w.queued }

// Reserved reports whether the waiter is a place kept (Reserve) that no
// PREPARE has claimed yet.
func (w *Waiter) Reserved() bool { return w.reserved }

// Share is a PREPARE as the queue sees it: whose, and which keys, how.
type Share struct {
	Ref    Ref
	keys   []keyMode
	writes map[string]bool // the keys it writes
}

// maxShareKeys bounds the keys of a PREPARE the queue takes: its work,
// done under its owner's mutex, grows with the keys of the waiters that
// share one. A PREPARE of more keys does not wait; it is answered at once,
// as before the queue existed.
const maxShareKeys = 256

func newShare(ref Ref, keys []keyMode) Share {
	s := Share{Ref: ref, keys: keys, writes: map[string]bool{}}
	for _, k := range keys {
		if k.write {
			s.writes[string(k.key)] = true
		}
	}
	return s
}

// ShareOf decodes a PREPARE (IsPrepare) for the queue; false for one the
// queue does not take.
func ShareOf(args [][]byte) (Share, bool) {
	if !IsPrepare(args) || len(args) != 2 {
		return Share{}, false
	}
	p, err := decodePrepare(args[1])
	if err != nil {
		return Share{}, false
	}
	keys := keysOf(lookup(p.cmds), p.cmds, p.watches)
	if len(keys) == 0 || len(keys) > maxShareKeys {
		return Share{}, false
	}
	return newShare(p.ref, keys), true
}

// ResolveOf returns the transaction a RESOLVE operation ends; ok=false
// for any other operation.
func ResolveOf(args [][]byte) (ID, bool) {
	var id ID
	if len(args) != 3 || string(args[0]) != opResolve || len(args[1]) != len(id) {
		return id, false
	}
	copy(id[:], args[1])
	return id, true
}

// recentResolved bounds the memory of resolutions a late park checks.
const recentResolved = 512

// NewWaitQueue makes an empty queue holding at most max waiters.
func NewWaitQueue(max int) *WaitQueue {
	return &WaitQueue{
		waiters:   map[ID]*Waiter{},
		byKey:     map[string][]*Waiter{},
		blockedBy: map[ID][]*Waiter{},
		recent:    map[ID]struct{}{},
		ring:      make([]ID, recentResolved),
		max:       max,
	}
}

// Len is the number of waiters, ready ones included.
func (q *WaitQueue) Len() int { return len(q.waiters) }

// Admit places a newcomer behind the older waiters it conflicts with and
// returns it, not ready; nil when none conflicts (or the queue is full, or
// the transaction is queued already), and it may be proposed at once.
func (q *WaitQueue) Admit(s Share) *Waiter {
	if _, gone := q.recent[s.Ref.ID]; gone || len(q.waiters) >= q.max || q.waiters[s.Ref.ID] != nil {
		return nil
	}
	older := q.conflicting(s, true)
	if len(older) == 0 {
		return nil
	}
	w := q.enqueue(s)
	for _, o := range older {
		q.block(w, o.share.Ref.ID)
	}
	return w
}

// Reserve keeps a place for a PREPARE that met a younger holder: its
// coordinator wounds the holder and prepares again, and the younger
// waiters that want its keys must not take them in between (they would
// only be wounded in turn). The place is never ready by itself; Claim
// turns it into the PREPARE's waiter when it comes back, and the owner
// removes it with Leave when it does not come back in time. Nil when the
// queue is full or s is queued or resolved already.
func (q *WaitQueue) Reserve(s Share) *Waiter {
	if _, gone := q.recent[s.Ref.ID]; gone || len(q.waiters) >= q.max || q.waiters[s.Ref.ID] != nil {
		return nil
	}
	w := q.enqueue(s)
	w.reserved = true
	return w
}

// Keep turns w, whose proposal met a younger holder on a later try, back
// into a kept place (see Reserve): its coordinator wounds that holder and
// prepares again, and those behind it keep waiting for it.
func (q *WaitQueue) Keep(w *Waiter) {
	if !w.queued {
		return
	}
	q.unblock(w)
	w.ready, w.reserved = false, true
}

// Claim turns id's reserved place into a waiter for its PREPARE, behind
// the older waiters it conflicts with (ready when there are none). Nil
// when id has no reserved place.
func (q *WaitQueue) Claim(id ID) *Waiter {
	w := q.waiters[id]
	if w == nil || !w.reserved {
		return nil
	}
	w.reserved = false
	for _, o := range q.conflicting(w.share, true) {
		q.block(w, o.share.Ref.ID)
	}
	w.ready = len(w.blockers) == 0
	return w
}

// Park queues a PREPARE that met holders (the Locked reply's), or queues
// w again after its proposal met them. It returns false, and the PREPARE
// must not wait, when a holder is not older (its coordinator has to
// wound it), when the transaction was resolved here meanwhile, or when
// the queue is full. When it returns true the waiter may be ready at
// once (its holders were resolved before it parked).
func (q *WaitQueue) Park(w *Waiter, s Share, holders []Ref) (*Waiter, bool) {
	for _, h := range holders {
		if !h.Older(s.Ref) {
			return w, false
		}
	}
	if _, gone := q.recent[s.Ref.ID]; gone {
		return w, false
	}
	if w == nil {
		if len(q.waiters) >= q.max || q.waiters[s.Ref.ID] != nil {
			return nil, false
		}
		w = q.enqueue(s)
	}
	w.ready = false
	for _, h := range holders {
		// A holder resolved before its refusal was seen does not block,
		// once: met again, its lock is a late copy that only a push will
		// clear, and proposing again at once would spin.
		if _, gone := q.recent[h.ID]; gone && !w.skipped(h.ID) {
			continue
		}
		if h.ID != s.Ref.ID {
			q.block(w, h.ID)
		}
	}
	for _, o := range q.conflicting(s, true) {
		q.block(w, o.share.Ref.ID)
	}
	w.ready = len(w.blockers) == 0
	return w, true
}

// Resolved records that id's part here was resolved: its locks are gone.
// It returns the waiters that became ready, oldest first, and id's own
// waiter if it was still waiting here (its transaction is decided, so
// its PREPARE is moot; it has left the queue).
func (q *WaitQueue) Resolved(id ID) (ready []*Waiter, gone *Waiter) {
	if _, dup := q.recent[id]; !dup {
		delete(q.recent, q.ring[q.next])
		q.ring[q.next] = id
		q.next = (q.next + 1) % len(q.ring)
		q.recent[id] = struct{}{}
	}
	ready, gone = q.Abandoned(id)
	return append(ready, q.release(id)...), gone
}

// Releasing is Resolved ahead of the fact: id's RESOLVE is queued in the
// log before anything proposed from now on, so the waiters it alone
// blocks may be proposed right behind it, a round sooner. It returns
// them, oldest first. It remembers nothing: if the RESOLVE fails, their
// PREPAREs meet id's lock again and they park again, waiting for id.
func (q *WaitQueue) Releasing(id ID) []*Waiter { return q.release(id) }

// Abandoned removes id's waiter if it is waiting (not ready): its
// transaction was decided elsewhere. It returns the waiters that became
// ready and the removed one.
func (q *WaitQueue) Abandoned(id ID) (ready []*Waiter, gone *Waiter) {
	w := q.waiters[id]
	if w == nil || w.ready {
		return nil, nil
	}
	q.remove(w)
	return q.release(id), w
}

// Leave removes w, which locked nothing here (it gave up waiting, or its
// proposal failed): whoever waited behind it may go.
func (q *WaitQueue) Leave(w *Waiter) (ready []*Waiter) {
	if !w.queued {
		return nil
	}
	q.remove(w)
	return q.release(w.share.Ref.ID)
}

// Done removes w, whose PREPARE applied: it now holds its locks, and
// whoever waits behind it keeps waiting for its resolution.
func (q *WaitQueue) Done(w *Waiter) {
	if w.queued {
		q.remove(w)
	}
}

// conflicting lists the queued waiters that want one of s's keys in a
// conflicting mode and are older (older=true) or younger than s.
func (q *WaitQueue) conflicting(s Share, older bool) []*Waiter {
	var out []*Waiter
	seen := map[*Waiter]bool{}
	for _, k := range s.keys {
		for _, o := range q.byKey[string(k.key)] {
			if seen[o] || sameTxn(o.share.Ref, s.Ref) || o.share.Ref.Older(s.Ref) != older || !(k.write || o.share.writes[string(k.key)]) {
				continue
			}
			seen[o] = true
			out = append(out, o)
		}
	}
	return out
}

// sameTxn reports whether a and b are attempts of one transaction: a
// retry keeps its priority and its coordinator (the ID's first half), so
// it never waits behind a place or a waiter its earlier attempt left.
func sameTxn(a, b Ref) bool {
	return a.ID == b.ID || a.Priority == b.Priority && [8]byte(a.ID[:8]) == [8]byte(b.ID[:8])
}

func (q *WaitQueue) block(w *Waiter, by ID) {
	if _, ok := w.blockers[by]; ok {
		return
	}
	w.blockers[by] = struct{}{}
	q.blockedBy[by] = append(q.blockedBy[by], w)
}

// release clears id from everyone it blocks and returns those left
// unblocked, oldest first, marked ready.
func (q *WaitQueue) release(id ID) []*Waiter {
	ws := q.blockedBy[id]
	delete(q.blockedBy, id)
	var ready []*Waiter
	for _, w := range ws {
		if _, ok := w.blockers[id]; !ok {
			continue
		}
		delete(w.blockers, id)
		if len(w.blockers) == 0 && w.queued && !w.ready && !w.reserved {
			w.ready = true
			ready = append(ready, w)
		}
	}
	slices.SortFunc(ready, func(a, b *Waiter) int {
		if a.share.Ref.Older(b.share.Ref) {
			return -1
		}
		return 1
	})
	return ready
}

// enqueue adds a waiter for s; the younger waiters that want its keys
// and are not yet ready now wait behind it.
func (q *WaitQueue) enqueue(s Share) *Waiter {
	for _, y := range q.conflicting(s, false) {
		if !y.ready {
			q.block(y, s.Ref.ID)
		}
	}
	w := &Waiter{share: s, blockers: map[ID]struct{}{}}
	q.add(w)
	return w
}

func (q *WaitQueue) add(w *Waiter) {
	w.queued = true
	q.waiters[w.share.Ref.ID] = w
	for _, k := range w.share.keys {
		q.byKey[string(k.key)] = append(q.byKey[string(k.key)], w)
	}
}

func (q *WaitQueue) remove(w *Waiter) {
	w.queued = false
	delete(q.waiters, w.share.Ref.ID)
	for _, k := range w.share.keys {
		ws := slices.DeleteFunc(q.byKey[string(k.key)], func(o *Waiter) bool { return o == w })
		if len(ws) == 0 {
			delete(q.byKey, string(k.key))
		} else {
			q.byKey[string(k.key)] = ws
		}
	}
	q.unblock(w)
}

// unblock forgets what w waits for.
func (q *WaitQueue) unblock(w *Waiter) {
	for b := range w.blockers {
		ws := slices.DeleteFunc(q.blockedBy[b], func(o *Waiter) bool { return o == w })
		if len(ws) == 0 {
			delete(q.blockedBy, b)
		} else {
			q.blockedBy[b] = ws
		}
	}
	clear(w.blockers)
}
