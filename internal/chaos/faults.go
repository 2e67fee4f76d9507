package chaos

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// skew is one clock fault: the node's wall clock jumps by offset and its
// timers run at rate times real speed. Raft counts ticks, so the rate is
// what bites today: a fast node campaigns early (PreVote must keep it from
// disrupting a healthy leader), a slow leader heartbeats late.
type skew struct {
	offset time.Duration
	rate   float64
}

var skewRates = []float64{0.25, 0.5, 2, 4}

func planSkew(rng *rand.Rand) skew {
	off := time.Duration(1+rng.IntN(30)) * time.Second
	if rng.IntN(2) == 0 {
		off = -off
	}
	return skew{offset: off, rate: skewRates[rng.IntN(len(skewRates))]}
}

func (s skew) body() map[string]any {
	return map[string]any{"offset_ms": s.offset.Milliseconds(), "rate": s.rate}
}

func (s skew) String() string {
	return fmt.Sprintf("%+ds, timers ×%v", int(s.offset.Seconds()), s.rate)
}

// diskPlan is one disk fault: every fsync stalls, or every write fails.
type diskPlan struct {
	stall time.Duration // 0: writes fail
}

func planDisk(rng *rand.Rand) diskPlan {
	if rng.IntN(2) == 0 {
		return diskPlan{}
	}
	return diskPlan{stall: time.Duration(200+rng.IntN(1800)) * time.Millisecond}
}

func (d diskPlan) body() map[string]any {
	if d.stall == 0 {
		return map[string]any{"fail_writes": true}
	}
	return map[string]any{"sync_delay_ms": d.stall.Milliseconds()}
}

func (d diskPlan) String() string {
	if d.stall == 0 {
		return "writes fail"
	}
	return fmt.Sprintf("fsync stalls %v", d.stall)
}
