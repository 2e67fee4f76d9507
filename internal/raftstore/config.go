package raftstore

import (
	"errors"
	"fmt"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/kintsu/kintsu/internal/command"
	"log/slog"
	"time"

	"github.com/kintsu/kintsu/internal/clock"
	"github.com/kintsu/kintsu/internal/metrics"
)

// ApplyFunc evaluates one committed command of group against w and
// appends its reply to out; spec is what Classify found for it (nil when
// Classify is not set or found nothing). It must be deterministic. An
// error is a storage failure and stops the node. A command that must not
// take effect now (it meets a transaction's lock) calls w.Refuse.
type ApplyFunc func(group uint64, w *Writer, spec *command.Spec, args [][]byte, out []byte) ([]byte, error)

// ClassifyFunc looks a committed command up, once, before it is applied:
// the spec goes to Apply, and dedupe says whether its reply must be kept
// for retries (writes; a read carried through the log can simply be
// evaluated again). It must be deterministic.
type ClassifyFunc func(group uint64, args [][]byte) (spec *command.Spec, dedupe bool)

// Config configures an Engine. Zero fields take the documented defaults
// (EnsureDefaults); Validate reports every remaining problem at once.
type Config struct {
	NodeID uint64
	// TickInterval is the raft logical clock. Default 50ms.
	TickInterval time.Duration
	// ElectionTicks before a follower campaigns (randomized up to twice
	// that by raft). Default 10.
	ElectionTicks int
	// HeartbeatTicks between leader heartbeats. Default 1.
	HeartbeatTicks int
	// MaxSizePerMsg bounds one append message. Default 1 MiB.
	MaxSizePerMsg uint64
	// MaxInflightMsgs bounds unacknowledged appends per follower. Default 256.
	MaxInflightMsgs int
	// MaxUncommittedBytes bounds a leader's uncommitted log; proposals
	// beyond it are refused (ErrBusy). Default 64 MiB.
	MaxUncommittedBytes uint64
	// MaxEntryBytes: a cycle's proposals for one group are cut into entries
	// of about this size. Default 1 MiB.
	MaxEntryBytes int
	// TruncateAfter: an applied log longer than this many entries is
	// truncated, keeping TruncateKeep entries for followers that lag a
	// little. Defaults 4096 and 512: short logs die in Pebble's memtable
	// instead of being flushed and compacted.
	TruncateAfter, TruncateKeep uint64
	// MaxPending bounds requests waiting in the engine. Default 100000.
	MaxPending int
	// UnsafeStaleReads serves reads from local state without ReadIndex.
	// It breaks linearizability; it exists only to prove that the
	// linearizability checker can fail.
	UnsafeStaleReads bool
	// UnsafeLazyHardState skips the fsync of a cycle whose only durable
	// change is a hard state (a vote or a new term): a node that crashes
	// then forgets its vote. UnsafeReapply moves the applied index back by
	// up to that many entries when a replica is loaded, so they are
	// applied twice. Both break safety; they exist only to prove that the
	// simulator's checks can fail (internal/dst).
	UnsafeLazyHardState bool
	UnsafeReapply       int
	// UnsafeCompactAhead compacts raft logs without regard to the applied
	// index durable in Pebble (maybeTruncate): after a power cut a replica
	// may miss entries it had applied only in memory. A planted bug.
	UnsafeCompactAhead bool
	// ReadLeases lets a leader serve linearizable reads from local state
	// while it holds a lease (lease.go) instead of a quorum round per
	// read, and makes this node's followers hold back the campaigns that
	// would cut a lease short. Every node of a cluster must agree on it,
	// and on TickInterval and ElectionTicks, from which a lease is sized:
	// a node without it does not protect the others' leases.
	ReadLeases bool
	// UnsafeLongLeases makes leases ten times the election timeout and
	// keeps them when the replica steps down, so a deposed leader goes on
	// serving reads after others elected a new one: a planted bug, to
	// prove the checks catch stale lease reads.
	UnsafeLongLeases bool
	// StallTimeout: a cycle of the loop still running after this long (a
	// storage write that hangs) fences the node (disk.go). Default 30s.
	StallTimeout time.Duration
	// DataDir names the node's data dir in messages about its disk, and
	// is where the durability mark is kept (mark.go); "" turns the mark
	// off. FS is its file system and the database's (nil: the real one).
	DataDir string
	FS      vfs.FS
	// SnapshotDir is where incoming snapshots are staged before they are
	// ingested (snapstage.go), on FS: "" means DataDir/snapshots, or with
	// no DataDir a temporary directory on the real file system.
	SnapshotDir string
	// IsMember says whether a node is a member of the cluster (the
	// metadata's registry, as this node last read it). A replica is
	// created for a leader's message only when the sending node is one: a
	// certified node that never joined must not leave empty replicas with
	// made-up ids behind, which would stand in the way of the replicas
	// placement adds here later. nil: any sender.
	IsMember func(node uint64) bool
	// Apply evaluates committed commands. Required.
	Apply ApplyFunc
	// Classify looks committed commands up for Apply and deduplication.
	// nil means every command is deduplicated and Apply gets no spec.
	Classify ClassifyFunc
	// KeySlot is the slot of a user key (ring.Slot), which says where a
	// split moves it (split.go); nil refuses every split.
	KeySlot func(userKey []byte) uint16
	// MaxGroup: groups at or above it (the metadata group) neither split
	// nor are born of a split; 0: no bound.
	MaxGroup uint64
	Logger   *slog.Logger
	Metrics  *metrics.Metrics
	// Quarantine is the set of condemned groups (quarantine.go); nil
	// makes an empty one.
	Quarantine *Quarantine
	// Clock times the raft tick (Period(TickInterval)); nil = real time.
	Clock *clock.Clock
}

// EnsureDefaults fills zero fields.
func (c *Config) EnsureDefaults() {
	if c.TickInterval == 0 {
		c.TickInterval = 50 * time.Millisecond
	}
	if c.ElectionTicks == 0 {
		c.ElectionTicks = 10
	}
	if c.HeartbeatTicks == 0 {
		c.HeartbeatTicks = 1
	}
	if c.MaxSizePerMsg == 0 {
		c.MaxSizePerMsg = 1 << 20
	}
	if c.MaxInflightMsgs == 0 {
		c.MaxInflightMsgs = 256
	}
	if c.MaxUncommittedBytes == 0 {
		c.MaxUncommittedBytes = 64 << 20
	}
	if c.MaxEntryBytes == 0 {
		c.MaxEntryBytes = 1 << 20
	}
	if c.TruncateAfter == 0 {
		c.TruncateAfter = 4096
	}
	if c.TruncateKeep == 0 {
		c.TruncateKeep = 512
	}
	if c.MaxPending == 0 {
		c.MaxPending = 100000
	}
	if c.StallTimeout == 0 {
		c.StallTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = clock.New()
	}
	if c.Metrics == nil {
		c.Metrics = metrics.New()
	}
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.NodeID == 0 {
		errs = append(errs, errors.New("node id must be non-zero"))
	}
	if c.HeartbeatTicks >= c.ElectionTicks {
		errs = append(errs, fmt.Errorf("heartbeat ticks (%d) must be below election ticks (%d)", c.HeartbeatTicks, c.ElectionTicks))
	}
	if c.TruncateKeep >= c.TruncateAfter {
		errs = append(errs, fmt.Errorf("truncate keep (%d) must be below truncate after (%d)", c.TruncateKeep, c.TruncateAfter))
	}
	if c.Apply == nil {
		errs = append(errs, errors.New("an apply function is required"))
	}
	return errors.Join(errs...)
}
