package ring

import (
	"errors"
	"fmt"
	"math"
)

// Defaults used by Config.EnsureDefaults.
const (
	DefaultPartitions = 64
	DefaultReplicas   = 3
	DefaultVNodes     = 64
	DefaultEpsilon    = 0.25
)

// Sentinel errors. Errors returned by this package wrap one of them, so
// callers can test with errors.Is while the message carries the detail.
var (
	ErrPartitions   = errors.New("ring: partitions must be between 1 and 16384 and divide 16384")
	ErrReplicas     = errors.New("ring: replicas must be at least 1")
	ErrVNodes       = errors.New("ring: vnodes must be at least 1")
	ErrEpsilon      = errors.New("ring: epsilon must be a finite number greater than 0")
	ErrNoNodes      = errors.New("ring: membership is empty")
	ErrNoPartitions = errors.New("ring: no partitions to place")
	ErrZeroID       = errors.New("ring: node id 0 is reserved")
	ErrDuplicateID  = errors.New("ring: duplicate node id")
)

// Config holds the placement parameters. Every node of a cluster must use the
// same values: placement is only agreed on if it is computed from identical
// inputs.
type Config struct {
	// Partitions is P, the number of partitions the slot ring is cut into.
	// Default 64. It must divide SlotCount so that every partition owns the
	// same number of contiguous slots. It is fixed when the cluster is
	// bootstrapped: changing it remaps every key.
	Partitions int
	// Replicas is R, the number of replicas of each partition. Default 3.
	// With fewer than R nodes every partition is placed on every node.
	Replicas int
	// VNodes is V, the number of tokens each node owns on the 64-bit ring.
	// Default 64. More tokens even out the nodes' shares of the ring (the
	// spread shrinks like 1/sqrt(V)), so fewer bounded-load corrections
	// are needed, at the price of a larger token table.
	VNodes int
	// Epsilon is the bounded-load slack: no node holds more than
	// ceil((1+Epsilon)·P·R/N) replicas. Default 0.25. Smaller values
	// balance more tightly but force more replicas off their natural
	// position, and every such correction can move again when the
	// membership changes.
	Epsilon float64
}

// EnsureDefaults fills zero fields with their defaults. Negative values are
// left alone so that Validate reports them.
func (c *Config) EnsureDefaults() {
	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.VNodes == 0 {
		c.VNodes = DefaultVNodes
	}
	if c.Epsilon == 0 {
		c.Epsilon = DefaultEpsilon
	}
}

// Validate reports every problem with c at once, each wrapping its sentinel
// error, so an operator fixes a bad configuration in one round.
func (c Config) Validate() error {
	return errors.Join(c.problems()...)
}

func (c Config) problems() []error {
	return append(c.partitionProblems(), c.shapeProblems()...)
}

func (c Config) partitionProblems() []error {
	if c.Partitions < 1 || c.Partitions > SlotCount || SlotCount%c.Partitions != 0 {
		return []error{fmt.Errorf("%w: got %d", ErrPartitions, c.Partitions)}
	}
	return nil
}

// shapeProblems are the problems of everything but the partition count,
// which PlaceAt does not use.
func (c Config) shapeProblems() []error {
	var errs []error
	if c.Replicas < 1 {
		errs = append(errs, fmt.Errorf("%w: got %d", ErrReplicas, c.Replicas))
	}
	if c.VNodes < 1 {
		errs = append(errs, fmt.Errorf("%w: got %d", ErrVNodes, c.VNodes))
	}
	if !(c.Epsilon > 0) || math.IsInf(c.Epsilon, 1) {
		errs = append(errs, fmt.Errorf("%w: got %v", ErrEpsilon, c.Epsilon))
	}
	return errs
}

// capacity is the bounded-load cap ceil((1+eps)·P·R/N) for the effective
// replica count R. It is never below ceil(P·R/N), so the replicas always fit,
// and is clamped to P, which no node can exceed anyway, so that a huge eps
// cannot overflow the conversion to int. It is evaluated as ((1+eps)·P/N)·R
// so that, float rounding included, the replica cap never exceeds R times
// the leader cap capacity(P, 1, N, eps): that inequality is what guarantees
// a leader assignment within the leader cap exists (see balanceLeaders).
func capacity(partitions, replicas, nodes int, eps float64) int {
	perNode := (1 + eps) * float64(partitions) / float64(nodes)
	c := math.Ceil(perNode * float64(replicas))
	if c >= float64(partitions) {
		return partitions
	}
	return int(c)
}
