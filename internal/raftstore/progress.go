package raftstore

import (
	"sync/atomic"
	"time"
)

// Loop progress, for the node's health: a loop stuck inside a storage
// call (a full or hung disk) returns no error, so Err alone cannot see
// it. The loop stamps the end of every cycle; an idle loop still cycles
// on every tick, so a stamp older than a few ticks means the loop is not
// coming round.

// progressEpoch anchors the stamps on the monotonic clock: wall-clock
// jumps (and the node's skewable clock) never make a loop look stalled.
var progressEpoch = time.Now()

// loopProgress is the time of the loop's last completed cycle, in
// nanoseconds since progressEpoch; 0 before the loop first ran.
type loopProgress struct{ at atomic.Int64 }

func (p *loopProgress) mark() { p.at.Store(int64(time.Since(progressEpoch)) | 1) }

// LastCycle is when the loop last completed a cycle (or started); the
// zero time if it never ran.
func (e *Engine) LastCycle() time.Time {
	ns := e.progress.at.Load()
	if ns == 0 {
		return time.Time{}
	}
	return progressEpoch.Add(time.Duration(ns))
}
