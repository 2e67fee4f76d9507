package raftstore

import (
	"fmt"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/tracker"

	"github.com/kintsu/kintsu/internal/raftlog"
)

// Log compaction. The raft log of a group is compacted (its applied
// entries dropped) when it grows past TruncateAfter, and when its oldest
// entries hold sealed segments of the node's raft log on disk; never past
// the applied index durable in Pebble, since apply batches are not synced
// and a power cut makes the log replay what Pebble lost.

// maybeTruncate drops applied log entries of groups whose log grew past
// TruncateAfter, keeping TruncateKeep entries. A leader also keeps what
// active followers still need, unless they lag by more than
// 4*TruncateAfter: a short pause should cost a catch-up from the log, not
// a snapshot, but one slow follower must not grow the log without bound.
//
// The log is never compacted past the applied index durable in Pebble
// (durableApplied): Pebble's apply batches are not synced, and after a
// power cut the entries after its durable applied state are applied again
// from the log (grouplog.go). When a target needs more, one synced write
// to Pebble's WAL first makes every applied batch durable.
func (e *Engine) maybeTruncate(readies []readyRep) error {
	var cuts []logCut
	needSync := false
	for _, rr := range readies {
		r := rr.r
		tr, err := r.log.Truncated()
		if err != nil {
			return err
		}
		first := tr.Index + 1
		if r.committed.Index < first || r.committed.Index-first < e.cfg.TruncateAfter {
			continue
		}
		if target := e.truncateTarget(r, r.committed.Index-e.cfg.TruncateKeep); target >= first {
			cuts = append(cuts, logCut{r, target})
			needSync = needSync || target > r.durableApplied
		}
	}
	return e.compact(cuts, needSync)
}

// logCut is a compaction maybeTruncate or compactPinned wants.
type logCut struct {
	r      *replica
	target uint64
}

// compact compacts each cut's log up to its target, but never past the
// applied index durable in Pebble; needSync: a target is beyond it, so
// Pebble is synced first.
func (e *Engine) compact(cuts []logCut, needSync bool) error {
	if len(cuts) == 0 {
		return nil
	}
	if needSync && !e.cfg.UnsafeCompactAhead {
		if err := e.syncPebble(); err != nil {
			return err
		}
	}
	b := e.rlog.NewBatch()
	for _, c := range cuts {
		target := min(c.target, c.r.durableApplied)
		if e.cfg.UnsafeCompactAhead {
			target = c.target
		}
		if err := c.r.log.Compact(b, target); err != nil {
			return err
		}
	}
	// Unsynced: losing it to a crash only leaves a longer log. The
	// segments it frees go at the next synced commit.
	if err := e.rlog.Commit(b, false); err != nil {
		return fmt.Errorf("truncate logs: %w", err)
	}
	return nil
}

// compactPinned compacts, every pinEvery ticks, the groups whose oldest
// retained entries lie in sealed segments of the raft log. Segments are
// deleted oldest first, so a group that never reaches TruncateAfter (an
// idle one: the metadata group) would otherwise keep every segment
// written after its entries, whatever the other groups compacted.
//
// A pinned group is first compacted as maybeTruncate would, keeping
// TruncateKeep entries: right after a rotation nearly every group is
// pinned by those, and a follower that paused should still catch up from
// the log. Only a group that holds back pinBudget sealed segments or more
// (an idle group, or a leader waiting for a follower that is not coming
// back) is compacted to its applied index, less what a leader's active
// followers still need (truncateTarget). So the log keeps at most about
// pinBudget+1 segments beyond what lagging followers need.
func (e *Engine) compactPinned() error {
	if e.pinTicks++; e.pinTicks < pinEvery {
		return nil
	}
	e.pinTicks = 0
	var cuts []logCut
	needSync := false
	pins := e.rlog.Pins(0)
	for _, p := range pins {
		r := e.byGroup[p.Group]
		if r == nil {
			continue // not hosted: taken out of service, dropped at Release
		}
		tr, err := r.log.Truncated()
		if err != nil {
			return err
		}
		target := r.committed.Index
		if p.Segments < pinBudget {
			target -= min(target, e.cfg.TruncateKeep)
		}
		if target = e.truncateTarget(r, target); target > tr.Index {
			cuts = append(cuts, logCut{r, target})
			needSync = needSync || target > r.durableApplied
		}
	}
	e.noteLogStats(pins)
	return e.compact(cuts, needSync)
}

// pinEvery is how many ticks apart compactPinned looks at the pins;
// pinBudget how many sealed segments a group may hold back before it is
// compacted to its applied index.
const (
	pinEvery  = 10
	pinBudget = 2
)

// logStats is the raft log's footprint as the loop last saw it, for
// metrics: reading the log's own figures takes its lock, which a commit
// holds across its fsync (a scrape would wait on the disk).
type logStats struct {
	segments, bytes, pinned atomic.Int64
}

func (e *Engine) noteLogStats(pins []raftlog.Pin) {
	st := e.rlog.Stats()
	e.logStats.segments.Store(int64(st.Segments))
	e.logStats.bytes.Store(st.Bytes)
	var pinned int64
	for _, p := range pins {
		pinned = max(pinned, p.Bytes)
	}
	e.logStats.pinned.Store(pinned)
}

// LogStats reports the raft log's segment files, their bytes, and the
// bytes of sealed segments kept by the group that holds back the most, as
// of the last look (at most pinEvery ticks old). Safe from any goroutine.
func (e *Engine) LogStats() (segments, bytes, pinned int64) {
	return e.logStats.segments.Load(), e.logStats.bytes.Load(), e.logStats.pinned.Load()
}

// truncateTarget lowers target, on a leader, to what its active followers
// still need (see maybeTruncate).
func (e *Engine) truncateTarget(r *replica, target uint64) uint64 {
	if r.isLeader {
		floor := r.committed.Index - min(r.committed.Index, 4*e.cfg.TruncateAfter)
		r.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
			if id != r.id && pr.RecentActive && pr.Match >= floor && pr.Match < target {
				target = pr.Match
			}
		})
	}
	return target
}

// syncPebble makes every batch committed to Pebble so far durable.
func (e *Engine) syncPebble() error {
	if err := e.db.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("sync the state machines: %w", err)
	}
	e.pebbleSynced()
	return nil
}
