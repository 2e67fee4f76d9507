package clock

import (
	"testing"
	"time"
)

func TestSkew(t *testing.T) {
	c := New()
	if got := c.Period(50 * time.Millisecond); got != 50*time.Millisecond {
		t.Fatalf("unskewed period %v", got)
	}
	if d := c.Now().Sub(time.Now()); d > time.Second || d < -time.Second {
		t.Fatalf("unskewed Now off by %v", d)
	}
	ch := c.Changed()
	if err := c.Skew(30*time.Second, 2); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	default:
		t.Fatal("Changed not closed by Skew")
	}
	if got := c.Period(50 * time.Millisecond); got != 25*time.Millisecond {
		t.Fatalf("rate 2: period %v, want 25ms", got)
	}
	if d := c.Now().Sub(time.Now()); d < 29*time.Second || d > 31*time.Second {
		t.Fatalf("offset 30s: Now off by %v", d)
	}
	for _, bad := range []struct {
		off  time.Duration
		rate float64
	}{{0, 0}, {0, -1}, {0, 11}, {2 * time.Hour, 1}, {-2 * time.Hour, 1}} {
		if err := c.Skew(bad.off, bad.rate); err == nil {
			t.Fatalf("Skew(%v, %v) accepted", bad.off, bad.rate)
		}
	}
	if o, r := c.Skewed(); o != 30*time.Second || r != 2 {
		t.Fatalf("a refused skew changed the clock: %v %v", o, r)
	}
	// Periods stay within bounds at the extreme rates.
	if err := c.Skew(0, MaxRate); err != nil {
		t.Fatal(err)
	}
	if got := c.Period(time.Microsecond); got != time.Millisecond {
		t.Fatalf("period below a millisecond: %v", got)
	}
	if err := c.Skew(0, MinRate); err != nil {
		t.Fatal(err)
	}
	if got := c.Period(10 * time.Second); got != time.Minute {
		t.Fatalf("period above a minute: %v", got)
	}
}

func TestManualClockMovesOnlyWhenTold(t *testing.T) {
	start := time.Unix(1_000_000, 0)
	c := NewManual(start)
	if got := c.Now(); !got.Equal(start) {
		t.Fatalf("Now = %v, want %v", got, start)
	}
	c.Advance(1500 * time.Millisecond)
	if got := c.Now(); !got.Equal(start.Add(1500 * time.Millisecond)) {
		t.Fatalf("after Advance: %v", got)
	}
	c.Set(start) // never backwards
	if got := c.Now(); !got.Equal(start.Add(1500 * time.Millisecond)) {
		t.Fatalf("Set went back: %v", got)
	}
	if err := c.Skew(time.Second, 1); err != nil {
		t.Fatal(err)
	}
	if got := c.Now(); !got.Equal(start.Add(2500 * time.Millisecond)) {
		t.Fatalf("skewed: %v", got)
	}
}

// Mono runs at the clock's rate, folds each rate change in, and ignores
// offsets: a lease measured on it is as skewed as the node's timers.
func TestMonoFollowsRateNotOffset(t *testing.T) {
	c := NewManual(time.Unix(1_000_000, 0))
	step := func(d time.Duration, want time.Duration) {
		t.Helper()
		c.Advance(d)
		if got := c.Mono(); got != want {
			t.Fatalf("Mono = %v, want %v", got, want)
		}
	}
	step(time.Second, time.Second)
	if err := c.Skew(-time.Hour, 2); err != nil { // a jump back and a fast clock
		t.Fatal(err)
	}
	step(0, time.Second)
	step(time.Second, 3*time.Second)
	if err := c.Skew(time.Hour, 0.5); err != nil {
		t.Fatal(err)
	}
	step(2*time.Second, 4*time.Second)
	c.Set(time.Unix(0, 0)) // never backwards
	step(0, 4*time.Second)

	real := New()
	a := real.Mono()
	if err := real.Skew(-time.Hour, 1); err != nil {
		t.Fatal(err)
	}
	if b := real.Mono(); b < a {
		t.Fatalf("a real clock's Mono went back across a skew: %v then %v", a, b)
	}
}
