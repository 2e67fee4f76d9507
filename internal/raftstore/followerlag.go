package raftstore

import (
	"cmp"
	"context"
	"slices"
)

// FollowerLag is how far one follower's log is behind its leader here.
type FollowerLag struct {
	Group, Node uint64
	// Entries: the leader's last index minus the follower's match index.
	Entries uint64
}

// FollowerLags reads, on the loop, every follower's lag in the groups this
// node leads, for the metrics. It gives up at ctx's end (a stalled loop
// answers nothing), returning what it has: nil.
func (e *Engine) FollowerLags(ctx context.Context) []FollowerLag {
	// One question on the loop at a time: a stalled loop does not pile up
	// a scrape's every question (the first answers when it comes round).
	if !e.lagAsked.CompareAndSwap(false, true) {
		return nil
	}
	out := make(chan []FollowerLag, 1)
	e.in.addFunc(func() {
		defer e.lagAsked.Store(false)
		var lags []FollowerLag
		for _, g := range sortedKeys(e.byGroup) {
			r := e.byGroup[g]
			if !r.isLeader {
				continue
			}
			// The leader's own match: the last index it has made durable
			// (a follower may be ahead of it for a moment: lag 0).
			st := r.rn.Status()
			last := st.Progress[st.ID].Match
			for _, id := range sortedKeys(st.Progress) {
				pr := st.Progress[id]
				if id == st.ID {
					continue
				}
				lag := uint64(0)
				if last > pr.Match {
					lag = last - pr.Match
				}
				if node := r.desc.NodeOf(id); node != 0 { // a replica the descriptor names
					lags = append(lags, FollowerLag{Group: g, Node: node, Entries: lag})
				}
			}
		}
		slices.SortFunc(lags, func(a, b FollowerLag) int {
			return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Node, b.Node))
		})
		out <- lags
	})
	e.notify()
	select {
	case l := <-out:
		return l
	case <-ctx.Done():
		return nil
	case <-e.done:
		return nil
	}
}

// Pending is the proposals and reads waiting for the log now.
func (e *Engine) Pending() int64 { return e.pending.Load() }
