package txn

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func share(n, prio uint64, keys ...string) Share {
	var kms []keyMode
	for _, k := range keys {
		write := true
		if k[0] == 'r' { // "r:key" reads key
			k, write = k[2:], false
		}
		kms = append(kms, keyMode{key: []byte(k), write: write})
	}
	return newShare(Ref{ID: NewID(1, n), Priority: prio}, kms)
}

// Many transactions meet one lock in random order; each release goes to
// the oldest waiter, one at a time, and a newcomer younger than the
// waiters queues behind them even when the key is free.
func TestWaitQueueGivesAReleasedLockToTheOldest(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		q := NewWaitQueue(100)
		holder := share(1000, 1, "k")
		n := 2 + rng.IntN(20)
		prios := rng.Perm(n)
		for i, p := range prios {
			w, ok := q.Park(nil, share(uint64(i+1), uint64(p+10), "k"), []Ref{holder.Ref})
			if !ok || w.Ready() {
				t.Fatalf("round %d: waiter %d not parked (ok %v)", round, i, ok)
			}
		}
		if w := q.Admit(share(999, 1000, "k")); w == nil {
			t.Fatalf("round %d: a younger newcomer was let past the waiters", round)
		}
		if w := q.Admit(share(998, 5, "k")); w != nil {
			t.Fatalf("round %d: a newcomer older than every waiter was queued", round)
		}
		var order []uint64
		ready, _ := q.Resolved(holder.Ref.ID)
		for len(ready) > 0 {
			if len(ready) != 1 {
				t.Fatalf("round %d: %d waiters on one key made ready at once", round, len(ready))
			}
			w := ready[0]
			order = append(order, w.share.Ref.Priority)
			q.Done(w)
			ready, _ = q.Resolved(w.share.Ref.ID)
		}
		if len(order) != n+1 || !slices.IsSorted(order) {
			t.Fatalf("round %d: locks granted in priority order %v, want %d sorted", round, order, n+1)
		}
	}
}

// A PREPARE that met a younger holder must not wait (its coordinator
// wounds that holder); one whose holder was resolved before it parked is
// ready at once; a transaction resolved elsewhere leaves the queue.
func TestWaitQueueParkRules(t *testing.T) {
	q := NewWaitQueue(2)
	old, young := share(1, 1, "k"), share(2, 2, "k")
	if _, ok := q.Park(nil, old, []Ref{young.Ref}); ok {
		t.Fatal("parked behind a younger holder")
	}
	h := share(3, 0, "k")
	q.Resolved(h.Ref.ID)
	w, ok := q.Park(nil, young, []Ref{h.Ref})
	if !ok || !w.Ready() {
		t.Fatalf("parked behind an already resolved holder: ok %v ready %v", ok, w != nil && w.Ready())
	}
	q.Leave(w)
	w, _ = q.Park(nil, young, []Ref{share(4, 0, "k").Ref})
	if _, gone := q.Abandoned(young.Ref.ID); gone != w || q.Len() != 0 {
		t.Fatalf("abandoned waiter still queued (%d)", q.Len())
	}
	w, _ = q.Park(nil, young, []Ref{share(4, 0, "k").Ref})
	if _, gone := q.Resolved(young.Ref.ID); gone != w || q.Len() != 0 {
		t.Fatalf("a waiter whose transaction was resolved here is still queued (%d)", q.Len())
	}
	q.Park(nil, share(5, 5, "a"), []Ref{h.Ref})
	q.Park(nil, share(6, 6, "b"), []Ref{h.Ref})
	if _, ok := q.Park(nil, share(7, 7, "c"), []Ref{h.Ref}); ok {
		t.Fatal("parked past the bound")
	}
	// Readers do not wait for readers.
	q = NewWaitQueue(10)
	q.Park(nil, share(8, 1, "r:k"), []Ref{share(9, 0, "k").Ref})
	if q.Admit(share(10, 2, "r:k")) != nil {
		t.Fatal("a reader queued behind a reader")
	}
	if q.Admit(share(11, 3, "k")) == nil {
		t.Fatal("a writer let past a waiting reader")
	}
}

