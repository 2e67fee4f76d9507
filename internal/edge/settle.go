package edge

import (
	"sync"
	"time"
)

// While a partition's leadership moves, the nodes learn the new leader at
// slightly different moments, and a cluster-aware client following MOVED
// can bounce between nodes that disagree for a moment (go-redis gives up
// after three redirects). So a node redirects a cluster-aware client only
// once the partition's leader, as it sees it, has held for movedSettle;
// meanwhile it serves the command itself (the router forwards it to the
// leader, as for any other client). The leaders the node knows when its
// edge starts count as settled (prime); any later one must hold first —
// also at a node's first look at a partition since then, which may come
// in the middle of leaderships moving (a node that transferred its
// leaderships away and was never asked about them would otherwise send
// a client on to a leader it has just heard of).
const movedSettle = time.Second

// leaderWatch remembers when each partition's leader last changed, as
// this node's redirects see it.
type leaderWatch struct {
	mu   sync.RWMutex
	seen map[uint64]leaderSince // guarded by mu
}

type leaderSince struct {
	leader uint64
	since  time.Time // zero: seen from the start
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
		w.seen[uint64(p.ID)] = leaderSince{leader: v.LeaderOf(uint64(p.ID))}
	}
}

// settled reports whether leader has led group, as far as this node has
// seen, for movedSettle at now.
func (w *leaderWatch) settled(group, leader uint64, now time.Time) bool {
	// Every redirect asks, from every connection: the common answer (the
	// leader has not changed) is read under the shared lock.
	w.mu.RLock()
	s, ok := w.seen[group]
	w.mu.RUnlock()
	if ok && s.leader == leader {
		return s.since.IsZero() || now.Sub(s.since) >= movedSettle
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen == nil {
		w.seen = map[uint64]leaderSince{}
	}
	s, ok = w.seen[group]
	switch {
	case !ok:
		w.seen[group] = leaderSince{leader: leader}
		return true
	case s.leader != leader:
		w.seen[group] = leaderSince{leader: leader, since: now}
		return false
	}
	return s.since.IsZero() || now.Sub(s.since) >= movedSettle
}
