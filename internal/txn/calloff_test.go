package txn

import (
	"context"
	"sync"
	"testing"
	"time"
)

// waitingCluster is the simulation behind a mutex, whose first PREPARE to
// group 1 waits until its caller gives up, as one parked on a
// participant's leader does.
type waitingCluster struct {
	mu      sync.Mutex
	s       *sim
	parked  chan ID // the waiting PREPARE's transaction
	waiting bool
}

func (c *waitingCluster) Write(ctx context.Context, g uint64, args [][]byte) ([]byte, error) {
	c.mu.Lock()
	if g == 1 && IsPrepare(args) && !c.waiting {
		c.waiting = true
		c.mu.Unlock()
		p, _ := decodePrepare(args[1])
		c.parked <- p.ref.ID
		<-ctx.Done()
		return nil, ErrUnknown
	}
	defer c.mu.Unlock()
	return c.s.Write(ctx, g, args)
}

func (c *waitingCluster) Read(ctx context.Context, g uint64, args [][]byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s.Read(ctx, g, args)
}

// A transaction whose PREPARE waits on a participant's leader is wounded
// meanwhile (its record aborted by an older one): its heartbeat finds the
// record decided and calls the waiting PREPARE off, and the attempt is
// retried as a conflict instead of holding its locks until its deadline
// and failing.
func TestWoundedAttemptCallsOffItsWaitingPrepares(t *testing.T) {
	c := &waitingCluster{s: newSim(3), parked: make(chan ID, 1)}
	cfg := c.s.config()
	cfg.Heartbeat = 5 * time.Millisecond
	cfg.Sleep, cfg.Now, cfg.Sequential = nil, nil, false // real time; resolution stays inline
	co := NewCoordinator(cfg, c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		id := <-c.parked
		c.mu.Lock()
		defer c.mu.Unlock()
		c.s.Write(ctx, 0, abortArgs(id, 0, true)) // the wound
	}()
	reply, err := co.Exec(ctx, cmds("MSET a1 x b1 y"), nil)
	if got := shown(reply, err); got != "[OK]" || ctx.Err() != nil {
		t.Fatalf("the wounded transaction answered %s (deadline passed: %v)", got, ctx.Err() != nil)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.s.state(); st != `a1="x" b1="y"` {
		t.Fatalf("state after the retry: %s", st)
	}
}
