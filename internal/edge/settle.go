package edge

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kintsu/kintsu/internal/ring"
)

// While a partition's leadership moves, the nodes learn the new leader at
// slightly different moments, and a cluster-aware client following MOVED
// can bounce between nodes that disagree for a moment (go-redis gives up
// after three redirects). So a node redirects a cluster-aware client only
// once the partition's leader, as it sees it, has held for movedSettle;
// meanwhile it serves the command itself (the router forwards it to the
// leader, as for any other client).
//
// "As it sees it" must not mean "since a client last asked": a node asked
// about a partition for the first time in the middle of leaderships
// moving would count a leader it has just heard of as settled. So the
// node watches every partition's leader (watchLeaders, a few times a
// second) as well as at each redirect. The first leader a node learns
// for a partition (at start, none is known) counts as settled: that is
// no move.
const movedSettle = time.Second

// The same holds for the slot table: after a split, the nodes read the
// new partition table up to a map refresh apart, and one redirecting by
// the new table while another still goes by the old one would bounce a
// client between them. So for slotsSettle after this node sees the table
// change, it redirects nobody by it: it serves, forwarding as needed.
const slotsSettle = 3 * time.Second

// slotWatch remembers when the slot table last changed, as this node
// sees it.
type slotWatch struct {
	last    atomic.Pointer[ring.SlotTable]
	changed atomic.Int64 // UnixNano; 0: never (the first table is no change)
}

// settled reports whether t has held for slotsSettle at now.
func (w *slotWatch) settled(t *ring.SlotTable, now time.Time) bool {
	if last := w.last.Load(); last != t {
		if last != nil && !last.Equal(t) {
			w.changed.Store(now.UnixNano())
		}
		w.last.Store(t)
	}
	ch := w.changed.Load()
	return ch == 0 || now.UnixNano()-ch >= int64(slotsSettle)
}

// leaderWatch remembers when each partition's leader last changed, as
// this node sees it.
type leaderWatch struct {
	mu   sync.RWMutex
	seen map[uint64]leaderSince // guarded by mu
}

type leaderSince struct {
	leader uint64
	since  time.Time // zero: held from the start, or the first one learnt
	// known: the node has known a leader of the partition (a later one is
	// a move).
	known bool
}

// prime records the leaders known now (0: none yet) as seen from the
// start.
func (w *leaderWatch) prime(v View) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen == nil {
		w.seen = map[uint64]leaderSince{}
	}
	for _, p := range v.Partitions() {
		l := v.LeaderOf(uint64(p.ID))
		w.seen[uint64(p.ID)] = leaderSince{leader: l, known: l != 0}
	}
}

// observe notes group's leader as seen at now (0: none known).
func (w *leaderWatch) observe(group, leader uint64, now time.Time) {
	w.mu.RLock()
	s, ok := w.seen[group]
	w.mu.RUnlock()
	if ok && s.leader == leader {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.note(group, leader, now)
}

// note records leader for group if it changed; w.mu is held.
func (w *leaderWatch) note(group, leader uint64, now time.Time) leaderSince {
	if w.seen == nil {
		w.seen = map[uint64]leaderSince{}
	}
	s, ok := w.seen[group]
	switch {
	case ok && s.leader == leader:
		return s
	case !ok || !s.known:
		// The first leader learnt for the partition: no move.
		s = leaderSince{leader: leader, known: leader != 0}
	default:
		s = leaderSince{leader: leader, since: now, known: true}
	}
	w.seen[group] = s
	return s
}

// settled reports whether leader has led group, as far as this node has
// seen, for movedSettle at now.
func (w *leaderWatch) settled(group, leader uint64, now time.Time) bool {
	// Every redirect asks, from every connection: the common answer (the
	// leader has not changed) is read under the shared lock.
	w.mu.RLock()
	s, ok := w.seen[group]
	w.mu.RUnlock()
	if !ok || s.leader != leader {
		w.mu.Lock()
		s = w.note(group, leader, now)
		w.mu.Unlock()
	}
	return s.since.IsZero() || now.Sub(s.since) >= movedSettle
}

// leaderWatchEvery is how often watchLeaders looks, by partition count:
// often enough that a move is seen well within movedSettle, rarely
// enough to cost nothing with many partitions.
func leaderWatchEvery(partitions int) time.Duration {
	if partitions > 4096 {
		return time.Second
	}
	return 200 * time.Millisecond
}

// watchLeaders observes every partition's leader until ctx ends.
func (f *Server) watchLeaders(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := f.now()
		f.slotsSeen.settled(f.slotTable(), now) // notes a split as soon as the map shows it
		for _, p := range f.cfg.View.Partitions() {
			f.leaders.observe(uint64(p.ID), f.cfg.View.LeaderOf(uint64(p.ID)), now)
		}
	}
}
