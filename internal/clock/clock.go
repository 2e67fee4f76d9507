// Package clock is a node's source of time for what its protocols time:
// today the raft tick, later leases and transaction heartbeats. It exists
// so a fault can skew one node's time without touching the machine's
// clock: kintsu chaos's clock nemesis shifts a node's wall time (Now) and
// speeds up or slows down its timers (Period), through the admin API of a
// node started with --fault-injection.
//
// Invariants:
//   - Without a skew, Now is time.Now and Period(d) is d.
//   - A skew never makes Period return less than a millisecond or more
//     than a minute, whatever rate it is given: a timer stays a timer.
//   - Mono never goes back and advances at the clock's rate (an offset
//     never moves it): what a lease measures, so a skewed node's lease
//     runs fast or slow exactly as its timers do.
//   - A manual clock (NewManual) moves only when told (Set, Advance): the
//     simulator's nodes read simulated time through it, so nothing on
//     the replication engine's path reads the machine's time directly
//     (a lint test in internal/raftstore keeps it so).
//   - Safety must not depend on the clock: raft orders everything by log
//     index and term, never by time. A skewed node may campaign too early
//     or heartbeat too late (PreVote and CheckQuorum absorb that); it must
//     never make the cluster acknowledge something it then loses.
package clock

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Rate bounds: how much faster or slower than real time a node may run.
const (
	MinRate = 0.1
	MaxRate = 10
	// MaxOffset bounds a wall-clock shift either way.
	MaxOffset = time.Hour
)

// Clock is safe for concurrent use.
type Clock struct {
	mu      sync.Mutex
	manual  bool      // time is base, moved by Set and Advance
	base    time.Time // a manual clock's time, before the skew
	offset  time.Duration
	rate    float64
	changed chan struct{} // closed and replaced on every Skew
	// Mono is mono plus the time since anchor (real, or the manual base)
	// at rate; a Skew folds the elapsed part into mono.
	mono   time.Duration
	anchor time.Time
}

// New returns a clock that follows real time.
func New() *Clock { return &Clock{rate: 1, changed: make(chan struct{}), anchor: time.Now()} }

// NewManual returns a clock that shows start and moves only by Set and
// Advance: a simulated node's time.
func NewManual(start time.Time) *Clock {
	return &Clock{manual: true, base: start, rate: 1, changed: make(chan struct{}), anchor: start}
}

// Now is the node's wall time: real (or, on a manual clock, simulated)
// time shifted by the skew's offset.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.manual {
		return c.base.Add(c.offset)
	}
	return time.Now().Add(c.offset)
}

// Mono is the time elapsed on this clock since it was made, at its rate:
// monotonic, and unmoved by offsets.
func (c *Clock) Mono() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.monoLocked()
}

func (c *Clock) monoLocked() time.Duration {
	now := c.base
	if !c.manual {
		now = time.Now()
	}
	return c.mono + time.Duration(float64(now.Sub(c.anchor))*c.rate)
}

// Set moves a manual clock to t (before the skew); time never goes back
// through Set, so an earlier t is ignored. It panics on a real clock.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.manual {
		panic("clock: Set on a real clock")
	}
	if t.After(c.base) {
		c.base = t
	}
}

// Advance moves a manual clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	t := c.base.Add(max(d, 0))
	c.mu.Unlock()
	c.Set(t)
}

// Period is how long, in real time, an interval of d lasts on this clock:
// a clock running at rate 2 fires its timers twice as often.
func (c *Clock) Period(d time.Duration) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := time.Duration(float64(d) / c.rate)
	return min(max(p, time.Millisecond), time.Minute)
}

// Skew shifts the wall time by offset and runs timers at rate times real
// speed; Skew(0, 1) restores real time.
func (c *Clock) Skew(offset time.Duration, rate float64) error {
	if rate < MinRate || rate > MaxRate {
		return fmt.Errorf("clock rate %v: must be between %v and %v", rate, MinRate, MaxRate)
	}
	if offset < -MaxOffset || offset > MaxOffset {
		return fmt.Errorf("clock offset %v: must be within ±%v", offset, MaxOffset)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mono = c.monoLocked()
	c.anchor = c.base
	if !c.manual {
		c.anchor = time.Now()
	}
	c.offset, c.rate = offset, rate
	close(c.changed)
	c.changed = make(chan struct{})
	return nil
}

// Skewed reports the current skew.
func (c *Clock) Skewed() (offset time.Duration, rate float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset, c.rate
}

// Changed is closed at the next Skew, so a loop holding a ticker can
// re-arm it with the new Period.
func (c *Clock) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// Sleep waits d in real time, or until ctx ends; false if ctx ended first.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
