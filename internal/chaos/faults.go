package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/kintsu/kintsu/internal/api"
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

func (s skew) body() api.FaultClock {
	return api.FaultClock{OffsetMS: s.offset.Milliseconds(), Rate: s.rate}
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

func (d diskPlan) body() api.FaultDisk {
	if d.stall == 0 {
		return api.FaultDisk{FailWrites: true}
	}
	return api.FaultDisk{SyncDelayMS: d.stall.Milliseconds()}
}

func (d diskPlan) String() string {
	if d.stall == 0 {
		return "writes fail"
	}
	return fmt.Sprintf("fsync stalls %v", d.stall)
}

// coordinatorPoints are where the coordinator nemesis crashes a node that
// coordinates a cross-partition transaction: between its prepares and its
// decision, and between its decision and the resolution of its intents.
var coordinatorPoints = []string{api.FailAfterPrepare, api.FailAfterDecision}

// failpointWait bounds how long an armed failpoint may wait for a
// transaction to reach it (the bank workload runs several a second).
const failpointWait = 5 * time.Second

// crashAtFailpoint arms a crash failpoint on f.Node and waits for the node
// to die there; it stays down for the fault's length and is restarted. A
// failpoint no transaction reached in time is disarmed and the fault
// marked as not reached.
func (n *nemesis) crashAtFailpoint(ctx context.Context, f *Fault, at string, hold func()) error {
	f.Detail = at
	addr := n.c.Node(f.Node).HTTPAddr
	if err := putFault(addr, "crash", api.FaultCrash{At: at}); err != nil {
		return err
	}
	n.log("node %d: crash armed at failpoint %s", f.Node, at)
	if !n.waitExit(ctx, f.Node, failpointWait) {
		err := putFault(addr, "crash", api.FaultCrash{})
		if n.c.Running(f.Node) { // it may have crashed just now
			f.StartMS, f.EndMS = n.rec.nowMS(), n.rec.nowMS()
			f.Detail += " (not reached)"
			n.log("node %d: no transaction reached %s in %v", f.Node, at, failpointWait)
			return err
		}
	}
	f.StartMS = n.rec.nowMS()
	n.log("node %d crashed at failpoint %s", f.Node, at)
	hold()
	f.EndMS = n.rec.nowMS()
	return n.restart(ctx, f.Node)
}
