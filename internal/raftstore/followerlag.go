package raftstore

import (
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
	out := make(chan []FollowerLag, 1)
	e.in.addFunc(func() {
		var lags []FollowerLag
		for _, g := range sortedKeys(e.byGroup) {
			r := e.byGroup[g]
			if !r.isLeader {
				continue
			}
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
				lags = append(lags, FollowerLag{Group: g, Node: r.desc.NodeOf(id), Entries: lag})
			}
		}
		slices.SortFunc(lags, func(a, b FollowerLag) int {
			if a.Group != b.Group {
				return int(a.Group) - int(b.Group)
			}
			return int(a.Node) - int(b.Node)
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
