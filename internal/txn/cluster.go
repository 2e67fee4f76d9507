package txn

import (
	"context"
	"errors"
	"time"

	"github.com/kintsu/kintsu/internal/clock"
)

// Cluster is how the coordinator and the resolver reach partitions: the
// router in a node, an in-memory simulation in tests.
type Cluster interface {
	// Write replicates an operation on group's leader and returns its
	// reply. The error wraps ErrNotApplied (certainly no effect) or
	// ErrUnknown (it may have taken effect), and the cause, which the
	// edge words for a client.
	Write(ctx context.Context, group uint64, args [][]byte) ([]byte, error)
	// Read serves a read operation linearizably on group's leader.
	Read(ctx context.Context, group uint64, args [][]byte) ([]byte, error)
}

// Errors of Cluster calls.
var (
	ErrNotApplied = errors.New("not applied")
	ErrUnknown    = errors.New("outcome unknown")
)

// Config tunes the coordinator and the resolver. Zero fields take the
// defaults noted.
type Config struct {
	// Origin identifies this coordinator's process (a node incarnation);
	// with a counter it makes transaction IDs unique.
	Origin uint64
	// Partition maps a key to its partition.
	Partition func(key []byte) uint64
	// Heartbeat: how often a coordinator proves a pending transaction
	// alive. Default 250ms; negative turns heartbeats off (tests).
	Heartbeat time.Duration
	// Expiry: a pending record whose heartbeat is seen unchanged this long
	// may be aborted by anyone. Default 1.5s.
	Expiry time.Duration
	// MaxAttempts bounds the retries of a transaction that meets
	// conflicts. Default 50.
	MaxAttempts int
	// OptimisticReads is how many lock-free attempts a read-only
	// transaction over several partitions makes before it takes shared
	// locks like any other (see Coordinator.readOptimistic). Default 3;
	// negative: always lock.
	OptimisticReads int
	// Now is the time source for expiry; default time.Now.
	Now func() time.Time
	// Sleep waits d or until ctx ends (false); default a timer. Tests make
	// it advance a fake clock.
	Sleep func(ctx context.Context, d time.Duration) bool
	// Go runs background work (resolution after the decision); default a
	// goroutine. Tests run it inline, so crash points are deterministic.
	Go func(f func())
	// Sequential prepares one participant at a time, in plan order (tests).
	Sequential bool
	// Failpoint is called at named points of the protocol
	// (api.FailAfterPrepare, api.FailAfterDecision); fault injection
	// stops the process there.
	Failpoint func(name string)
	// Rand returns a uniform float in [0, 1) for backoff jitter.
	Rand func() float64
}

func (c *Config) ensureDefaults() {
	if c.Heartbeat == 0 {
		c.Heartbeat = 250 * time.Millisecond
	}
	if c.Expiry == 0 {
		c.Expiry = 1500 * time.Millisecond
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 50
	}
	if c.OptimisticReads == 0 {
		c.OptimisticReads = 3
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Sleep == nil {
		c.Sleep = clock.Sleep
	}
	if c.Go == nil {
		c.Go = func(f func()) { go f() }
	}
	if c.Failpoint == nil {
		c.Failpoint = func(string) {}
	}
	if c.Rand == nil {
		c.Rand = func() float64 { return 0.5 }
	}
}
