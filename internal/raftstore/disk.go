package raftstore

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// A disk that fills or hangs must fence the node, never leave a zombie that
// holds leaderships it cannot serve. Two mechanisms, both stated as
// invariants:
//
//   - Disk almost full (SetDiskFull, driven by package diskguard): new
//     proposals on this node are refused with a NoSpaceError before
//     anything reaches raft, so the refusal is clean (nothing applied), and
//     every leadership held here is handed to an up-to-date follower, again
//     at every tick while full, since raft may elect this node again and the
//     leader balancer may hand it a leadership.
//     What leaders elsewhere send keeps being appended, persisted and
//     applied: the follower stays in its quorums, and its log and state
//     keep up, for as long as the reserve lasts. Reads are served as usual.
//     When the guard reports enough free space again, proposals are taken
//     again (the guard's hysteresis keeps this from flapping).
//   - Loop stalled: no cycle of the loop completed for Config.StallTimeout
//     (LastCycle, progress.go; an idle loop still cycles at every tick): a
//     synced write hung on a full or dying disk, or a write stall behind a
//     flush that keeps failing. It fences the node:
//     Err reports it, Done closes, waiting proposers and readers are
//     answered at once, and the loop's answers, if it ever wakes, reach no
//     one who still waits. A loop stuck inside Pebble cannot be stopped, so
//     Stop does not wait for it; the process must exit.

// ErrNoSpace: the node's disk is almost full; nothing was proposed.
var ErrNoSpace = errors.New("disk almost full: writes refused")

// NoSpaceError says why a write was refused; it wraps ErrNoSpace.
type NoSpaceError struct {
	Node          uint64
	Free, Reserve uint64 // bytes
}

func (e *NoSpaceError) Error() string {
	return fmt.Sprintf("disk almost full on node %d (%d MiB free, reserve %d MiB): writes refused until space is freed",
		e.Node, e.Free>>20, e.Reserve>>20)
}

func (e *NoSpaceError) Unwrap() error { return ErrNoSpace }

// diskState is the engine's view of its disk, written by SetDiskFull.
type diskState struct {
	full    atomic.Pointer[NoSpaceError] // nil: enough space
	reserve atomic.Uint64                // the guard's reserve, bytes (snapshot staging keeps above it)
	stalled chan struct{}                // closed when a stalled loop fenced the node
}

// SetDiskFull reports the disk's state: full (with free and reserve
// bytes) or not. While full, proposals are refused and leaderships are
// moved away; see the invariants above. Safe from any goroutine.
func (e *Engine) SetDiskFull(full bool, free, reserve uint64) {
	e.disk.reserve.Store(reserve)
	if !full {
		if e.disk.full.Swap(nil) != nil {
			e.cfg.Logger.Info("disk has space again: writes accepted", "free_mib", free>>20, "reserve_mib", reserve>>20)
		}
		return
	}
	if e.disk.full.Swap(&NoSpaceError{Node: e.cfg.NodeID, Free: free, Reserve: reserve}) == nil {
		e.cfg.Logger.Error("disk almost full: refusing writes and moving leaderships away until space is freed",
			"dir", e.cfg.DataDir, "free_mib", free>>20, "reserve_mib", reserve>>20)
	}
	e.in.addFunc(func() {
		for _, r := range e.replicas {
			r.transferAway()
		}
	})
	e.notify()
}

// shedLeadership hands away, at every tick while the disk is full, any
// leadership this node gained since (an election it won, or the leader
// balancer's hand-over): it cannot take writes, so it must not lead.
// Called on the loop.
func (e *Engine) shedLeadership() {
	if e.disk.full.Load() == nil {
		return
	}
	for _, r := range e.replicas {
		r.transferAway()
	}
}

// DiskFull reports whether the disk is below its reserve (writes refused).
func (e *Engine) DiskFull() bool { return e.disk.full.Load() != nil }

// DiskFullReason says why writes are refused ("" while the disk has
// space), for health checks.
func (e *Engine) DiskFullReason() string {
	if ns := e.disk.full.Load(); ns != nil {
		return ns.Error()
	}
	return ""
}

// noSpace returns the refusal for a proposal while the disk is full.
func (e *Engine) noSpace() error {
	if ns := e.disk.full.Load(); ns != nil {
		return ns
	}
	return nil
}

// watchStall fences the node when no cycle completed for StallTimeout.
func (e *Engine) watchStall() {
	every := max(e.cfg.StallTimeout/10, 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-e.done:
			return
		case <-t.C:
		}
		if last := e.LastCycle(); !last.IsZero() && time.Since(last) >= e.cfg.StallTimeout {
			d := time.Since(last)
			e.setFatal(fmt.Errorf("the replication loop has been stuck for %s, most likely in a write to the data dir %s "+
				"(full, failing or hung disk): the node fences itself and must exit", d.Round(time.Millisecond), e.cfg.DataDir))
			close(e.disk.stalled)
			// Waiters are answered now; the loop's own structures stay its
			// own (it may still be running), so only the waiter table is
			// touched here.
			e.failWaitersOnly(ErrStopped)
			e.closeOver()
			return
		}
	}
}

// Fence stops the engine on a fault found outside the loop (Pebble found
// a corrupt file): Err reports err, the loop exits at its next turn and
// answers every waiter, and Done closes. Nothing more is acknowledged.
// Safe from any goroutine; Stop is still to be called.
func (e *Engine) Fence(err error) {
	e.setFatal(err)
	e.stopOnce.Do(func() { close(e.stop) })
	if !e.started.Load() {
		e.closeOver()
	}
}

func (e *Engine) failWaitersOnly(err error) {
	e.waitMu.Lock()
	ws := e.waiters
	e.waiters = map[waitKey]*waiter{}
	e.waitMu.Unlock()
	for _, k := range sortedWaitKeys(ws) {
		ws[k].deliver(result{err: err})
	}
}