// A model of one partition: random transactions over a few keys arrive,
// wait, lock, finish, give up and get wounded in random order. After
// every step the queue's invariants hold, and at the end, once every
// holder finishes, the queue drains: no wake-up is ever lost.
func TestWaitQueueInvariantsUnderRandomSchedules(t *testing.T) {
	for seed := range uint64(300) {
		if err := runWaitModel(seed); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}

type waitModel struct {
	rng     *rand.Rand
	q       *WaitQueue
	refs    map[ID]Ref
	shares  map[ID]Share
	locks   map[string][]ID // key -> holders (several readers or one writer)
	holding []ID
	waiting map[ID]*Waiter
	confirm []ID      // resolved, not yet seen confirmed
	places  []*Waiter // kept, not yet claimed or dropped
	next    uint64
}

func runWaitModel(seed uint64) error {
	m := &waitModel{rng: rand.New(rand.NewPCG(seed, 7)), q: NewWaitQueue(1000), refs: map[ID]Ref{}, shares: map[ID]Share{},
		locks: map[string][]ID{}, waiting: map[ID]*Waiter{}}
	// 300 steps of arrivals, then at most 5,000 more to drain.
	for step := 0; step < 300 || step < 5300 && (m.q.Len() > 0 || len(m.holding) > 0 || len(m.confirm) > 0 || len(m.places) > 0); step++ {
		if err := m.step(step >= 300); err != nil {
			return fmt.Errorf("step %d: %w", step, err)
		}
		if err := m.check(); err != nil {
			return fmt.Errorf("step %d: %w", step, err)
		}
	}
	if m.q.Len() != 0 || len(m.holding) != 0 || len(m.confirm) != 0 || len(m.places) != 0 {
		return fmt.Errorf("did not drain: %d waiters, %d holders, %d unconfirmed", m.q.Len(), len(m.holding), len(m.confirm))
	}
	return nil
}

// step runs one random event; draining, no new transaction arrives.
func (m *waitModel) step(draining bool) error {
	var ready []*Waiter
	for _, w := range m.waiting {
		if w.Ready() {
			ready = append(ready, w)
		}
	}
	slices.SortFunc(ready, func(a, b *Waiter) int { return int(a.share.Ref.Priority) - int(b.share.Ref.Priority) })
	switch c := m.rng.IntN(10); {
	case len(ready) > 0 && (c < 4 || draining):
		return m.propose(ready[m.rng.IntN(len(ready))])
	case len(m.places) > 0 && (c < 2 || draining):
		// A kept place: its PREPARE comes back and claims it, or it is
		// dropped when it does not come back in time.
		i := m.rng.IntN(len(m.places))
		place := m.places[i]
		m.places = slices.Delete(m.places, i, i+1)
		id := place.share.Ref.ID
		if !place.Queued() {
			return nil // its transaction was resolved meanwhile
		}
		if m.rng.IntN(4) == 0 {
			delete(m.waiting, id)
			return m.checkReady(m.q.Leave(place))
		}
		if m.q.Claim(id) != place || place.Reserved() {
			return fmt.Errorf("a kept place was not claimed")
		}
		if m.q.Claim(id) != nil {
			return fmt.Errorf("a place was claimed twice")
		}
		if place.Ready() {
			return m.checkReady([]*Waiter{place})
		}
		return nil
	case len(m.confirm) > 0 && (c < 5 || draining):
		id := m.confirm[0]
		m.confirm = m.confirm[1:]
		ready, gone := m.q.Resolved(id)
		if gone != nil {
			delete(m.waiting, id)
		}
		return m.checkReady(ready)
	case len(m.holding) > 0 && (c < 7 || draining):
		i := m.rng.IntN(len(m.holding))
		id := m.holding[i]
		switch m.rng.IntN(3) {
		case 0: // resolved
			m.holding = slices.Delete(m.holding, i, i+1)
			return m.resolve(id)
		case 1: // its RESOLVE is queued: the waiters go behind it; it lands and is confirmed later
			if err := m.checkReady(m.q.Releasing(id)); err != nil {
				return err
			}
			m.holding = slices.Delete(m.holding, i, i+1)
			m.unlock(id)
			m.confirm = append(m.confirm, id)
		default: // its RESOLVE is queued and fails: the locks stay
			return m.checkReady(m.q.Releasing(id))
		}
	case !draining && c < 9:
		m.next++
		var keys []string
		for range 1 + m.rng.IntN(3) {
			k := string(rune('a' + m.rng.IntN(4)))
			if m.rng.IntN(4) == 0 {
				k = "r:" + k
			}
			keys = append(keys, k)
		}
		s := share(m.next, uint64(m.rng.IntN(1000)), keys...)
		m.refs[s.Ref.ID], m.shares[s.Ref.ID] = s.Ref, s
		if w := m.q.Admit(s); w != nil {
			m.waiting[s.Ref.ID] = w
			return nil
		}
		return m.try(nil, s)
	case !draining && len(m.waiting) > 0:
		// A waiter gives up (its deadline), or is wounded elsewhere.
		ids := make([]ID, 0, len(m.waiting))
		for id := range m.waiting {
			ids = append(ids, id)
		}
		slices.SortFunc(ids, func(a, b ID) int { return slices.Compare(a[:], b[:]) })
		id := ids[m.rng.IntN(len(ids))]
		w := m.waiting[id]
		delete(m.waiting, id)
		if m.rng.IntN(2) == 0 || w.Ready() {
			return m.checkReady(m.q.Leave(w))
		}
		ready, gone := m.q.Abandoned(id)
		if gone != w {
			return fmt.Errorf("abandoned waiter not removed")
		}
		return m.checkReady(ready)
	}
	return nil
}

func (m *waitModel) propose(w *Waiter) error {
	return m.try(w, w.share)
}

// try applies a PREPARE against the model's lock table.
func (m *waitModel) try(w *Waiter, s Share) error {
	var holders []Ref
	for _, k := range s.keys {
		for _, h := range m.locks[string(k.key)] {
			if h != s.Ref.ID && (k.write || m.writes(h, k.key)) && !slices.ContainsFunc(holders, func(r Ref) bool { return r.ID == h }) {
				holders = append(holders, m.refs[h])
			}
		}
	}
	if len(holders) == 0 {
		for _, k := range s.keys {
			m.locks[string(k.key)] = append(m.locks[string(k.key)], s.Ref.ID)
		}
		m.holding = append(m.holding, s.Ref.ID)
		if w != nil {
			m.q.Done(w)
			delete(m.waiting, s.Ref.ID)
		}
		return nil
	}
	w2, ok := m.q.Park(w, s, holders)
	if !ok {
		// Met a younger holder: a place is kept for it while its
		// coordinator wounds the holder; then it comes back (or not).
		var place *Waiter
		if w != nil {
			m.q.Keep(w) // as the router does with a waiter met by a younger holder
			place = w
		} else if place = m.q.Reserve(s); place != nil {
			m.waiting[s.Ref.ID] = place
		}
		for _, h := range holders {
			if !h.Older(s.Ref) {
				if i := slices.Index(m.holding, h.ID); i >= 0 {
					m.holding = slices.Delete(m.holding, i, i+1)
					if err := m.resolve(h.ID); err != nil {
						return err
					}
				}
			}
		}
		if place != nil {
			m.places = append(m.places, place)
		}
		return nil
	}
	m.waiting[s.Ref.ID] = w2
	return nil
}

func (m *waitModel) writes(id ID, key []byte) bool {
	for _, k := range m.shares[id].keys {
		if k.write && string(k.key) == string(key) {
			return true
		}
	}
	return false
}

func (m *waitModel) unlock(id ID) {
	for k, hs := range m.locks {
		m.locks[k] = slices.DeleteFunc(hs, func(h ID) bool { return h == id })
	}
}

func (m *waitModel) resolve(id ID) error {
	m.unlock(id)
	ready, gone := m.q.Resolved(id)
	if gone != nil {
		delete(m.waiting, id)
	}
	return m.checkReady(ready)
}

// checkReady: a waiter made ready has no older conflicting waiter queued.
func (m *waitModel) checkReady(ready []*Waiter) error {
	for i, w := range ready {
		if i > 0 && !ready[i-1].share.Ref.Older(w.share.Ref) {
			return fmt.Errorf("ready waiters not oldest first")
		}
		for _, o := range m.q.conflicting(w.share, true) {
			return fmt.Errorf("waiter %d made ready while an older conflicting waiter %d is queued", w.share.Ref.Priority, o.share.Ref.Priority)
		}
	}
	return nil
}

// check: every blocker of a queued waiter is older than it, and a queued
// waiter that is not ready is blocked by something.
func (m *waitModel) check() error {
	for id, w := range m.q.waiters {
		if m.waiting[id] != w {
			return fmt.Errorf("queue holds a waiter the model does not")
		}
		if !w.Ready() && !w.Reserved() && len(w.blockers) == 0 {
			return fmt.Errorf("waiter %d blocked by nothing but not ready", w.share.Ref.Priority)
		}
		for b := range w.blockers {
			if !m.refs[b].Older(w.share.Ref) {
				return fmt.Errorf("waiter %d blocked by a younger %d", w.share.Ref.Priority, m.refs[b].Priority)
			}
		}
	}
	if len(m.q.waiters) != len(m.waiting) {
		return fmt.Errorf("queue has %d waiters, model %d", len(m.q.waiters), len(m.waiting))
	}
	return nil
}

// A PREPARE that meets a younger holder cannot wait (its coordinator
// wounds the holder first), but a place is kept for it: the younger
// waiter behind that holder does not take the lock in between, which
// would only get it wounded in turn.
func TestWaitQueueKeepsAPlaceForAWounder(t *testing.T) {
	q := NewWaitQueue(10)
	old, holder, young := share(1, 1, "k"), share(2, 2, "k"), share(3, 3, "k")
	w, ok := q.Park(nil, young, []Ref{holder.Ref})
	if !ok || w.Ready() {
		t.Fatal("the youngest did not wait for the holder")
	}
	if _, ok := q.Park(nil, old, []Ref{holder.Ref}); ok {
		t.Fatal("parked behind a younger holder")
	}
	place := q.Reserve(old)
	if place == nil {
		t.Fatal("no place kept")
	}
	if ready := q.Releasing(holder.Ref.ID); len(ready) != 0 {
		t.Fatalf("the wounded holder's release made %d ready ahead of the wounder", len(ready))
	}
	if ready, _ := q.Resolved(holder.Ref.ID); len(ready) != 0 || place.Ready() {
		t.Fatal("a kept place or its follower became ready by itself")
	}
	if q.Claim(old.Ref.ID) != place || !place.Ready() {
		t.Fatal("the wounder's PREPARE did not take its place")
	}
	q.Done(place)
	if ready, _ := q.Resolved(old.Ref.ID); len(ready) != 1 || ready[0] != w {
		t.Fatal("the youngest was not next")
	}
	if q.Claim(young.Ref.ID) != nil {
		t.Fatal("claimed a place never kept")
	}
	q.Resolved(share(9, 0, "z").Ref.ID)
	if q.Reserve(share(9, 0, "z")) != nil {
		t.Fatal("kept a place for a transaction resolved here")
	}
	// A place not claimed in time is left, and lets the others go.
	q = NewWaitQueue(10)
	w, _ = q.Park(nil, young, []Ref{holder.Ref})
	place = q.Reserve(old)
	q.Resolved(holder.Ref.ID)
	if ready := q.Leave(place); len(ready) != 1 || ready[0] != w {
		t.Fatal("leaving a kept place did not free the waiter behind it")
	}
}

// The queue takes PREPAREs of at most maxShareKeys keys: a larger one is
// answered at once, so the queue's work under its owner's mutex stays
// bounded whatever a client sends.
func TestShareOfBoundsItsKeys(t *testing.T) {
	mset := func(n int) [][]byte {
		args := [][]byte{[]byte("MSET")}
		for i := range n {
			args = append(args, []byte(fmt.Sprintf("k%d", i)), []byte("v"))
		}
		return args
	}
	ref := Ref{ID: NewID(1, 1), Priority: 1}
	if s, ok := ShareOf(prepareArgs(&prepare{ref: ref, cmds: [][][]byte{mset(maxShareKeys)}})); !ok || len(s.keys) != maxShareKeys || !s.writes["k0"] {
		t.Fatalf("a PREPARE of %d keys was not taken (ok %v)", maxShareKeys, ok)
	}
	if _, ok := ShareOf(prepareArgs(&prepare{ref: ref, cmds: [][][]byte{mset(maxShareKeys + 1)}})); ok {
		t.Fatalf("a PREPARE of %d keys was taken", maxShareKeys+1)
	}
}
